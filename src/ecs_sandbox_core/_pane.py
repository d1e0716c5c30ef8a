"""Incremental pane reading: exactly the output that is new since the last read.

Theory of operation
-------------------
tmux keeps a pane as *history* (rows that scrolled off the top, at most ``history-limit``)
followed by the visible *screen* (``pane_height`` rows). Number the rows from the oldest
history row: absolute row ``a`` is visible row ``y = a - history_size`` in tmux's own
coordinates (negative ``y`` reaches into history), which ``capture-pane -S y -E y`` reads.

Output is appended below the cursor and scrolls upward, so absolute numbers are stable with
one exception: when the history is full tmux drops its oldest rows in chunks of
``history_limit // 10`` (sometimes several chunks between two reads). No tmux format counts
the rows ever dropped, so a row's absolute number after a trim is its old number minus an
unknown multiple of the chunk.

The tracker therefore remembers, after each read:

* ``pending`` - the text of the cursor row, which may still grow (a prompt being typed on);
* ``anchor`` - up to ``anchor_rows`` complete rows directly above the cursor row;
* ``anchor_top`` - the absolute number of the first anchor row at the time of that read.

The next read is one shell script (see :func:`ecs_sandbox_core._tmux.incremental_script`)
that tries the anchor at ``anchor_top - k * chunk`` for ``k = 0, 1, ...`` (no trim first,
then one trimmed chunk, ...), compares the rows found there with the remembered anchor, and
captures only from the row after the anchor down to the cursor. What crosses the transport
is the new rows plus a one-line header, whatever the length of the scrollback, and the work
here is linear in the new rows.

The increment is the growth of the old cursor row (the part after ``pending``) followed by
each newer row on its own line, so the concatenation of every increment is exactly the text
of the pane. When the anchor is nowhere to be found the screen was really cleared (``clear``
also empties the history) or rewritten (a resize re-wrapping rows), or more than a whole
history of output went by; then the read falls back to the visible screen and the tracker
starts again from there. A full-screen program (the alternate screen) is shown as a screen
without disturbing the state, so reading resumes when it exits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NEW_OUTPUT_PREFIX = "New Terminal Output:\n"
SCREEN_PREFIX = "Current Terminal Screen:\n"


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """What the next read's script must look for. ``first`` asks for the screen only."""

    first: bool
    anchor_top: int
    anchor: tuple[str, ...]
    max_widen: int


@dataclass(frozen=True, slots=True)
class PaneHeader:
    """The pane's geometry as tmux reported it during one read."""

    history_size: int
    history_limit: int
    cursor_y: int
    pane_height: int
    alternate_on: bool
    found_k: int  # chunks the anchor moved up by trimming; -1 when it was not found


@dataclass(frozen=True, slots=True)
class Increment:
    """One read's result: new output, or the visible screen when no diff is possible."""

    kind: Literal["new", "screen"]
    text: str

    def render(self) -> str:
        """The text with the reference module's prefixes, as agents expect it."""
        return (NEW_OUTPUT_PREFIX if self.kind == "new" else SCREEN_PREFIX) + self.text


class PaneProtocolError(ValueError):
    """The read script's output does not have the expected shape."""


def parse_header(line: str) -> PaneHeader:
    """Parse the header line the read script prints before any pane content."""
    fields = line.split()
    if len(fields) != 6 or not all(f.lstrip("-").isdigit() for f in fields):
        raise PaneProtocolError(f"malformed pane header {line[:200]!r}")
    hsize, hlimit, cy, height, alt, found = (int(f) for f in fields)
    return PaneHeader(
        history_size=hsize,
        history_limit=hlimit,
        cursor_y=cy,
        pane_height=height,
        alternate_on=alt == 1,
        found_k=found,
    )


def split_rows(text: str) -> list[str]:
    """Rows of a ``capture-pane -p`` output (every row ends in a newline)."""
    if not text:
        return []
    rows = text.split("\n")
    if rows[-1] == "":
        rows.pop()
    return rows


class PaneTracker:
    """Turns successive reads of one pane into the exact new output (see module doc)."""

    def __init__(self, *, anchor_rows: int = 4, max_widen: int = 10) -> None:
        if anchor_rows < 1:
            raise ValueError("anchor_rows must be at least 1")
        self._anchor_rows = anchor_rows
        self._max_widen = max_widen
        self._started = False
        self._pending = ""
        self._anchor: tuple[str, ...] = ()
        self._anchor_top = 0

    def request(self) -> CaptureRequest:
        """What the next read script needs: where the anchor was and what it says."""
        return CaptureRequest(
            first=not self._started,
            anchor_top=self._anchor_top,
            anchor=self._anchor,
            max_widen=self._max_widen,
        )

    def feed(self, output: str) -> Increment:
        """Consume one read script's output (header line, then rows) and return the increment."""
        header_line, _, body = output.partition("\n")
        header = parse_header(header_line)
        rows = split_rows(body)
        if header.alternate_on:
            # A full-screen program owns the screen; the normal screen's state stays valid.
            return Increment("screen", _screen_text(rows))
        if header.found_k < 0:
            return self._restart(header, rows)
        return self._advance(header, rows)

    def _restart(self, header: PaneHeader, screen: list[str]) -> Increment:
        cursor = min(header.cursor_y, len(screen) - 1) if screen else -1
        above = screen[:cursor] if cursor > 0 else []
        self._remember(header, above, screen[cursor] if cursor >= 0 else "")
        # Blank rows down to the cursor row are output too: the next increment extends them.
        return Increment("screen", _screen_text(screen, keep=cursor + 1))

    def _advance(self, header: PaneHeader, rows: list[str]) -> Increment:
        if not rows:
            raise PaneProtocolError("anchor found but no cursor row captured")
        first, newer = rows[0], rows[1:]
        # A rewritten cursor row (a progress bar, a cleared input line) is shown again in
        # full on a line of its own rather than spliced onto unrelated text.
        grown = first[len(self._pending) :] if first.startswith(self._pending) else "\n" + first
        text = grown + "".join("\n" + row for row in newer)
        completed = rows[:-1]
        self._remember(header, [*self._anchor, *completed], rows[-1])
        return Increment("new", text)

    def _remember(
        self, header: PaneHeader, above: list[str] | tuple[str, ...], cursor_row: str
    ) -> None:
        anchor = tuple(above[-self._anchor_rows :]) if above else ()
        cursor_abs = header.history_size + header.cursor_y
        self._started = True
        self._pending = cursor_row
        self._anchor = anchor
        self._anchor_top = cursor_abs - len(anchor)


def _screen_text(rows: list[str], keep: int = 0) -> str:
    end = len(rows)
    while end > keep and not rows[end - 1].strip():
        end -= 1
    # No newline after the last row: it is the cursor row, which the next increment extends.
    return "\n".join(rows[:end])


__all__ = [
    "NEW_OUTPUT_PREFIX",
    "SCREEN_PREFIX",
    "CaptureRequest",
    "Increment",
    "PaneHeader",
    "PaneProtocolError",
    "PaneTracker",
    "parse_header",
    "split_rows",
]
