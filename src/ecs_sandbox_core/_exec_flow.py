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
    EcsExecError,
    EcsSandboxError,
    ExecAgentNotConnectedError,
    ExecCutOffError,
    NoSuchUserError,
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
    ExecStatus,
    container_timeout,
    exec_script,
    parse_exec_output,
    staged_script_command,
    wrap_command,
)
from ._retry import GiveUp, Ok, Retry
from ._retry_exec import classify_exec, transport_error_code

MAX_LOOP_SCRIPT = 96_000
"""Most bytes (UTF-8) of a wrapper script sent inline to a command loop (one ``sh -c``
argument, below Linux's 128 KiB per-argument limit); longer ones are staged through S3."""
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
    """A finished command: its real exit code and its exact output.

    ``output`` is stdout and stderr merged. By default the command's stderr goes where its
    stdout goes (as ECS Exec's terminal delivers them), in the order written: then
    ``stdout`` is that same merged output and ``stderr`` is empty. With
    ``separate_stderr`` (``separated`` is then True) ``stdout`` and ``stderr`` are the two
    streams, exact, and ``output`` is stdout followed by stderr.
    """

    exit_code: int
    output: bytes
    streams: tuple[bytes, bytes] | None = None
    """``(stdout, stderr)`` when they were separated, else None."""

    @property
    def separated(self) -> bool:
        """True when ``stdout`` and ``stderr`` are the command's two streams."""
        return self.streams is not None

    @property
    def stdout(self) -> bytes:
        """The command's stdout; without ``separate_stderr``, stdout and stderr merged."""
        return self.output if self.streams is None else self.streams[0]

    @property
    def stderr(self) -> bytes:
        """The command's stderr; empty without ``separate_stderr`` (it is in ``stdout``)."""
        return b"" if self.streams is None else self.streams[1]

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
    user: str | None = None,
    stdin: bytes | None = None,
    separate: bool = False,
    keep_background: bool = False,
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
    ``user`` runs the command as that user (:class:`NoSuchUserError` when the container
    has no such user), ``stdin`` gives it those bytes as its stdin (else ``/dev/null``), and
    ``separate`` returns its stdout and stderr apart (see :mod:`._exec_io`).
    ``keep_background`` leaves what the command started running when it ends (see
    :func:`~._markers.exec_script`).
    Raises the error of the final :class:`GiveUp`; a non-zero exit code is not an error.
    """
    if (native or loop_sessions) and cluster is None:
        raise UsageError("a native exec needs the task's cluster")
    options: dict[str, Any] = {
        "binary": binary,
        "env": env,
        "cwd": cwd,
        "timeout_s": timeout_s,
        "user": user,
        "stdin": stdin,
        "separate": separate,
        "keep_background": keep_background,
    }
    nonce: str = yield Token(nbytes=16)
    if separate:
        binary = True  # base64 text on the wire: no live display, no PTY translation needed
        stream_limit = _separate_stream_limit(max_output_bytes)
    else:
        stream_limit = max_output_bytes
    if loop_sessions:
        # On a command loop the wrapper script travels as input, where it may be far longer
        # than an ExecuteCommand argument.
        line = exec_script(command, nonce=nonce, **options)
        limit = MAX_LOOP_SCRIPT
    else:
        line = wrap_command(command, nonce=nonce, **options)
        limit = MAX_INLINE_COMMAND
    # A command loop's script becomes one argument of ``sh -c``, which Linux bounds in bytes:
    # non-ASCII text is up to four of them a character.
    size, unit = (len(line.encode()), "bytes") if loop_sessions else (len(line), "characters")
    if size > limit:
        if stage is None:
            raise UsageError(
                f"the command is {size} {unit} once wrapped, more than ECS Exec "
                f"takes inline ({limit})",
                remedy="Set s3_bucket so that long commands are staged through S3, or "
                "shorten the command (send large inputs as files).",
            )
        url = yield from stage(exec_script(command, nonce=nonce, **options))
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
                max_output_bytes=stream_limit,
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
                max_output_bytes=stream_limit,
            )
        else:
            result = yield ExecRun(
                task_arn=task_arn,
                container=container,
                command=line,
                timeout_s=transport_timeout(timeout_s),
                stream_nonce=stream_nonce,
                max_output_bytes=stream_limit,
            )
        if exceeds(len(result.stdout), stream_limit):
            assert max_output_bytes is not None
            raise output_too_large(max_output_bytes)
        outcome = parse_exec_output(
            # A command loop turns the terminal's output processing off: bytes come as sent.
            result.stdout,
            nonce=nonce,
            binary=binary,
            pty=(pty or result.pty) and not loop_sessions,
            separate=separate,
        )
        if outcome.status in _NOT_RUN:
            raise _not_run_error(outcome, user)
        if separate and exceeds(len(outcome.output), max_output_bytes):
            assert max_output_bytes is not None
            raise output_too_large(max_output_bytes)
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
    streams = None
    if outcome.stdout is not None and outcome.stderr is not None:
        streams = (outcome.stdout, outcome.stderr)
    return ExecResult(exit_code=outcome.exit_code, output=outcome.output, streams=streams)


_NOT_RUN = (ExecStatus.NO_SUCH_USER, ExecStatus.SETUP_FAILED)


def _not_run_error(outcome: ExecOutcome, user: str | None) -> EcsSandboxError:
    """The typed error for a frame the wrapper ended before running the command."""
    if outcome.status is ExecStatus.NO_SUCH_USER:
        return NoSuchUserError(
            f"unable to find user {user}: no matching entries in passwd file (the command "
            "did not run)",
            user=user or "",
        )
    why = outcome.output.decode("utf-8", errors="replace").strip() or "no reason given"
    return EcsExecError(
        f"the exec wrapper could not set the command up, so it did not run: {why}",
        remedy="Give the image what the message names (a writable temporary directory, "
        "base64, setpriv/runuser/su), or call exec without input=, user= or separate_stderr.",
    )


def _separate_stream_limit(limit: int | None) -> int | None:
    """The session stream a separate frame within ``limit`` output bytes can need: base64
    (4 bytes per 3, a newline per 76) plus the markers (checked again after decoding)."""
    if limit is None:
        return None
    encoded = 4 * (limit // 3 + 2)
    return encoded + encoded // 76 + 1024


__all__ = ["TRANSPORT_SLACK_S", "ExecResult", "StageFlow", "exec_flow", "transport_timeout"]
