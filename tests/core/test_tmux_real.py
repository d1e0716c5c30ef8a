"""The session scripts against a real tmux server on a private socket, run by /bin/sh.

Each test gets its own server (``TMUX_TMPDIR`` points at a fresh directory) that is killed
at teardown. The scripts call plain ``tmux``, as they do in the sandbox.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ecs_sandbox_core._pane import Increment, PaneTracker
from ecs_sandbox_core._tmux import (
    alive_script,
    capture_script,
    incremental_script,
    parse_send,
    parse_start,
    plan_keys,
    send_script,
    start_script,
)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

T = TypeVar("T")


class Server:
    """A private tmux server: scripts run with ``sh -c`` in its environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {"TMUX_TMPDIR": str(root), "PATH": os.environ["PATH"], "HOME": str(root)}

    def sh(
        self, script: str, *, timeout: float = 60, path: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.env if path is None else {**self.env, "PATH": path}
        return subprocess.run(
            ["/bin/sh", "-c", script],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return proc.stdout

    def display(self, session: str, fmt: str) -> str:
        return self.tmux("display", "-p", "-t", f"={session}:", fmt).strip()


@pytest.fixture
def server() -> Iterator[Server]:
    # A short directory: the socket path must fit in a sockaddr_un.
    root = Path(tempfile.mkdtemp(prefix="tmx"))
    srv = Server(root)
    try:
        yield srv
    finally:
        subprocess.run(
            ["tmux", "kill-server"], env=srv.env, capture_output=True, check=False, timeout=30
        )
        shutil.rmtree(root, ignore_errors=True)


def poll(check: Callable[[], T | None], *, what: str, deadline_s: float = 10.0) -> T:
    """Poll a real tmux until ``check`` returns a value, within a bounded deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def channel() -> str:
    return "ecs-sbx-" + secrets.token_hex(8)


# --- (a) start ----------------------------------------------------------------------------


def test_start_creates_the_session_with_its_history_limit(server: Server) -> None:
    """Defect 6: the limit must apply to the session's first pane."""
    script = start_script("s1", width=90, height=20, history_limit=5000)
    proc = server.sh(script)
    assert proc.returncode == 0, proc.stderr
    info = parse_start(proc.stdout)
    assert info.created
    assert info.version is not None
    assert info.raw_version == server.tmux("-V").strip()
    assert server.display("s1", "#{history_limit} #{pane_width} #{pane_height}") == "5000 90 20"
    again = server.sh(script)
    assert again.returncode == 0, again.stderr
    assert not parse_start(again.stdout).created
    assert server.tmux("list-sessions", "-F", "#{session_name}") == "s1\n"


def test_start_matches_the_session_name_exactly(server: Server) -> None:
    assert parse_start(server.sh(start_script("main-2")).stdout).created
    # "main" is a prefix of "main-2": without '=' tmux would say it exists.
    assert parse_start(server.sh(start_script("main")).stdout).created
    assert server.sh(alive_script("main")).stdout == "1\n"
    assert server.sh(alive_script("mai")).stdout == "0\n"


def test_capture_script_reads_the_screen_and_the_scrollback(server: Server) -> None:
    server.tmux("new-session", "-d", "-x", "80", "-y", "5", "-s", "c", "sleep 100000")
    tty = server.display("c", "#{pane_tty}")
    with open(tty, "w") as out:
        out.write("".join(f"row {i}\n" for i in range(12)) + "end")

    def screen() -> str | None:
        out = server.sh(capture_script("c")).stdout
        return out if "end" in out else None

    assert poll(screen, what="the rows to show") == "row 8\nrow 9\nrow 10\nrow 11\nend\n"
    entire = server.sh(capture_script("c", entire=True)).stdout
    assert entire == "".join(f"row {i}\n" for i in range(12)) + "end\n"


# --- (b) incremental reads ------------------------------------------------------------------

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
        plan = plan_keys(command + "\n", block=True, channel=channel())
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


# --- (c) sending keys to a real shell -------------------------------------------------------


@pytest.fixture
def shell(server: Server) -> str:
    """A session running the default shell; returns its name."""
    proc = server.sh(start_script("sh1", width=120, height=30, history_limit=5000))
    assert proc.returncode == 0, proc.stderr
    return "sh1"


def send(
    server: Server,
    session: str,
    keys: str | list[str],
    *,
    block: bool = False,
    wait_timeout_s: float = 20,
    path: str | None = None,
) -> tuple[str, float]:
    plan = plan_keys(keys, block=block, channel=channel())
    started = time.monotonic()
    proc = server.sh(send_script(session, plan, wait_timeout_s=wait_timeout_s), path=path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, elapsed


def test_a_blocking_send_returns_when_the_command_finishes(server: Server, shell: str) -> None:
    out, elapsed = send(server, shell, ["echo hi", "Enter"], block=True)
    assert out == "S=0\nW=0\n"
    assert elapsed < 5
    out, elapsed = send(server, shell, "sleep 1; echo slept\n", block=True)
    assert out == "S=0\nW=0\n"
    assert 0.9 < elapsed < 6
    assert "\nslept\n" in server.sh(capture_script(shell)).stdout


def test_a_blocking_send_times_out_with_124(server: Server, shell: str) -> None:
    out, elapsed = send(server, shell, ["sleep 5", "Enter"], block=True, wait_timeout_s=1)
    status = parse_send(out)
    assert (status.typed, status.waited, status.timed_out) == (True, True, True)
    assert elapsed < 4


def test_wait_without_the_timeout_command(server: Server, shell: str) -> None:
    """The fallback bounds the wait itself and must not hold the script's output open."""
    bin_dir = server.root / "bin"
    bin_dir.mkdir()
    for tool in ("tmux", "sleep"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    path = str(bin_dir)
    assert server.sh("command -v timeout || echo none", path=path).stdout == "none\n"
    out, elapsed = send(server, shell, "true\n", block=True, wait_timeout_s=20, path=path)
    assert out == "S=0\nW=0\n"
    assert elapsed < 5
    out, elapsed = send(server, shell, "sleep 30\n", block=True, wait_timeout_s=1, path=path)
    assert out == "S=0\nW=124\n"
    assert elapsed < 5


def file_with(server: Server, path: Path, size: int) -> bytes:
    def check() -> bytes | None:
        data = path.read_bytes() if path.exists() else b""
        return data if len(data) >= size else None

    return poll(check, what=f"{path.name} to reach {size} bytes", deadline_s=30)


def test_a_large_input_is_pasted_whole_and_in_order(server: Server, shell: str) -> None:
    target = server.root / "big.txt"
    lines = "".join(f"{i:06d} the quick brown fox\n" for i in range(4000))
    assert len(lines) > 100_000
    out, elapsed = send(server, shell, [f"cat > {target}", "Enter", lines, "C-d"])
    assert out == "S=0\nW=-\n"
    assert elapsed < 10
    assert file_with(server, target, len(lines)) == lines.encode()
    out, _ = send(server, shell, "echo after\n", block=True)
    assert out == "S=0\nW=0\n"
    assert target.read_bytes() == lines.encode()


def test_keys_are_typed_exactly(server: Server, shell: str) -> None:
    target = server.root / "typed.txt"
    text = (
        'it\'s "quoted" $(whoami) `id` ${HOME} $$ \\n \\ ; & | * ? ~ # !\n'
        "-n leading dash\n"
        "non-ASCII: é ü 中文 😀\n"
        "percent %s %d and a tab-free line\n"
    )
    keys = [f"cat > {target}", "Enter", text, "C-d"]
    out, _ = send(server, shell, keys)
    assert out == "S=0\nW=-\n"
    assert file_with(server, target, len(text.encode())) == text.encode()
    out, _ = send(server, shell, ["true", "Enter"], block=True)
    assert out == "S=0\nW=0\n"
    assert target.read_bytes() == text.encode()


def test_send_and_read_in_one_script(server: Server, shell: str) -> None:
    tracker = PaneTracker()
    proc = server.sh(incremental_script(shell, tracker.request()))
    tracker.feed(proc.stdout)
    plan = plan_keys("printf 'a\\nb\\n'\n", block=True, channel=channel())
    proc = server.sh(send_script(shell, plan, wait_timeout_s=10, read=tracker.request()))
    status = parse_send(proc.stdout)
    assert (status.typed, status.timed_out) == (True, False)
    increment = tracker.feed(status.rest)
    assert increment.kind == "new"
    assert f"printf 'a\\nb\\n'; tmux wait -S {plan.wait_channel}\na\nb\n" in increment.text


def test_sending_to_a_missing_session_fails_the_typing(server: Server, shell: str) -> None:
    out, _ = send(server, "nosuch", ["echo hi", "Enter"], block=True)
    status = parse_send(out)
    assert not status.typed
    assert not status.waited
