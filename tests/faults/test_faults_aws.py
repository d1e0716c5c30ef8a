"""Faults at the AWS API layer, injected by LocalAws hooks, under sync, asyncio and trio."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from _faults_harness import Case
from _faults_inject import FailCalls, capacity_failure, json_error, s3_error

from ecs_sandbox_core import (
    PhaseTimeoutError,
    RunTaskError,
    S3StagingError,
    TaskStoppedError,
)

pytestmark = pytest.mark.faults
CATEGORY = "aws-api"


@pytest.mark.parametrize(
    "operation", ["RunTask", "StopTask", "DescribeTasks", "RegisterTaskDefinition"]
)
def test_throttled_call_is_retried(case: Case, operation: str) -> None:
    hook = case.add_hook(
        FailCalls(operation, json_error("ThrottlingException", "Rate exceeded"), times=2)
    )
    api = case.api()
    arns: list[str] = []

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            arns.append(sandbox.task_arn)
            result = await sandbox.exec(case.cmd("once", "echo done"))
            assert (result.exit_code, result.output) == (0, b"done\n")

    case.run(scenario)
    assert hook.failed == 2 and hook.seen >= 3, (hook.failed, hook.seen)
    assert case.executions("once") == 1
    warned = [m for phase, m in case.progress_log if "ThrottlingException" in m]
    assert len(warned) == 2, case.progress_log


def test_capacity_shortage_then_success(case: Case) -> None:
    hook = case.add_hook(FailCalls("RunTask", capacity_failure, times=2))
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            result = await sandbox.exec(case.cmd("once", "echo ok"))
            assert result.output == b"ok\n"

    case.run(scenario)
    assert (hook.failed, hook.seen) == (2, 3)
    assert case.executions("once") == 1


def test_capacity_never_comes(case: Case) -> None:
    hook = case.add_hook(FailCalls("RunTask", capacity_failure, times=None))
    api = case.api(case.cfg(run_task_max_retries=3))

    async def scenario() -> None:
        with case.expect(
            RunTaskError, "no Fargate capacity after 3 attempts", "Capacity is unavailable"
        ):
            async with api.spin_up(case.task_id(), case.run_id):
                raise AssertionError("spin-up should have failed")

    case.run(scenario)
    assert hook.seen == 3
    # The task definition registered for the attempt was deregistered (audited as a leak).


def test_access_denied_is_not_retried(case: Case) -> None:
    hook = case.add_hook(
        FailCalls(
            "RunTask",
            json_error(
                "AccessDeniedException",
                "User: arn:aws:iam::123456789012:user/faults is not authorized to perform: "
                "ecs:RunTask",
            ),
            times=None,
        )
    )
    api = case.api()
    registered = FailCalls("RegisterTaskDefinition", json_error("x", "x"), times=0)
    case.add_hook(registered)

    async def scenario() -> None:
        with case.expect(RunTaskError, "AccessDeniedException", "ecs:RunTask"):
            async with api.spin_up(case.task_id(), case.run_id):
                raise AssertionError("spin-up should have failed")

    case.run(scenario)
    assert hook.seen == 1  # no retry
    assert registered.seen == 1  # a definition was registered, and (audit) deregistered


def test_s3_put_fails_during_copy(case: Case, tmp_path: Path) -> None:
    api = case.api()
    src = tmp_path / "payload.txt"
    src.write_text("payload")
    arns: list[str] = []

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            arns.append(sandbox.task_arn)
            hook = case.add_hook(
                FailCalls("s3 PUT", s3_error("AccessDenied", "Access Denied", 403), times=None)
            )
            with case.expect(S3StagingError, "AccessDenied", "s3://"):
                await sandbox.copy_to_sandbox(paths=src, container_dir="/app/in")
            assert hook.failed == 1
            # The sandbox is still usable, and the upload never reached it.
            listing = await sandbox.exec(case.cmd("after", "ls /app/in 2>&1; true"))
            assert b"payload.txt" not in listing.output

    case.run(scenario)
    assert case.executions("after") == 1


def test_task_stops_between_commands(case: Case) -> None:
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            first = await sandbox.exec(case.cmd("first", "echo alive"))
            assert first.output == b"alive\n"
            container = case.local_aws.container(sandbox.task_arn)
            assert container is not None
            container.kill()  # the essential container dies (OOM, crash)
            with case.expect(
                TaskStoppedError, "EssentialContainerExited", "exit code=", sandbox.task_arn
            ):
                await sandbox.exec(case.cmd("second", "echo never"))

    case.run(scenario)
    assert case.executions("first") == 1
    assert case.executions("second") == 0


def test_task_stops_while_command_runs(case: Case) -> None:
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            container = case.local_aws.container(sandbox.task_arn)
            assert container is not None
            log = container.root / "fs" / "tmp" / ".faults-exec"

            def kill_when_started() -> None:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if log.exists() and log.read_text().strip():
                        break
                    time.sleep(0.01)
                container.kill()

            killer = threading.Thread(target=kill_when_started, daemon=True)
            killer.start()
            with case.expect(TaskStoppedError, "EssentialContainerExited", "exit code="):
                await sandbox.exec(case.cmd("long", "echo started; sleep 30"))
            killer.join()

    case.run(scenario)
    assert case.executions("long") == 1


def test_task_never_reaches_running(case: Case) -> None:
    case.local_aws.start_delay_s = 120.0  # PENDING for longer than the deadline
    api = case.api(case.cfg(running_timeout_sec=15.0))

    async def scenario() -> None:
        with case.expect(PhaseTimeoutError, "not RUNNING after 15s", "PENDING") as caught:
            async with api.spin_up(case.task_id(), case.run_id):
                raise AssertionError("spin-up should have timed out")
        assert getattr(caught["error"], "phase", None) == "wait-running"

    case.run(scenario)
    # The audit checks that the PENDING task was stopped and its container killed.
