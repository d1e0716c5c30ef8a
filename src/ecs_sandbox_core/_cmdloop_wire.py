"""What a command loop says on the wire: the loop's own ``sh`` script and the command that
starts it, the request line, the markers that say a loop is ready or a request complete, and
the stop script. The flows that use them, and the theory of operation, are in
:mod:`._cmdloop`.
"""

from __future__ import annotations

import re
import shlex

from ._frames import frame_ended
from ._markers import validate_nonce

LOOP_SCRIPT = r"""n=$1
m(){ printf '%s%s:missing:%s>>\n' '<<ecsx-' "$n" "$1";exit 3;}
command -v base64 >/dev/null||m base64
stty -echo -icanon min 1 time 0 -opost 2>/dev/null||m stty
printf '%s%s:ready>>\n' '<<ecsx-' "$n"
while IFS= read -r line; do
  case $line in
    'x '*) s=$(printf "${line#x }") && sh -c "$s" ecsx </dev/null
      printf '\n%s%s:idle>>\n' '<<ecsx-' "$n" ;;
  esac
done
"""
"""The loop (POSIX sh). Markers are printed in two pieces so the script never contains one."""

MISSING_TOOL = re.compile(rb":missing:(stty|base64)>>")
"""What the loop prints (after its nonce) when a tool it needs is missing; then it exits."""

KEEPALIVE = b"\n"
"""A no-op request: what a driver may send to keep an idle session from the idle timeout."""

IDLE_TIMEOUT_S = 20 * 60.0
"""ECS Exec ends a session after 20 minutes without client input."""

KEEPALIVE_INTERVAL_S = IDLE_TIMEOUT_S / 4
"""How long a driver waiting for a request's frame goes without input before it types
:data:`KEEPALIVE`: a command may run longer than the idle timeout, and output does not count
as activity. The loop reads the queued line once the command is done, as a no-op (the
command's stdin is ``/dev/null``, so it never sees it)."""

STOP_TIMEOUT_S = 10.0
"""How long the stop request of an interrupted command may take once its session is ready."""

# The stop request's command (POSIX sh, Linux /proc): w = the wrappers of nonce @A@@B@ (by
# command line; ``${n}`` since a hex half may start with a letter), then for each child of
# one that is not itself a wrapper: kill its process group when it leads one (``set --``:
# state, ppid, pgrp from /proc/PID/stat), else the child alone.
_STOP = """exec 2>/dev/null;n=@A@;n=${n}@B@;w=
for d in /proc/[0-9]*;do case $(tr '\\0' ' ' <$d/cmdline) in *"$n"*) w="$w ${d#/proc/}";;esac
done;for f in /proc/[0-9]*/stat;do read -r l <$f||continue;c=${f%/stat};c=${c#/proc/}
set -- ${l##*") "};for x in $w;do [ "$2" = $x ]||continue;case " $w " in *" $c "*) continue;;esac
if [ "$3" = $c ];then kill -9 -$c;else kill -9 $c;fi;done;done;true
"""


def loop_command(loop_nonce: str) -> str:
    """The ExecuteCommand command that starts the loop (ECS splits it shell-style)."""
    # A login shell, as single execs get (``sh -lc``): the container's profile sets PATH.
    return shlex.join(["sh", "-lc", LOOP_SCRIPT, "ecsx", validate_nonce(loop_nonce)])


def ready_marker(loop_nonce: str) -> bytes:
    """What the loop prints once it reads requests."""
    return f"<<ecsx-{loop_nonce}:ready>>".encode()


def frame_complete(stream: bytes, *, nonce: str, binary: bool = False) -> bool:
    """Whether ``stream`` holds the whole frame of the request with ``nonce``.

    Decided by the exec parser itself, so that a process printing imitations of markers
    cannot end a request early (see :mod:`._markers`). Complete means the wrapper's end
    marker arrived, whatever the frame holds: a frame whose base64 text is damaged is
    complete too (the parser reports it as cut off), rather than waited on until the
    timeout.
    """
    del binary  # the end marker is the same in every mode
    if b":end:" not in stream:
        return False
    return frame_ended(stream, nonce=nonce)


_MARKER_TAIL = 256
"""More than an end marker's length from its start: ``STATUS:SECRET>>`` is at most about
70 bytes after ``<<ecsx-NONCE:end:``."""


class FrameWatch:
    """:func:`frame_complete` for a stream that grows, in time linear in its length.

    Call :meth:`complete` after each append. The whole stream is parsed only while the end
    marker of ``nonce`` may be arriving: from the time its start (``<<ecsx-NONCE:end:``)
    appears until :data:`_MARKER_TAIL` bytes follow it, by which time a real end marker is
    whole. So a long output is searched once, not parsed again at every chunk, and the
    answer is the one :func:`frame_complete` would give at that point.
    """

    def __init__(self, *, nonce: str, binary: bool = False) -> None:
        self._nonce = validate_nonce(nonce)
        self._binary = binary
        self._start = f"<<ecsx-{nonce}:end:".encode()
        self._searched = 0  # how much of the stream was searched for ``_start``
        self._recent: list[int] = []  # where ``_start`` was found, still being completed

    def complete(self, stream: bytes | bytearray) -> bool:
        """Whether ``stream`` (the same stream, only ever appended to) holds the frame."""
        at = stream.find(self._start, max(0, self._searched - len(self._start) + 1))
        while at >= 0:
            self._recent.append(at)
            at = stream.find(self._start, at + 1)
        self._searched = len(stream)
        if not self._recent:
            return False
        done = frame_complete(bytes(stream), nonce=self._nonce, binary=self._binary)
        self._recent = [at for at in self._recent if len(stream) - at <= _MARKER_TAIL]
        return done


_UNSAFE = re.compile(rb"[^\x20-\x24\x26-\x5b\x5d-\x7e]")
"""The bytes a request line may not carry as they are: all but printable ASCII, ``%``, ``\\``."""


def _escape(match: re.Match[bytes]) -> bytes:
    byte = match.group()
    return b"%%" if byte == b"%" else b"\\%03o" % byte[0]


def request_line(script: str) -> bytes:
    """The request that runs ``script`` (an exec wrapper script) in the loop.

    The script travels as a ``printf`` format that prints it back: every byte outside
    printable ASCII (and ``\\``) as a three-digit octal escape, ``%`` doubled, a leading
    ``-`` (an option to ``printf``) escaped too. So the line holds only printable ASCII (no
    byte the terminal would act on: no newline, CR, ^C, ^S, ^V, DEL) and the loop decodes it
    with the ``printf`` builtin instead of a ``base64`` process. A script is mostly ASCII, so
    the line is shorter than its base64 too.
    """
    text = _UNSAFE.sub(_escape, script.encode("utf-8"))
    if text.startswith(b"-"):  # printf would take it for an option
        text = b"\\055" + text[1:]
    return b"x " + text + b"\n"


def stop_command(nonce: str) -> str:
    """Shell text that SIGKILLs what the wrapper of ``nonce`` started (see the module
    docstring); its own command line never holds ``nonce`` whole."""
    validate_nonce(nonce)
    half = len(nonce) // 2
    return _STOP.replace("@A@", nonce[:half]).replace("@B@", nonce[half:])


__all__ = [
    "IDLE_TIMEOUT_S",
    "KEEPALIVE",
    "KEEPALIVE_INTERVAL_S",
    "LOOP_SCRIPT",
    "MISSING_TOOL",
    "STOP_TIMEOUT_S",
    "FrameWatch",
    "frame_complete",
    "loop_command",
    "ready_marker",
    "request_line",
    "stop_command",
]
