"""tmux session flows: each operation is one exec round trip.

The flows take a ``run`` sub-flow that executes a shell script in the sandbox (the sandbox
binds it to its exec flow), so they know nothing about tasks or transports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._effects import Effect, Log, Sleep, time_limit
from ._errors import PhaseTimeoutError, SessionError
from ._pane import Increment, PaneTracker
from ._recording import recording_from_archive, snapshot_script
from ._terminal import TerminalStatus
from ._tmux import (
    StartInfo,
    alive_script,
    capture_script,
    check_session_name,
    incremental_script,
    parse_resize,
    parse_send,
    parse_start,
    parse_status_output,
    plan_keys,
    resize_script,
    send_script,
    start_script,
    status_script,
    version_warning,
)


class ScriptResult(Protocol):
    """What running a script returns (the exec flow's ``ExecResult`` satisfies it)."""

    @property
    def exit_code(self) -> int: ...

    @property
    def output(self) -> bytes: ...


ScriptRunner = Callable[[str, float | None], Generator[Effect, Any, ScriptResult]]
"""Runs a POSIX sh script in the sandbox with a timeout (seconds; None: no limit)."""

_OP_TIMEOUT_S = 60.0
_WAIT_MARGIN_S = 30.0


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """A tmux session's name and geometry."""

    name: str
    width: int = 160
    height: int = 40
    history_limit: int = 50000

    def __post_init__(self) -> None:
        check_session_name(self.name)


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of a send: whether its wait timed out, the terminal's status after it
    (None when the pane could not be looked at) and, if read, the increment."""

    waited: bool
    timed_out: bool
    increment: Increment | None
    status: TerminalStatus | None = None

    def render(self, *, footer: bool = False) -> str:
        """The increment as agents read it; with ``footer``, the status as a last line."""
        text = self.increment.render() if self.increment is not None else ""
        if footer and self.status is not None:
            text += ("\n" if text and not text.endswith("\n") else "") + self.status.footer()
        return text


def _text(result: ScriptResult) -> str:
    return result.output.decode("utf-8", errors="replace")


def _check(result: ScriptResult, what: str, session: str) -> str:
    if result.exit_code != 0:
        raise SessionError(
            f"{what} failed for tmux session {session!r} (exit {result.exit_code}): "
            f"{_text(result)[-500:]}",
            remedy="Start the session first (create_session) and keep it running.",
        )
    return _text(result)


def start_session_flow(
    spec: SessionSpec, run: ScriptRunner, *, warn_version: bool = True
) -> Generator[Effect, Any, StartInfo]:
    """Create the session unless it exists, probing tmux's version in the same round trip."""
    script = start_script(
        spec.name, width=spec.width, height=spec.height, history_limit=spec.history_limit
    )
    result = yield from run(script, _OP_TIMEOUT_S)
    if result.exit_code == 127:
        raise SessionError(
            "tmux is not installed in the sandbox's image",
            remedy="Use an image with tmux (e.g. apt-get install -y tmux in its Dockerfile).",
        )
    info = parse_start(_check(result, "session start", spec.name))
    warning = version_warning(info) if warn_version else None
    if warning:
        yield Log(level=logging.WARNING, message="%s", args=(warning,), phase="session")
    yield Log(
        level=logging.INFO,
        message="tmux session %s %s (tmux %s)",
        args=(spec.name, "created" if info.created else "already running", info.raw_version),
        phase="session",
    )
    return info


def send_keys_flow(
    spec: SessionSpec,
    keys: str | Sequence[str],
    run: ScriptRunner,
    *,
    block: bool = False,
    min_timeout_s: float | None = 0.0,
    max_timeout_s: float | None = 180.0,
    tracker: PaneTracker | None = None,
    raise_on_timeout: bool = True,
) -> Generator[Effect, Any, StepResult]:
    """Type ``keys``; with ``block``, wait for the submitted command; with ``tracker``, read.

    Typing, waiting and reading share one script, so the combined agent step is a single
    round trip. A send that does not end in Enter cannot be waited for: it is logged and
    treated as non-blocking instead of sitting out the whole timeout. ``max_timeout_s``
    None or ``inf`` waits without limit (Terminal-Bench's oracle agent passes ``inf``);
    ``min_timeout_s`` None is 0.
    """
    limit = time_limit(max_timeout_s, what="max_timeout_s", error=SessionError)
    settle_min = 0.0 if min_timeout_s is None else min_timeout_s
    if not (isinstance(settle_min, int | float) and 0 <= settle_min < math.inf):
        raise SessionError(
            f"min_timeout_s must be a non-negative finite number, not {min_timeout_s!r}"
        )
    plan = plan_keys(keys, block=block)
    if block and not plan.blocks:
        yield Log(
            level=logging.WARNING,
            message="block=True needs keys ending in Enter (or a newline); not waiting",
            phase="session",
        )
    settle = 0.0 if plan.blocks else float(settle_min)
    read = tracker.request() if tracker is not None else None
    # A non-blocking send that reads in the same trip waits in the sandbox so that the
    # read sees the command's first output; without a read the driver sleeps instead.
    script = send_script(
        spec.name,
        plan,
        wait_timeout_s=limit,
        read=read,
        settle_s=settle if read is not None else 0.0,
    )
    result = yield from run(script, _round_trip_limit(plan.blocks, limit, settle))
    status = parse_send(_check(result, "send-keys", spec.name))
    if not status.typed:
        raise SessionError(
            f"tmux could not type into session {spec.name!r} (status {status.send_status})",
            remedy="Check that the session is alive (is_session_alive) and start it again.",
        )
    if status.session_gone:
        raise SessionError(
            f"tmux session {spec.name!r} ended while a command was waited for",
            remedy="Check that the session is alive (is_session_alive) and start it again.",
        )
    if status.timed_out and raise_on_timeout:
        waited_s = math.inf if limit is None else limit  # only a bounded wait can time out
        raise PhaseTimeoutError(
            f"command in tmux session {spec.name!r} did not finish within {waited_s:g} s",
            phase="send-keys",
            timeout_s=waited_s,
        )
    if read is None and settle > 0:
        yield Sleep(seconds=settle)
    increment = tracker.feed(status.rest) if tracker is not None else None
    return StepResult(
        waited=status.waited,
        timed_out=status.timed_out,
        increment=increment,
        status=status.terminal,
    )


def _round_trip_limit(blocks: bool, limit: float | None, settle: float) -> float | None:
    """How long the exec round trip of a send may take: the wait (or settle) and a margin;
    no limit when it waits without limit."""
    if not blocks:
        return max(settle + _WAIT_MARGIN_S, _OP_TIMEOUT_S)
    if limit is None:
        return None
    return max(limit + _WAIT_MARGIN_S, _OP_TIMEOUT_S)


def read_flow(
    spec: SessionSpec, tracker: PaneTracker, run: ScriptRunner
) -> Generator[Effect, Any, Increment]:
    """The output that is new since the last read (or the screen when none can be told)."""
    result = yield from run(incremental_script(spec.name, tracker.request()), _OP_TIMEOUT_S)
    return tracker.feed(_check(result, "pane read", spec.name))


def resize_flow(
    spec: SessionSpec, tracker: PaneTracker, run: ScriptRunner, width: int, height: int
) -> Generator[Effect, Any, None]:
    """Resize the session's window, keeping incremental reads exact: what was new before
    the resize comes first in the next read (one round trip)."""
    result = yield from run(
        resize_script(spec.name, width, height, tracker.request()), _OP_TIMEOUT_S
    )
    _check(result, "resize", spec.name)
    before, after = parse_resize(result.output)
    tracker.rebase(before, after)


def capture_flow(
    spec: SessionSpec, run: ScriptRunner, *, entire: bool = False
) -> Generator[Effect, Any, str]:
    """The visible screen, or the whole scrollback with ``entire``."""
    result = yield from run(capture_script(spec.name, entire=entire), _OP_TIMEOUT_S)
    return _check(result, "capture-pane", spec.name)


def status_flow(spec: SessionSpec, run: ScriptRunner) -> Generator[Effect, Any, TerminalStatus]:
    """The terminal's status: last exit code, what runs in the foreground, the alternate
    screen and the working directory (see :class:`~ecs_sandbox_core._terminal.TerminalStatus`)."""
    result = yield from run(status_script(spec.name), _OP_TIMEOUT_S)
    return parse_status_output(_check(result, "status", spec.name))


def recording_flow(
    spec: SessionSpec,
    run: ScriptRunner,
    download: Callable[[str], Generator[Effect, Any, bytes]],
) -> Generator[Effect, Any, str]:
    """The session's recording so far as asciicast v2 text: copy it aside in the sandbox
    (one round trip), fetch the copy with ``download`` (a path's gzip tar), convert."""
    result = yield from run(snapshot_script(spec.name), _OP_TIMEOUT_S)
    if result.exit_code == 3:
        raise SessionError(
            f"tmux session {spec.name!r} has no recording",
            remedy="Recording starts when this library creates the session.",
        )
    path = _check(result, "recording snapshot", spec.name).strip()
    archive = yield from download(path)
    return recording_from_archive(archive)


def alive_flow(spec: SessionSpec, run: ScriptRunner) -> Generator[Effect, Any, bool]:
    """Whether the session exists."""
    result = yield from run(alive_script(spec.name), _OP_TIMEOUT_S)
    return result.exit_code == 0 and _text(result).strip() == "1"


__all__ = [
    "ScriptResult",
    "ScriptRunner",
    "SessionSpec",
    "StepResult",
    "alive_flow",
    "capture_flow",
    "read_flow",
    "recording_flow",
    "resize_flow",
    "send_keys_flow",
    "start_session_flow",
    "status_flow",
]
