"""Incremental pane reading: exactly the output that is new since the last read.

Theory of operation
-------------------
tmux keeps a pane as *history* (rows that scrolled off the top, at most ``history-limit``)
followed by the visible *screen* (``pane_height`` rows). Number the rows from the oldest
history row: absolute row ``a`` is visible row ``y = a - history_size`` in tmux's own
coordinates (negative ``y`` reaches into history), which ``capture-pane -S y -E y`` reads.

Rows move in two ways only. Output scrolls them up, which leaves absolute numbers alone.
And before a row scrolls into a full history, tmux drops its oldest ``chunk =
history_limit // 10`` rows (``grid_collect_history``), which lowers every absolute number
by ``chunk``. No tmux format counts dropped rows, but one fact bounds them: after any drop
the history holds more than ``limit - chunk`` rows until it is cleared. So a read that sees
``history_size <= limit - chunk`` knows that nothing was dropped since the last read (or
since a clear) and a remembered row is exactly where it was; otherwise a remembered row
may have moved up by any multiple of ``chunk``. A history that shrank without a possible
drop was cleared (``clear``, ``clear-history``); history rows never change otherwise.

After each read the tracker remembers the cursor row (``pending``, which may still grow),
the complete rows above it, and the geometry. The next read is one shell script (see
:mod:`ecs_sandbox_core._pane_script`) that looks in the pane for the *anchor* (the rows
right above the old cursor, grown upwards until they hold a few distinct non-blank rows or
reach a size budget) and the *deep row* (the nearest non-blank row of the old history):

* no drop possible: the anchor can only be where it was; if it and the deep row are
  there, the new output starts at the old cursor row;
* drops possible: the anchor is tried at every shift ``k * chunk`` that keeps it in the
  pane (first its last non-blank row at every shift in one tmux call, then whole windows
  where that row matches), and a shift is taken only when it is the *only* one that
  matches. A window whose top tmux dropped still counts while it holds a non-blank row.
  Blank or repeated rows that match at several shifts, or an anchor with nothing
  non-blank, cannot tell where the old rows went, and the read says so instead of
  guessing.

tmux runs one client's ``cmd \\; cmd`` list without handling pane output in between, so
the script captures the geometry, the windows it decided on and the new rows in one such
list, and accepts it only if the geometry and windows are the ones it decided on; if output
arrived while it was deciding, it decides again (MAX_ATTEMPTS times, then it shows the
screen). Only the new rows and a one-line header cross the transport.

The increment is the growth of the old cursor row (the part after ``pending``) followed by
each newer row on its own line, so the concatenated increments are exactly the pane's
rows. When the position cannot be proven the read is a *screen* (``Current Terminal
Screen``) and reading starts again from there, showing:

* after a clear (the history shrank, or a remembered history row changed): every row since
  the clear, which tmux still holds, as nothing has been dropped since;
* when the remembered screen rows were rewritten (a redraw above the cursor): every row
  from the old screen's top;
* otherwise (drops possible, a resize, output arriving during every attempt): the screen.

A full-screen program (the alternate screen) is shown as a screen without disturbing the
state, so reading resumes when it exits.

Limits. The tracker sees only what the pane holds at each read, so it is exact as long as
the pane changed only by output (and Ctrl-L, which scrolls the screen into history) and
fewer rows than about ``limit - chunk`` arrived between two reads. Beyond that it may be
wrong without saying so only when the pane reproduces what it remembers: after a clear,
the same rows at the same places (blank or repeated rows, or nothing remembered because
the cursor was on the pane's first row); after more than a whole history, the anchor at a
single chunk-aligned place. A rewritten cursor row (a progress bar) is shown again on a
line of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NEW_OUTPUT_PREFIX = "New Terminal Output:\n"
SCREEN_PREFIX = "Current Terminal Screen:\n"

EXTRA_ROWS = 4
"""Rows above a screen's first shown row that the read captures but does not show, so the
tracker knows a history row (the deep row) when the next read checks for a clear."""

DEEP_SCAN = 64
"""How far above the old screen's top the tracker looks for a non-blank deep row."""

