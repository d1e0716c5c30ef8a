"""One native ECS Exec round trip: ExecuteCommand, then the session's data channel.

The exec flow (:mod:`._exec_flow`) decides retries from a
:class:`~ecs_sandbox_core._effects.TransportResult`, whatever the transport. This module
produces one without any CLI: it calls ExecuteCommand through the driver's budgeted AWS
client (an :class:`AwsCall`, so the call spends from the same token bucket as StopTask and is
counted) and runs the returned session with an :class:`ExecSession` effect.

An ExecuteCommand error becomes the transport error the AWS CLI would print, so that the
existing classification (agent not connected yet, throttling: retry; anything else: give up)
applies unchanged. Once ECS has accepted the command, the result says so
(``may_have_started``): from then on no failure can prove that the command did not run,
and it is never run again.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ._effects import AwsCall, AwsResult, Effect, ExecSession, SessionResult, TransportResult
from ._errors import EcsExecError
from ._ssm_channel import KMS_REMEDY


def transport_error(code: str, message: str, operation: str = "ExecuteCommand") -> bytes:
    """An AWS error in the form the AWS CLI prints it on stderr (what the classifier reads)."""
    return (
        f"\nAn error occurred ({code}) when calling the {operation} operation: {message}\n".encode()
    )


def execute_command(
    *, cluster: str, task_arn: str, container: str, command: str
) -> Generator[Effect, Any, tuple[str, str, str] | TransportResult]:
    """ECS ExecuteCommand (interactive, budgeted): the session's (id, stream URL, token), or
    the refusal as the transport error the classifier reads."""
    answer: AwsResult = yield AwsCall(
        service="ecs",
        operation="execute_command",
        params={
            "cluster": cluster,
            "task": task_arn,
            "container": container,
            "command": command,
            "interactive": True,
        },
    )
    if answer.error is not None:
        return TransportResult(
            stderr=transport_error(answer.error.code, answer.error.message), returncode=255
        )
    session = answer.data.get("session") or {}
    url, token = session.get("streamUrl"), session.get("tokenValue")
    if not isinstance(url, str) or not isinstance(token, str) or not url or not token:
        raise EcsExecError(
            "ExecuteCommand returned no session to connect to (streamUrl and tokenValue)",
            remedy="This is unexpected from ECS; retry, and report it if it persists.",
        )
    return str(session.get("sessionId", "")), url, token


def native_round_trip(
    *,
    cluster: str,
    task_arn: str,
    container: str,
    command: str,
    timeout_s: float | None,
    stream_nonce: str | None = None,
    input_bytes: bytes = b"",
    max_output_bytes: int | None = None,
) -> Generator[Effect, Any, TransportResult]:
    """ExecuteCommand + one data-channel session; the result as a transport would give it."""
    opened = yield from execute_command(
        cluster=cluster, task_arn=task_arn, container=container, command=command
    )
    if isinstance(opened, TransportResult):
        return opened
    session_id, url, token = opened
    result: SessionResult = yield ExecSession(
        session_id=session_id,
        stream_url=url,
        token=token,
        timeout_s=timeout_s,
        input=input_bytes,
        stream_nonce=stream_nonce,
        max_output_bytes=max_output_bytes,
    )
    if result.kind == "kms":
        raise EcsExecError(f"the ECS Exec session cannot start: {result.reason}", remedy=KMS_REMEDY)
    stderr = b""
    if result.ended == "failed":
        stderr = f"\nECS Exec data channel failed ({result.kind}): {result.reason}\n".encode()
    return TransportResult(
        stdout=result.output,
        stderr=stderr,
        returncode={"closed": 0, "timeout": None}.get(result.ended, 255),
        timed_out=result.ended == "timeout",
        pty=True,
        may_have_started=True,
    )


__all__ = ["execute_command", "native_round_trip", "transport_error"]
