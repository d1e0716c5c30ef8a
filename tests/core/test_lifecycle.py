"""Spin-up and tear-down flows, driven by scripted effects.

Log effects are answered by the runner and collected, so that each script lists the effects
that matter (AWS calls, polls, sleeps, clock and random reads) and tests can still assert on
the log records.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import pytest

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import (
    AwsCall,
    AwsError,
    AwsResult,
    DescribeTask,
    Log,
    Now,
    Random,
    Sleep,
    Token,
)
from ecs_sandbox_core._errors import (
    AwsCredentialsError,
    PhaseTimeoutError,
    RunTaskError,
    TaskDefinitionError,
    TaskStoppedError,
    UsageError,
)
from ecs_sandbox_core._lifecycle import (
    REGISTRY_POLL_S,
    TaskHandle,
    preflight_flow,
    start_flow,
    teardown_flow,
)
from ecs_sandbox_core._registry import TaskDefinitionRegistry
from ecs_sandbox_core._retry import Retry, backoff, classify_run_task
from ecs_sandbox_core._taskdef import keepalive_command

# --- a runner that answers Log effects itself ---------------------------------------------


SANDBOX_HEX = "5a" * 16  # the per-sandbox id RunTask is sent with (see test_run_task.py)


class Runner:
    """Steps a flow; Log effects are answered with None and kept in ``logs``, and the
    per-sandbox Token of RunTask with SANDBOX_HEX (test_run_task.py checks it exactly)."""

    def __init__(self, flow: Generator[Any, Any, Any]) -> None:
        self.flow = flow
        self.logs: list[Log] = []
        self.done = False
        self.value: Any = None
        self.effect: object = self._advance(lambda: next(flow))

    def _advance(self, step: Callable[[], object]) -> object:
        try:
            effect = step()
            while isinstance(effect, Log) or effect == Token(nbytes=16):
                if isinstance(effect, Log):
                    self.logs.append(effect)
                    effect = self.flow.send(None)
                else:
                    effect = self.flow.send(SANDBOX_HEX)
        except StopIteration as stop:
            self.done = True
            self.value = stop.value
            return None
        return effect

    def step(self, expect: object, result: object) -> None:
        """Check the pending effect against ``expect``, then answer it with ``result``."""
        assert not self.done, f"flow already returned {self.value!r}; expected {expect!r}"
        assert _matches(expect, self.effect), f"expected {expect!r}\n     got {self.effect!r}"
        if isinstance(result, BaseException):
            self.effect = self._advance(lambda: self.flow.throw(result))
        else:
            self.effect = self._advance(lambda: self.flow.send(result))


def _matches(expect: object, effect: object) -> bool:
    if isinstance(expect, type):
        return isinstance(effect, expect)
    if callable(expect) and not hasattr(expect, "__dataclass_fields__"):
        return bool(expect(effect))
    return expect == effect


def drive(flow: Generator[Any, Any, Any], steps: Sequence[tuple[object, object]]) -> Runner:
    """Run ``flow`` through every step; it must end right after the last one.

    An exception the flow raises after the last step propagates; one raised earlier is a
    failure of the script, so ``pytest.raises`` cannot pass on a flow that gave up early.
    """
    runner = Runner(flow)
    for number, (expect, result) in enumerate(steps, 1):
        try:
            runner.step(expect, result)
        except AssertionError:
            raise
        except BaseException as exc:
            if number < len(steps):
                raise AssertionError(
                    f"flow raised {exc!r} at step {number} of {len(steps)}"
                ) from exc
            raise
    assert runner.done, f"flow wants more: {runner.effect!r}"
    return runner


# --- fixtures -----------------------------------------------------------------------------

CLUSTER = "sandboxes"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/sandboxes/abc123"
TD_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecs-sandbox-x:1"
CAPACITY = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)
BASE = {
    "family": "sandbox-base",
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/sandbox-base:3",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "1024",
    "memory": "2048",
    "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
    "containerDefinitions": [{"name": "main", "image": "python:3.11", "essential": True}],
}


def make_cfg(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "region": "us-east-1",
        "cluster": CLUSTER,
        "task_definition": "sandbox-base:3",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        "max_task_lifetime_sec": 3600,
        "run_task_max_retries": 4,
        "running_timeout_sec": 60.0,
        "tags": {"team": "evals"},
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


def registering_cfg(**overrides: Any) -> EcsFargateConfig:
    return make_cfg(image_template="registry.example/tasks:{task_id}", **overrides)


def ok(data: Mapping[str, Any] | None = None) -> AwsResult:
    return AwsResult(data=dict(data or {}))


def err(code: str, message: str = "") -> AwsResult:
    return AwsResult(error=AwsError(code=code, message=message or code))


def call(operation: str, check: Callable[[AwsCall], bool] = lambda c: True) -> Callable[..., bool]:
    def matches(effect: object) -> bool:
        return isinstance(effect, AwsCall) and effect.operation == operation and check(effect)

    matches.__name__ = f"call_{operation}"
    return matches


def _keep(into: list[AwsCall], effect: AwsCall) -> bool:
    into.append(effect)
    return True


def started(arn: str = TASK_ARN) -> AwsResult:
    return ok({"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []})


def no_capacity() -> AwsResult:
    return ok({"tasks": [], "failures": [{"arn": "", "reason": CAPACITY}]})


def status(last: str, **extra: Any) -> AwsResult:
    return ok({"taskArn": TASK_ARN, "lastStatus": last, **extra})


POLL = DescribeTask(cluster=CLUSTER, task_arn=TASK_ARN)
STOP = AwsCall(
    service="ecs",
    operation="stop_task",
    params={"cluster": CLUSTER, "task": TASK_ARN, "reason": "ecs-sandbox done"},
    api_group="ecs-run",
    priority=1,
)
DEREGISTER = AwsCall(
    service="ecs",
    operation="deregister_task_definition",
    params={"taskDefinition": TD_ARN},
    api_group="ecs-register",
    priority=1,
)


def stop_after_failure(effect: object) -> bool:
    return (
        isinstance(effect, AwsCall)
        and effect.operation == "stop_task"
        and effect.params["task"] == TASK_ARN
        and effect.priority == 1
    )


def wait_running(start: float = 100.0) -> list[tuple[object, object]]:
    """PENDING twice, then RUNNING at ``start + 3`` (the driver paces the polls)."""
    return [
        (Now(), start),
        (POLL, status("PENDING")),
        (Now(), start + 1.0),
        (POLL, status("PENDING")),
        (Now(), start + 2.0),
        (POLL, status("RUNNING")),
        (Now(), start + 3.0),
    ]


def register_steps() -> list[tuple[object, object]]:
    return [
        (
            call(
                "describe_task_definition",
                lambda c: c.params == {"taskDefinition": "sandbox-base:3"},
            ),
            ok({"taskDefinition": BASE}),
        ),
        (call("register_task_definition"), ok({"taskDefinition": {"taskDefinitionArn": TD_ARN}})),
    ]


def start(cfg: EcsFargateConfig, registry: TaskDefinitionRegistry | None, **kw: Any) -> Any:
    return start_flow(
        cfg,
        task_id=kw.pop("task_id", "task-7"),
        trial_name="trial-1",
        run_id="run-42",
        owner="alice",
        registry=registry,
        **kw,
    )


def phases(runner: Runner) -> set[str]:
    return {log.phase for log in runner.logs}


# --- preflight ----------------------------------------------------------------------------


def test_preflight_returns_the_account() -> None:
    runner = drive(
        preflight_flow(make_cfg()),
        [(AwsCall(service="sts", operation="get_caller_identity"), ok({"Account": "1234"}))],
    )
    assert runner.value == "1234"


def test_preflight_error_explains_how_to_fix_credentials() -> None:
    with pytest.raises(AwsCredentialsError) as info:
        drive(
            preflight_flow(make_cfg()),
            [(call("get_caller_identity"), err("ExpiredToken", "The security token expired"))],
        )
    assert "ExpiredToken" in str(info.value)
    assert "AWS_PROFILE" in str(info.value)  # the remedy reaches the message


def test_preflight_maps_a_driver_exception() -> None:
    with pytest.raises(AwsCredentialsError) as info:
        drive(
            preflight_flow(make_cfg()),
            [(call("get_caller_identity"), LookupError("Unable to locate credentials"))],
        )
    assert isinstance(info.value.__cause__, LookupError)


# --- happy paths --------------------------------------------------------------------------


def test_start_without_registration_runs_the_base_definition() -> None:
    cfg = make_cfg()
    seen: list[AwsCall] = []

    def run_task(effect: AwsCall) -> bool:
        seen.append(effect)
        return True

    runner = drive(
        start(cfg, None, environment={"TEST_DIR": "/tests"}),
        [
            (Now(), 1_700_000_000.0),
            (call("run_task", run_task), started()),
            *wait_running(),
        ],
    )
    handle = runner.value
    assert handle == TaskHandle(
        task_arn=TASK_ARN,
        cluster=CLUSTER,
        task_definition_arn=None,
        digest=None,
        task_id="task-7",
        run_id="run-42",
        started_at=103.0,
    )
    (run,) = seen
    assert run.api_group == "ecs-run"
    params = run.params
    assert params["taskDefinition"] == "sandbox-base:3"
    assert params["enableExecuteCommand"] is True
    assert params["launchType"] == "FARGATE"
    vpc = params["networkConfiguration"]["awsvpcConfiguration"]
    assert vpc == {
        "subnets": ["subnet-1"],
        "securityGroups": ["sg-1"],
        "assignPublicIp": "DISABLED",
    }
    (override,) = params["overrides"]["containerOverrides"]
    assert override["name"] == "main"
    assert override["command"] == keepalive_command(3600)
    assert override["environment"] == [{"name": "TEST_DIR", "value": "/tests"}]
    tags = {t["key"]: t["value"] for t in params["tags"]}
    assert tags["ecs-sandbox:run-id"] == "run-42"
    assert tags["ecs-sandbox:task-id"] == "task-7"
    assert tags["ecs-sandbox:owner"] == "alice"
    assert tags["ecs-sandbox:created-at"] == "1700000000"
    assert tags["team"] == "evals"
    assert {"run-task", "wait-running"} <= phases(runner)
    assert not any("/tests" in str(log.args) for log in runner.logs)  # values are not logged

    # Tear-down stops the task and has no definition to give back; a second one is a no-op.
    drive(teardown_flow(handle, registry=None), [(STOP, ok({"task": {}}))])
    drive(teardown_flow(handle, registry=None), [])


def test_start_with_registration_and_teardown_deregisters() -> None:
    cfg = registering_cfg(log_group="/ecs/sandboxes")
    registry = TaskDefinitionRegistry()
    registered: list[AwsCall] = []

    def register(effect: AwsCall) -> bool:
        registered.append(effect)
        return True

    runner = drive(
        start(cfg, registry),
        [
            (Now(), 5.0),
            (call("describe_task_definition"), ok({"taskDefinition": BASE})),
            (
                AwsCall(
                    service="logs",
                    operation="create_log_group",
                    params={"logGroupName": "/ecs/sandboxes"},
                ),
                err("ResourceAlreadyExistsException"),
            ),
            (
                call("register_task_definition", register),
                ok({"taskDefinition": {"taskDefinitionArn": TD_ARN}}),
            ),
            (call("run_task", lambda c: c.params["taskDefinition"] == TD_ARN), started()),
            *wait_running(),
        ],
    )
    handle = runner.value
    assert handle.task_definition_arn == TD_ARN
    assert handle.digest is not None
    assert registry.users(handle.digest) == 1
    (reg,) = registered
    assert reg.api_group == "ecs-register"
    assert reg.params["family"].startswith("ecs-sandbox-")
    (container,) = reg.params["containerDefinitions"]
    assert container["image"] == "registry.example/tasks:task-7"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/sandboxes"
    assert {t["key"] for t in reg.params["tags"]} >= {"ecs-sandbox:run-id", "team"}
    assert "register" in phases(runner)
    assert not any(log.level >= 30 for log in runner.logs)  # an existing group is no warning

    teardown = drive(teardown_flow(handle, registry=registry), [(STOP, ok()), (DEREGISTER, ok())])
    assert "teardown" in phases(teardown)
    assert registry.outstanding() == []
    drive(teardown_flow(handle, registry=registry), [])


def test_missing_base_definition_builds_one_from_the_configuration() -> None:
    cfg = registering_cfg(execution_role_arn="arn:aws:iam::123456789012:role/exec")
    registered: list[AwsCall] = []
    drive(
        start(cfg, None),
        [
            (Now(), 0.0),
            (
                call("describe_task_definition"),
                err("ClientException", "Unable to describe task definition."),
            ),
            (
                call("register_task_definition", lambda c: _keep(registered, c)),
                ok({"taskDefinition": {"taskDefinitionArn": TD_ARN}}),
            ),
            (call("run_task"), started()),
            *wait_running(),
        ],
    )
    (reg,) = registered
    assert reg.params["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec"
    assert reg.params["containerDefinitions"][0]["image"] == "registry.example/tasks:task-7"


def test_a_wall_clock_creation_time_replaces_the_now_reading() -> None:
    seen: list[AwsCall] = []
    drive(
        start(make_cfg(), None, created_at=1_700_000_123.9),
        [(call("run_task", lambda c: _keep(seen, c)), started()), *wait_running()],
    )
    tags = {t["key"]: t["value"] for t in seen[0].params["tags"]}
    assert tags["ecs-sandbox:created-at"] == "1700000123"


def test_without_a_registry_the_sandbox_deregisters_its_own_definition() -> None:
    runner = drive(
        start(registering_cfg(), None),
        [(Now(), 0.0), *register_steps(), (call("run_task"), started()), *wait_running()],
    )
    handle = runner.value
    assert (handle.task_definition_arn, handle.digest) == (TD_ARN, None)
    drive(teardown_flow(handle, registry=None), [(STOP, ok()), (DEREGISTER, ok())])


def test_two_sandboxes_with_one_digest_register_once() -> None:
    cfg = registering_cfg()
    registry = TaskDefinitionRegistry()
    a = Runner(start(cfg, registry))
    b = Runner(start(cfg, registry))
    a.step(Now(), 0.0)
    a.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    assert _matches(call("register_task_definition"), a.effect)  # a is registering now
    b.step(Now(), 0.0)
    b.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    b.step(Sleep(seconds=REGISTRY_POLL_S), None)  # b waits for a
    b.step(Sleep(seconds=REGISTRY_POLL_S), None)  # still waiting, without calling AWS
    a.step(call("register_task_definition"), ok({"taskDefinition": {"taskDefinitionArn": TD_ARN}}))
    b.step(Sleep(seconds=REGISTRY_POLL_S), None)
    for runner, arn in ((a, TASK_ARN), (b, TASK_ARN + "-b")):
        runner.step(call("run_task", lambda c: c.params["taskDefinition"] == TD_ARN), started(arn))
    a.step(Now(), 10.0)
    a.step(POLL, status("RUNNING"))
    a.step(Now(), 11.0)
    b.step(Now(), 10.0)
    b.step(DescribeTask(cluster=CLUSTER, task_arn=TASK_ARN + "-b"), status("RUNNING"))
    b.step(Now(), 11.0)
    assert a.done and b.done
    assert a.value.digest == b.value.digest
    assert registry.users(a.value.digest) == 2

    # The first to finish only stops its task; the last also deregisters the definition.
    drive(teardown_flow(a.value, registry=registry), [(STOP, ok())])
    stop_b = AwsCall(
        service="ecs",
        operation="stop_task",
        params={"cluster": CLUSTER, "task": TASK_ARN + "-b", "reason": "ecs-sandbox done"},
        api_group="ecs-run",
        priority=1,
    )
    drive(teardown_flow(b.value, registry=registry), [(stop_b, ok()), (DEREGISTER, ok())])
    assert registry.outstanding() == []


def test_a_waiter_registers_itself_when_the_registrar_fails() -> None:
    cfg = registering_cfg()
    registry = TaskDefinitionRegistry()
    a = Runner(start(cfg, registry))
    b = Runner(start(cfg, registry))
    a.step(Now(), 0.0)
    a.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    b.step(Now(), 0.0)
    b.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    b.step(Sleep(seconds=REGISTRY_POLL_S), None)
    a.step(call("register_task_definition"), err("AccessDeniedException", "not allowed"))
    with pytest.raises(TaskDefinitionError):
        a.step(Random(), 0.5)
    b.step(Sleep(seconds=REGISTRY_POLL_S), None)
    assert _matches(call("register_task_definition"), b.effect)  # b took over


# --- RunTask retries and failures ---------------------------------------------------------


def _retry_delay(decision: object) -> float:
    assert isinstance(decision, Retry)
    return decision.delay_s


def test_capacity_shortage_is_retried_with_jittered_backoff() -> None:
    cfg = make_cfg(run_task_max_retries=4)
    rands = [0.1, 0.9, 0.5]
    sleeps = [
        _retry_delay(classify_run_task(no_capacity().data, attempt=n, max_attempts=4, rand=r))
        for n, r in enumerate(rands, 1)
    ]
    assert sleeps[0] > 0 and len(set(sleeps)) == 3
    steps: list[tuple[object, object]] = [(Now(), 0.0)]
    for rand, delay in zip(rands, sleeps, strict=True):
        steps += [(call("run_task"), no_capacity()), (Random(), rand), (Sleep(seconds=delay), None)]
    steps += [(call("run_task"), started()), *wait_running()]
    runner = drive(start(cfg, None), steps)
    assert runner.value.task_arn == TASK_ARN
    warnings = [log for log in runner.logs if log.level == 30 and log.phase == "run-task"]
    assert [log.args[2:4] for log in warnings] == [(1, 4), (2, 4), (3, 4)]


def test_capacity_forever_gives_up_and_deregisters_the_definition() -> None:
    cfg = registering_cfg(run_task_max_retries=3)
    registry = TaskDefinitionRegistry()
    steps: list[tuple[object, object]] = [(Now(), 0.0), *register_steps()]
    for attempt in (1, 2, 3):
        steps += [(call("run_task"), no_capacity()), (Random(), 0.5)]
        if attempt < 3:
            steps.append((Sleep, None))
    steps.append((DEREGISTER, ok()))
    with pytest.raises(RunTaskError):
        drive(start(cfg, registry), steps)
    assert registry.outstanding() == []


def test_access_denied_on_run_task_is_not_retried_and_releases_the_definition() -> None:
    registry = TaskDefinitionRegistry()
    runner_steps: list[tuple[object, object]] = [
        (Now(), 0.0),
        *register_steps(),
        (
            call("run_task"),
            err("AccessDeniedException", "User is not authorized to perform: ecs:RunTask"),
        ),
        (Random(), 0.5),
        (DEREGISTER, ok()),
    ]
    with pytest.raises(RunTaskError) as info:
        drive(start(registering_cfg(), registry), runner_steps)
    assert "iam:PassRole" in str(info.value)  # the remedy
    assert registry.outstanding() == []


# --- waiting for RUNNING ------------------------------------------------------------------


def test_task_stopped_while_waiting_reports_why_and_cleans_up() -> None:
    stopped = status(
        "STOPPED",
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        containers=[{"name": "main", "exitCode": 127, "reason": "sh: not found"}],
    )
    with pytest.raises(TaskStoppedError) as info:
        drive(
            start(registering_cfg(), TaskDefinitionRegistry()),
            [
                (Now(), 0.0),
                *register_steps(),
                (call("run_task"), started()),
                (Now(), 10.0),
                (POLL, status("PENDING")),
                (Now(), 11.0),
                (POLL, stopped),
                (stop_after_failure, ok()),
                (DEREGISTER, ok()),
            ],
        )
    error = info.value
    assert error.stop_code == "EssentialContainerExited"
    assert error.stopped_reason == "Essential container in task exited"
    assert error.exit_code == 127
    assert error.task_arn == TASK_ARN
    assert "sh: not found" in str(error)


def test_a_task_that_disappears_is_reported_as_stopped() -> None:
    with pytest.raises(TaskStoppedError, match="disappeared"):
        drive(
            start(make_cfg(), None),
            [
                (Now(), 0.0),
                (call("run_task"), started()),
                (Now(), 1.0),
                (POLL, err("MISSING", "task not found")),
                (stop_after_failure, err("InvalidParameterException", "task not found")),
            ],
        )


def test_running_timeout_stops_the_task() -> None:
    cfg = make_cfg(running_timeout_sec=5.0)
    runner_steps: list[tuple[object, object]] = [
        (Now(), 0.0),
        (call("run_task"), started()),
        (Now(), 100.0),
        (POLL, status("PENDING")),
        (Now(), 101.0),
        (POLL, status("PROVISIONING")),
        (Now(), 102.5),
        (POLL, err("ThrottlingException", "Rate exceeded")),
        (Random(), 0.0),
        (Now(), 104.75),
        (Sleep(seconds=0.25), None),  # a back-off never sleeps past the deadline
        (POLL, status("PENDING")),
        (Now(), 105.0),
        (stop_after_failure, ok()),
    ]
    with pytest.raises(PhaseTimeoutError) as info:
        drive(start(cfg, None), runner_steps)
    assert info.value.phase == "wait-running"
    assert info.value.timeout_s == 5.0


def test_polling_asks_again_at_once_and_the_driver_paces_it() -> None:
    """Each answer is followed by the next DescribeTask, never by a sleep: the driver
    answers at its poll tick, so RUNNING is seen within one tick whatever the wait's length
    (it used to back off to 5 s between polls)."""
    runner = Runner(start(make_cfg(running_timeout_sec=1000.0), None))
    runner.step(Now(), 0.0)
    runner.step(call("run_task"), started())
    runner.step(Now(), 0.0)
    for n in range(30):
        runner.step(POLL, status("PENDING"))
        runner.step(Now(), float(n + 1))
        assert runner.effect == POLL
    runner.step(POLL, status("RUNNING"))
    runner.step(Now(), 31.0)
    assert runner.done
    assert runner.value.started_at == 31.0


def test_describe_throttling_while_waiting_is_retried() -> None:
    throttled = err("ThrottlingException", "Rate exceeded")
    delay = backoff(1, 0.3)  # throttling backs off by the default schedule
    runner = drive(
        start(make_cfg(), None),
        [
            (Now(), 0.0),
            (call("run_task"), started()),
            (Now(), 0.0),
            (POLL, throttled),
            (Random(), 0.3),
            (Now(), 0.5),
            (Sleep(seconds=delay), None),
            (POLL, status("RUNNING")),
            (Now(), 3.0),
        ],
    )
    assert runner.value.started_at == 3.0


# --- interruption -------------------------------------------------------------------------


def test_keyboard_interrupt_during_the_wait_tears_down_then_propagates() -> None:
    registry = TaskDefinitionRegistry()
    with pytest.raises(KeyboardInterrupt):
        drive(
            start(registering_cfg(), registry),
            [
                (Now(), 0.0),
                *register_steps(),
                (call("run_task"), started()),
                (Now(), 10.0),
                (POLL, status("PENDING")),
                (Now(), 11.0),
                (POLL, KeyboardInterrupt()),
                (stop_after_failure, ok()),
                (DEREGISTER, ok()),
            ],
        )
    assert registry.outstanding() == []


def test_cleanup_failures_are_logged_and_never_mask_the_original_error() -> None:
    runner = Runner(start(registering_cfg(), TaskDefinitionRegistry()))
    for expect, result in [(Now(), 0.0), *register_steps(), (call("run_task"), started())]:
        runner.step(expect, result)
    runner.step(Now(), 0.0)
    runner.step(POLL, status("PENDING"))
    runner.step(Now(), 1.0)
    runner.step(POLL, RuntimeError("driver bug"))
    runner.step(stop_after_failure, err("AccessDeniedException", "no ecs:StopTask"))
    runner.step(Random(), 0.5)
    with pytest.raises(RuntimeError, match="driver bug"):
        runner.step(DEREGISTER, ConnectionError("network down"))
    errors = [log for log in runner.logs if log.level >= 40]
    assert len(errors) == 3
    assert "AccessDenied" in str(errors[0].args) and "network down" in str(errors[1].args)
    # Then what is left, and the command that reaps it.
    left = errors[2].message % errors[2].args
    assert TASK_ARN in left and "ecs-sandbox gc --run-id run-42" in left


class Cancelled(BaseException):
    """Stands in for an async library's cancellation, which is a BaseException too."""


