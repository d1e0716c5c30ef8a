"""Reading a wrapped command's frame back out of a session stream.

The frame format and why it cannot be forged are described in :mod:`._markers`; this
module only parses. Every marker is ``<<ecsx-NONCE:KIND...>>``; the begin marker carries
the wrapper's secret, and only end and status markers that repeat that secret count.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass

from ._errors import UsageError
from ._exec_io import BROKEN, NO_USER, split_streams

_NONCE = re.compile(r"[0-9a-fA-F]{16,}")
_SECRET = rb"[0-9A-Fa-f-]{0,64}"
# A status as the wrapper prints it: an exit code without leading zeros, or "timeout".
_STATUS = rb"(timeout|nouser|broken|25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_STATUS_TEXTS = [b"timeout", b"nouser", b"broken", *(str(code).encode() for code in range(256))]
TIMEOUT = "timeout"
"""The status the wrapper reports when it stopped the command at its timeout."""

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
    TIMED_OUT = "timed_out"
    """The wrapper stopped the command at its timeout (its process group was killed)."""
    NO_SUCH_USER = "no_such_user"
    """The user the command was to run as does not exist in the container; it never ran."""
    SETUP_FAILED = "setup_failed"
    """The wrapper could not set the command up (``output`` says why); it never ran."""


_NOT_RUN = {NO_USER.encode(): ExecStatus.NO_SUCH_USER, BROKEN.encode(): ExecStatus.SETUP_FAILED}
"""End statuses with which the wrapper reports that the command never ran."""


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    """What :func:`parse_exec_output` recovered from a session stream.

    ``output`` is the command's exact output for ``COMPLETED``, what it printed before it
    was stopped for ``TIMED_OUT``, what arrived before the cut for ``CUT_OFF``, and the
    session's other text (chatter removed) for ``NEVER_STARTED``.
    """

    status: ExecStatus
    exit_code: int | None
    output: bytes
    stdout: bytes | None = None
    """With ``separate``: the command's stdout alone (``output`` is stdout + stderr)."""
    stderr: bytes | None = None
    """With ``separate``: the command's stderr alone."""


def validate_nonce(nonce: object) -> str:
    """Return ``nonce`` if it is a string of at least 16 hex digits, else raise UsageError."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise UsageError(
            f"marker nonce {nonce!r} is not at least 16 hex digits",
            remedy="Draw the nonce from a Token effect (Token(nbytes=16) gives 32 hex digits).",
        )
    return nonce


# The parts of a marker after its nonce, compiled once: a frame finds its nonce's tag with
# ``bytes.find`` and matches one of these right after it. Compiling a pattern per nonce
# instead cost about 80 µs a pattern, several times per command (every compile missed
# ``re``'s cache, since every nonce is new), which was half a harness's CPU per command.
_BEGIN_REST = re.compile(rb"begin:(" + _SECRET + rb")>>\n")
_STATUS_REST = re.compile(_STATUS + rb":(" + _SECRET + rb")>>")
_MID_REST = re.compile(rb"()(" + _SECRET + rb")>>\n")


@dataclass(frozen=True, slots=True)
class _Found:
    """Where a marker is in the data searched, and its first group (secret or status)."""

    at: int
    stop: int
    value: bytes

    def start(self) -> int:
        return self.at

    def end(self) -> int:
        return self.stop

    def group(self, index: int) -> bytes:
        assert index == 1
        return self.value


@dataclass(frozen=True, slots=True)
class _Marker:
    """One marker of one call: a literal ``head``, then ``rest`` (whose group 1 is the value)
    and, for end and status markers, the group 2 that must be this call's secret."""

    head: bytes
    rest: re.Pattern[bytes]
    secret: bytes | None = None

    def match(self, data: bytes, pos: int = 0) -> _Found | None:
        """The marker starting exactly at ``pos``, or None."""
        if not data.startswith(self.head, pos):
            return None
        found = self.rest.match(data, pos + len(self.head))
        if found is None or (self.secret is not None and found.group(2) != self.secret):
            return None
        return _Found(pos, found.end(), found.group(1))

    def search(self, data: bytes) -> _Found | None:
        """The first marker in ``data`` (as ``re.search`` of the whole marker finds it)."""
        at = data.find(self.head)
        while at >= 0:
            found = self.match(data, at)
            if found is not None:
                return found
            at = data.find(self.head, at + 1)
        return None


