"""The native exec path end to end on the local ECS: sessions kept per sandbox, what they
cost, the budget's reaction to throttling, and the AWS CLI path's stdin."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers._process import run_sync
from ecs_sandbox_drivers._transport import PreparedRun
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._middleware import InterceptedRequest, Reply


def test_commands_share_one_session_and_spend_one_execute_command(local_aws: LocalAws) -> None:
    cfg = local_aws.config()
    driver = SyncDriver(cfg)
    before = Counter(local_aws.calls)
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="loop", trial_name="t", run_id="native", driver=driver
    ) as sandbox:
        for i in range(30):
            result = sandbox.exec(f"printf '%s\\r\\n' {i}; exit {i % 7}")
            assert (result.exit_code, result.output) == (i % 7, f"{i}\r\n".encode())
        assert sandbox.exec(["sh", "-c", "printf '\\000\\377'"], binary=True).output == (b"\0\xff")
    calls = Counter(local_aws.calls)
    calls.subtract(before)
    # One command-loop session carried all 31 commands (and the image probe before them).
    assert calls["ExecuteCommand"] == 1
    assert driver.stats.sessions_opened == 1


def test_one_session_per_command_when_asked(local_aws: LocalAws) -> None:
    cfg = local_aws.config(exec_sessions_per_sandbox=0)
    before = Counter(local_aws.calls)
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="oneshot", trial_name="t", run_id="native", driver=SyncDriver(cfg)
    ) as sandbox:
        for i in range(3):
            assert sandbox.exec(f"exit {i}").exit_code == i
    calls = Counter(local_aws.calls)
    calls.subtract(before)
    # One session per command, and one for the image probe of the driver's first sandbox.
    assert calls["ExecuteCommand"] == 3 + 1


def test_a_throttled_execute_command_slows_the_budget_and_is_retried(
    local_aws: LocalAws,
) -> None:
    refused = []

    def throttle_once(request: InterceptedRequest) -> Reply | None:
        if request.operation == "ExecuteCommand" and not refused:
            refused.append(request)
            return Reply.json_error("ThrottlingException", "Rate exceeded")
        return None

    cfg = local_aws.config()
    driver = SyncDriver(cfg)
    bucket = driver.budget.bucket("ecs-run")
    assert bucket is not None
    nominal = bucket.nominal_rate
    local_aws.add_hook(throttle_once)
    try:
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="throttled", trial_name="t", run_id="native", driver=driver
        ) as sandbox:
            assert sandbox.exec("echo ok").output == b"ok\n"
            assert bucket.rate_at(driver.now()) < nominal  # slowed down, recovering
    finally:
        local_aws.remove_hook(throttle_once)
    assert len(refused) == 1 and driver.stats.throttled_by_aws == 1


def test_the_aws_cli_path_fails_when_its_stdin_is_at_end_of_file(local_aws: LocalAws) -> None:
    """The real plugin (and the stand-in) ends a session whose stdin reaches EOF."""
    transport = local_aws.cli_transport()
    cfg = local_aws.config(exec_transport="aws-cli")
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="cli", trial_name="t", run_id="native", driver=SyncDriver(cfg)
    ) as sandbox:
        command = "sh -c 'sleep 1.5; echo late'"
        prepared = transport.prepare(
            task_arn=sandbox.task_arn, container=cfg.container_name, command=command
        )
        assert isinstance(prepared, PreparedRun) and prepared.hold_stdin
        held = run_sync(prepared, 60)
        at_eof = run_sync(
            PreparedRun(argv=prepared.argv, env=prepared.env, pty=True, hold_stdin=False), 60
        )
    assert b"late" in held[1], held
    assert b"Cannot perform start session: EOF" in at_eof[1]
    assert b"late" not in at_eof[1]


@pytest.mark.anyio
async def test_concurrent_commands_in_one_sandbox_use_a_bounded_pool(
    local_aws: LocalAws, anyio_backend: str
) -> None:
    cfg = local_aws.config(exec_sessions_per_sandbox=3)
    driver = aio.AsyncDriver(cfg)
    results: dict[int, int] = {}
    async with aio.EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="pool", trial_name="t", run_id="native", driver=driver
    ) as sandbox:

        async def one(i: int) -> None:
            result = await sandbox.exec(f"sleep 0.2; echo {i} >> /tmp/ran; exit {i}")
            results[i] = result.exit_code

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        ran = (await sandbox.exec("sort -n /tmp/ran")).output.split()
    assert results == {i: i for i in range(8)}
    assert ran == [str(i).encode() for i in range(8)]  # each exactly once
    assert driver.stats.sessions_opened <= 3
