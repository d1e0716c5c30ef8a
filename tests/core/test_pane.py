"""The pane tracker and its real read script, case by case, against a model tmux pane.

The generated properties are in ``test_pane_properties.py``; the script against a real
tmux is tested in ``test_pane_real.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from _pane_model import Pane, Reader
from hypothesis import given
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
from ecs_sandbox_core._tmux import incremental_script


@pytest.fixture
def make_reader() -> Iterator[Callable[[Pane], Reader]]:
    readers: list[Reader] = []

    def make(pane: Pane) -> Reader:
        readers.append(Reader(pane))
        return readers[-1]

    yield make
    for reader in readers:
        reader.close()


def open_reader(height: int, limit: int) -> Reader:
    return Reader(Pane(height=height, history_limit=limit))


def test_the_reported_case_in_the_model(make_reader: Callable[[Pane], Reader]) -> None:
    """Three commands of numbered lines separated by blank runs, tmux's default limit."""
    reader = make_reader(Pane(height=40, history_limit=2000, width=160))
    reader.pane.write("$ ")
    reader.read()
    for command in range(3):
        reader.pane.write(f"for i in ...{command}\n")
        for i in range(command * 67, command * 67 + 67):
            reader.pane.write(f"line {i}\n" + "\n" * 25)
        reader.pane.write("$ ")
        assert reader.read().kind == "new"
    assert reader.pane.base > 0  # tmux trimmed its history on the way
    assert "".join(reader.texts).count("line ") == 201


# --- what cannot be known is said -----------------------------------------------------------


def test_more_than_a_whole_history_between_reads_is_a_screen(
    make_reader: Callable[[Pane], Reader],
) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("".join(f"old {i}\n" for i in range(20)) + "$ ")
    reader.read()
    reader.pane.write("".join(f"new {i}\n" for i in range(100)) + "$ ")
    assert reader.read() == Increment("screen", "new 96\nnew 97\nnew 98\nnew 99\n$")


def test_repeated_rows_after_a_trim_are_a_screen(make_reader: Callable[[Pane], Reader]) -> None:
    """A row printed over and over matches at every shift: the read cannot know which."""
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("start\n")
    reader.read()
    reader.pane.write("y\n" * 20)
    assert reader.read().kind == "new"  # nothing dropped yet: the position is exact
    reader.pane.write("y\n" * 12)
    assert reader.read() == Increment("screen", "y\ny\ny\ny\n")
    reader.pane.write("done\n$ ")
    assert reader.read() == Increment("screen", "y\ny\ny\ndone\n$")
    reader.pane.write("ls\nz\n$ ")  # "done" is a row the anchor can be told by
    assert reader.read() == Increment("new", " ls\nz\n$")


def test_a_blank_anchor_after_a_trim_is_a_screen(make_reader: Callable[[Pane], Reader]) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("\n" * 40)
    reader.read()
    request = reader.tracker.request()
    assert request.weak
    reader.pane.write("\n" * 5 + "x")
    assert reader.read() == Increment("screen", "\n\n\n\nx")


def test_after_clear_every_row_since_is_shown(make_reader: Callable[[Pane], Reader]) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("".join(f"before {i}\n" for i in range(8)) + "$ ")
    reader.read()
    reader.pane.write("clear")
    reader.pane.write("\n")
    reader.pane.clear()
    reader.pane.write("".join(f"after {i}\n" for i in range(12)) + "$ ")  # two screens
    screen = reader.read()
    assert screen == Increment("screen", "".join(f"after {i}\n" for i in range(12)) + "$")
    reader.pane.write("ls\nx\n$ ")
    assert reader.read() == Increment("new", " ls\nx\n$")


def test_clear_history_shows_what_is_left(make_reader: Callable[[Pane], Reader]) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("".join(f"row {i}\n" for i in range(10)) + "$ ")
    reader.read()
    reader.pane.clear_history()
    assert reader.read() == Increment("screen", "row 6\nrow 7\nrow 8\nrow 9\n$")


def test_ctrl_l_scrolls_into_history_and_reads_on(make_reader: Callable[[Pane], Reader]) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("a\nb\n$ ")
    reader.read()
    reader.pane.clear_screen()
    reader.pane.write("$ ls\nc\n$ ")
    assert reader.read() == Increment("new", "\n$ ls\nc\n$")


# --- output arriving during a read ----------------------------------------------------------


