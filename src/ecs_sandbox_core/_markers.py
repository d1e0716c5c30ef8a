"""Wrapping a command in per-call markers, and reading the transport's bytes back.

Theory of operation
-------------------
ECS Exec loses the remote exit code (session-manager-plugin always exits 0) and mixes its own
chatter into the session stream, so the command is wrapped in a small POSIX ``sh`` script that
frames its output::

    <<ecsx-NONCE:begin>>\\n          printed before the command runs
    ...the command's output...       stdout and stderr, merged as a PTY would merge them
    \\n<<ecsx-NONCE:end:RC>>\\n       printed after the command, RC being its exit status

``NONCE`` is random per call, so nothing the command prints by accident can look like a
marker of this call. The parser takes the *first* begin marker (the real one is printed
before the command can print anything) and the *last* end marker (the real one is printed
after everything the command printed), so even output that imitates a marker of this very
call cannot move either boundary. The newline in front of the end marker is always printed
and always removed, so output without a trailing newline comes back without one.

No begin marker means the command never started (the transport failed, or ``sh`` is
missing); a begin marker without a valid end marker means the stream was cut off while the
command ran, and what arrived so far is returned with that status.

Binary mode sends the command's output through ``base64`` so that any bytes survive the PTY.
POSIX ``sh`` has no ``pipefail``, so the command's exit status is written on a separate file
descriptor (3, a copy of the stream) as ``<<ecsx-NONCE:rc:RC>>``; it can land anywhere in the
base64 text, even mid-line, and the parser finds it there because ``<``, ``:`` and ``>`` are
not in the base64 alphabet. The end marker then carries the encoder's status instead.

The script never contains a marker as one literal string (``printf`` joins two pieces), so a
shell that echoes its input or quotes a failing line cannot print a marker early.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._errors import UsageError

MAX_INLINE_COMMAND = 6000
_MAX_ARGUMENT = 100_000  # below Linux's MAX_ARG_STRLEN (128 KiB) for one exec argument
"""Longest ``--command`` string sent inline; longer scripts are staged through S3.

ECS documents no limit for ExecuteCommand's ``command``; this stays well below the sizes
at which command lines are known to be refused along the way (the CLI, the SSM document
parameter), and a staged script costs only one extra object.
"""

_NONCE = re.compile(r"[0-9a-fA-F]{16,}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BASE64_PREFIX = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = re.compile(rb"\s+")

# What the AWS CLI and session-manager-plugin print around every session. They are dropped
# only outside the command's framed output: the command may print the same lines itself.
_CHATTER = re.compile(
    rb"^(The Session Manager plugin was installed successfully\. Use the AWS CLI to start a"
    rb" session\.|Starting session with SessionId: \S+|Exiting session with sessionId: \S+\.)\r?$"
)
# The plugin's closing line, as it arrives after output that was cut off.
_TRAILING_EXIT_CHATTER = re.compile(rb"\n\nExiting session with sessionId: \S+\.\n{0,2}\Z")


class ExecStatus(enum.Enum):
    """How far a wrapped command got, as far as its output stream shows."""

    COMPLETED = "completed"
    """Both markers arrived: the command ran to its end and its exit code is known."""
    NEVER_STARTED = "never_started"
    """No begin marker: the command provably did not run."""
    CUT_OFF = "cut_off"
    """The command started but the stream ended before its end marker."""


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    """What :func:`parse_exec_output` recovered from a session stream.

    ``output`` is the command's exact output for ``COMPLETED``, what arrived before the cut
    for ``CUT_OFF``, and the session's other text (chatter removed) for ``NEVER_STARTED``.
    """

    status: ExecStatus
    exit_code: int | None
    output: bytes


def validate_nonce(nonce: object) -> str:
    """Return ``nonce`` if it is a string of at least 16 hex digits, else raise UsageError."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise UsageError(
            f"marker nonce {nonce!r} is not at least 16 hex digits",
            remedy="Draw the nonce from a Token effect (Token(nbytes=16) gives 32 hex digits).",
        )
    return nonce