def test_a_second_interrupt_ends_the_cleanup_but_the_first_is_raised() -> None:
    runner = Runner(start(make_cfg(), None))
    runner.step(Now(), 0.0)
    runner.step(call("run_task"), started())
    runner.step(Now(), 0.0)
    runner.step(POLL, status("PENDING"))
    runner.step(Now(), 1.0)
    runner.step(POLL, Cancelled("first"))
    with pytest.raises(Cancelled, match="first"):
        runner.step(stop_after_failure, Cancelled("second"))


def test_generator_exit_thrown_in_still_cleans_up() -> None:
    with pytest.raises(GeneratorExit):
        drive(
            start(make_cfg(), None),
            [
                (Now(), 0.0),
                (call("run_task"), started()),
                (Now(), 0.0),
                (POLL, GeneratorExit()),
                (stop_after_failure, ok()),
            ],
        )


def test_closing_a_flow_before_it_created_anything_is_clean() -> None:
    registry = TaskDefinitionRegistry()
    runner = Runner(start(registering_cfg(), registry))
    runner.step(Now(), 0.0)
    runner.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    runner.flow.close()  # mid-registration: nothing exists yet on AWS
    # The abandoned registration is released: the next sandbox registers itself.
    again = Runner(start(registering_cfg(), registry))
    again.step(Now(), 0.0)
    again.step(call("describe_task_definition"), ok({"taskDefinition": BASE}))
    assert _matches(call("register_task_definition"), again.effect)


