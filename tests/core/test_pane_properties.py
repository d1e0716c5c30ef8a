"""Properties of the pane tracker and its real read script against a model of a tmux pane.

The model (``_pane_model``) trims history in chunks as tmux does, clears, clears the
history, scrolls a cleared screen into history, and can receive output between any two
tmux invocations of a read. ``Reader`` checks every read: a ``new`` read continues the
transcript exactly, a ``screen`` read shows held rows down to the cursor. Generated output
mixes unique rows with runs of blank and repeated rows, so that trims between reads leave
anchors that match at several places.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from _pane_model import Pane, Reader
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._pane import MAX_ATTEMPTS, CaptureRequest


def open_reader(height: int, limit: int) -> Reader:
    return Reader(Pane(height=height, history_limit=limit))


# --- generated output -----------------------------------------------------------------------

# A fragment: ("serial", words, newlines) is a row numbered afresh, so never repeated, and
# ("lines", words, n) n such rows; ("blank", "", n) a run of blank rows; ("repeat", text, n)
# the same row n times (some with trailing spaces, which tmux trims); ("prompt", "", 0) a
# "$ " on the cursor row.
Fragment = tuple[str, str, int]
serial = st.one_of(
    st.tuples(st.just("serial"), st.text(alphabet="ab ", max_size=12), st.integers(0, 3)),
    st.tuples(st.just("lines"), st.text(alphabet="ab ", max_size=12), st.integers(1, 20)),
)
fragment = st.one_of(
    serial,
    st.tuples(st.just("blank"), st.just(""), st.integers(1, 25)),
    st.tuples(st.just("repeat"), st.sampled_from(["y", "==", "y  "]), st.integers(1, 25)),
    st.tuples(st.just("prompt"), st.just(""), st.just(0)),
)
geometry = st.tuples(st.integers(5, 10), st.integers(30, 60))


@dataclass
class Step:
    """Output before a read: fragments, maybe a clear of some kind, more fragments, and
    fragments that arrive before the n-th tmux invocation of the read itself."""

    before: list[Fragment]
    clear: str | None
    after: list[Fragment]
    during: list[tuple[int, Fragment]]


@st.composite
def steps(draw: st.DrawFn, *, plain: bool = False) -> Step:
    pieces = serial if plain else fragment
    clear = None if plain else draw(st.sampled_from([None] * 6 + ["clear", "history", "ctrl-l"]))
    after = pieces
    return Step(
        before=draw(st.lists(pieces, max_size=6)),
        clear=clear,
        after=draw(st.lists(after, max_size=6)),
        during=draw(st.lists(st.tuples(st.integers(0, 14), after), max_size=4)),
    )


def kept_history(pane: Pane, request: CaptureRequest) -> bool:
    """Whether the history looks as the request remembers it (see the read script)."""
    if pane.hsize < request.history_size:
        return False
    if request.cursor > pane.cursor:
        return True
    rows = [(request.deep_top, request.deep)] if request.deep_top >= 0 else []
    rows += list(enumerate(request.anchor, request.anchor_top))
    return all(pane.row(a) == row for a, row in rows if a < request.history_size)


class Writer:
    """Writes fragments with fresh serial numbers, at most ``budget`` rows per read, so
    that tmux never drops the rows a read looks for (its anchor is at most limit // 4)."""

    def __init__(self, budget: int) -> None:
        self.serial = 0
        self.budget = budget
        self.rows = 0

    def write(self, pane: Pane, piece: Fragment) -> None:
        kind, text, count = piece
        count = min(count, self.budget - self.rows)
        self.rows += count
        if kind == "serial":
            self.serial += 1
            pane.write(f"<{self.serial}>{text}" + "\n" * count)
        elif kind == "lines":
            self.serial += 1
            pane.write("".join(f"<{self.serial}.{i}>{text}\n" for i in range(count)))
        elif kind == "prompt":
            pane.write("$ ")
        else:
            pane.write((text + "\n") * count)

    def step(self, pane: Pane, step: Step) -> Callable[[int], None]:
        """Write the step's output; return what writes the rest during the read."""
        self.rows = 0
        for piece in step.before:
            self.write(pane, piece)
        if step.clear == "clear":
            pane.write("clear\n")
            pane.clear()
            self.rows = 0
        elif step.clear == "history":
            pane.clear_history()
        elif step.clear == "ctrl-l":
            if not pane.transcript[-1]:
                pane.write("$ ")
            pane.clear_screen()
        for piece in step.after:
            self.write(pane, piece)

        def between(call: int) -> None:
            for at, piece in step.during:
                if at == call:
                    self.write(pane, piece)

        return between


# --- the invariant --------------------------------------------------------------------------


@settings(max_examples=150)
@given(geometry, st.lists(steps(), min_size=1, max_size=8))
def test_reads_are_exact_or_say_they_show_the_screen(
    dims: tuple[int, int], steps_: list[Step]
) -> None:
    height, limit = dims
    reader = open_reader(height, limit)
    try:
        writer = Writer(limit // 2)
        reader.pane.write("start\n$ ")  # see Writer.step
        assert reader.read().kind == "screen"
        for step in steps_:
            between = writer.step(reader.pane, step)
            blind, request = reader.blind, reader.tracker.request()
            increment = reader.read(between, reset=step.clear in ("clear", "history"))
            if step.clear == "clear" and reader.blind == blind:
                # Every row since the clear is still held, and all of them are shown, unless
                # the history did not shrink and the remembered history rows all look
                # unchanged (repeated or blank rows): then the rows from the old screen's
                # top, where a rewrite of the screen may have begun.
                old = request.history_size
                start = old if kept_history(reader.pane, request) else 0
                assert (increment.kind, reader.shown_from) == ("screen", start)
            event(f"read: {increment.kind}")
        event(f"history trimmed: {reader.pane.base > 0}")
        event(f"a reset the pane gave no sign of: {reader.blind > 0}")
    finally:
        reader.close()


@settings(max_examples=60)
@given(geometry, st.lists(steps(plain=True), min_size=1, max_size=8))
def test_unique_rows_are_always_read_as_new_even_while_output_arrives(
    dims: tuple[int, int], steps_: list[Step]
) -> None:
    """With at most MAX_ATTEMPTS - 1 arrivals during a read, one attempt sees a still pane."""
    height, limit = dims
    reader = open_reader(height, limit)
    try:
        writer = Writer(limit // 2)
        reader.read()
        for step in steps_:
            assert len(step.during) < MAX_ATTEMPTS
            assert reader.read(writer.step(reader.pane, step)).kind == "new"
        event(f"history trimmed: {reader.pane.base > 0}")
    finally:
        reader.close()


@settings(max_examples=40)
@given(
    st.integers(30, 60),
    st.integers(5, 10),
    st.lists(st.integers(0, 40), min_size=3, max_size=30),
    st.integers(1, 3),
)
def test_numbered_rows_between_blank_runs_are_each_read_once(
    limit: int, height: int, runs: list[int], per_read: int
) -> None:
    """The reported case: blank rows above the cursor and trims between reads.

    Runs longer than the anchor may make a read fall back to the screen; a ``new`` read
    must still be exact (Reader), and with runs shorter than the anchor none may fall back.
    """
    reader = open_reader(height, limit)
    try:
        reader.read()
        rows = 0
        for n, wanted in enumerate(runs):
            run = min(wanted, limit // 2 - 1)
            if rows + run + 1 > limit // 2 or n % per_read == 0:
                reader.read()  # at most half a history between reads (see Writer)
                rows = 0
            reader.pane.write(f"line {n}\n" + "\n" * run)
            rows += run + 1
        reader.read()
        if max(runs) < limit // 4 - 1:
            assert reader.kinds[1:] == ["new"] * (len(reader.kinds) - 1)
        event(f"screens: {reader.kinds.count('screen') - 1 > 0}")
    finally:
        reader.close()


SHELLS = [
    pytest.param(shell, marks=pytest.mark.skipif(not shutil.which(shell[0]), reason="absent"))
    for shell in [("bash", "--posix"), ("busybox", "sh"), ("dash",)]
]


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=15)
@given(geometry, st.lists(steps(), min_size=1, max_size=6))
def test_other_shells_read_the_same(
    shell: tuple[str, ...], dims: tuple[int, int], steps_: list[Step]
) -> None:
    """Images bring bash, busybox ash or dash as sh; the script must mean the same in each."""
    height, limit = dims
    panes = [Pane(height=height, history_limit=limit) for _ in range(2)]
    readers = [Reader(panes[0], shell=shell), Reader(panes[1])]
    try:
        writers = [Writer(limit // 2), Writer(limit // 2)]
        for reader in readers:
            reader.pane.write("start\n$ ")
        assert readers[0].read() == readers[1].read()
        for step in steps_:
            got = [
                r.read(w.step(r.pane, step), reset=step.clear in ("clear", "history"))
                for r, w in zip(readers, writers, strict=True)
            ]
            assert got[0] == got[1]
    finally:
        for reader in readers:
            reader.close()
