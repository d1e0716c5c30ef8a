"""The native exec path in the exec flow: ExecuteCommand as a budgeted AwsCall, then a session.

Streams are produced by the real /bin/sh running the wrapped script (see test_exec_flow).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from _script import run_script
from test_exec_flow import NONCE, TASK, session

from ecs_sandbox_core._effects import (
    AwsCall,
    AwsError,
    AwsResult,
    DescribeTask,
    Effect,
    ExecSession,
    Log,
    Now,
    Random,
    SessionResult,
    Sleep,
    Token,
)
from ecs_sandbox_core._errors import EcsExecError, ExecCutOffError, ExecTimeoutError, UsageError
from ecs_sandbox_core._exec_flow import ExecResult, exec_flow, transport_timeout
from ecs_sandbox_core._markers import wrap_command
from ecs_sandbox_core._ssm_channel import KMS_REMEDY

CLUSTER = "sandbox"
SESSION = {"sessionId": "s-1", "streamUrl": "wss://ssmmessages.example/v1/data-channel/s-1",
           "tokenValue": "secret-token"}  # fmt: skip


def flow(command: str = "echo hi", **kwargs: Any) -> Generator[Effect, Any, ExecResult]:
    options: dict[str, Any] = {
        "task_arn": TASK,
        "container": "main",
        "cluster": CLUSTER,
        "command": command,
        "timeout_s": 120.0,
        "connect_timeout_s": 60.0,
        "native": True,
    }
    options.update(kwargs)
    return exec_flow(**options)


def execute_command(command: str = "echo hi") -> AwsCall:
    return AwsCall(
        service="ecs",
        operation="execute_command",
        params={
            "cluster": CLUSTER,
            "task": TASK,
            "container": "main",
            "command": wrap_command(command, nonce=NONCE, timeout_s=120.0),
            "interactive": True,
        },
    )


RUNNING = AwsResult(data={"lastStatus": "RUNNING", "desiredStatus": "RUNNING"})
ACCEPTED = AwsResult(data={"session": SESSION})
OPEN = ExecSession(
    session_id="s-1",
    stream_url=SESSION["streamUrl"],
    token="secret-token",
    timeout_s=transport_timeout(120.0),
)


def closed(output: bytes) -> SessionResult:
    return SessionResult(output=output, ended="closed", kind="channel_closed")


def test_execute_command_then_the_session() -> None:
    stream = session(b"hi\n", 3)
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (execute_command(), ACCEPTED),
            (OPEN, closed(stream)),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    assert result == ExecResult(exit_code=3, output=b"hi\n")


def test_the_token_never_shows_in_a_repr() -> None:
    assert "secret-token" not in repr(OPEN)


def test_agent_not_connected_is_retried_and_throttling_backs_off() -> None:
    not_connected = AwsResult(
        error=AwsError(code="TargetNotConnectedException", message="agent starting")
    )
    throttled = AwsResult(error=AwsError(code="ThrottlingException", message="Rate exceeded"))
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (execute_command(), not_connected),
            (Now(), 1.0),
            (Random(), 0.0),
            (DescribeTask(cluster=CLUSTER, task_arn=TASK), RUNNING),
            (Log, None),
            (Sleep, None),
            (execute_command(), throttled),
            (Now(), 4.0),
            (Random(), 0.0),
            (Log, None),
            (Sleep, None),
            (execute_command(), ACCEPTED),
            (OPEN, closed(session(b"", 0))),
            (Now(), 9.0),
            (Random(), 0.0),
        ],
    )
    assert result.exit_code == 0


@pytest.mark.parametrize("kind", ["connect", "refused", "dropped", "unacknowledged", "protocol"])
def test_a_failed_channel_after_ecs_accepted_is_never_run_again(kind: str) -> None:
    failed = SessionResult(output=b"", ended="failed", kind=kind, reason="it broke")
    with pytest.raises(ExecCutOffError, match="may have run"):
        run_script(
            flow(),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (execute_command(), ACCEPTED),
                (OPEN, failed),
                (Now(), 1.0),
                (Random(), 0.0),
                # A session that ended early is explained by a stopped task when it is one.
                (DescribeTask(cluster=CLUSTER, task_arn=TASK), RUNNING),
            ],
        )


def test_a_timed_out_session_counts_as_started() -> None:
    with pytest.raises(ExecTimeoutError) as caught:
        run_script(
            flow(),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (execute_command(), ACCEPTED),
                (OPEN, SessionResult(output=b"", ended="timeout")),
                (Now(), 121.0),
                (Random(), 0.0),
            ],
        )
    assert caught.value.started is True


def test_a_kms_cluster_is_refused_with_the_setting_named() -> None:
    kms = SessionResult(output=b"", ended="failed", kind="kms", reason="KMS requested")
    with pytest.raises(EcsExecError) as caught:
        run_script(
            flow(),
            [(Token(nbytes=16), NONCE), (Now(), 0.0), (execute_command(), ACCEPTED), (OPEN, kms)],
        )
    assert caught.value.remedy == KMS_REMEDY
    assert "kmsKeyId" in str(caught.value)


def test_an_answer_without_a_session_is_an_error() -> None:
    with pytest.raises(EcsExecError, match="no session"):
        run_script(
            flow(),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (execute_command(), AwsResult(data={"session": {"sessionId": "x"}})),
            ],
        )


def test_native_needs_the_cluster() -> None:
    with pytest.raises(UsageError, match="cluster"):
        next(flow(cluster=None))
