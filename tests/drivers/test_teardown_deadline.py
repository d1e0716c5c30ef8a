"""A tear-down that gives up says so: ERROR, what is left, and the gc command that reaps it.

The anyio driver bounds clean-up in time (it runs shielded from cancellation); the sync API
gives up after a second Ctrl-C. Either way the resources left behind are named in an ERROR
record with ``ecs-sandbox gc --run-id RUN``, and that command does reap them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio, collect_garbage
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._middleware import InterceptedRequest, Reply

Hook = Callable[[InterceptedRequest], "Reply | None"]


def failing(operation: str, code: str, status: int) -> Hook:
    def hook(request: InterceptedRequest) -> Reply | None:
        if request.operation == operation:
            return Reply.json_error(code, f"injected {code}", status)
        return None

    return hook


class Hooks:
    """Faults injected into the local ECS; ``clear()`` ends them (the fixture does, too)."""

    def __init__(self, local_aws: LocalAws) -> None:
        self.local_aws = local_aws
        self.added: list[Hook] = []

    def __call__(self, hook: Hook) -> None:
        self.local_aws.add_hook(hook)
        self.added.append(hook)

    def clear(self) -> None:
        while self.added:
            self.local_aws.remove_hook(self.added.pop())


@pytest.fixture
def hooks(local_aws: LocalAws) -> Iterator[Hooks]:
    injected = Hooks(local_aws)
    yield injected
    injected.clear()


@pytest.fixture
def run_id() -> str:
    return f"deadline-{secrets.token_hex(4)}"


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config(image_template="ecs-sandbox/deadline:{task_id}")


def _status(local_aws: LocalAws, cfg: EcsFargateConfig, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_tasks(cluster=cfg.cluster, tasks=[arn])["tasks"][0]["lastStatus"])


def _definition_status(local_aws: LocalAws, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"])


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _reaped_by_the_logged_command(
    message: str, run_id: str, cfg: EcsFargateConfig, local_aws: LocalAws, arns: list[str]
) -> None:
    assert f"ecs-sandbox gc --run-id {run_id}" in message
    report = collect_garbage(cfg, run_id=run_id)
    assert report.ok
    for arn in arns:
        if ":task-definition/" in arn:
            assert _definition_status(local_aws, arn) == "INACTIVE"
        else:
            assert _status(local_aws, cfg, arn) == "STOPPED"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_anyio_tear_down_past_its_deadline_logs_what_is_left(
    backend: str,
    cfg: EcsFargateConfig,
    local_aws: LocalAws,
    hooks: Hooks,
    run_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        driver = aio.AsyncDriver(cfg, poll_tick_s=0.2, cleanup_timeout_s=1.5)
        async with aio.EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=f"dl-{backend}", trial_name="t", run_id=run_id, driver=driver
        ) as sandbox:
            seen["task"] = sandbox.task_arn
            seen["definition"] = sandbox._flows.handle.task_definition_arn
            hooks(failing("StopTask", "ServerException", 500))  # retried until the deadline

    with caplog.at_level(logging.INFO, logger="ecs_sandbox"):
        anyio.run(main, backend=backend)
    (message,) = _errors(caplog)
    assert "did not finish within 1.5 s" in message
    assert seen["task"] in message and seen["definition"] in message
    assert _status(local_aws, cfg, seen["task"]) == "RUNNING"  # really left behind
    hooks.clear()
    _reaped_by_the_logged_command(
        message, run_id, cfg, local_aws, [seen["task"], seen["definition"]]
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_interrupted_spin_up_clean_up_logs_what_is_left(
    backend: str,
    cfg: EcsFargateConfig,
    local_aws: LocalAws,
    hooks: Hooks,
    run_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # DescribeTasks is throttled, so the spin-up keeps waiting after RunTask; the harness
    # cancels it at its first poll (so the task exists, however slow the machine), and its
    # clean-up then cannot stop the task before the deadline.
    async def main() -> None:
        driver = aio.AsyncDriver(cfg, poll_tick_s=0.2, cleanup_timeout_s=1.5)
        token = anyio.lowlevel.current_token()
        with anyio.CancelScope() as scope:
            polled: list[bool] = []

            def cancel_at_the_first_poll(request: InterceptedRequest) -> Reply | None:
                if request.operation == "DescribeTasks" and not polled:
                    polled.append(True)
                    anyio.from_thread.run_sync(scope.cancel, token=token)
                return None

            hooks(cancel_at_the_first_poll)
            hooks(failing("DescribeTasks", "ThrottlingException", 400))
            hooks(failing("StopTask", "ServerException", 500))
            async with aio.EcsFargateSandbox.spin_up(
                cfg=cfg, task_id=f"undo-{backend}", trial_name="t", run_id=run_id, driver=driver
            ):
                pass
        assert scope.cancelled_caught

    with caplog.at_level(logging.INFO, logger="ecs_sandbox"):
        anyio.run(main, backend=backend)
    errors = [m for m in _errors(caplog) if "left behind" in m]
    assert len(errors) == 1
    (message,) = errors
    assert "could not finish (TimeoutError: clean-up did not finish in time)" in message
    task = next(word for word in message.split() if ":task/" in word)
    hooks.clear()
    _reaped_by_the_logged_command(message, run_id, cfg, local_aws, [task])


def test_a_sync_tear_down_interrupted_twice_logs_what_is_left(
    cfg: EcsFargateConfig, local_aws: LocalAws, run_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    interrupts = {"left": 0}

    def progress(phase: str, message: str) -> None:
        # Ctrl-C, exactly when each tear-down attempt is about to stop the task.
        if message.startswith("stopping task") and interrupts["left"] > 0:
            interrupts["left"] -= 1
            raise KeyboardInterrupt

    driver = SyncDriver(cfg, progress=progress)
    seen: dict[str, Any] = {}
    with (
        caplog.at_level(logging.INFO, logger="ecs_sandbox"),
        pytest.raises(KeyboardInterrupt),
        EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="dl-sync", trial_name="t", run_id=run_id, driver=driver
        ) as sandbox,
    ):
        seen["task"] = sandbox.task_arn
        seen["definition"] = sandbox._flows.handle.task_definition_arn
        interrupts["left"] = 2
    (message,) = _errors(caplog)
    assert "interrupted twice" in message
    assert seen["task"] in message and seen["definition"] in message
    _reaped_by_the_logged_command(
        message, run_id, cfg, local_aws, [seen["task"], seen["definition"]]
    )


def test_one_interrupt_is_not_enough_to_leave_anything(
    cfg: EcsFargateConfig, local_aws: LocalAws, run_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    interrupts = {"left": 0}

    def progress(phase: str, message: str) -> None:
        if message.startswith("stopping task") and interrupts["left"] > 0:
            interrupts["left"] -= 1
            raise KeyboardInterrupt

    driver = SyncDriver(cfg, progress=progress)
    with (
        caplog.at_level(logging.INFO, logger="ecs_sandbox"),
        pytest.raises(KeyboardInterrupt),
        EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="one-ki", trial_name="t", run_id=run_id, driver=driver
        ) as sandbox,
    ):
        arn = sandbox.task_arn
        interrupts["left"] = 1
    assert _errors(caplog) == []
    assert _status(local_aws, cfg, arn) == "STOPPED"