class _Frame:
    """The markers of one call: the begin marker, then end and status markers for a secret."""

    def __init__(self, nonce: str) -> None:
        self.tag = f"<<ecsx-{validate_nonce(nonce)}:".encode()
        self.begin = _Marker(self.tag, _BEGIN_REST)
        # The longest begin marker, so that a reader knows how much to hold back.
        self.begin_max = len(self.tag) + len(b"begin:") + 64 + len(b">>\n")
        self.end_needle = b"\n" + self.tag + b"end:"

    def marker(self, kind: bytes, secret: bytes) -> _Marker:
        """``<<ecsx-NONCE:KIND:STATUS:SECRET>>``, STATUS its group 1."""
        return _Marker(self.tag + kind + b":", _STATUS_REST, secret)

    def mid(self, secret: bytes) -> _Marker:
        """The separator of a separate frame's stdout and stderr (see :mod:`._exec_io`)."""
        return _Marker(b"\n" + self.tag + b"mid:", _MID_REST, secret)

    def end(self, secret: bytes) -> _Marker:
        """The end marker with the newline in front that the wrapper always prints.

        That newline is removed with the marker, so output without a trailing newline
        comes back without one.
        """
        return _Marker(self.end_needle, _STATUS_REST, secret)


def parse_exec_output(
    stdout: bytes, *, nonce: str, binary: bool = False, pty: bool = False, separate: bool = False
) -> ExecOutcome:
    """Recover the status, exit code and exact output of a wrapped command.

    ``stdout`` is the whole session stream. With ``pty`` the terminal's ``\\n`` to
    ``\\r\\n`` translation is undone first (exactly: the PTY adds a ``\\r`` before every
    ``\\n`` and nothing else, so removing the ``\\r`` of every ``\\r\\n`` restores the
    original bytes).
    """
    frame = _Frame(nonce)
    stream = stdout.replace(b"\r\n", b"\n") if pty else stdout
    begin = frame.begin.search(stream)
    if begin is None:
        return ExecOutcome(ExecStatus.NEVER_STARTED, None, _strip_chatter(stream))
    secret = begin.group(1)
    body = stream[begin.end() :]
    # The first end marker with the secret is the wrapper's: nothing before it can carry
    # the secret, and everything after it is ignored.
    end = frame.end(secret).search(body)
    if end is not None and end.group(1) in _NOT_RUN:
        # The wrapper's set-up ended the frame before the command: its reason is the body.
        return ExecOutcome(_NOT_RUN[end.group(1)], None, body[: end.start()].strip())
    if separate:
        return _parse_separate(body, end, frame.mid(secret))
    if binary:
        return _parse_binary(body, end, frame.marker(b"rc", secret))
    if end is None:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _strip_trailing_chatter(body))
    return _outcome(end.group(1), body[: end.start()])


def frame_ended(stream: bytes, *, nonce: str) -> bool:
    """Whether ``stream`` holds this call's begin marker and, after it, an end marker with
    the begin marker's secret: the wrapper has printed its whole frame, in every mode."""
    frame = _Frame(nonce)
    begin = frame.begin.search(stream)
    if begin is None:
        return False
    return frame.end(begin.group(1)).search(stream[begin.end() :]) is not None


def _outcome(status: bytes, output: bytes) -> ExecOutcome:
    if status == TIMEOUT.encode():
        return ExecOutcome(ExecStatus.TIMED_OUT, None, output)
    return ExecOutcome(ExecStatus.COMPLETED, int(status), output)


