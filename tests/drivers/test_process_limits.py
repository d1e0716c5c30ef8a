"""The process runner keeps a bounded amount of output: a command that prints without end is
killed one byte past its limit, under the sync runner, asyncio and trio alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ecs_sandbox_drivers._process import run_async, run_sync
from ecs_sandbox_drivers._transport import PreparedRun

ENDLESS = "sleep 300 & echo $!; exec yes 0123456789abcdef"


def shell(script: str) -> PreparedRun:
    return PreparedRun(argv=["sh", "-c", script], env=None, pty=False)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def check_killed_at_the_limit(
    outcome: tuple[int | None, bytes, bytes, bool], limit: int, wait_gone: Callable[[int], bool]
) -> None:
    code, out, _err, timed_out = outcome
    assert len(out) == limit + 1
    assert out.split(b"\n", 1)[1].startswith(b"0123456789abcdef\n")
    assert not timed_out and code == -9
    assert wait_gone(int(out.split()[0]))  # the whole group went, the sleeper too


def test_run_sync_stops_an_endless_command_one_byte_past_the_limit(
    wait_gone: Callable[[int], bool],
) -> None:
    chunks: list[bytes] = []
    outcome = run_sync(shell(ENDLESS), 60, chunks.append, max_stdout_bytes=1 << 20)
    check_killed_at_the_limit(outcome, 1 << 20, wait_gone)
    assert b"".join(chunks) == outcome[1]  # what streams is what is kept


@pytest.mark.anyio
async def test_run_async_stops_an_endless_command_one_byte_past_the_limit(
    wait_gone: Callable[[int], bool],
) -> None:
    chunks: list[bytes] = []
    outcome = await run_async(shell(ENDLESS), 60, chunks.append, max_stdout_bytes=1 << 20)
    check_killed_at_the_limit(outcome, 1 << 20, wait_gone)
    assert b"".join(chunks) == outcome[1]


@pytest.mark.parametrize("size", [999, 1000])
def test_output_up_to_the_limit_is_whole(size: int) -> None:
    outcome = run_sync(shell(f"head -c {size} /dev/zero"), 60, max_stdout_bytes=1000)
    assert outcome == (0, b"\0" * size, b"", False)


@pytest.mark.anyio
async def test_async_output_up_to_the_limit_is_whole() -> None:
    outcome = await run_async(shell("head -c 1000 /dev/zero"), 60, max_stdout_bytes=1000)
    assert outcome == (0, b"\0" * 1000, b"", False)


def test_a_flood_on_the_transports_error_channel_is_kept_to_its_start() -> None:
    code, out, err, timed_out = run_sync(
        shell("printf 'first line\\n' >&2; head -c 5000000 /dev/zero >&2; echo done"),
        60,
        max_stdout_bytes=1 << 20,
    )
    assert (code, out, timed_out) == (0, b"done\n", False)
    assert err.startswith(b"first line\n") and len(err) == (1 << 20) + 1


@pytest.mark.anyio
async def test_async_error_channel_flood_is_kept_to_its_start() -> None:
    code, out, err, _ = await run_async(
        shell("head -c 5000000 /dev/zero >&2; echo done"), 60, max_stdout_bytes=1 << 20
    )
    assert (code, out, len(err)) == (0, b"done\n", (1 << 20) + 1)
