"""The pane tracker against a pure model of a tmux pane and of the read script's logic.

``Pane`` models what tmux keeps: rows oldest first, the last ``height`` of them on screen,
the cursor on the last row, and history trimmed by ``history_limit // 10`` rows whenever a
row scrolls into a full history (tmux's ``grid_collect_history``). ``run_read`` computes
what :func:`ecs_sandbox_core._tmux.incremental_script` prints for that pane, step by step
as the shell would (including ``$(...)`` dropping trailing newlines). The real script
against a real tmux is tested in ``test_tmux_real.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._pane import (
    NEW_OUTPUT_PREFIX,
    SCREEN_PREFIX,
    CaptureRequest,
    Increment,
    PaneHeader,
    PaneProtocolError,
    PaneTracker,
    parse_header,
    split_rows,
)

# --- the model ------------------------------------------------------------------------------


@dataclass
class Pane:
    """A tmux pane without wrapping: ``log`` holds every row since the last clear."""

    height: int
    history_limit: int
    log: list[str] = field(default_factory=lambda: [""])
    top: int = 0  # index in ``log`` of the oldest row tmux still holds
    alternate: list[str] | None = None  # the alternate screen's rows while it is on

    @property
    def held(self) -> list[str]:
        return self.log[self.top :]

    @property
    def history_size(self) -> int:
        return max(0, len(self.log) - self.top - self.height)

    @property
    def cursor_y(self) -> int:
        return len(self.log) - self.top - 1 - self.history_size

    def write(self, text: str) -> None:
        for i, piece in enumerate(text.split("\n")):
            if i:
                self._newline()
            self.log[-1] += piece

    def _newline(self) -> None:
        # A row scrolls into history only when the screen is full; a full history first
        # loses its oldest tenth.
        if len(self.held) >= self.height and self.history_size >= self.history_limit:
            self.top += max(1, self.history_limit // 10)
        self.log.append("")

    def clear(self) -> None:
        """What ``clear`` does in a shell under tmux: screen and history emptied."""
        self.log = [""]
        self.top = 0

    def capture(self, start: int, end: int) -> str:
        """``capture-pane -p -S start -E end`` (visible coordinates, negative = history)."""
        if self.alternate is not None:
            rows = self.alternate
            return "".join(rows[y].rstrip(" ") + "\n" for y in range(start, end + 1))
        held, hsize = self.held, self.history_size
        out = []
        for y in range(start, end + 1):
            a = hsize + y
            assert a >= 0, "the script must never ask above the history"
            out.append((held[a] if a < len(held) else "").rstrip(" ") + "\n")
        return "".join(out)

    def text_from(self, index: int) -> str:
        """The output from ``log[index]`` to the cursor, rows right-trimmed as tmux shows them."""
        return "\n".join(row.rstrip(" ") for row in self.log[index:])

    @property
    def screen_top(self) -> int:
        return self.top + self.history_size


def command_substitution(output: str) -> str:
    """``$(...)``: the output with its trailing newlines removed."""
    return output.rstrip("\n")


def run_read(pane: Pane, request: CaptureRequest) -> str:
    """What incremental_script prints for ``pane``: header line, then rows."""
    hsize, limit, cy, ph = pane.history_size, pane.history_limit, pane.cursor_y, pane.height
    alt = 1 if pane.alternate is not None else 0
    if alt:
        hsize, cy = 0, 0  # the alternate screen has no history; the values are not used
    rows = len(request.anchor)
    found, y = -1, 0
    if not request.first and alt == 0:
        chunk = max(1, limit // 10)
        k = 0
        while k <= request.max_widen:
            y = request.anchor_top - k * chunk - hsize
            if y + hsize < 0:
                break
            if y + rows <= cy:
                if not rows:
                    found = k
                    break
                captured = command_substitution(pane.capture(y, y + rows - 1) + _SENTINEL_CAPTURE)
                if captured == "\n".join(request.anchor) + _SENTINEL_ANCHOR:
                    found = k
                    break
            k += 1
    header = f"{hsize} {limit} {cy} {ph} {alt} {found}\n"
    if found >= 0:
        return header + pane.capture(y + rows, cy)
    return header + pane.capture(0, ph - 1)


# The read script compares ``$(capture; echo .)`` with the anchor followed by "\n.", so that
# blank anchor rows (trailing newlines) survive command substitution.
_SENTINEL_CAPTURE = ".\n"
_SENTINEL_ANCHOR = "\n."


def read(pane: Pane, tracker: PaneTracker) -> tuple[Increment, int]:
    """One poll: the increment and the number of rows the script sent after its header."""
    output = run_read(pane, tracker.request())
    body_rows = len(split_rows(output.partition("\n")[2]))
    return tracker.feed(output), body_rows


# --- strategies -----------------------------------------------------------------------------

# A fragment: some words (spaces included, so rows get trailing spaces) and 0-3 newlines.
# Each fragment starts with a serial number, so every non-blank row is unique and runs of
# blank rows are shorter than the anchor: the anchor can then only match where it really is
# (a run of identical rows longer than the anchor is a known limit of anchoring).
fragments = st.lists(
    st.tuples(st.text(alphabet="ab ", max_size=12), st.integers(0, 3)), max_size=12
)
batches = st.lists(fragments, min_size=1, max_size=12)
geometry = st.tuples(st.integers(5, 10), st.integers(30, 60))


class Writer:
    """Writes fragments with fresh serial numbers, at most ``max_rows`` newlines per batch."""

    def __init__(self) -> None:
        self.serial = 0

    def batch(self, pane: Pane, batch: list[tuple[str, int]], max_rows: int) -> int:
        rows = 0
        for words, wanted in batch:
            newlines = min(wanted, max_rows - rows)
            self.serial += 1
            pane.write(f"<{self.serial}>{words}" + "\n" * newlines)
            rows += newlines
        return rows


# --- the invariant --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(geometry, batches)
def test_screen_then_increments_are_the_whole_output(
    dims: tuple[int, int], batches_: list[list[tuple[str, int]]]
) -> None:
    height, limit = dims
    pane = Pane(height=height, history_limit=limit)
    tracker = PaneTracker()
    writer = Writer()
    writer.batch(pane, batches_[0], max_rows=height - 1)  # output before the first read
    first, _ = read(pane, tracker)
    assert first.kind == "screen"
    start = pane.screen_top
    texts = [first.text]
    for batch in batches_[1:]:
        before = len(pane.log)
        new_rows = writer.batch(pane, batch, max_rows=limit // 2)
        assert len(pane.log) - before == new_rows
        increment, body_rows = read(pane, tracker)
        assert increment.kind == "new", (pane, increment)
        # Cost: the read sends the new rows and the old cursor row, never the scrollback.
        assert body_rows == new_rows + 1
        texts.append(increment.text)
        assert "".join(texts) == pane.text_from(start)
    event(f"history trimmed: {pane.top > 0}")


@settings(max_examples=50, deadline=None)
@given(st.integers(30, 60), st.integers(5, 10))
def test_trims_between_reads_lose_and_repeat_nothing(limit: int, height: int) -> None:
    """Deterministic pressure: half a history per read, so tmux trims between most reads."""
    pane = Pane(height=height, history_limit=limit)
    tracker = PaneTracker()
    first, _ = read(pane, tracker)
    texts = [first.text]
    trims = 0
    for n in range(40):
        top = pane.top
        pane.write("".join(f"line {n}-{i}  \n" for i in range(limit // 2)) + f"prompt {n} ")
        trims += pane.top != top
        increment, rows = read(pane, tracker)
        assert (increment.kind, rows) == ("new", limit // 2 + 1)
        texts.append(increment.text)
    assert trims >= 20
    assert "".join(texts) == pane.text_from(0)


def test_a_growing_cursor_row_is_extended_not_repeated() -> None:
    pane = Pane(height=5, history_limit=30)
    tracker = PaneTracker()
    pane.write("$ ")
    assert read(pane, tracker)[0] == Increment("screen", "$")
    pane.write("ls")
    assert read(pane, tracker)[0] == Increment("new", " ls")
    pane.write(" -l  ")
    assert read(pane, tracker)[0] == Increment("new", " -l")
    pane.write("\nfile\n$ ")
    assert read(pane, tracker)[0] == Increment("new", "\nfile\n$")
    assert read(pane, tracker)[0] == Increment("new", "")


def test_blank_rows_above_the_cursor_are_kept() -> None:
    """The screen shows blank rows down to the cursor, and a blank anchor still matches."""
    pane = Pane(height=6, history_limit=30)
    tracker = PaneTracker()
    pane.write("done\n\n")
    first, _ = read(pane, tracker)
    assert first == Increment("screen", "done\n\n")
    pane.write("more\n\n")
    second, rows = read(pane, tracker)
    assert (second, rows) == (Increment("new", "more\n\n"), 3)
    assert first.text + second.text == pane.text_from(0)


def test_a_rewritten_cursor_row_is_shown_on_its_own_line() -> None:
    pane = Pane(height=5, history_limit=30)
    tracker = PaneTracker()
    pane.write("one\nprogress 10%")
    read(pane, tracker)
    pane.log[-1] = "progress 99%"  # a carriage return and a redraw
    assert read(pane, tracker)[0] == Increment("new", "\nprogress 99%")


# --- fallbacks: clear, alternate screen -----------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(geometry, batches, st.integers(0, 40))
def test_after_clear_the_next_read_is_the_screen(
    dims: tuple[int, int], batches_: list[list[tuple[str, int]]], after: int
) -> None:
    height, limit = dims
    pane = Pane(height=height, history_limit=limit)
    tracker = PaneTracker()
    writer = Writer()
    # At least one row above the cursor: with nothing on the pane there is no anchor, and
    # an empty pane and a cleared one look the same.
    pane.write("before\n")
    read(pane, tracker)
    for batch in batches_:
        writer.batch(pane, batch, max_rows=limit // 2)
        read(pane, tracker)
    pane.clear()
    pane.write("".join(f"after {i}\n" for i in range(after)) + "$ ")
    screen, _ = read(pane, tracker)
    assert screen.kind == "screen"
    assert screen.text == pane.text_from(pane.screen_top)
    # And reading continues from there.
    start = pane.screen_top
    pane.write("echo x\nx\n$ ")
    increment, _ = read(pane, tracker)
    assert screen.text + increment.text == pane.text_from(start)
    assert increment == Increment("new", " echo x\nx\n$")


def test_clear_then_more_rows_than_the_anchor_position_is_still_a_screen() -> None:
    """After a clear the anchor's old position may exist again, with other rows in it."""
    pane = Pane(height=5, history_limit=30)
    tracker = PaneTracker()
    pane.write("".join(f"old {i}\n" for i in range(12)))
    read(pane, tracker)
    pane.clear()
    pane.write("".join(f"new {i}\n" for i in range(14)))
    screen, _ = read(pane, tracker)
    assert screen == Increment("screen", pane.text_from(pane.screen_top))


