"""The inspect_ai provider's decisions (``_inspect_ops``) on the local ECS, without
inspect_ai: the file scripts and the error mapping its methods use, one exec each."""

from __future__ import annotations

from typing import Any

import pytest
from _modes import spin_up

from ecs_sandbox_drivers import _inspect_ops as ops
from ecs_sandbox_drivers.local import LocalAws


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def write(sandbox: Any, path: str, data: bytes, user: str | None = None) -> Any:
    result = await sandbox.exec(
        ["sh", "-c", ops.WRITE_SCRIPT, "sh", path], input=data, user=user, separate_stderr=True
    )
    return ops.file_error(result, path)


async def read(sandbox: Any, path: str, limit: int = 1 << 20, user: str | None = None) -> Any:
    result = await sandbox.exec(
        ["sh", "-c", ops.READ_SCRIPT, "sh", path, str(limit)], user=user, separate_stderr=True
    )
    if result.exit_code == ops.TOO_LARGE:
        return "too large"
    return ops.file_error(result, path) or result.stdout


@pytest.mark.anyio
async def test_file_operations_and_their_errors(local_aws: LocalAws) -> None:
    async with spin_up("asyncio", local_aws.config(), "inspect-ops") as sandbox:
        data = b"\xc3\x28\x00\r\nno newline"
        assert await write(sandbox, "/tmp/a b/c/file", data) is None  # parents created
        assert await read(sandbox, "/tmp/a b/c/file") == data
        assert await write(sandbox, "/tmp/empty", b"") is None
        assert await read(sandbox, "/tmp/empty") == b""
        assert isinstance(await read(sandbox, "/tmp/nope"), FileNotFoundError)
        assert isinstance(await read(sandbox, "/etc"), IsADirectoryError)
        assert isinstance(await write(sandbox, "/tmp/a b", b"x"), IsADirectoryError)
        assert await read(sandbox, "/tmp/a b/c/file", limit=3) == "too large"
        # Permissions hold for a user that is not root (root may write anything).
        await sandbox.exec("echo keep > /tmp/ro; chmod 444 /tmp/ro; chmod 000 /tmp/empty")
        assert isinstance(await write(sandbox, "/tmp/ro", b"x", user="nobody"), PermissionError)
        assert isinstance(await read(sandbox, "/tmp/empty", user="nobody"), PermissionError)
        assert await read(sandbox, "/tmp/ro") == b"keep\n"


@pytest.mark.anyio
async def test_exec_results_as_inspect_expects(local_aws: LocalAws) -> None:
    async with spin_up("asyncio", local_aws.config(), "inspect-exec") as sandbox:
        denied = await sandbox.exec(["/etc/passwd"], separate_stderr=True)
        assert isinstance(ops.exec_error(denied), PermissionError)
        text = ops.text_result(
            await sandbox.exec(
                ["sh", "-c", "printf 'caf\\303\\251'; echo e >&2; exit 70"], separate_stderr=True
            )
        )
        assert text == ops.TextResult(False, 70, "café", "e\n")
        big = await sandbox.exec(["sh", "-c", "yes | head -c 2000 >&2"], separate_stderr=True)
        assert ops.stream_over(big, 1000) == b"y\n" * 500
        assert ops.stream_over(big, 2000) is None
        assert "unable to find user x: no matching entries in passwd file" in (
            ops.no_such_user_result("x").stdout
        )
