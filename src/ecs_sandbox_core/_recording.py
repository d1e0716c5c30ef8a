"""Recordings of a session's terminal as asciicast v2, without asciinema in the image.

Theory of operation
-------------------
When the session is created, ``pipe-pane`` (in the same tmux command list as
``new-session``, so no output is missed) feeds everything the pane's program writes to a
small POSIX ``sh`` recorder. ``idx`` starts with ``s <time> <cols> <rows>`` (the
wall-clock time, ``date +%s.%N``; whole seconds where ``%N`` is not supported); a resize
appends ``r <time> <cols> <rows>``.

The recorder loops: one ``dd`` reads whatever has arrived (a single ``read``, up to 64
KiB) and appends it to ``raw``, and one line in ``idx`` names the size of ``raw``
afterwards. It runs about two chunks per agent step, so each chunk costs one program,
``dd``, and nothing else: the size is the previous one plus the count in ``dd``'s own
report (``wc -c`` only where that report lacks it, as busybox's may), and the time is
``/proc/uptime``, read by the shell's ``read``. At its start the recorder anchors that
clock to the wall clock once, ``c <time> <uptime>``; a chunk is then ``u <uptime>
<size>``, whose time is ``<time> + <uptime> - <anchor uptime>`` (a monotonic clock, in
hundredths of a second). Where ``/proc/uptime`` cannot be read, a chunk is ``o <time>
<size>`` with the time from ``date``.

Downloading copies both files aside (``idx`` first, so every size it names is in the
copy of ``raw``) and fetches the copy; :func:`build_asciicast` then turns the pair into
asciicast v2: a JSON header and one ``[time, "o", text]`` event per chunk, with times
relative to the start, never decreasing, and the bytes decoded as a stream (a UTF-8
character split between chunks is whole in the later event). Bytes after the last
``idx`` entry, and a last line without its newline (being written), are left for the next
download.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import re
import tarfile
from dataclasses import dataclass

from ._errors import SessionError

# A time from date (junk after the seconds where %N is unsupported), an uptime, a count.
_TIME = r"(\d+(?:\.\d+)?)\S*"
_UPTIME = r"(\d+(?:\.\d+)?)"
_COUNT = r"(\d+)"
_LINES = {
    "s": re.compile(rf"s {_TIME} {_COUNT} {_COUNT}"),
    "r": re.compile(rf"r {_TIME} {_COUNT} {_COUNT}"),
    "o": re.compile(rf"o {_TIME} {_COUNT}"),
    "c": re.compile(rf"c {_TIME} {_UPTIME}"),
    "u": re.compile(rf"u {_UPTIME} {_COUNT}"),
}

RECORDER = """d=$(dirname "$0"); r="$d/raw" i="$d/idx" n=$(($(wc -c < "$d/raw"))) || exit
{ read -r u _ < /proc/uptime; } 2>/dev/null && echo "c $(date +%s.%N) $u" >> "$i" || u=
while :; do
m=$(LC_ALL=C dd bs=65536 count=1 2>&1 >> "$r") || break
b=${m%% bytes*}; b=${b##*[!0-9]}
case $m in *" bytes"*) [ -n "$b" ] && m=$((n + b)) ;; *) b= ;; esac
[ -n "$b" ] || m=$(($(wc -c < "$r"))) || break
[ "$m" -gt "$n" ] || break
if [ -n "$u" ] && { read -r u _ < /proc/uptime; } 2>/dev/null; then echo "u $u $m"
else echo "o $(date +%s.%N) $m"; fi >> "$i"; n=$m
done
"""
"""The recorder ``pipe-pane`` runs; it ends when the pane closes (``dd`` reads nothing)."""


def recording_dir(session: str) -> str:
    """Where the session's recording lives in the sandbox, as a shell expression for double
    quotes (``$TMPDIR`` or ``/tmp``; session names are plain)."""
    return f"${{TMPDIR:-/tmp}}/.ecs-sbx-{session}.rec"


def recorder_setup(session: str, width: int, height: int) -> str:
    """Shell lines that prepare the recording before the session exists."""
    d = recording_dir(session)
    recorder = RECORDER.replace("'", "'\\''")
    # Silent: a sandbox without mkdir or a writable temporary directory runs unrecorded.
    return (
        f'{{ mkdir -p "{d}" && printf \'%s\' \'{recorder}\' > "{d}/rec.sh" && : > "{d}/raw"'
        f' && echo "s $(date +%s.%N) {width} {height}" > "{d}/idx"; }} 2>/dev/null'
    )


def pipe_pane_command(target: str, session: str) -> str:
    """The tmux command (for the ``new-session`` command list) that starts recording; tmux
    runs it with ``sh -c`` and the server's environment, the script's own."""
    return f"pipe-pane -t {target} 'exec sh \"{recording_dir(session)}/rec.sh\"'"


def resize_note(session: str, width: int, height: int) -> str:
    """A shell line that records a resize (ignored when there is no recording)."""
    d = recording_dir(session)
    return f'[ -f "{d}/idx" ] && echo "r $(date +%s.%N) {width} {height}" >> "{d}/idx"'


def snapshot_script(session: str) -> str:
    """Copy the recording aside (``idx`` first) and print the copy's directory."""
    d = recording_dir(session)
    return (
        f"[ -f \"{d}/idx\" ] || {{ echo 'no recording' >&2; exit 3; }}\n"
        f'rm -rf "{d}.snap" && mkdir "{d}.snap" && cp "{d}/idx" "{d}.snap/idx"'
        f' && cp "{d}/raw" "{d}.snap/raw" && echo "{d}.snap"'
    )


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One ``idx`` line: ``kind`` s (start), o (output up to ``size``) or r (resize)."""

    kind: str
    time: float
    size: int = 0
    width: int = 0
    height: int = 0


def parse_index(text: str) -> list[IndexEntry]:
    """Parse ``idx`` into s, o and r entries (``u`` lines become ``o`` ones, timed by the
    ``c`` line before them); a last line without its newline (being written) is left out."""
    entries: list[IndexEntry] = []
    anchor: tuple[float, float] | None = None  # the c line: a wall-clock time, its uptime
    for line in text.split("\n")[:-1]:
        if not line:
            continue
        pattern = _LINES.get(line[0])
        match = pattern.fullmatch(line) if pattern is not None else None
        if match is None:
            raise SessionError(f"malformed recording index line {line[:100]!r}")
        first, second, *third = match.groups()
        kind = line[0]
        if kind == "c":
            anchor = (float(first), float(second))
        elif kind == "u":
            if anchor is None:
                raise SessionError("the recording index times output before its clock anchor")
            time = anchor[0] + (float(first) - anchor[1])
            entries.append(IndexEntry("o", time, size=int(second)))
        elif kind == "o":
            entries.append(IndexEntry(kind, float(first), size=int(second)))
        else:
            entries.append(IndexEntry(kind, float(first), width=int(second), height=int(third[0])))
    if not entries or entries[0].kind != "s":
        raise SessionError("the recording index does not start with its header")
    return entries


def build_asciicast(index: str, raw: bytes) -> str:
    """The asciicast v2 text (header line, then one event per line) of a recording."""
    entries = parse_index(index)
    start = entries[0]
    header = {
        "version": 2,
        "width": start.width,
        "height": start.height,
        "timestamp": math.floor(start.time),
        "env": {"TERM": "tmux-256color"},
    }
    lines = [json.dumps(header)]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    last = 0.0
    for entry in entries[1:]:
        last = max(last, round(entry.time - start.time, 6))
        if entry.kind == "r":
            lines.append(json.dumps([last, "r", f"{entry.width}x{entry.height}"]))
            continue
        end = min(entry.size, len(raw))
        if end <= offset:
            continue
        text = decoder.decode(raw[offset:end])
        offset = end
        if text:
            lines.append(_event(last, text))
    tail = decoder.decode(b"", final=True)
    if tail:
        lines.append(_event(last, tail))
    return "\n".join(lines) + "\n"


def _event(time: float, text: str) -> str:
    # Readable UTF-8, but with the line separators other than "\n" that JSON leaves raw
    # escaped, so that no reader splitting on them breaks an event in two.
    line = json.dumps([time, "o", text], ensure_ascii=False)
    for char in _LINE_BREAKS:
        line = line.replace(char, f"\\u{ord(char):04x}")
    return line


_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def recording_from_archive(archive: bytes) -> str:
    """The asciicast of a downloaded snapshot directory (a gzip tar holding idx and raw)."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)[-1]
            data = tar.extractfile(member) if member.isfile() else None
            if base in ("idx", "raw") and data is not None:
                files[base] = data.read()
    if set(files) != {"idx", "raw"}:
        raise SessionError("the downloaded recording lacks its index or its data")
    return build_asciicast(files["idx"].decode("utf-8", errors="replace"), files["raw"])


__all__ = [
    "RECORDER",
    "IndexEntry",
    "build_asciicast",
    "parse_index",
    "pipe_pane_command",
    "recorder_setup",
    "recording_dir",
    "recording_from_archive",
    "resize_note",
    "snapshot_script",
]