def exec_script(
    command: str | Sequence[str],
    *,
    nonce: str,
    binary: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """The ``sh`` script that runs ``command`` between this call's markers.

    A ``str`` command is shell text, run by a fresh ``sh -c``; a sequence is an argv, run
    as is. ``env`` is exported and ``cwd`` entered for the command only, both delivered
    byte for byte. The command's stdin is ``/dev/null`` (nothing can type into an exec) and
    its stderr is merged into its stdout, as a PTY would do, so that the transport's own
    error channel never carries the command's output.
    """
    tag = _tag(validate_nonce(nonce))
    run = _command_line(command, env=env, cwd=cwd)
    begin = f"printf '%s%s:begin>>\\n' {tag}"
    if not binary:
        return "\n".join(
            [
                "exec 2>&1",
                begin,
                f"{run} </dev/null",
                f"printf '\\n%s%s:end:%d>>\\n' {tag} \"$?\"",
                "",
            ]
        )
    return "\n".join(
        [
            # Checked before the begin marker: without an encoder the command must not run.
            "command -v base64 >/dev/null 2>&1 || "
            "{ echo 'ecs-sandbox: binary exec needs base64 in the container' >&2; exit 127; }",
            "exec 2>&1",
            begin,
            # fd 3 is closed for the command so that it cannot write a status marker itself;
            # the group's stderr joins the pipe so the shell's own reports (a signal) are
            # encoded too.
            f"{{ {{ {run} </dev/null 3>&-; "
            f"printf '%s%s:rc:%d>>' {tag} \"$?\" >&3; }} 2>&1 | base64; }} 3>&1",
            f"printf '\\n%s%s:end:%d>>\\n' {tag} \"$?\"",
            "",
        ]
    )


def wrap_command(
    command: str | Sequence[str],
    *,
    nonce: str,
    binary: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """The ECS Exec ``--command`` string: ``sh -lc '<exec_script>'``.

    ECS splits the string shell-style and runs it without a shell, so the script travels
    as one single-quoted word.
    """
    script = exec_script(command, nonce=nonce, binary=binary, env=env, cwd=cwd)
    return f"sh -lc {shlex.quote(script)}"


# Python source that the container runs to fetch a staged script: argv[1] = URL, argv[2] =
# destination. It is text for the container's python3, not code this module runs.
_FETCH_PY = (
    "import pathlib, sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=120) as r:\n"
    "    pathlib.Path(sys.argv[2]).write_bytes(r.read())\n"
)


def staged_script_command(*, url: str, nonce: str, path: str | None = None) -> str:
    """The ``--command`` string that fetches a staged script, runs it with ``sh`` and removes it.

    The staged script is :func:`exec_script` output, so its markers frame the command as
    usual; a failed download prints no begin marker and so reads as "never started". It is
    fetched with python3 when that works, else curl, else wget. ``path`` defaults to a
    per-nonce name under ``/tmp``.
    """
    nonce = validate_nonce(nonce)
    if path is None:
        path = f"/tmp/.ecs-sandbox-{nonce}.sh"  # noqa: S108 - a path inside the container
    _check_text("url", url)
    _check_text("path", path)
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"staged script URL must be http(s), not {url[:40]!r}")
    if not path.startswith("/"):
        raise UsageError(f"staged script path must be absolute, not {path!r}")
    q = shlex.quote
    wrapper = "\n".join(
        [
            # The script may hold environment values: private while it exists, and the
            # command itself runs under the container's usual umask.
            "m=$(umask)",
            "umask 077",
            f"u={q(url)}",
            f"p={q(path)}",
            f'{{ command -v python3 >/dev/null 2>&1 && python3 -c {q(_FETCH_PY)} "$u" "$p"; }} ||',
            '{ command -v curl >/dev/null 2>&1 && curl -fsSL -o "$p" "$u"; } ||',
            '{ command -v wget >/dev/null 2>&1 && wget -q -O "$p" "$u"; } ||',
            "{ echo 'ecs-sandbox: could not fetch the staged script' >&2; "
            'rm -f -- "$p"; exit 127; }',
            'umask "$m"',
            'sh "$p"',
            "rc=$?",
            'rm -f -- "$p"',
            'exit "$rc"',
        ]
    )
    return f"sh -lc {q(wrapper)}"


def parse_exec_output(
    stdout: bytes, *, nonce: str, binary: bool = False, pty: bool = False
) -> ExecOutcome:
    """Recover the status, exit code and exact output of a wrapped command.

    ``stdout`` is the whole session stream. With ``pty`` the terminal's ``\\n`` to
    ``\\r\\n`` translation is undone first (exactly: the PTY adds a ``\\r`` before every
    ``\\n`` and nothing else, so removing the ``\\r`` of every ``\\r\\n`` restores the
    original bytes).
    """
    tag = f"<<ecsx-{validate_nonce(nonce)}:".encode()
    stream = stdout.replace(b"\r\n", b"\n") if pty else stdout
    begin = tag + b"begin>>\n"
    start = stream.find(begin)
    if start < 0:
        return ExecOutcome(ExecStatus.NEVER_STARTED, None, _strip_chatter(stream))
    body = stream[start + len(begin) :]
    end = _last_end_marker(body, tag)
    if binary:
        return _parse_binary(body, end, tag)
    if end is None:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _strip_trailing_chatter(body))
    position, code = end
    return ExecOutcome(ExecStatus.COMPLETED, code, body[:position])


