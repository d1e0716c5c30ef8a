"""The session scripts against a real tmux server on a private socket, run by /bin/sh.

Each test gets its own server (``TMUX_TMPDIR`` points at a fresh directory) that is killed
at teardown. The scripts call plain ``tmux``, as they do in the sandbox. Incremental pane
reads against a real tmux are in ``test_pane_real.py``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _tmux_server import Server, poll, private_server

from ecs_sandbox_core._pane import PaneTracker
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


@pytest.fixture
def server() -> Iterator[Server]:
    with private_server() as srv:
        yield srv


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
    plan = plan_keys(keys, block=block)
    started = time.monotonic()
    proc = server.sh(send_script(session, plan, wait_timeout_s=wait_timeout_s), path=path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, elapsed


def test_a_blocking_send_returns_when_the_command_finishes(server: Server, shell: str) -> None:
    out, elapsed = send(server, shell, ["echo hi", "Enter"], block=True)
    assert out.startswith("S=0\nW=0\nT=")
    assert elapsed < 5
    out, elapsed = send(server, shell, "sleep 1; echo slept\n", block=True)
    assert out.startswith("S=0\nW=0\nT=")
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
    for tool in ("tmux", "sleep", "date"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    path = str(bin_dir)
    assert server.sh("command -v timeout || echo none", path=path).stdout == "none\n"
    out, elapsed = send(server, shell, "true\n", block=True, wait_timeout_s=20, path=path)
    assert out.startswith("S=0\nW=0\nT=")
    assert elapsed < 5
    out, elapsed = send(server, shell, "sleep 30\n", block=True, wait_timeout_s=1, path=path)
    assert out.startswith("S=0\nW=124\nT=")
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
    assert out.startswith("S=0\nW=-\nT=")
    assert elapsed < 10
    assert file_with(server, target, len(lines)) == lines.encode()
    out, _ = send(server, shell, "echo after\n", block=True)
    assert out.startswith("S=0\nW=0\nT=")
    assert target.read_bytes() == lines.encode()


def test_keys_are_typed_exactly(server: Server, shell: str) -> None:
    target = server.root / "typed.txt"
    text = (
        'it\'s "quoted" $(whoami) `id` ${HOME} $$ \\n \\ ; & | * ? ~ # !\n'
        "ends in a semicolon;\n"
        "find . -exec rm {} \\;\n"
        ";\n"
        "-n leading dash\n"
        "non-ASCII: é ü 中文 😀\n"
        "percent %s %d and a tab-free line\n"
    )
    keys = [f"cat > {target}", "Enter", text, "C-d"]
    out, _ = send(server, shell, keys)
    assert out.startswith("S=0\nW=-\nT=")
    assert file_with(server, target, len(text.encode())) == text.encode()
    out, _ = send(server, shell, ["true", "Enter"], block=True)
    assert out.startswith("S=0\nW=0\nT=")
    assert target.read_bytes() == text.encode()


def test_send_and_read_in_one_script(server: Server, shell: str) -> None:
    tracker = PaneTracker()
    proc = server.sh(incremental_script(shell, tracker.request()))
    tracker.feed(proc.stdout)
    plan = plan_keys("printf 'a\\nb\\n'\n", block=True)
    proc = server.sh(send_script(shell, plan, wait_timeout_s=10, read=tracker.request()))
    status = parse_send(proc.stdout)
    assert (status.typed, status.timed_out) == (True, False)
    increment = tracker.feed(status.rest)
    assert increment.kind == "new"
    assert "printf 'a\\nb\\n'\na\nb\n" in increment.text


def test_sending_to_a_missing_session_fails_the_typing(server: Server, shell: str) -> None:
    out, _ = send(server, "nosuch", ["echo hi", "Enter"], block=True)
    status = parse_send(out)
    assert not status.typed
    assert not status.waited


def test_a_read_after_a_look_stays_exact_while_output_arrives(server: Server, shell: str) -> None:
    """A send's read starts from the geometry its look saw (no look of its own); output
    arriving after the look makes that out of date, which the read must notice: every line
    comes exactly once, as new output."""
    tracker = PaneTracker()
    tracker.feed(server.sh(incremental_script(shell, tracker.request())).stdout)
    seen = ""
    for i in range(12):
        keys = f"for j in 1 2 3; do echo out{i}-$j; sleep 0.01; done\n"
        proc = server.sh(
            send_script(shell, plan_keys(keys), wait_timeout_s=10, read=tracker.request())
        )
        increment = tracker.feed(parse_send(proc.stdout).rest)
        assert increment.kind == "new"
        seen += increment.text
    plan = plan_keys("true\n", block=True)
    proc = server.sh(send_script(shell, plan, wait_timeout_s=10, read=tracker.request()))
    increment = tracker.feed(parse_send(proc.stdout).rest)
    assert increment.kind == "new"
    seen += increment.text
    rows = seen.splitlines()
    for i in range(12):
        for j in (1, 2, 3):
            assert rows.count(f"out{i}-{j}") == 1


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_an_agent_step_forks_only_the_programs_it_runs(server: Server, shell: str) -> None:
    """Every process a step script forks runs a program (tmux, mostly): no subshell of its
    own around one (``$(tmux ...; echo .)``) and no ``date`` for the clock."""
    tracker = PaneTracker()
    tracker.feed(server.sh(incremental_script(shell, tracker.request())).stdout)
    for n in range(3):
        plan = plan_keys(f"echo $(({n} * {n} + 1))\n", block=True)
        script = send_script(shell, plan, wait_timeout_s=10, read=tracker.request())
        trace = server.root / f"trace.{n}"
        proc = server.sh(
            f"exec strace -f -qq -e trace=fork,vfork,clone,clone3,execve -o {trace} sh -c "
            + shlex.quote(script)
        )
        if proc.returncode != 0 and "ptrace" in proc.stderr:
            pytest.skip("ptrace is not permitted here")
        status = parse_send(proc.stdout)
        assert (status.typed, status.timed_out) == (True, False)
        assert str(n * n + 1) in tracker.feed(status.rest).text.splitlines()
        lines = trace.read_text().splitlines()
        forks = [line for line in lines if re.match(r"\d+ +(v?fork|clone3?)\(", line)]
        runs = {line.split()[0]: line for line in lines if " execve(" in line}
        runs.pop(lines[0].split()[0])  # the script's own sh
        assert not [line for line in runs.values() if "/date" in line]
        assert len(forks) == len(runs), "\n".join(lines)
