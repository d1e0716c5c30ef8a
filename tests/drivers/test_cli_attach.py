"""Sandboxes that outlive a call: up, ls, exec/cp/shell by id, gc and down, with --local.

The persistent local ECS runs in the background between the calls; each test gives it a
state directory of its own (ECS_SANDBOX_LOCAL_DIR).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_proc import cli_env, console_script, processes_with, run_cli


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def local_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory; whatever local ECS a test left there is stopped afterwards."""
    directory = tmp_path / "state"
    yield directory
    state = directory / "state.json"
    if state.exists():
        pid = json.loads(state.read_text())["pid"]
        run_cli(["down", "--local", "--all"], env=cli_env(ECS_SANDBOX_LOCAL_DIR=str(directory)))
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)


def _shell(env: dict[str, str], ident: str, typed: bytes) -> tuple[int, str]:
    """`ecs-sandbox shell ID` on a terminal: type ``typed`` at the first prompt."""
    main, other = pty.openpty()
    with subprocess.Popen(
        [console_script(), "shell", "--local", ident],
        env=env,
        stdin=other,
        stdout=other,
        stderr=other,
        start_new_session=True,
    ) as proc:
        os.close(other)
        seen, sent = b"", False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: the shell and the CLI are gone
                    break
                if not chunk:
                    break
                seen += chunk
            if not sent and b"# " in seen:
                os.write(main, typed)
                sent = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    os.close(main)
    return code, seen.decode(errors="replace")


def test_the_life_of_sandboxes_across_calls(local_dir: Path, tmp_path: Path) -> None:
    env = cli_env(ECS_SANDBOX_LOCAL_DIR=str(local_dir))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), env=env)

    # Nothing runs yet: ls is empty, an id is refused without starting anything.
    assert cli("ls", "--local").stdout.splitlines()[1:] == []
    missing = cli("exec", "--local", "sbx-none", "--", "true")
    assert missing.returncode == 125
    assert "no persistent local ECS is running" in missing.stderr
    gc = cli("gc", "--local", "--older-than", "1s")
    assert (gc.returncode, gc.stderr) == (
        0,
        "ecs-sandbox: no persistent local ECS is running: nothing to collect\n",
    )
    assert not (local_dir / "state.json").exists()

    first = cli("up", "--local", "--image-template", "repo/img:{task_id}")
    assert "ignores image_template 'repo/img:{task_id}'" in first.stderr
    assert first.returncode == 0, first.stderr
    one = first.stdout.strip()
    assert "run id up-" in first.stderr
    state_file = local_dir / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    pid = json.loads(state_file.read_text())["pid"]
    two = cli("up", "--local").stdout.strip()
    assert json.loads(state_file.read_text())["pid"] == pid  # the same local ECS
    listed = cli("ls", "--local").stdout
    assert one in listed and two in listed

    # exec by id: the sandbox keeps its state between calls; codes pass through.
    assert cli("exec", "--local", one, "--", "sh", "-c", "echo kept > /tmp/f").returncode == 0
    done = cli("exec", "--local", one, "--", "sh", "-c", "cat /tmp/f; exit 4")
    assert (done.returncode, done.stdout) == (4, "kept\n")
    assert cli("exec", "--local", two, "--", "test", "-e", "/tmp/f").returncode == 1
    unknown = cli("exec", "--local", "sbx-none", "--", "true")
    assert unknown.returncode == 125 and "no running sandbox 'sbx-none'" in unknown.stderr

    # cp both ways, docker cp style.
    (tmp_path / "a.txt").write_text("alpha\n")
    assert cli("cp", "--local", str(tmp_path / "a.txt"), f"{one}:/app/b.txt").returncode == 0
    listing = cli("exec", "--local", one, "--", "sh", "-c", "test -f /app/b.txt && cat /app/b.txt")
    assert listing.stdout == "alpha\n"  # a file named b.txt, not a directory
    assert cli("cp", "--local", str(tmp_path / "a.txt"), f"{one}:/app").returncode == 0
    assert cli("exec", "--local", one, "--", "cat", "/app/a.txt").stdout == "alpha\n"
    out = tmp_path / "out.txt"
    assert cli("cp", "--local", f"{one}:/app/b.txt", str(out)).returncode == 0
    assert out.read_text() == "alpha\n"
    into = tmp_path / "into"
    into.mkdir()
    assert cli("cp", "--local", f"{one}:/app/b.txt", str(into)).returncode == 0
    assert (into / "b.txt").read_text() == "alpha\n"

    # shell by id exits with the shell's own status.
    code, seen = _shell(env, one, b"echo in-$((40 + 2)); exit 3\n")
    assert code == 3, seen
    assert "in-42" in seen

    # gc --local looks at this persistent local ECS (not a new empty one).
    run_of_two = next(line.split()[2] for line in listed.splitlines() if line.startswith(two))
    gc = cli("gc", "--local", "--run-id", run_of_two)
    assert gc.returncode == 0 and "stopped task" in gc.stdout
    assert two not in cli("ls", "--local").stdout

    # down: the local ECS stops with its last sandbox, and its state goes.
    down = cli("down", "--local", one)
    assert (down.returncode, down.stdout) == (0, f"{one}\n")
    assert "stopped the persistent local ECS" in down.stderr
    assert not state_file.exists()
    assert not _alive(pid)
    assert cli("ls", "--local").stdout.splitlines()[1:] == []


def test_down_all_stops_the_local_ecs_and_its_sandboxes(local_dir: Path) -> None:
    env = cli_env(ECS_SANDBOX_LOCAL_DIR=str(local_dir))
    assert run_cli(["up", "--local"], env=env).returncode == 0
    pid = json.loads((local_dir / "state.json").read_text())["pid"]
    done = run_cli(["down", "--all", "--local"], env=env)
    assert done.returncode == 0
    assert not _alive(pid)
    again = run_cli(["down", "--all", "--local"], env=env)
    assert again.returncode == 0 and "nothing to stop" in again.stderr


def test_sigterm_stops_the_command_but_not_a_sandbox_that_up_started(local_dir: Path) -> None:
    env = cli_env(ECS_SANDBOX_LOCAL_DIR=str(local_dir))
    ident = run_cli(["up", "--local"], env=env).stdout.strip()
    argv = [console_script(), "exec", "--local", ident, "--", "sh -c 'echo go; exec sleep 4321'"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stdout.read(2) == b"go"
        assert processes_with("sleep 4321")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while processes_with("sleep 4321") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with("sleep 4321")  # the command was stopped in the sandbox
    again = run_cli(["exec", "--local", ident, "--", "echo", "still here"], env=env)
    assert (again.returncode, again.stdout) == (0, "still here\n")
