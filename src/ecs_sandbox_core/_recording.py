"""Recordings of a session's terminal as asciicast v2, without asciinema in the image.

Theory of operation
-------------------
When the session is created, ``pipe-pane`` (in the same tmux command list as
``new-session``, so no output is missed) feeds everything the pane's program writes to a
small POSIX ``sh`` recorder. The recorder loops: one ``dd`` reads whatever has arrived
(a single ``read``, up to 64 KiB), appends it to ``raw``, and appends ``o <time> <size>``
to ``idx``, where ``<size>`` is the size of ``raw`` afterwards and ``<time>`` the
wall-clock time (``date +%s.%N``; whole seconds where ``%N`` is not supported). ``idx``
starts with ``s <time> <cols> <rows>``; a resize appends ``r <time> <cols> <rows>``.

Downloading copies both files aside (``idx`` first, so every size it names is in the
copy of ``raw``) and fetches the copy; :func:`build_asciicast` then turns the pair into
asciicast v2: a JSON header and one ``[time, "o", text]`` event per chunk, with times
relative to the start, never decreasing, and the bytes decoded as a stream (a UTF-8
character split between chunks is whole in the later event). Bytes after the last
``idx`` entry are left for the next download.
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

_LINE = re.compile(r"^([sor]) (\d+)(?:\.(\d+))?\S* (\d+)(?: (\d+))?$")

RECORDER = """r="$(dirname "$0")/raw" i="$(dirname "$0")/idx" n=0
while :; do
dd bs=65536 count=1 2>/dev/null >> "$r" || break
m=$(($(wc -c < "$r"))) || break
[ "$m" -gt "$n" ] || break
echo "o $(date +%s.%N) $m" >> "$i"; n=$m
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
    """Parse ``idx``; a torn last line (the recorder was writing it) is left out."""
    entries: list[IndexEntry] = []
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            if n == len(lines) - 1:
                break  # being written
            raise SessionError(f"malformed recording index line {line[:100]!r}")
        kind, secs, frac, first, second = match.groups()
        time = int(secs) + (int(frac) / 10 ** len(frac) if frac else 0.0)
        if kind == "o":
            entries.append(IndexEntry(kind, time, size=int(first)))
        elif second is None:
            raise SessionError(f"malformed recording index line {line[:100]!r}")
        else:
            entries.append(IndexEntry(kind, time, width=int(first), height=int(second)))
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
