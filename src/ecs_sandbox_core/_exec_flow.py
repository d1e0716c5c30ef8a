"""The exec flow: run one command in a task's container and get its exact result back.

The flow draws a fresh nonce, wraps the command in markers (staging it through S3 when the
wrapped command is too long to send inline), runs it through the exec transport and lets
:func:`classify_exec` decide. Only attempts that provably never started the command are
repeated, so a command runs at most once.

The timeout is enforced twice. The wrapper in the container stops the command's process
group itself after ``timeout_s`` (rounded up to whole seconds; SIGTERM, SIGKILL
``KILL_GRACE_S`` later) and reports it, which works whatever becomes of the transport; the
transport is given ``TRANSPORT_SLACK_S`` more than that, as a backstop for a wrapper that
cannot report (a dead session, a container without ``sh``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._cmdloop import loop_round_trip
from ._doctor_task import exec_blocked_error
from ._effects import (
    AwsResult,
    DescribeTask,
    Effect,
    ExecRun,
    Log,
    Now,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ._errors import (
    ExecAgentNotConnectedError,
    ExecCutOffError,
    TaskStoppedError,
    UsageError,
)
from ._exec_native import native_round_trip
from ._lifecycle import stopped_task_error
from ._limits import exceeds, output_too_large
from ._markers import (
    KILL_GRACE_S,
    MAX_INLINE_COMMAND,
    ExecOutcome,
    container_timeout,
    exec_script,
    parse_exec_output,
    staged_script_command,
    wrap_command,
)
from ._retry import GiveUp, Ok, Retry, classify_exec, transport_error_code

MAX_LOOP_SCRIPT = 96_000
"""Longest wrapper script sent inline to a command loop (one ``sh -c`` argument, below
Linux's 128 KiB per-argument limit); longer ones are staged through S3."""
OPEN_TIMEOUT_S = 30.0
"""How long a new command-loop session may take to become ready (the agent's first-read
delay, the WebSocket and TLS set-up)."""
TRANSPORT_SLACK_S = 10.0
"""How much longer than the wrapper's own deadline the transport may take: session start-up
(seconds through the AWS CLI) and delivering the wrapper's report."""

StageFlow = Callable[[str], Generator[Effect, Any, str]]
"""A sub-flow that stores a script's text (in S3) and returns a presigned GET URL for it."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A finished command: its real exit code and its exact output (stdout and stderr)."""

    exit_code: int
    output: bytes

    @property
    def text(self) -> str:
        """``output`` decoded as UTF-8, undecodable bytes replaced."""
        return self.output.decode("utf-8", errors="replace")


def exec_flow(
    *,
    task_arn: str,
    container: str,
    command: str | Sequence[str],
    timeout_s: float | None,
    connect_timeout_s: float,
    binary: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pty: bool = False,
    stage: StageFlow | None = None,
    stream: bool = False,
    cluster: str | None = None,
    native: bool = False,
    max_output_bytes: int | None = None,
    loop_sessions: int = 0,
) -> Generator[Effect, Any, ExecResult]:
    """Run ``command`` in ``container`` of ``task_arn``; return its :class:`ExecResult`.

    ``timeout_s`` bounds the command's run in the container (the wrapper stops its process
    group then, see :mod:`._markers`); each round trip may take :func:`transport_timeout`
    of it. ``connect_timeout_s`` bounds how long attempts that never reached the command are
    repeated (agent not connected yet, throttling).
    ``pty`` says the transport delivers the stream through a terminal (ECS Exec does).
    ``stage`` is needed only when the wrapped command exceeds ``MAX_INLINE_COMMAND``.
    ``stream`` asks the driver to show text output while it arrives (not in binary mode).
    With ``cluster``, a session that could not reach the task or ended early is followed by
    a look at the task: if it has stopped, :class:`TaskStoppedError` (stop code, reason,
    exit code) is raised instead of retrying or of a vaguer exec error.
    With ``native`` (it needs ``cluster``), each attempt is ExecuteCommand through the
    budgeted AWS client plus an :class:`ExecSession` on its data channel
    (:mod:`._exec_native`) instead of an :class:`ExecRun` through a transport process.
    ``loop_sessions`` > 0 (native only) sends the command to a command-loop session kept
    open for the sandbox, at most that many at once (:mod:`._cmdloop`), instead of opening
    a session per command.
    ``max_output_bytes`` bounds the session stream of each attempt: past it the run is
    ended and :class:`ExecOutputTooLargeError` raised (never retried).
    Raises the error of the final :class:`GiveUp`; a non-zero exit code is not an error.
    """
    if (native or loop_sessions) and cluster is None:
        raise UsageError("a native exec needs the task's cluster")
    nonce: str = yield Token(nbytes=16)
    if loop_sessions:
        # On a command loop the wrapper script travels as input, where it may be far longer
        # than an ExecuteCommand argument.
        line = exec_script(
            command, nonce=nonce, binary=binary, env=env, cwd=cwd, timeout_s=timeout_s
        )
        limit = MAX_LOOP_SCRIPT
    else:
        line = wrap_command(
            command, nonce=nonce, binary=binary, env=env, cwd=cwd, timeout_s=timeout_s
        )
        limit = MAX_INLINE_COMMAND
    if len(line) > limit:
        if stage is None:
            raise UsageError(
                f"the command is {len(line)} characters once wrapped, more than ECS Exec "
                f"takes inline ({limit})",
                remedy="Set s3_bucket so that long commands are staged through S3, or "
                "shorten the command (send large inputs as files).",
            )
        script = exec_script(
            command, nonce=nonce, binary=binary, env=env, cwd=cwd, timeout_s=timeout_s
        )
        url = yield from stage(script)
        line = staged_script_command(url=url, nonce=nonce)
    started: float = yield Now()
    attempt = 1
    while True:
        stream_nonce = nonce if stream and not binary else None
        result: TransportResult
        if loop_sessions:
            assert cluster is not None
            result = yield from loop_round_trip(
                cluster=cluster,
                task_arn=task_arn,
                container=container,
                script=line,
                nonce=nonce,
                binary=binary,
                timeout_s=transport_timeout(timeout_s),
                open_timeout_s=OPEN_TIMEOUT_S
                if timeout_s is None
                else min(timeout_s, OPEN_TIMEOUT_S),
                max_sessions=loop_sessions,
                stream_nonce=stream_nonce,
                max_output_bytes=max_output_bytes,
            )
        elif native:
            assert cluster is not None
            result = yield from native_round_trip(
                cluster=cluster,
                task_arn=task_arn,
                container=container,
                command=line,
                timeout_s=transport_timeout(timeout_s),
                stream_nonce=stream_nonce,
                max_output_bytes=max_output_bytes,
            )
        else:
            result = yield ExecRun(
                task_arn=task_arn,
                container=container,
                command=line,
                timeout_s=transport_timeout(timeout_s),
                stream_nonce=stream_nonce,
                max_output_bytes=max_output_bytes,
            )
        if exceeds(len(result.stdout), max_output_bytes):
            assert max_output_bytes is not None
            raise output_too_large(max_output_bytes)
        outcome = parse_exec_output(
            # A command loop turns the terminal's output processing off: bytes come as sent.
            result.stdout,
            nonce=nonce,
            binary=binary,
            pty=(pty or result.pty) and not loop_sessions,
        )
        # Time and a random draw are taken after every attempt, not only before a retry:
        # classify_exec needs both to decide, and they cost the driver nothing.
        now: float = yield Now()
        rand: float = yield Random()
        decision = classify_exec(
            result,
            outcome,
            attempt=attempt,
            elapsed_s=now - started,
            connect_timeout_s=connect_timeout_s,
            timeout_s=timeout_s,
            rand=rand,
        )
        if isinstance(decision, Ok):
            return _result(outcome)
        if cluster is not None and _task_may_have_stopped(result, decision):
            stopped = yield from _stopped_task(cluster, task_arn, container, decision)
            if stopped is not None:
                cause = decision.error if isinstance(decision, GiveUp) else None
                raise stopped from cause
        if isinstance(decision, GiveUp):
            raise decision.error
        yield Log(
            level=logging.INFO,
            message="exec in %s attempt %d did not start (%s); retrying in %.1f s",
            args=(task_arn, attempt, decision.reason, decision.delay_s),
            phase="exec",
        )
        yield Sleep(seconds=decision.delay_s)
        attempt += 1


def transport_timeout(timeout_s: float | None) -> float | None:
    """The transport's deadline for a command with ``timeout_s``: the wrapper's, plus slack
    (None, no limit, stays None)."""
    if timeout_s is None:
        return None
    seconds = container_timeout(timeout_s)
    if seconds is None:
        return timeout_s
    return seconds + KILL_GRACE_S + TRANSPORT_SLACK_S


def _task_may_have_stopped(result: TransportResult, decision: Retry | GiveUp) -> bool:
    # A stopped task looks like an agent that is not connected (before the command) or a
    # session that ended early (during it); anything else says nothing about the task.
    if isinstance(decision, GiveUp):
        return isinstance(decision.error, ExecCutOffError | ExecAgentNotConnectedError)
    # InvalidParameterException is retried only when ECS says exec is not enabled (yet).
    code = transport_error_code(result.stderr)
    return code in ("TargetNotConnectedException", "InvalidParameterException")


def _stopped_task(
    cluster: str, task_arn: str, container: str, decision: Retry | GiveUp
) -> Generator[Effect, Any, TaskStoppedError | ExecAgentNotConnectedError | None]:
    """The error for ``task_arn`` if it has stopped (or vanished), or if its description
    says why its exec agent cannot connect (see :func:`exec_blocked_error`), else None."""
    described: AwsResult = yield DescribeTask(cluster=cluster, task_arn=task_arn)
    started = isinstance(decision, GiveUp) and isinstance(decision.error, ExecCutOffError)
    when = (
        "while a command ran in it (the command may have run in part; it is not run again)"
        if started
        else "before the command could start (the command did not run)"
    )
    if described.error is not None:
        if described.error.code != "MISSING":
            return None  # cannot tell; the exec decision stands
        return TaskStoppedError(f"task {task_arn} no longer exists: it stopped {when}")
    task = described.data
    if task.get("lastStatus") not in _STOPPED and task.get("desiredStatus") != "STOPPED":
        if started:
            return None
        error = decision.error if isinstance(decision, GiveUp) else None
        return exec_blocked_error(
            task, container, error if isinstance(error, ExecAgentNotConnectedError) else None
        )
    return stopped_task_error(
        task_arn,
        task,
        container_name=container,
        when=when,
        remedy="The sandbox is gone: its essential container exited (killed, out of memory, "
        "a command that ended the keep-alive process, or max_task_lifetime_sec reached) or "
        "the task was stopped from outside. Spin up a new sandbox; the reasons above say why.",
    )


_STOPPED = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"})


def _result(outcome: ExecOutcome) -> ExecResult:
    if outcome.exit_code is None:  # classify_exec is Ok only for a completed command
        raise AssertionError(f"completed outcome without an exit code: {outcome.status}")
    return ExecResult(exit_code=outcome.exit_code, output=outcome.output)


__all__ = ["TRANSPORT_SLACK_S", "ExecResult", "StageFlow", "exec_flow", "transport_timeout"]
