"""Incremental pane reads against a real tmux server on a private socket, run by /bin/sh.

The read script and the tracker, with output written straight to a pane's tty (exact
rows, wide rows that wrap, trailing spaces, clears, the alternate screen, rows streaming in
during reads) and through a real shell (the case reported in issue 10).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from _tmux_server import Server, poll, private_server

from ecs_sandbox_core._pane import Increment, PaneTracker
from ecs_sandbox_core._tmux import (
    incremental_script,
    parse_send,
    plan_keys,
    send_script,
    start_script,
)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def server() -> Iterator[Server]:
    with private_server() as srv:
        yield srv


WIDTH, HEIGHT, LIMIT = 80, 10, 100


def wrapped_rows(text: str) -> list[str]:
    """The rows tmux shows for ``text`` in a WIDTH-column pane, right-trimmed."""
    rows: list[str] = []
    for line in text.split("\n"):
        chunks = [line[i : i + WIDTH] for i in range(0, len(line), WIDTH)] or [""]
        rows.extend(chunk.rstrip(" ") for chunk in chunks)
    return rows


class RealPane:
    """A pane running ``sleep`` whose tty the test writes to directly."""

    def __init__(self, server: Server, name: str = "r") -> None:
        self.server = server
        self.name = name
        server.tmux(
            "start-server", ";", "set", "-g", "history-limit", str(LIMIT), ";",
            "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-s", name,
            "sleep 100000",
        )  # fmt: skip
        assert server.display(name, "#{history_limit} #{pane_height}") == f"{LIMIT} {HEIGHT}"
        self.tty = server.display(name, "#{pane_tty}")
        self.written = ""

    def write(self, text: str) -> None:
        with open(self.tty, "w") as out:
            out.write(text)
        self.written += text

    def settled(self, rows: list[str] | None = None) -> None:
        """Wait until tmux shows ``rows`` (default: everything written) ending at the cursor."""
        rows = wrapped_rows(self.written) if rows is None else rows
        cy = min(len(rows), HEIGHT) - 1

        def shown() -> bool | None:
            cursor = int(self.server.display(self.name, "#{cursor_y}"))
            screen = self.server.tmux("capture-pane", "-p", "-t", f"={self.name}:")
            got = screen.split("\n")[: cursor + 1]
            return True if (cursor == cy and got == rows[len(rows) - cy - 1 :]) else None

        poll(shown, what="tmux to render what was written")

    def read(self, tracker: PaneTracker) -> tuple[Increment, int]:
        proc = self.server.sh(incremental_script(self.name, tracker.request()))
        assert (proc.returncode, proc.stderr) == (0, "")
        body_rows = proc.stdout.count("\n") - 1
        return tracker.feed(proc.stdout), body_rows


def random_round(rng: random.Random, serial: int, max_rows: int) -> str:
    """Lines of random words: some wider than the pane, some with trailing spaces."""
    parts: list[str] = []
    rows = 0
    while rows < max_rows - 10 and rng.random() < 0.85:
        words = " ".join(
            "".join(rng.choices("abcdefghij", k=rng.randint(1, 12)))
            for _ in range(rng.randint(0, 30))
        )
        line = f"<{serial}.{len(parts)}> {words}" + " " * rng.choice([0, 0, 1, 5, 90])
        parts.append(line + "\n" * rng.choice([0, 1, 1, 1, 2]))
        rows += len(wrapped_rows(parts[-1]))
    return "".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_screen_and_increments_are_exactly_what_was_written(server: Server, seed: int) -> None:
    rng = random.Random(seed)
    pane = RealPane(server)
    tracker = PaneTracker()
    pane.write(random_round(rng, 0, 2 * HEIGHT))
    pane.settled()
    first, _ = pane.read(tracker)
    assert first.kind == "screen"
    start = len(wrapped_rows(pane.written)) - min(len(wrapped_rows(pane.written)), HEIGHT)
    texts = [first.text]
    trims, history = 0, 0
    for serial in range(1, 30):
        before = len(wrapped_rows(pane.written))
        pane.write(random_round(rng, serial, LIMIT // 2))
        new_rows = len(wrapped_rows(pane.written)) - before
        assert new_rows <= LIMIT // 2
        pane.settled()
        increment, body_rows = pane.read(tracker)
        assert increment.kind == "new"
        assert body_rows == new_rows + 1
        texts.append(increment.text)
        assert "".join(texts) == "\n".join(wrapped_rows(pane.written)[start:])
        now = int(server.display("r", "#{history_size}"))
        trims += now < history
        history = now
    # tmux trimmed its history (by a tenth of the limit) many times on the way.
    assert trims >= 3


def test_blank_rows_and_a_growing_prompt(server: Server) -> None:
    pane = RealPane(server)
    tracker = PaneTracker()
    pane.write("done\n\n")
    pane.settled()
    assert pane.read(tracker) == (Increment("screen", "done\n\n"), HEIGHT)
    pane.write("$ ")
    pane.settled()
    pane.write("ls")
    pane.settled()
    assert pane.read(tracker) == (Increment("new", "$ ls"), 1)
    pane.write("\n\n\n\nx")
    pane.settled()
    assert pane.read(tracker) == (Increment("new", "\n\n\n\nx"), 5)


@pytest.mark.parametrize("before", [30, 3])
def test_after_clear_every_row_since_is_shown(server: Server, before: int) -> None:
    """Issue 10: after clear and more than a screenful, only the screen came back."""
    pane = RealPane(server)
    tracker = PaneTracker()
    pane.write("".join(f"before {i}\n" for i in range(before)) + "$ ")
    pane.settled()
    pane.read(tracker)
    pane.write("clear\r\n\x1b[H\x1b[2J\x1b[3J")  # what `clear` prints
    pane.written = ""
    pane.write("".join(f"after {i}\n" for i in range(25)) + "$ ")
    pane.settled()
    assert server.display("r", "#{history_size}") == "16"
    screen, _ = pane.read(tracker)
    assert screen == Increment("screen", "".join(f"after {i}\n" for i in range(25)) + "$")
    pane.write("more\n")
    pane.settled()
    assert pane.read(tracker)[0] == Increment("new", " more\n")


def test_a_blank_anchor_after_a_trim_is_not_guessed(server: Server) -> None:
    pane = RealPane(server)
    tracker = PaneTracker()
    pane.write("x\n" + "\n" * 150)
    pane.settled()
    pane.read(tracker)
    pane.write("\n" * 30 + "y")
    pane.settled()
    assert pane.read(tracker)[0] == Increment("screen", "\n" * (HEIGHT - 1) + "y")


def test_output_arriving_during_reads_is_read_exactly_once(server: Server) -> None:
    """Issue 10: a read is several tmux calls, and rows arriving between them were lost.

    A writer streams numbered rows while the test reads as fast as it can. Reads that say
    ``new`` must join into consecutive numbers from the last screen: none missing, none
    twice. (A read may show the screen when rows keep arriving during all its attempts.)
    """
    pane = RealPane(server)
    tracker = PaneTracker()
    # A row about every millisecond, in bursts as a program's output arrives.
    streamer = (
        "import sys, time\n"
        "with open(sys.argv[1], 'w') as tty:\n"
        "    for i in range(1, 2001):\n"
        "        tty.write(f'n {i}\\n')\n"
        "        if i % 8 == 0: tty.flush(); time.sleep(0.008)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", streamer, pane.tty])
    increments: list[Increment] = []
    try:
        while writer.poll() is None:
            increments.append(pane.read(tracker)[0])
    finally:
        writer.wait(30)
    pane.written = "".join(f"n {i}\n" for i in range(1, 2001))
    pane.settled()
    increments.append(pane.read(tracker)[0])
    segments: list[str] = []  # the text from each screen on
    for increment in increments:
        if increment.kind == "screen" or not segments:
            segments.append("")
        segments[-1] += increment.text
    for segment in segments:
        # The last row is the cursor row, which a row being written may not have left yet.
        numbers = [int(row.removeprefix("n ")) for row in segment.split("\n")[:-1] if row]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert segments[-1].endswith("n 2000\n")
    assert [i.kind for i in increments].count("new") > 1


def test_numbered_lines_between_blank_runs_are_each_read_once(server: Server) -> None:
    """Issue 10 (regression): blank rows above the cursor and trims between reads.

    Three commands print numbered lines separated by runs of blank lines, with tmux's
    default history; reads found the blank anchor at the wrong place and dropped most lines
    while saying "New Terminal Output" (124 of 200 here at 192ece2).
    """
    proc = server.sh(start_script("rep", width=160, height=40, history_limit=2000))
    assert proc.returncode == 0, proc.stderr
    tracker = PaneTracker()
    texts = [tracker.feed(server.sh(incremental_script("rep", tracker.request())).stdout)]
    first = 1
    for count in (67, 67, 66):
        command = f"for i in $(seq {first} {first + count - 1}); do echo line $i; "
        command += "yes '' | head -n 25; done"
        first += count
        plan = plan_keys(command + "\n", block=True)
        sent = server.sh(send_script("rep", plan, wait_timeout_s=30, read=tracker.request()))
        texts.append(tracker.feed(parse_send(sent.stdout).rest))
    assert [t.kind for t in texts[1:]] == ["new"] * 3
    assert int(server.display("rep", "#{history_size}")) > 1800  # tmux trimmed on the way
    lines = [row for t in texts for row in t.text.split("\n") if row.startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 201)]


def test_alternate_screen_leaves_the_reading_where_it_was(server: Server) -> None:
    pane = RealPane(server)
    tracker = PaneTracker()
    pane.write("one\ntwo\n$ ")
    pane.settled()
    assert pane.read(tracker)[0] == Increment("screen", "one\ntwo\n$")
    pane.write("vim\n")
    shown = pane.written
    with open(pane.tty, "w") as out:
        out.write("\x1b[?1049h\x1b[H\x1b[2Jediting\r\n~")
    poll(
        lambda: True if server.display("r", "#{alternate_on}") == "1" else None,
        what="the alternate screen",
    )
    pane.settled(["editing", "~"])
    assert pane.read(tracker)[0] == Increment("screen", "editing\n~")
    with open(pane.tty, "w") as out:
        out.write("\x1b[?1049l")
    pane.written = shown
    pane.write("$ ")
    pane.settled()
    assert pane.read(tracker)[0] == Increment("new", " vim\n$")
