"""Exec retry decisions: a command is run again only when it provably never started.

"Never started" means no begin marker in the session stream *and* an error code on the
transport's own error channel from before the command could run. The command's output is
never read for a decision, so a command that prints "Rate exceeded" is not run twice.
"""

from __future__ import annotations

import math
import re

from ._effects import TransportResult
from ._errors import (
    AwsCliMissingError,
    EcsExecError,
    ExecAgentNotConnectedError,
    ExecCutOffError,
    ExecTimeoutError,
)
from ._markers import ExecOutcome, ExecStatus
from ._retry import _CODE_REMEDIES, _THROTTLING, GiveUp, Ok, Retry, backoff

_CLI_ERROR = re.compile(
    rb"An error occurred \((?P<code>[A-Za-z0-9_.]+)\) when calling the (?P<operation>\w+) "
    rb"operation(?: \(reached max retries: \d+\))?: ?(?P<message>[^\r\n]*)"
)
_PLUGIN_MISSING = b"SessionManagerPlugin is not found"
_NOT_CONNECTED = frozenset({"TargetNotConnectedException"})
# ECS answers InvalidParameterException with this while the task's exec agent starts.
_NOT_ENABLED_HINT = "execute command"
_NOT_CONNECTED_DELAY_S = 2.0
_STDERR_LIMIT = 2048


def _transport_error(stderr: bytes) -> tuple[str, str] | None:
    matches = list(_CLI_ERROR.finditer(stderr))
    if not matches:
        return None
    last = matches[-1]  # the CLI's final word, after any errors it retried past
    return (
        last.group("code").decode("ascii"),
        last.group("message").decode("utf-8", errors="replace").strip(),
    )


def transport_error_code(stderr: bytes) -> str | None:
    """The AWS error code in the transport's own error channel, if the AWS CLI printed one.

    Parses ``An error occurred (CODE) when calling the OPERATION operation: MESSAGE``.
    ``stderr`` must be the transport's stderr, never the session stream.
    """
    found = _transport_error(stderr)
    return None if found is None else found[0]


def classify_exec(
    result: TransportResult,
    outcome: ExecOutcome,
    *,
    attempt: int,
    elapsed_s: float,
    connect_timeout_s: float,
    timeout_s: float | None,
    rand: float,
) -> Ok | Retry | GiveUp:
    """Decide what an exec round trip means; ``Ok.value`` is the :class:`ExecOutcome`.

    ``elapsed_s`` is the time since the first attempt started; retries while the exec agent
    is not connected (or the call is throttled) stop when it reaches ``connect_timeout_s``.
    A completed command is Ok even if the transport then hung until its timeout (a frozen
    session): its exit code and output are whole. A command that the wrapper stopped at its
    timeout is an :class:`ExecTimeoutError`, whether or not the transport outlived it.
    """
    if outcome.status is ExecStatus.COMPLETED:
        return Ok(outcome)
    limit = math.inf if timeout_s is None else timeout_s
    if outcome.status is ExecStatus.TIMED_OUT:
        return GiveUp(
            ExecTimeoutError(
                f"exec did not finish within {limit:g} s after the command started; the "
                "wrapper in the container stopped it (SIGTERM, then SIGKILL, to its process "
                "group)",
                timeout_s=limit,
                started=True,
            )
        )
    if result.timed_out:
        started = outcome.status is not ExecStatus.NEVER_STARTED or result.may_have_started
        return GiveUp(
            ExecTimeoutError(
                f"exec did not finish within {limit:g} s "
                + ("after the command started" if started else "and the command never started"),
                timeout_s=limit,
                started=started,
            )
        )
    if outcome.status is ExecStatus.CUT_OFF:
        # Say why the session ended (a dropped connection, the service closing it...) when
        # the transport said so; the stream itself is the command's and is never quoted.
        why = f" ({_excerpt(result.stderr)})" if result.stderr.strip() else ""
        return GiveUp(ExecCutOffError(f"the exec session ended before the command finished{why}"))
    if result.may_have_started:
        # ECS had the command: no begin marker proves nothing, so it is never run again.
        return GiveUp(
            ExecCutOffError(
                "the exec session ended before any output of the command arrived, after ECS "
                "had accepted it; it may have run and is not run again ("
                + _excerpt(result.stderr)
                + ")"
            )
        )
    return _classify_not_started(result, attempt, elapsed_s, connect_timeout_s, rand)


def _classify_not_started(
    result: TransportResult,
    attempt: int,
    elapsed_s: float,
    connect_timeout_s: float,
    rand: float,
) -> Retry | GiveUp:
    found = _transport_error(result.stderr)
    if found is None:
        if _PLUGIN_MISSING in result.stderr:
            return GiveUp(AwsCliMissingError("session-manager-plugin is not installed"))
        return GiveUp(
            EcsExecError(
                "the exec session failed before the command started; the transport said: "
                + _excerpt(result.stderr)
            )
        )
    code, message = found
    remaining = connect_timeout_s - elapsed_s
    not_connected = code in _NOT_CONNECTED or (
        code == "InvalidParameterException" and _NOT_ENABLED_HINT in message.lower()
    )
    if not_connected:
        if remaining <= 0:
            return GiveUp(
                ExecAgentNotConnectedError(
                    f"the task's exec agent did not connect within {connect_timeout_s:g} s "
                    f"({code}: {message})"
                )
            )
        delay = min(_NOT_CONNECTED_DELAY_S + rand, remaining)
        return Retry(delay, f"exec agent not connected yet ({code})")
    if code in _THROTTLING:
        if remaining <= 0:
            return GiveUp(
                EcsExecError(
                    f"ExecuteCommand still throttled after {connect_timeout_s:g} s "
                    f"({code}: {message})",
                    remedy="Run fewer execs at once; ExecuteCommand shares its token bucket "
                    "with RunTask and StopTask.",
                )
            )
        return Retry(min(backoff(attempt, rand), remaining), f"ExecuteCommand throttled ({code})")
    remedy = _CODE_REMEDIES.get(code)
    return GiveUp(
        EcsExecError(
            f"ExecuteCommand failed with {code}: {message}",
            remedy=None if remedy is None else remedy.format(permission="ecs:ExecuteCommand"),
        )
    )


def _excerpt(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    if not text:
        return "(nothing on its error channel)"
    if len(text) > _STDERR_LIMIT:
        return text[:_STDERR_LIMIT] + f"... ({len(text) - _STDERR_LIMIT} more characters)"
    return text


__all__ = ["classify_exec", "transport_error_code"]