def _parse_separate(body: bytes, end: _Found | None, mid_marker: _Marker) -> ExecOutcome:
    region = body if end is None else body[: end.start()]
    mid = mid_marker.search(region)
    if end is None or mid is None:
        # Nothing of a separate frame is usable before it is whole (stderr comes last).
        cut = _decode_prefix(region if mid is None else region[: mid.start()], strip_chatter=True)
        return ExecOutcome(ExecStatus.CUT_OFF, None, cut, stdout=cut, stderr=b"")
    streams = split_streams(region, mid.start(), mid.end())
    if streams is None:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region[: mid.start()]))
    out, err = streams
    outcome = _outcome(end.group(1), out + err)
    return ExecOutcome(outcome.status, outcome.exit_code, out + err, stdout=out, stderr=err)


def _parse_binary(body: bytes, end: _Found | None, status_marker: _Marker) -> ExecOutcome:
    region = body if end is None else body[: end.start()]
    # The status marker is written by the wrapper straight into the stream while base64
    # writes its lines, so it can land anywhere in them, even mid-line; ``<``, ``:`` and
    # ``>`` are not in the base64 alphabet, so no encoded byte can be mistaken for it.
    status = status_marker.search(region)
    if status is not None:
        region = region[: status.start()] + region[status.end() :]
    if end is None:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region, strip_chatter=True))
    # A failed encoder (end status != 0) or a missing status leaves output that cannot be
    # trusted to be whole, which is what CUT_OFF means to the caller.
    if status is None or end.group(1) != b"0":
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region))
    try:
        output = base64.b64decode(_WHITESPACE.sub(b"", region), validate=True)
    except binascii.Error:
        return ExecOutcome(ExecStatus.CUT_OFF, None, _decode_prefix(region))
    return _outcome(status.group(1), output)


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


class OutputStream:
    """Shows a text-mode command's output while it arrives, without the markers.

    Feed it the session stream chunk by chunk; it returns the bytes that are certainly the
    command's output: nothing before the begin marker (login noise, chatter), nothing from
    the end marker on. Bytes that could be the start of the end marker are held back until
    the next chunk tells; an imitation of the end marker (it cannot carry the secret) is
    shown as the output it is. What it shows equals :func:`parse_exec_output`'s output of
    the whole stream; :attr:`finished` turns True with the end marker.
    """

    def __init__(self, *, nonce: str, pty: bool = False) -> None:
        self._frame = _Frame(nonce)
        self._pty = pty
        self._pending = b""
        self._end: _Marker | None = None
        self._tails: list[bytes] = []
        self._state = "before"  # before -> running -> done

    @property
    def finished(self) -> bool:
        """True once the wrapper's end marker has arrived: the frame is complete."""
        return self._state == "done"

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
            begin = self._frame.begin.search(data)
            if begin is None:
                # Enough to hold a begin marker cut anywhere, plus a PTY's held-back "\r".
                self._pending = data[-self._frame.begin_max :]
                return b""
            secret = begin.group(1)
            self._end = self._frame.end(secret)
            self._tails = [status + b":" + secret + b">>" for status in _STATUS_TEXTS]
            data = data[begin.end() :]
            self._state = "running"
        return self._running(data)

    def _running(self, data: bytes) -> bytes:
        assert self._end is not None  # set with the begin marker
        needle = self._frame.end_needle
        at = data.find(needle)
        while at >= 0:
            if self._end.match(data, at):
                self._state = "done"
                self._pending = b""
                return data[:at]
            if self._could_become_end(data[at + len(needle) :]):
                self._pending = data[at:]
                return data[:at]
            at = data.find(needle, at + 1)
        keep = _partial_suffix(data, needle)
        if self._pty and data.endswith(b"\r"):
            keep = max(keep, 1)
        self._pending = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def _could_become_end(self, rest: bytes) -> bool:
        # Whether what follows an end marker's start is a proper prefix of "STATUS:SECRET>>".
        return any(tail.startswith(rest) for tail in self._tails)


def _partial_suffix(data: bytes, needle: bytes) -> int:
    """Length of the longest suffix of ``data`` that is a proper prefix of ``needle``."""
    for size in range(min(len(data), len(needle) - 1), 0, -1):
        if needle.startswith(data[-size:]):
            return size
    return 0


__all__ = [
    "TIMEOUT",
    "ExecOutcome",
    "ExecStatus",
    "OutputStream",
    "frame_ended",
    "parse_exec_output",
    "validate_nonce",
]