class OutputStream:
    """Shows a text-mode command's output while it arrives, without the markers.

    Feed it the session stream chunk by chunk; it returns the bytes that are certainly the
    command's output: nothing before the begin marker (login noise, chatter), nothing from
    the end marker on. Bytes that could be the start of the end marker are held back until
    the next chunk tells. For display only: the exact result is still
    :func:`parse_exec_output` of the whole stream (a command that prints an imitation of
    its own end marker ends the display early, never the result).
    """

    def __init__(self, *, nonce: str, pty: bool = False) -> None:
        tag = f"<<ecsx-{validate_nonce(nonce)}:".encode()
        self._begin = tag + b"begin>>\n"
        self._end = b"\n" + tag + b"end:"
        self._pty = pty
        self._pending = b""
        self._state = "before"  # before -> running -> done

    def feed(self, chunk: bytes) -> bytes:
        """The displayable bytes that ``chunk`` completes."""
        if self._state == "done":
            return b""
        data = self._pending + chunk
        if self._pty:
            # Undo the PTY's CRLF, keeping a lone trailing CR until its LF may arrive.
            tail = b"\r" if data.endswith(b"\r") else b""
            data = data[: len(data) - len(tail)].replace(b"\r\n", b"\n") + tail
        if self._state == "before":
            at = data.find(self._begin)
            if at < 0:
                # Enough to hold a begin marker cut anywhere, plus a PTY's held-back "\r".
                self._pending = data[-len(self._begin) :]
                return b""
            data = data[at + len(self._begin) :]
            self._state = "running"
        at = data.find(self._end)
        if at >= 0:
            self._state = "done"
            self._pending = b""
            return data[:at]
        keep = _partial_suffix(data, self._end)
        if self._pty and data.endswith(b"\r"):
            keep = max(keep, 1)
        self._pending = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]


def _partial_suffix(data: bytes, needle: bytes) -> int:
    """Length of the longest suffix of ``data`` that is a proper prefix of ``needle``."""
    for size in range(min(len(data), len(needle) - 1), 0, -1):
        if needle.startswith(data[-size:]):
            return size
    return 0


# --- helpers ------------------------------------------------------------------------------


