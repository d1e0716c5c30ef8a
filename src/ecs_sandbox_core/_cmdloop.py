"""The command loop: one long-lived ECS Exec session that carries every command of a sandbox.

Theory of operation
-------------------
Opening an ECS Exec session costs an ExecuteCommand token (from the bucket StopTask needs), a
WebSocket and TLS set-up, and the agent's 1 s wait before its first read. So a sandbox keeps a
few sessions open, each running a small POSIX ``sh`` loop (no Python needed in the image),
and sends it one request per command.

The session's command is ``sh -lc LOOP ecsx LOOPNONCE``. The loop first turns the terminal's
echo, line editing and output processing off (``stty -echo -icanon -opost``: what it prints
comes back byte for byte, and a request line may be longer than a terminal line), prints
``<<ecsx-LOOPNONCE:ready>>`` and then reads one line at a time:

* an empty line does nothing (a keep-alive: client input resets the agent's idle timer;
  today a session idle past the timeout is simply replaced before its next command);
* ``x FORMAT`` runs the script that ``printf FORMAT`` prints (see :func:`request_line`: a
  builtin decodes it, no process) with ``sh -c`` (its own process, whose command line
  carries the call's nonce: a stop request finds it by that), which is the ordinary exec
  wrapper of
  :mod:`._markers` (its own nonce, begin and end markers, exit code or timeout), with stdin
  from ``/dev/null``; then the loop prints ``<<ecsx-LOOPNONCE:idle>>``.

A request is complete when its wrapper frame is complete (:func:`frame_complete`), which is
decided by the same parser as every other exec, so the loop adds no new way to get a wrong
answer; output left over from an earlier command (a process that outlived it) precedes the
next begin marker and is ignored by the parser. A timeout is enforced by the wrapper itself
inside the container, so the loop survives it and the session stays usable.

What may be retried. A request that was never handed to a live session (the session had
ended, which the driver sees before sending) is sent again on a new one. Once the request's
bytes are queued on a session, the command may run, and a failure from then on is never
retried: the exec fails as any cut-off exec does (``started=True``).

Interrupted requests. The wrapper runs the command in a session of its own (see
:mod:`._markers`), so ending the ECS Exec session does not stop it: the agent kills only the
loop, and the terminal's hang-up reaches the wrapper but not the command, which would run on
until its timeout. So when the flow is interrupted (cancellation, ``KeyboardInterrupt``, a
driver failure) after the request may have gone out, it first sends a *stop request* on
another session, while the interrupted session, and with it the wrapper, is still there: a
script that finds the wrapper by this call's nonce in its command line (the stop script holds
the nonce in two halves, so it never finds itself) and SIGKILLs the process group of each of
its children that leads one (the command, the timer), or the child itself otherwise. Only then
is the interrupted session closed. The stop is best effort and bounded; a failure is logged
and the interruption goes on as it came. A command whose output passed
``max_output_bytes`` is stopped the same way: the driver stops reading there but leaves the
session open for it.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from ._cmdloop_wire import (
    IDLE_TIMEOUT_S,
    KEEPALIVE,
    KEEPALIVE_INTERVAL_S,
    LOOP_SCRIPT,
    MISSING_TOOL,
    STOP_TIMEOUT_S,
    FrameWatch,
    frame_complete,
    loop_command,
    ready_marker,
    request_line,
    stop_command,
)
from ._effects import (
    AcquireChannel,
    ChannelLease,
    ChannelRequest,
    Effect,
    Log,
    OpenChannel,
    ReleaseChannel,
    SessionResult,
    Token,
    TransportResult,
)
from ._errors import EcsExecError
from ._exec_native import execute_command
from ._limits import exceeds
from ._markers import exec_script
from ._ssm_channel import KMS_REMEDY

__all__ = [
    "IDLE_TIMEOUT_S",
    "KEEPALIVE",
    "KEEPALIVE_INTERVAL_S",
    "LOOP_SCRIPT",
    "FrameWatch",
    "frame_complete",
    "loop_command",
    "loop_round_trip",
    "ready_marker",
    "request_line",
    "stop_command",
]


def loop_round_trip(
    *,
    cluster: str,
    task_arn: str,
    container: str,
    script: str,
    nonce: str,
    binary: bool,
    timeout_s: float | None,
    open_timeout_s: float,
    max_sessions: int,
    stream_nonce: str | None = None,
    max_output_bytes: int | None = None,
) -> Generator[Effect, Any, TransportResult]:
    """One command on a pooled command-loop session; the result as a transport gives it.

    A session found ended before the request was sent is dropped and the request goes to
    another one (at most ``max_sessions + 1`` times); nothing else is repeated here (the
    exec flow classifies what comes back, see the module docstring).
    """
    for _ in range(max_sessions + 2):
        lease: ChannelLease = yield AcquireChannel(task_arn=task_arn, max_sessions=max_sessions)
        reusable = False
        closing = False
        sent = False
        try:
            if lease.fresh:
                failed = yield from _open(
                    lease, cluster, task_arn, container, open_timeout_s=open_timeout_s
                )
                if failed is not None:
                    return failed
            sent = True
            result: TransportResult = yield ChannelRequest(
                lease_id=lease.lease_id,
                request=request_line(script),
                nonce=nonce,
                binary=binary,
                timeout_s=timeout_s,
                stream_nonce=stream_nonce,
                max_output_bytes=max_output_bytes,
            )
            # A whole frame (exit code or the wrapper's own timeout) leaves the loop waiting
            # for the next request; anything else leaves the session in an unknown state.
            reusable = result.returncode == 0 and not result.timed_out
            if exceeds(len(result.stdout), max_output_bytes):
                # The driver stopped reading at the limit and the command may still be running.
                yield from _stop(cluster, task_arn, container, nonce, open_timeout_s, max_sessions)
            if result.may_have_started or lease.fresh:
                return result
        except GeneratorExit:
            # Closed from outside: nothing can be yielded any more. The lease stays with the
            # driver, which closes every session of the sandbox at tear-down.
            closing = True
            raise
        except BaseException:
            if sent:  # interrupted while the command may run: stop it before its session ends
                yield from _stop(cluster, task_arn, container, nonce, open_timeout_s, max_sessions)
            raise
        finally:
            if not closing:
                yield ReleaseChannel(lease_id=lease.lease_id, reusable=reusable)
    return TransportResult(
        stderr=b"\nECS Exec: every pooled session had ended before the request was sent\n",
        returncode=255,
    )


def _stop(  # noqa: PLR0917 - the round trip's own arguments, passed on
    cluster: str,
    task_arn: str,
    container: str,
    nonce: str,
    open_timeout_s: float,
    max_sessions: int,
) -> Generator[Effect, Any, None]:
    """Stop a command that may still run (see the module docstring); failures are logged.

    An exception from the driver (a second interruption) goes through.
    """
    yield Log(
        level=logging.INFO,
        message="exec in %s ended early: stopping its command in the container",
        args=(task_arn,),
        phase="exec",
    )
    try:
        why = yield from _stop_request(
            cluster, task_arn, container, nonce, open_timeout_s, max_sessions
        )
    except Exception as exc:
        why = str(exc) or type(exc).__name__
    if why:
        yield Log(
            level=logging.WARNING,
            message="could not stop the command in %s: %s",
            args=(task_arn, why),
            phase="exec",
        )


def _stop_request(  # noqa: PLR0917
    cluster: str,
    task_arn: str,
    container: str,
    nonce: str,
    open_timeout_s: float,
    max_sessions: int,
) -> Generator[Effect, Any, str]:
    """The stop request on another session; why it failed, or "".

    One place more than ``max_sessions``: the lease of the command to stop is still out.
    """
    stop_nonce: str = yield Token(nbytes=16)
    lease: ChannelLease = yield AcquireChannel(task_arn=task_arn, max_sessions=max_sessions + 1)
    reusable = closing = False
    why = ""
    try:
        failed = None
        if lease.fresh:
            failed = yield from _open(
                lease, cluster, task_arn, container, open_timeout_s=open_timeout_s
            )
        if failed is None:
            result: TransportResult = yield ChannelRequest(
                lease_id=lease.lease_id,
                request=request_line(exec_script(stop_command(nonce), nonce=stop_nonce)),
                nonce=stop_nonce,
                binary=False,
                timeout_s=STOP_TIMEOUT_S,
            )
            reusable = result.returncode == 0 and not result.timed_out
            failed = None if reusable else result
        if failed is not None:
            why = failed.stderr.decode("utf-8", errors="replace").strip() or "no answer"
    except GeneratorExit:
        closing = True
        raise
    finally:
        if not closing:
            yield ReleaseChannel(lease_id=lease.lease_id, reusable=reusable)
    return why


def _open(
    lease: ChannelLease, cluster: str, task_arn: str, container: str, *, open_timeout_s: float
) -> Generator[Effect, Any, TransportResult | None]:
    """ExecuteCommand for the loop and connect the lease; a failure as a transport result."""
    loop_nonce: str = yield Token(nbytes=16)
    opened = yield from execute_command(
        cluster=cluster, task_arn=task_arn, container=container, command=loop_command(loop_nonce)
    )
    if isinstance(opened, TransportResult):
        return opened
    session_id, url, token = opened
    failure: SessionResult | None = yield OpenChannel(
        lease_id=lease.lease_id,
        session_id=session_id,
        stream_url=url,
        token=token,
        ready=ready_marker(loop_nonce),
        timeout_s=open_timeout_s,
    )
    if failure is None:
        return None
    missing = MISSING_TOOL.search(failure.output)
    if missing is not None:
        tool = missing.group(1).decode()
        raise EcsExecError(
            f"the command loop cannot start: the image has no working {tool} (the loop needs "
            "stty to turn the terminal's echo and line editing off, and base64 for binary and "
            "separate output)",
            remedy=f"Add {tool} to the image (coreutils or busybox), or set "
            "exec_sessions_per_sandbox=0 to open one ECS Exec session per command instead.",
        )
    if failure.kind == "kms":
        raise EcsExecError(
            f"the ECS Exec session cannot start: {failure.reason}", remedy=KMS_REMEDY
        )
    # The loop never became ready, so no command was sent: this proves it never ran.
    why = f"ECS Exec command loop did not start ({failure.kind}): {failure.reason}"
    return TransportResult(stdout=failure.output, stderr=f"\n{why}\n".encode(), returncode=255)