@pytest.mark.parametrize("call", [1, 2, 3])
def test_output_between_the_script_s_tmux_calls_is_not_lost(
    make_reader: Callable[[Pane], Reader], call: int
) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("".join(f"a{i}\n" for i in range(40)) + "$ ")  # drops are possible
    reader.read()
    reader.pane.write("cmd\nout\n")

    def arrive(n: int) -> None:
        if n == call:
            reader.pane.write("late 1\nlate 2\n$ ")

    assert reader.read(arrive) == Increment("new", " cmd\nout\nlate 1\nlate 2\n$")
    assert reader.fake.calls > call


def test_output_during_every_attempt_ends_in_one_screen_read(
    make_reader: Callable[[Pane], Reader],
) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("a\nb\n$ ")
    reader.read()
    reader.pane.write("go\n")
    n = 0

    def stream(call: int) -> None:
        nonlocal n
        n += 1
        reader.pane.write(f"tick {n}\n")

    increment = reader.read(stream)
    assert increment.kind == "screen"
    # The last call is the single tmux command list that read the screen.
    assert reader.fake.invocations[-1][0:2] == ["display", "-p"]
    assert "capture-pane" in reader.fake.invocations[-1]


# --- the cursor row, the alternate screen ---------------------------------------------------


def test_a_growing_cursor_row_is_extended_not_repeated(
    make_reader: Callable[[Pane], Reader],
) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("$ ")
    assert reader.read() == Increment("screen", "$")
    reader.pane.write("ls")
    assert reader.read() == Increment("new", " ls")
    reader.pane.write(" -l  ")
    assert reader.read() == Increment("new", " -l")
    reader.pane.write("\nfile\n$ ")
    assert reader.read() == Increment("new", "\nfile\n$")
    assert reader.read() == Increment("new", "")


def test_blank_rows_above_the_cursor_are_kept(make_reader: Callable[[Pane], Reader]) -> None:
    reader = make_reader(Pane(height=6, history_limit=30))
    reader.pane.write("done\n\n")
    assert reader.read() == Increment("screen", "done\n\n")
    reader.pane.write("more\n\n")
    assert reader.read() == Increment("new", "more\n\n")


def test_a_rewritten_cursor_row_is_shown_on_its_own_line() -> None:
    reader = open_reader(5, 30)
    try:
        reader.pane.write("one\nprogress 10%")
        reader.read()
        reader.pane.rewrite("progress 99%")
        out = reader.fake.run(incremental_script("s", reader.tracker.request()))
        assert reader.tracker.feed(out) == Increment("new", "\nprogress 99%")
    finally:
        reader.close()


def test_alternate_screen_is_shown_without_disturbing_the_state(
    make_reader: Callable[[Pane], Reader],
) -> None:
    reader = make_reader(Pane(height=5, history_limit=30))
    reader.pane.write("a\nb\n$ ")
    assert reader.read() == Increment("screen", "a\nb\n$")
    reader.pane.write("vim\n")
    before = reader.tracker.request()
    reader.pane.alternate = ["~ editing", "~", "", "", ""]
    assert reader.read() == Increment("screen", "~ editing\n~")
    assert reader.tracker.request() == before
    reader.pane.alternate = None
    reader.pane.write("$ ")
    assert reader.read() == Increment("new", " vim\n$")


# --- the script's size ----------------------------------------------------------------------


@given(st.lists(st.text(alphabet="ab' $\\\"", max_size=160), min_size=1, max_size=300))
def test_the_read_script_stays_small(rows: list[str]) -> None:
    """It is sent inline with every read (and after every send that reads)."""
    tracker = PaneTracker()
    body = "".join(row + "\n" for row in rows[-40:])
    tracker.feed(f"1000 50000 {min(len(rows), 40) - 1} 40 160 0 f 0\n" + "\n" * 4 + body)
    assert len(incremental_script("main", tracker.request())) < 4000


# --- small pieces ---------------------------------------------------------------------------


def test_render_prefixes() -> None:
    assert Increment("new", "x\ny").render() == "New Terminal Output:\nx\ny"
    assert Increment("screen", "$").render() == "Current Terminal Screen:\n$"
    assert NEW_OUTPUT_PREFIX == "New Terminal Output:\n"
    assert SCREEN_PREFIX == "Current Terminal Screen:\n"


def test_first_request_asks_for_the_screen_only() -> None:
    assert PaneTracker().request() == CaptureRequest(first=True)