# --- tear-down ----------------------------------------------------------------------------


def _handle(**kw: Any) -> TaskHandle:
    values: dict[str, Any] = {
        "task_arn": TASK_ARN,
        "cluster": CLUSTER,
        "task_definition_arn": TD_ARN,
        "digest": None,
        "task_id": "task-7",
        "run_id": "run-42",
        "started_at": 0.0,
    }
    values.update(kw)
    return TaskHandle(**values)


def test_teardown_retries_throttling_and_is_idempotent() -> None:
    handle = _handle()
    throttled = err("ThrottlingException", "Rate exceeded")
    runner = drive(
        teardown_flow(handle, registry=None),
        [
            (STOP, throttled),
            (Random(), 0.2),
            (Sleep, None),
            (STOP, ok()),
            (DEREGISTER, throttled),
            (Random(), 0.7),
            (Sleep, None),
            (DEREGISTER, ok()),
        ],
    )
    assert sum(1 for log in runner.logs if log.level == 30) == 2
    drive(teardown_flow(handle, registry=None), [])


def test_teardown_tolerates_a_task_or_definition_already_gone() -> None:
    drive(
        teardown_flow(_handle(), registry=None),
        [
            (STOP, err("InvalidParameterException", "The referenced task was not found.")),
            (DEREGISTER, err("ClientException", "The specified task definition does not exist.")),
        ],
    )


def test_teardown_tries_every_step_raises_and_resumes_what_failed() -> None:
    handle = _handle()
    with pytest.raises(Exception, match="AccessDenied"):
        drive(
            teardown_flow(handle, registry=None),
            [
                (STOP, err("AccessDeniedException", "no ecs:StopTask")),
                (Random(), 0.5),
                (DEREGISTER, ok()),
            ],
        )
    # Only the step that failed is left for the next call.
    drive(teardown_flow(handle, registry=None), [(STOP, ok())])
    drive(teardown_flow(handle, registry=None), [])


def test_teardown_of_a_shared_definition_needs_the_registry() -> None:
    with pytest.raises(UsageError):
        drive(teardown_flow(_handle(digest="ab" * 32), registry=None), [])


def test_teardown_reason_is_passed_and_bounded() -> None:
    seen: list[AwsCall] = []
    drive(
        teardown_flow(_handle(task_definition_arn=None), registry=None, reason="x" * 400),
        [(call("stop_task", lambda c: _keep(seen, c)), ok())],
    )
    assert len(seen[0].params["reason"]) == 255
