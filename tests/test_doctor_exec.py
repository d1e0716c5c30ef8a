"""An exec that cannot connect names the task's own reason (issue 16, item 2).

Before, every not-connected attempt was retried for ``exec_connect_timeout_sec`` and the
error only said that the agent did not connect; a task started without
``enableExecuteCommand`` waited the whole time for something that could never happen.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecs_sandbox_core._effects import (
    AwsResult,
    DescribeTask,
    ExecRun,
    Log,
    Now,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import ExecAgentNotConnectedError
from ecs_sandbox_core._exec_flow import exec_flow

TASK = "arn:aws:ecs:us-east-1:123456789012:task/sandbox/0123456789abcdef0123456789abcdef"


def refused(code: str, message: str) -> TransportResult:
    return TransportResult(
        stderr=f"\nAn error occurred ({code}) when calling the ExecuteCommand operation: "
        f"{message}\n".encode(),
        returncode=255,
    )


NOT_CONNECTED = refused(
    "TargetNotConnectedException",
    "The execute command failed due to an internal error. Try again later.",
)
NOT_ENABLED = refused(
    "InvalidParameterException",
    "The execute command failed because execute command was not enabled when the task was run "
    "or the execute command agent isn't running.",
)


def described(*, enabled: bool, agent: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "lastStatus": "RUNNING"}
    if agent is not None:
        container["managedAgents"] = [{"name": "ExecuteCommandAgent", "lastStatus": agent}]
    return {
        "taskArn": TASK,
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "enableExecuteCommand": enabled,
        "containers": [container],
    }


def run_exec(result: TransportResult, task: dict[str, Any]) -> tuple[Exception, int, float]:
    """Run one exec whose every attempt gets ``result``; its error, attempts and time spent."""
    flow = exec_flow(
        task_arn=TASK,
        container="main",
        command="true",
        timeout_s=30.0,
        connect_timeout_s=60.0,
        cluster="sandbox",
    )
    clock, attempts, value = 1000.0, 0, None
    try:
        while True:
            effect = flow.send(value)
            if isinstance(effect, Token):
                value = "0" * 32
            elif isinstance(effect, Now):
                value = clock
            elif isinstance(effect, Random):
                value = 0.5
            elif isinstance(effect, ExecRun):
                attempts += 1
                value = result
            elif isinstance(effect, DescribeTask):
                value = AwsResult(data=task)
            elif isinstance(effect, Sleep):
                clock += effect.seconds
                value = None
            elif isinstance(effect, Log):
                value = None
            else:
                raise AssertionError(effect)
    except StopIteration:
        raise AssertionError("the exec succeeded") from None
    except ExecAgentNotConnectedError as exc:
        return exc, attempts, clock - 1000.0


@pytest.mark.parametrize(
    "result", [NOT_CONNECTED, NOT_ENABLED], ids=["not-connected", "not-enabled"]
)
def test_a_task_without_exec_fails_at_once_naming_enable_execute_command(
    result: TransportResult,
) -> None:
    error, attempts, waited = run_exec(result, described(enabled=False, agent=None))
    assert attempts == 1 and waited == 0
    assert "started without enableExecuteCommand" in str(error)
    assert "a running task cannot be changed" in error.remedy


def test_a_stopped_agent_fails_at_once_with_its_status() -> None:
    error, attempts, _ = run_exec(NOT_CONNECTED, described(enabled=True, agent="STOPPED"))
    assert attempts == 1
    assert "ExecuteCommandAgent is STOPPED" in str(error)


def test_a_running_agent_that_never_connects_points_at_doctor() -> None:
    error, attempts, waited = run_exec(NOT_CONNECTED, described(enabled=True, agent="RUNNING"))
    assert attempts > 1 and waited >= 60.0  # kept trying for exec_connect_timeout_sec
    assert "did not connect within 60 s" in error.message
    assert "ExecuteCommandAgent is RUNNING" in error.message
    assert f"ecs-sandbox doctor --task-arn {TASK}" in error.remedy


def test_a_starting_agent_is_waited_for() -> None:
    error, attempts, waited = run_exec(NOT_CONNECTED, described(enabled=True, agent="PENDING"))
    assert attempts > 1 and waited >= 60.0
    # Nothing more specific is known: the generic remedy stays.
    assert error.remedy == ExecAgentNotConnectedError.remedy
