"""tmux: the one-round-trip shell scripts behind every session operation.

Every session operation is a single POSIX ``sh`` script run by one exec round trip, so an
agent step (type keys, wait for the command, read what is new) costs one ECS Exec call.
Values reach tmux only through single-quoted shell words, so quotes, ``$()``, backticks,
newlines and non-ASCII text are typed exactly and never interpreted by a shell; NUL cannot
cross an exec command line and is refused.

Scripts print their status lines *before* any pane content and the parsers read them by
position, so pane text can never impersonate a status line.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass

from ._effects import NO_LIMIT_ABOVE_S
from ._errors import SessionError
from ._keys import (
    ENTER_KEYS,
    PASTE_THRESHOLD,
    KeyPlan,
    Paste,
    SendKeys,
    Step,
    is_key_name,
    plan_keys,
)
from ._pane import CaptureRequest
from ._pane_script import read_script
from ._recording import pipe_pane_command, recorder_setup, resize_note
from ._terminal import (
    StatusParseError,
    TerminalStatus,
    env_file_text,
    parse_status,
    prompt_command,
    wait_call,
    wait_functions,
)
from ._tmux_send import LIST_BYTES, SendStatus, lines_typed, parse_send, step_commands

_SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

TESTED_TMUX = ((3, 0), (3, 4))
"""The tmux versions this library's scripts are tested against (inclusive)."""


def check_session_name(name: str) -> str:
    """Return ``name`` if tmux can address it exactly, else raise :class:`SessionError`."""
    if not isinstance(name, str) or not _SESSION_NAME.fullmatch(name):
        raise SessionError(
            f"invalid tmux session name {name!r}",
            remedy="Use 1-64 letters, digits, '-' or '_' (tmux rewrites ':' and '.').",
        )
    return name


def _target(session: str) -> str:
    # '=' makes tmux match the session name exactly instead of by prefix; ':' picks the
    # session's current window and pane.
    return f"={check_session_name(session)}:"


# --- scripts ------------------------------------------------------------------------------


def start_script(
    session: str,
    *,
    width: int = 160,
    height: int = 40,
    history_limit: int = 50000,
    ready_timeout_s: int = 10,
) -> str:
    """Probe tmux's version and create the session if it is missing, in one script.

    history-limit only applies to panes created after it is set, so it is set on the server
    before ``new-session``. The recording starts in the same command list (see
    :mod:`ecs_sandbox_core._recording`). The prompt hook's ``ENV`` file is written and
    its variables are set on the server only around ``new-session`` in one command list (see
    :mod:`ecs_sandbox_core._terminal`); then the script waits (at most
    ``ready_timeout_s``) for the shell's first prompt, so that keys sent next are not
    typed into a shell that is still starting. Prints ``<created 0|1> <tmux -V output>``;
    exits 127 when tmux is missing.
    """
    name = check_session_name(session)
    q = shlex.quote(name)
    if not (10 <= width <= 1000 and 5 <= height <= 1000 and 100 <= history_limit <= 10_000_000):
        raise SessionError("terminal size or history limit out of range")
    env_file = f'"${{TMPDIR:-/tmp}}/.ecs-sbx-{name}.sh"'
    return "\n".join(
        [
            "v=$(tmux -V 2>/dev/null) || { echo 'tmux: not found' >&2; exit 127; }",
            f"if tmux has-session -t ={q} 2>/dev/null; then c=0; else",
            f"  e={env_file}; printf '%s' {shlex.quote(env_file_text(name))} > \"$e\" || e=",
            f"  {recorder_setup(name, width, height)}",
            f"  tmux start-server ';' set -g history-limit {history_limit} ';'"
            f" set-environment -g ENV \"$e\" ';' set-environment -g PROMPT_COMMAND"
            f" {shlex.quote(prompt_command(name))} ';'"
            f" new-session -d -x {width} -y {height} -s {q} ';'"
            f" {pipe_pane_command(_target(name), name)} ';'"
            " set-environment -gu ENV ';' set-environment -gu PROMPT_COMMAND || exit $?",
            "  c=1",
            wait_functions(_target(name), name),
            f"  {wait_call(ready_timeout_s)}",
            "fi",
            'echo "$c $v"',
        ]
    )


@dataclass(frozen=True, slots=True)
class StartInfo:
    """What session start found: whether it created the session, and tmux's version."""

    created: bool
    version: tuple[int, int] | None
    raw_version: str


def parse_start(output: str) -> StartInfo:
    """Parse :func:`start_script`'s output."""
    line = output.strip().splitlines()[-1] if output.strip() else ""
    created, _, raw = line.partition(" ")
    if created not in ("0", "1"):
        raise SessionError(f"unexpected tmux start output {output[:200]!r}")
    match = re.search(r"(\d+)\.(\d+)", raw)
    version = (int(match.group(1)), int(match.group(2))) if match else None
    return StartInfo(created=created == "1", version=version, raw_version=raw.strip())


def version_warning(info: StartInfo) -> str | None:
    """A warning when tmux is outside the tested range (its output strings may differ)."""
    low, high = TESTED_TMUX
    if info.version is None or low <= info.version <= high:
        return None
    return (
        f"tmux {info.raw_version!r} is outside the tested range "
        f"{low[0]}.{low[1]}-{high[0]}.{high[1]}; pane reading or key handling may differ"
    )