MAX_ATTEMPTS = 10
"""How often a read decides again when output arrived while it was deciding. An attempt
costs one tmux call, or about three when the history is full, and is only repeated while
output keeps arriving; then more attempts mean fewer reads that fall back to the screen."""


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """What the next read's script needs; ``first`` asks for the screen only.

    ``cursor`` is the old cursor row's absolute number and ``anchor`` the rows right above
    it; ``deep`` is a row that was in the history at ``deep_top`` (-1 when none is known).
    """

    first: bool
    history_size: int = 0
    history_limit: int = 0
    pane_height: int = 0
    pane_width: int = 0
    cursor: int = 0
    anchor: tuple[str, ...] = ()
    deep_top: int = -1
    deep: str = ""

    @property
    def chunk(self) -> int:
        """How many rows tmux drops at once from a full history."""
        return max(1, self.history_limit // 10)

    @property
    def anchor_top(self) -> int:
        """The absolute number of the first anchor row."""
        return self.cursor - len(self.anchor)

    @property
    def weak(self) -> bool:
        """Nothing non-blank to recognise: a position can only be trusted if it is exact."""
        return not any(row.strip() for row in self.anchor) and not (
            self.deep_top >= 0 and self.deep.strip()
        )


@dataclass(frozen=True, slots=True)
class PaneHeader:
    """One read's header: the pane as tmux reported it, and what the script captured.

    ``kind`` is ``n`` (new rows from the old cursor row moved up by ``value`` chunks),
    ``s`` (rows from absolute row ``value``, plus up to EXTRA_ROWS above it) or ``f`` (the
    screen and EXTRA_ROWS above it, read at once; ``value`` is 0).
    """

    history_size: int
    history_limit: int
    cursor_y: int
    pane_height: int
    pane_width: int
    alternate_on: bool
    kind: Literal["n", "s", "f"]
    value: int

    @property
    def cursor(self) -> int:
        """The cursor row's absolute number."""
        return self.history_size + self.cursor_y


@dataclass(frozen=True, slots=True)
class Increment:
    """One read's result: exactly the new output, or a *screen* when that cannot be proven.

    A screen shows held rows down to the cursor afresh: the visible screen, or more when
    more may be unread (every row since a clear). Reading continues from it.
    """

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
    numbers = fields[:6] + fields[7:]
    if (
        len(fields) != 8
        or fields[6] not in ("n", "s", "f")
        or not all(f.isascii() and f.isdigit() for f in numbers)
        or fields[5] not in ("0", "1")
    ):
        raise PaneProtocolError(f"malformed pane header {line[:200]!r}")
    hsize, hlimit, cy, height, width, alt, value = (int(f) for f in numbers)
    kind: Literal["n", "s", "f"] = "n" if fields[6] == "n" else "s" if fields[6] == "s" else "f"
    return PaneHeader(hsize, hlimit, cy, height, width, alt == 1, kind, value)


def split_rows(text: str) -> list[str]:
    """Rows of a ``capture-pane -p`` output (every row ends in a newline)."""
    if not text:
        return []
    rows = text.split("\n")
    if rows[-1] == "":
        rows.pop()
    return rows


def _quoted_size(row: str) -> int:
    # What the row adds to the read script: its bytes, a newline, and shlex's quoting of '.
    return len(row.encode()) + 1 + 4 * row.count("'")


class PaneTracker:
    """Turns successive reads of one pane into the exact new output (see module doc).

    The anchor holds at least ``anchor_rows`` rows and grows upwards until it has
    ``anchor_distinct`` distinct non-blank rows, while it stays under ``anchor_bytes`` of
    script text and ``anchor_max_rows`` rows (and a quarter of the history limit, so that
    tmux cannot drop its top while its bottom is still there).
    """

    def __init__(
        self,
        *,
        anchor_rows: int = 4,
        anchor_distinct: int = 3,
        anchor_bytes: int = 1024,
        anchor_max_rows: int = 256,
    ) -> None:
        if anchor_rows < 1 or anchor_max_rows < anchor_rows:
            raise ValueError("anchor_rows must be at least 1 and at most anchor_max_rows")
        self._anchor_rows = anchor_rows
        self._anchor_distinct = anchor_distinct
        self._anchor_bytes = anchor_bytes
        self._anchor_max_rows = anchor_max_rows
        self._started = False
        self._geometry = (0, 0, 0, 0)  # history_size, history_limit, height, width
        self._known: list[str] = []  # complete rows right above the cursor row
        self._known_top = 0  # absolute number of _known[0]
        self._pending = ""
        self._carry: Increment | None = None  # read before a resize, not yet returned

    @property
    def _cursor(self) -> int:
        return self._known_top + len(self._known)

    def request(self) -> CaptureRequest:
        """What the next read script needs: where the old rows were and what they say."""
        if not self._started:
            return CaptureRequest(first=True)
        hsize, limit, height, width = self._geometry
        n = self._anchor_size(limit)
        deep_top, deep = self._deep_row(hsize)
        return CaptureRequest(
            first=False,
            history_size=hsize,
            history_limit=limit,
            pane_height=height,
            pane_width=width,
            cursor=self._cursor,
            anchor=tuple(self._known[len(self._known) - n :]),
            deep_top=deep_top,
            deep=deep,
        )

    def feed(self, output: str) -> Increment:
        """Consume one read script's output (header line, then rows) and return the increment."""
        increment = self._feed(output)
        carry, self._carry = self._carry, None
        if carry is None:
            return increment
        if carry.kind == increment.kind == "new":
            return Increment("new", carry.text + increment.text)
        joint = increment.text if increment.kind == "new" else "\n" + increment.text
        return Increment("screen", carry.text + joint)

    def rebase(self, before: str, after: str) -> None:
        """Take a resize: ``before`` is a read just before it, ``after`` a first read
        (:class:`CaptureRequest` ``first``) just after it, in the same script.

        tmux reflows every row on a resize, so nothing remembered stays where it was. What
        ``before`` found new is kept and comes first in the next increment; ``after``
        becomes the place the next read continues from. Exact when no output arrived
        between the two reads.
        """
        increment = self._feed(before)
        if self._carry is not None:
            increment = Increment(
                "new" if self._carry.kind == increment.kind == "new" else "screen",
                self._carry.text + increment.text,
            )
        self._carry = increment if increment.text or increment.kind == "screen" else None
        self._started = False
        self._feed(after)

    def _feed(self, output: str) -> Increment:
        header_line, _, body = output.partition("\n")
        header = parse_header(header_line)
        rows = split_rows(body)
        if header.alternate_on:
            # A full-screen program owns the screen; the normal screen's state stays valid.
            end = len(rows)
            while end and not rows[end - 1].strip():
                end -= 1
            return Increment("screen", "\n".join(rows[:end]))
        if header.kind == "n":
            return self._advance(header, rows)
        start = header.history_size if header.kind == "f" else header.value
        return self._restart(header, start, rows)

    def _restart(self, header: PaneHeader, start: int, rows: list[str]) -> Increment:
        cursor = header.cursor
        first = max(0, start - EXTRA_ROWS)
        need = cursor - first + 1
        if not 0 <= start <= cursor or len(rows) < need:
            raise PaneProtocolError(f"screen read of {len(rows)} rows for rows {first}-{cursor}")
        rows = rows[:need]  # rows below the cursor are not output yet
        self._remember(header, first, rows)
        # No newline after the last row: it is the cursor row, which the next read extends.
        return Increment("screen", "\n".join(rows[start - first :]))

    def _advance(self, header: PaneHeader, rows: list[str]) -> Increment:
        _, limit, height, width = self._geometry
        if not self._started or (header.history_limit, header.pane_height, header.pane_width) != (
            limit,
            height,
            width,
        ):
            raise PaneProtocolError("new rows reported for a pane of another geometry")
        shift = header.value * max(1, limit // 10)
        start = self._cursor - shift  # where the old cursor row is now
        if start < 0 or len(rows) != header.cursor - start + 1 or not rows:
            raise PaneProtocolError(
                f"{len(rows)} new rows for rows {start}-{header.cursor} (shift {header.value})"
            )
        first, newer = rows[0], rows[1:]
        # A rewritten cursor row (a progress bar, a cleared input line) is shown again in
        # full on a line of its own rather than spliced onto unrelated text.
        grown = first[len(self._pending) :] if first.startswith(self._pending) else "\n" + first
        self._remember(header, self._known_top - shift, [*self._known, *rows])
        return Increment("new", grown + "".join("\n" + row for row in newer))

    def _remember(self, header: PaneHeader, top: int, rows: list[str]) -> None:
        """Keep ``rows`` (absolute rows ``top``..., the last one the cursor row) for later."""
        complete, pending = rows[:-1], rows[-1]
        if top < 0:  # rows tmux has dropped
            complete, top = complete[-top:], 0
        keep = max(self._anchor_max_rows, header.pane_height + DEEP_SCAN)
        if len(complete) > keep:
            top += len(complete) - keep
            complete = complete[-keep:]
        self._started = True
        self._geometry = (
            header.history_size,
            header.history_limit,
            header.pane_height,
            header.pane_width,
        )
        self._known, self._known_top, self._pending = complete, top, pending

    def _anchor_size(self, limit: int) -> int:
        most = max(self._anchor_rows, min(self._anchor_max_rows, limit // 4))
        n = size = 0
        distinct: set[str] = set()
        for row in reversed(self._known):
            cost = _quoted_size(row)
            if n >= most or (
                n >= self._anchor_rows
                and (len(distinct) >= self._anchor_distinct or size + cost > self._anchor_bytes)
            ):
                break
            n, size = n + 1, size + cost
            if row.strip():
                distinct.add(row)
        return n

    def _deep_row(self, hsize: int) -> tuple[int, str]:
        """A row of the old history: the nearest non-blank one above it, else its last."""
        top = max(self._known_top, hsize - DEEP_SCAN)
        for a in range(min(hsize, self._cursor) - 1, top - 1, -1):
            row = self._known[a - self._known_top]
            if row.strip():
                return a, row
        if self._known_top <= hsize - 1 < self._cursor:
            return hsize - 1, self._known[hsize - 1 - self._known_top]
        return -1, ""


__all__ = [
    "DEEP_SCAN",
    "EXTRA_ROWS",
    "MAX_ATTEMPTS",
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