def test_request_after_a_screen() -> None:
    tracker = PaneTracker(anchor_rows=2)
    # History 10, cursor on screen row 4: the read captured rows 6..14 (four above the
    # screen's top at 10, which it does not show).
    tracker.feed("10 100 4 6 80 0 f 0\nh6\n\nh8\n\nr0\nr1\nr2\nr3\n$ x\n\n")
    request = tracker.request()
    assert (request.cursor, request.anchor_top, request.anchor) == (14, 11, ("r1", "r2", "r3"))
    assert (request.deep_top, request.deep) == (8, "h8")  # the nearest non-blank history row
    assert (request.history_size, request.history_limit, request.chunk) == (10, 100, 10)


@pytest.mark.parametrize(
    ("line", "header"),
    [
        ("0 2000 0 40 80 0 f 0", PaneHeader(0, 2000, 0, 40, 80, False, "f", 0)),
        ("120 50000 39 40 160 1 n 3", PaneHeader(120, 50000, 39, 40, 160, True, "n", 3)),
        ("7 100 2 5 80 0 s 4", PaneHeader(7, 100, 2, 5, 80, False, "s", 4)),
    ],
)
def test_parse_header(line: str, header: PaneHeader) -> None:
    assert parse_header(line) == header


@pytest.mark.parametrize(
    "line",
    ["", "0 2000 0 40 80 0 f", "0 2000 0 40 80 0 f 0 7", "0 2000 0 40 80 0 x 0",
     "0 2000 0 40 80 2 f 0", "a b c d e f g h", "tmux: no server", "0 2000 -1 40 80 0 s 0"],
)  # fmt: skip
def test_malformed_header_is_a_protocol_error(line: str) -> None:
    with pytest.raises(PaneProtocolError):
        parse_header(line)
    with pytest.raises(PaneProtocolError):
        PaneTracker().feed(line + "\nrow\n")


@pytest.mark.parametrize(
    "output",
    [
        "0 100 1 5 80 0 n 0\n",  # new rows before any screen
        "0 100 2 5 80 0 s 3\na\nb\n$\n",  # a screen starting below the cursor
        "0 100 2 5 80 0 f 0\na\nb\n",  # fewer rows than down to the cursor
    ],
)
def test_inconsistent_reads_are_protocol_errors(output: str) -> None:
    with pytest.raises(PaneProtocolError):
        PaneTracker().feed(output)


@pytest.mark.parametrize(
    "output",
    [
        "0 100 2 5 80 0 n 0\n$\nx\n$\n\n",  # one row too many
        "0 100 2 5 80 0 n 0\n",  # none
        "0 100 2 5 99 0 n 0\n$\nx\n",  # another width
        "0 100 2 5 80 0 n 1\n$\n",  # a shift past the top
    ],
)
def test_new_rows_that_do_not_fit_are_protocol_errors(output: str) -> None:
    tracker = PaneTracker()
    tracker.feed("0 100 1 5 80 0 f 0\na\n$\n")
    with pytest.raises(PaneProtocolError):
        tracker.feed(output)


# Header-like lines: numbers, or digits of other scripts and superscripts (str.isdigit()
# accepts "²", int() does not), and a kind.
number = st.one_of(
    st.integers(0, 60).map(str), st.text(st.characters(categories=["Nd", "No"]), min_size=1)
)
headers = st.tuples(
    st.lists(number, min_size=5, max_size=5), st.sampled_from("01"), st.sampled_from("nsfx"), number
).map(lambda p: " ".join([*p[0], p[1], p[2], p[3]]))


@given(st.one_of(st.text(max_size=60), headers), st.text(max_size=60))
def test_garbled_reads_are_protocol_errors_or_increments(line: str, body: str) -> None:
    """Whatever a broken shell or transport returns, feed raises nothing else."""
    tracker = PaneTracker()
    tracker.feed("0 100 1 5 80 0 f 0\na\n$\n")
    for output in (line + "\n" + body, "0 100 1 5 80 0 n 0\n" + body, line):
        with contextlib.suppress(PaneProtocolError):
            assert isinstance(tracker.feed(output), Increment)


def test_anchor_sizes_must_be_sane() -> None:
    with pytest.raises(ValueError, match="anchor_rows"):
        PaneTracker(anchor_rows=0)
    with pytest.raises(ValueError, match="anchor_rows"):
        PaneTracker(anchor_rows=8, anchor_max_rows=4)


@given(st.lists(st.text(alphabet="ab \t", max_size=5), max_size=8))
def test_split_rows_inverts_capture(rows: list[str]) -> None:
    assert split_rows("".join(row + "\n" for row in rows)) == rows