def _tag(nonce: str) -> str:
    # Two printf arguments whose concatenation is the marker prefix "<<ecsx-NONCE".
    return f"'<<ecsx-' '{nonce}'"


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise UsageError(
            f"{what} contains a NUL character",
            remedy="NUL cannot be passed in a command line; send such data as a file.",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not encodable as UTF-8 (lone surrogate?)") from None
    return value


def _command_line(
    command: str | Sequence[str], *, env: Mapping[str, str] | None, cwd: str | None
) -> str:
    """A parenthesised subshell that sets up ``env`` and ``cwd`` and then runs ``command``."""
    q = shlex.quote
    text: str | None = None
    if isinstance(command, str):
        argv = ["sh", "-c", _check_text("command", command)]
        if len(command.encode()) > _MAX_ARGUMENT:
            text = command
    elif isinstance(command, Sequence) and not isinstance(command, (bytes, bytearray)):
        argv = [_check_text("command argument", arg) for arg in command]
        if not argv:
            raise UsageError("command is an empty argument list")
    else:
        raise UsageError(f"command must be a string or a list of strings, not {command!r}")
    steps = []
    if env:
        pairs = []
        for name, value in env.items():
            _check_text("environment variable name", name)
            if not _ENV_NAME.fullmatch(name):
                raise UsageError(
                    f"environment variable name {name!r} is not a shell identifier",
                    remedy="Use letters, digits and underscores, not starting with a digit.",
                )
            pairs.append(f"{name}={q(_check_text(f'value of {name}', value))}")
        steps.append("export " + " ".join(pairs))
    if cwd is not None:
        # CDPATH emptied so that cd never prints the directory into the output.
        steps.append(f"CDPATH= cd -- {q(_check_text('cwd', cwd))}")
    if text is None:
        steps.append("exec " + " ".join(q(arg) for arg in argv))
    else:
        # Too long to be one argument of `sh -c` (Linux caps each at 128 KiB): the text
        # travels in a variable instead and runs by eval in this subshell, so that a
        # syntax error or `exit` still ends only the subshell.
        steps.append(f"c={q(text)}")
        steps.append('eval "$c"')
    return "( " + " && ".join(steps) + " )"


def _last_end_marker(body: bytes, tag: bytes) -> tuple[int, int] | None:
    """(position of the newline before the last end marker, its code), or None if invalid."""
    needle = b"\n" + tag + b"end:"
    at = body.rfind(needle)
    if at < 0:
        return None
    digits_at = at + len(needle)
    close = body.find(b">>", digits_at, digits_at + 5)
    digits = body[digits_at:close] if close >= 0 else b""
    if not digits.isdigit() or int(digits) > 255:
        return None
    return at, int(digits)


def _parse_binary(body: bytes, end: tuple[int, int] | None, tag: bytes) -> ExecOutcome:
    region = body if end is None else body[: end[0]]
    status_at = region.rfind(tag + b"rc:")
    exit_code: int | None = None
    if status_at >= 0:
        close = region.find(b">>", status_at)
        digits = region[status_at + len(tag) + 3 : close] if close >= 0 else b""
        if digits.isdigit() and int(digits) <= 255:
            exit_code = int(digits)
            region = region[:status_at] + region[close + 2 :]
    if end is None:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region, strip_chatter=True))
    encoded = _WHITESPACE.sub(b"", region)
    # A failed encoder (end code != 0) or a missing status leaves output that cannot be
    # trusted to be whole, which is what CUT_OFF means to the caller.
    if exit_code is None or end[1] != 0:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region))
    try:
        output = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region))
    return ExecOutcome(ExecStatus.COMPLETED, exit_code, output)


def _decode_prefix(region: bytes, *, strip_chatter: bool = False) -> bytes:
    """Decode the longest whole-quantum base64 prefix of ``region`` (cut-off output)."""
    if strip_chatter:
        region = _strip_trailing_chatter(region)
    encoded = _WHITESPACE.sub(b"", region)
    match = _BASE64_PREFIX.match(encoded)
    prefix = match.group(0) if match else b""
    prefix = prefix[: len(prefix) - len(prefix) % 4]
    try:
        return base64.b64decode(prefix, validate=True)
    except binascii.Error:  # padding in the middle of what arrived
        return b""


def _strip_chatter(stream: bytes) -> bytes:
    lines = [line for line in stream.split(b"\n") if not _CHATTER.match(line)]
    return b"\n".join(lines).strip(b"\r\n")


def _strip_trailing_chatter(body: bytes) -> bytes:
    return _TRAILING_EXIT_CHATTER.sub(b"", body)


__all__ = [
    "MAX_INLINE_COMMAND",
    "ExecOutcome",
    "ExecStatus",
    "OutputStream",
    "exec_script",
    "parse_exec_output",
    "staged_script_command",
    "validate_nonce",
    "wrap_command",
]