def test_alternate_screen_is_shown_without_disturbing_the_state() -> None:
    pane = Pane(height=5, history_limit=30)
    tracker = PaneTracker()
    pane.write("a\nb\n$ ")
    assert read(pane, tracker)[0] == Increment("screen", "a\nb\n$")
    pane.write("vim\n")
    before = tracker.request()
    pane.alternate = ["~ editing", "~", "", "", ""]
    assert read(pane, tracker)[0] == Increment("screen", "~ editing\n~")
    assert tracker.request() == before
    pane.alternate = None
    pane.write("$ ")
    assert read(pane, tracker)[0] == Increment("new", " vim\n$")


@settings(max_examples=100, deadline=None)
@given(geometry, batches, st.sets(st.integers(1, 11), max_size=4))
def test_alternate_screen_reads_anywhere_leave_the_increments_exact(
    dims: tuple[int, int], batches_: list[list[tuple[str, int]]], alt_at: set[int]
) -> None:
    height, limit = dims
    pane = Pane(height=height, history_limit=limit)
    tracker = PaneTracker()
    writer = Writer()
    texts = [read(pane, tracker)[0].text]
    for n, batch in enumerate(batches_):
        writer.batch(pane, batch, max_rows=limit // 2)
        if n in alt_at:
            pane.alternate = [f"full screen {n}"] + [""] * (height - 1)
            assert read(pane, tracker)[0] == Increment("screen", f"full screen {n}")
            pane.alternate = None
        texts.append(read(pane, tracker)[0].text)
    assert "".join(texts) == pane.text_from(0)


# --- small pieces ---------------------------------------------------------------------------


def test_render_prefixes() -> None:
    assert Increment("new", "x\ny").render() == "New Terminal Output:\nx\ny"
    assert Increment("screen", "$").render() == "Current Terminal Screen:\n$"
    assert NEW_OUTPUT_PREFIX == "New Terminal Output:\n"
    assert SCREEN_PREFIX == "Current Terminal Screen:\n"


def test_first_request_asks_for_the_screen_only() -> None:
    request = PaneTracker(max_widen=7).request()
    assert request == CaptureRequest(first=True, anchor_top=0, anchor=(), max_widen=7)


def test_request_after_a_screen_anchors_above_the_cursor() -> None:
    tracker = PaneTracker(anchor_rows=2)
    tracker.feed("3 100 4 6 0 -1\nr1\nr2\nr3\nr4\n$ x\n\n")
    # Cursor at absolute row 3 + 4 = 7; the two rows above it are the anchor.
    assert tracker.request() == CaptureRequest(
        first=False, anchor_top=5, anchor=("r3", "r4"), max_widen=10
    )


@pytest.mark.parametrize(
    ("line", "header"),
    [
        ("0 2000 0 40 0 -1", PaneHeader(0, 2000, 0, 40, False, -1)),
        ("120 50000 39 40 1 3", PaneHeader(120, 50000, 39, 40, True, 3)),
    ],
)
def test_parse_header(line: str, header: PaneHeader) -> None:
    assert parse_header(line) == header


@pytest.mark.parametrize(
    "line", ["", "0 2000 0 40 0", "0 2000 0 40 0 -1 7", "a b c d e f", "tmux: no server"]
)
def test_malformed_header_is_a_protocol_error(line: str) -> None:
    with pytest.raises(PaneProtocolError):
        parse_header(line)
    with pytest.raises(PaneProtocolError):
        PaneTracker().feed(line + "\nrow\n")


def test_found_anchor_without_rows_is_a_protocol_error() -> None:
    tracker = PaneTracker()
    tracker.feed("0 100 1 5 0 -1\na\n$\n\n\n\n")
    with pytest.raises(PaneProtocolError, match="no cursor row"):
        tracker.feed("0 100 1 5 0 0\n")


def test_anchor_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="anchor_rows"):
        PaneTracker(anchor_rows=0)


@given(st.lists(st.text(alphabet="ab \t", max_size=5), max_size=8))
def test_split_rows_inverts_capture(rows: list[str]) -> None:
    assert split_rows("".join(row + "\n" for row in rows)) == rows
