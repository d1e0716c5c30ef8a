"""The exec contract through the public API on the local ECS: separate stdout and stderr,
stdin bytes, ``user=``, no time limit, 126/127, the output limit, ``container.exec_run``.

The scenario runs through the sync API, asyncio and trio on the default transport (the
native command loop); the transports that carry a command differently (one ECS Exec
session per command, the AWS CLI, nsenter) run a shorter one through the sync API.
Local tasks run as root, with the host's ``/etc`` (so ``nobody`` exists).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import anyio
import pytest
from _modes import mode_fixtures, spin_up

from ecs_sandbox_core import (
    EcsFargateConfig,
    ExecOutputTooLargeError,
    NoSuchUserError,
    UsageError,
)
from ecs_sandbox_drivers import EcsFargateSandbox
from ecs_sandbox_drivers.local import LocalAws

MARKERISH = b"<<ecsx-0123456789abcdef0123456789abcdef:end:0:x>>\n\x00\xff\r\n"


mode, anyio_backend = mode_fixtures()


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def check_contract(sandbox: Any, *, full: bool = True) -> None:
    both = await _maybe(
        sandbox.exec(
            ["sh", "-c", 'printf "%s" "$1"; printf "%s" "$2" >&2; exit 3', "sh", "out\n", "err"],
            separate_stderr=True,
        )
    )
    assert (both.exit_code, both.stdout, both.stderr) == (3, b"out\n", b"err")

    for data in (b"", b"no newline", MARKERISH, bytes(range(256)) * 40):
        fed = await _maybe(
            sandbox.exec(["cat"], input=data, separate_stderr=True, timeout_sec=None)
        )
        assert (fed.exit_code, fed.stdout, fed.stderr) == (0, data, b"")
    text = await _maybe(sandbox.exec("cat; echo", input="héllo"))  # text is sent as UTF-8
    assert text.output == "héllo\n".encode()

    who = await _maybe(sandbox.exec(["id", "-un"], user="nobody", separate_stderr=True))
    assert who.stdout == b"nobody\n"
    with pytest.raises(NoSuchUserError):
        await _maybe(sandbox.exec(["id"], user="no-such-user-z"))

    missing = await _maybe(sandbox.exec(["no-such-command"], separate_stderr=True))
    denied = await _maybe(sandbox.exec(["/etc/passwd"], user="nobody", separate_stderr=True))
    assert (missing.exit_code, denied.exit_code) == (127, 126)
    assert missing.stdout == b"" and missing.stderr

    if not full:
        return
    result = await _maybe(
        sandbox.container.exec_run(
            ["sh", "-c", 'pwd; echo "$V"; id -un; echo e >&2'],
            user="nobody",
            workdir="/tmp",
            environment=["V=from-env"],
            demux=True,
        )
    )
    exit_code, (out, err) = result
    assert (exit_code, out, err) == (0, b"/tmp\nfrom-env\nnobody\n", b"e\n")
    merged = await _maybe(sandbox.container.exec_run("echo a; echo b >&2"))
    assert (merged.exit_code, merged.output) == (0, b"a\nb\n")
    with pytest.raises(UsageError):
        await _maybe(sandbox.container.exec_run("true", detach=True))

    # What a command starts is hung up when it ends, as a terminal would; with
    # keep_background (and through exec_run, as docker exec) it runs on.
    alive = "kill -0 $(cat /tmp/bg.pid) 2>/dev/null && echo alive || echo gone"
    for keep, expected in ((False, b"gone\n"), (True, b"alive\n")):
        await _maybe(
            sandbox.exec("sleep 600 >/dev/null 2>&1 & echo $! >/tmp/bg.pid", keep_background=keep)
        )
        assert (await _maybe(sandbox.exec(alive))).output == expected
    await _maybe(sandbox.exec("kill $(cat /tmp/bg.pid)"))
    # (As with docker exec, a child that kept the output would hold the exec until it ends.)
    started = "sleep 600 >/dev/null 2>&1 & echo $! >/tmp/bg.pid"
    await _maybe(sandbox.container.exec_run(["sh", "-c", started]))
    assert (await _maybe(sandbox.exec(alive))).output == b"alive\n"
    await _maybe(sandbox.exec("kill $(cat /tmp/bg.pid)"))


@pytest.mark.anyio
async def test_the_exec_contract_in_every_mode(local_aws: LocalAws, mode: str) -> None:
    cfg = local_aws.config(max_exec_output_bytes=100_000)
    async with spin_up(mode, cfg, f"contract-{mode}") as sandbox:
        await check_contract(sandbox)
        with pytest.raises(ExecOutputTooLargeError):
            await _maybe(
                sandbox.exec(
                    "head -c 60000 /dev/zero; head -c 60000 /dev/zero >&2", separate_stderr=True
                )
            )
        # The sandbox is still usable afterwards.
        assert (await _maybe(sandbox.exec("echo ok"))).output == b"ok\n"


@pytest.mark.parametrize(
    "overrides",
    [
        {"exec_sessions_per_sandbox": 0},
        {"exec_transport": "aws-cli"},
        {"exec_transport": "nsenter"},
    ],
    ids=["per-command-session", "aws-cli", "nsenter"],
)
def test_the_exec_contract_on_every_transport(
    local_aws: LocalAws, overrides: dict[str, Any]
) -> None:
    cfg: EcsFargateConfig = local_aws.config(**overrides)
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="contract-transport", trial_name="t", run_id="regress"
    ) as sandbox:
        anyio.run(functools.partial(check_contract, sandbox, full=False))


@pytest.mark.anyio
async def test_a_configured_user_and_workdir_in_every_mode(local_aws: LocalAws, mode: str) -> None:
    # exec_user and exec_workdir act as an image's USER and WORKDIR do for docker exec:
    # defaults for the calls that name no user or cwd, never overriding one that does.
    cfg = local_aws.config(exec_user="nobody", exec_workdir="/tmp")
    async with spin_up(mode, cfg, f"as-user-{mode}") as sandbox:
        where = await _maybe(sandbox.exec("id -un; pwd", separate_stderr=True))
        assert where.stdout == b"nobody\n/tmp\n"
        root = await _maybe(sandbox.exec("id -un; pwd", user="root", cwd="/"))
        assert root.output == b"root\n/\n"
        exit_code, output = await _maybe(sandbox.container.exec_run(["sh", "-c", "id -un; pwd"]))
        assert (exit_code, output) == (0, b"nobody\n/tmp\n")
        # Mode bits now bind: the owner cannot read a file it made unreadable; root can.
        made = "umask 077; echo secret > mine.txt; chmod 000 mine.txt; cat mine.txt"
        denied = await _maybe(sandbox.exec(made, separate_stderr=True))
        assert denied.exit_code == 1 and b"ermission denied" in denied.stderr
        read = await _maybe(sandbox.exec(["cat", "/tmp/mine.txt"], user="root"))
        assert (read.exit_code, read.output) == (0, b"secret\n")
        await _maybe(sandbox.exec(["rm", "-f", "/tmp/mine.txt"]))