def send_script(
    session: str,
    plan: KeyPlan,
    *,
    wait_timeout_s: float | None,
    read: CaptureRequest | None = None,
    settle_s: float = 0.0,
) -> str:
    """Type a key plan, wait for the command (if it blocks), and optionally read the pane.

    Prints ``S=<status of the typing>``, ``W=<wait status: 0 done, 124 timed out, 3 the
    session ended, - none>``
    and ``T=<status line>`` (see :func:`ecs_sandbox_core._terminal.parse_status`; ``T=-``
    when the pane could not be looked at), then (with ``read``, after ``settle_s`` seconds)
    the output of :func:`incremental_script`. Keys are typed once: a failed step stops the
    rest, and nothing here is ever retried. ``wait_timeout_s`` None (or infinite) waits
    without limit.
    """
    if wait_timeout_s is not None and wait_timeout_s > NO_LIMIT_ABOVE_S:
        wait_timeout_s = None  # inf, or more than `timeout` and `sleep` can count
    if wait_timeout_s is not None and not wait_timeout_s > 0:
        raise ValueError(f"wait_timeout_s must be positive or None, not {wait_timeout_s!r}")
    target = _target(session)
    lines = [wait_functions(target, session), "s=0"]
    sends = step_commands(target, plan)
    if sends:
        lines.append("{ " + " && ".join(sends) + "; } || s=$?")
    lines.append("w=- L=-")
    if plan.blocks:
        limit = None if wait_timeout_s is None else math.ceil(wait_timeout_s)
        lines.append(f'[ "$s" = 0 ] && {wait_call(limit, ahead=lines_typed(plan) > 1)}')
    # A wait ends right after a look (see wait_functions): its status line is current.
    lines.append('[ "$w" != - ] || lk; echo "S=$s"; echo "W=$w"; echo "T=$L"')
    if settle_s > 0:
        lines.append(f"sleep {settle_s:.3f}")
    if read is not None:
        # After a settle the look's geometry is out of date: the read looks for itself.
        lines.append(incremental_script(session, read, looked=settle_s <= 0))
    return "\n".join(lines)


def status_script(session: str) -> str:
    """Prints the status line (see :func:`ecs_sandbox_core._terminal.parse_status`);
    exits 3 when the session is missing."""
    target = _target(session)
    return (
        wait_functions(target, session)
        + '\nlk || { echo "tmux: no such session" >&2; exit 3; }\necho "$L"'
    )


def parse_status_output(output: str) -> TerminalStatus:
    """Parse :func:`status_script`'s output."""
    line = output.removesuffix("\n")
    try:
        return parse_status(line)
    except StatusParseError as exc:
        raise SessionError(f"unexpected terminal status {line[:200]!r}") from exc


def incremental_script(session: str, request: CaptureRequest, *, looked: bool = False) -> str:
    """Read only what is new in the pane (see ``_pane``'s theory of operation).

    Prints ``<history_size> <history_limit> <cursor_y> <pane_height> <pane_width>
    <alternate_on> <kind> <value>`` then the captured rows (see
    :func:`ecs_sandbox_core._pane_script.read_script`); exits 3 when the session is missing.
    ``looked``: the script follows the ``lk`` of
    :func:`ecs_sandbox_core._terminal.wait_functions`, whose geometry it may start from.
    """
    return read_script(_target(session), request, looked=looked)


def resize_script(session: str, width: int, height: int, before: CaptureRequest) -> str:
    """Read what is new, resize the window, and read the reflowed screen, in one script.

    Prints the byte count of the first read's output on a line, then both outputs (see
    :meth:`ecs_sandbox_core._pane.PaneTracker.rebase`); the resize is noted in the
    recording. Exits with tmux's status when the resize fails.
    """
    if not (10 <= width <= 1000 and 5 <= height <= 1000):
        raise SessionError(f"terminal size {width}x{height} out of range (10-1000 x 5-1000)")
    target = _target(session)
    after = read_script(target, CaptureRequest(first=True))
    return "\n".join(
        [
            f"a=$( ( {read_script(target, before)}\n); echo .); a=${{a%.}}",
            f"tmux resize-window -t {shlex.quote(target)} -x {width} -y {height} || exit $?",
            f"{{ {resize_note(check_session_name(session), width, height)}; }} 2>/dev/null",
            f"b=$( ( {after}\n); echo .); b=${{b%.}}",
            'printf \'%s\' "$a" | wc -c; printf \'%s%s\' "$a" "$b"',
        ]
    )


def parse_resize(output: bytes) -> tuple[str, str]:
    """Split :func:`resize_script`'s output into the two reads (decoded)."""
    first, _, rest = output.partition(b"\n")
    if not first.strip().isdigit() or int(first) > len(rest):
        raise SessionError(f"unexpected resize output {output[:200]!r}")
    n = int(first)
    return (
        rest[:n].decode("utf-8", errors="replace"),
        rest[n:].decode("utf-8", errors="replace"),
    )


def capture_script(session: str, *, entire: bool = False) -> str:
    """The visible screen, or with ``entire`` the whole scrollback too."""
    start = " -S -" if entire else ""
    return f"tmux capture-pane -p{start} -t {shlex.quote(_target(session))}"


def alive_script(session: str) -> str:
    """Prints ``1`` when the session exists, ``0`` otherwise."""
    name = shlex.quote(check_session_name(session))
    return f"if tmux has-session -t ={name} 2>/dev/null; then echo 1; else echo 0; fi"


__all__ = [
    "ENTER_KEYS",
    "LIST_BYTES",
    "PASTE_THRESHOLD",
    "TESTED_TMUX",
    "KeyPlan",
    "Paste",
    "SendKeys",
    "SendStatus",
    "StartInfo",
    "Step",
    "alive_script",
    "capture_script",
    "check_session_name",
    "incremental_script",
    "is_key_name",
    "parse_resize",
    "parse_send",
    "parse_start",
    "parse_status_output",
    "plan_keys",
    "resize_script",
    "send_script",
    "start_script",
    "status_script",
    "version_warning",
]
