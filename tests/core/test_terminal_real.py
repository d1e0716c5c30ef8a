"""Issue 14 against a real tmux: a blocking send types nothing of its own and returns when
the command is done (or its time is up), over many command shapes and three shells.

Each shell gets a private tmux server whose default shell it is; the session is created by
``start_script`` (which installs the prompt hook) and every shape of ``_shapes`` is sent
with ``send_script``. After each shape a probe must finish and print its result, and at the
end the whole scrollback must hold every typed row and nothing the hook would have typed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _tmux_server import Server, private_server

from _shapes import DONE, HOOK_JUNK, SENT, SHAPES, TIMEOUT, Send, typed_rows
from ecs_sandbox_core._terminal import hook_channel, parse_status, prompt_command, wait_functions
from ecs_sandbox_core._tmux import (
    SendStatus,
    capture_script,
    parse_send,
    plan_keys,
    send_script,
    start_script,
    status_script,
)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SHELLS = {"bash": "/bin/bash", "dash": "/bin/dash"}
if shutil.which("busybox"):
    SHELLS["busybox"] = "busybox"


@pytest.fixture(params=sorted(SHELLS))
def shell_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    name = request.param
    with private_server() as srv:
        path = SHELLS[name]
        if name == "busybox":  # tmux's default-shell must be one executable path
            wrapper = srv.root / "bbsh"
            wrapper.write_text('#!/bin/sh\nexec busybox sh "$@"\n')
            wrapper.chmod(0o755)
            path = str(wrapper)
        srv.env["SHELL"] = path  # the shell a new tmux server runs in its panes
        yield name, srv


def send(srv: Server, item: Send) -> SendStatus:
    plan = plan_keys(item.keys, block=item.expect != SENT)
    proc = srv.sh(send_script("s", plan, wait_timeout_s=item.limit_s), timeout=item.limit_s + 60)
    assert proc.returncode == 0, proc.stderr
    return parse_send(proc.stdout)


def check(srv: Server, shape: str, item: Send) -> list[str]:
    """Send one item; return what went wrong (empty when it behaved)."""
    status = send(srv, item)
    problems = []
    where = f"{shape}: {str(item.keys)[:60]!r}"
    if not status.typed:
        return [f"{where}: not typed"]
    outcome = SENT if not status.waited else TIMEOUT if status.timed_out else DONE
    if outcome != item.expect:
        problems.append(f"{where}: {outcome}, expected {item.expect}")
    screen = srv.sh(capture_script("s", entire=True)).stdout
    # Output of a line typed ahead follows the prompt on its row ("$ ahead-2").
    rows = [row.strip() for row in screen.split("\n")]
    problems += [
        f"{where}: {want!r} not shown"
        for want in item.shows
        if not any(row == want or row.endswith(" " + want) for row in rows)
    ]
    terminal = status.terminal
    if terminal is None:
        problems.append(f"{where}: no terminal status")
    else:
        if item.exit_code is not None and terminal.exit_code != item.exit_code:
            problems.append(f"{where}: exit code {terminal.exit_code} != {item.exit_code}")
        if item.alternate is not None and terminal.alternate_screen != item.alternate:
            problems.append(f"{where}: alternate screen {terminal.alternate_screen}")
        if outcome == DONE and terminal.running:
            problems.append(f"{where}: done but {terminal.foreground} still runs")
    return problems


def test_every_shape_returns_when_done_and_types_nothing_else(
    shell_server: tuple[str, Server],
) -> None:
    shell, srv = shell_server
    proc = srv.sh(start_script("s", width=200, height=50, history_limit=20000))
    assert proc.returncode == 0, proc.stderr
    problems: list[str] = []
    count = 0
    for n, shape in enumerate(SHAPES):
        if shell not in shape.shells:
            continue
        count += 1
        typed: list[str] = []
        for item in shape.sends:
            problems += check(srv, shape.name, item)
            typed += typed_rows(item.keys)
        # What the shape typed shows as typed (`clear` wipes it; wrapped long rows and
        # non-ASCII aside, which the capture may render differently), and nothing else.
        screen = srv.sh(capture_script("s", entire=True)).stdout
        problems += [f"{shape.name}: {junk!r} shows" for junk in HOOK_JUNK if junk in screen]
        if shape.name not in ("clear", "alternate screen"):  # both hide typed rows
            problems += [
                f"{shape.name}: typed {row!r} does not show in {screen[-600:]!r}"
                for row in typed
                if len(row) < 150 and row.isascii() and row not in screen
            ]
        probe = Send(f"echo ok-$(({n}+0))\n", shows=(f"ok-{n}",))
        problems += check(srv, f"probe after {shape.name}", probe)
    assert count >= 30
    assert problems == []


def test_status_of_an_idle_and_a_busy_shell(shell_server: tuple[str, Server]) -> None:
    _, srv = shell_server
    assert srv.sh(start_script("s", width=100, height=30)).returncode == 0
    send(srv, Send("cd / && false\n"))
    idle = parse_status(srv.sh(status_script("s")).stdout.rstrip("\n"))
    assert (idle.exit_code, idle.running, idle.cwd, idle.hooked) == (1, False, "/", True)
    send(srv, Send("sleep 30\n", expect=TIMEOUT, limit_s=1))
    busy = parse_status(srv.sh(status_script("s")).stdout.rstrip("\n"))
    assert (busy.running, busy.foreground) == (True, "sleep")
    assert "running sleep" in busy.footer()


def test_a_session_already_running_keeps_its_hook(tmp_path: Path) -> None:
    with private_server() as srv:
        assert srv.sh(start_script("s")).stdout.startswith("1 ")
        assert srv.sh(start_script("s")).stdout.startswith("0 ")
        status = send(srv, Send("true\n"))
        assert (status.waited, status.timed_out) == (True, False)


def test_a_wait_without_limit_ends_when_the_shell_exits() -> None:
    with private_server() as srv:
        assert srv.sh(start_script("s")).returncode == 0
        proc = srv.sh(send_script("s", plan_keys("exit\n", block=True), wait_timeout_s=None))
        assert proc.returncode == 0, proc.stderr
        assert parse_send(proc.stdout).session_gone


def test_the_hook_wakes_only_an_armed_wait() -> None:
    """A prompt with no wait armed leaves no signal behind (tmux remembers one, a second
    cancels it, and the wait after that slept its whole second); a prompt wakes an armed
    wait and disarms it, even after a wait killed at its time limit (tmux keeps that one
    registered, and it took the next signal)."""
    with private_server() as srv:
        srv.tmux("new-session", "-d", "-s", "s", "sleep 600")  # a pane without a shell
        pane = srv.display("s", "#{pane_id}")
        channel = hook_channel("s")
        master, terminal = os.openpty()  # the hook reports when no input is pending

        def prompt() -> None:
            env = {**srv.env, "TMUX_PANE": pane, "PC": prompt_command("s")}
            subprocess.run(
                ["bash", "--norc", "-c", 'eval "$PC"'], env=env, stdin=terminal, check=True
            )

        try:
            prompt()
            assert srv.sh(f"timeout 1 tmux wait {channel}").returncode == 124
            # Waits for the next report while no state is set (as after the typing).
            srv.tmux("set", "-p", "-t", "=s:", "@ecs_st", "")
            waiter = wait_functions("=s:", "s") + "\nst=-; wc; echo $?"
            ghost = srv.sh(waiter.replace("timeout 1 ", "timeout 0.2 "))
            assert ghost.stdout == "124\n"  # killed at its limit, still registered in tmux
            armed = subprocess.Popen(
                ["/bin/sh", "-c", waiter.replace("timeout 1 ", "timeout 60 ")],
                env=srv.env, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(0.5)  # (not needed for the outcome: a late wait sees the new state)
            prompt()
            out, _ = armed.communicate(timeout=90)
            assert out == "0\n"
            assert srv.display("s", "#{@ecs_w}") == ""
        finally:
            os.close(master)
            os.close(terminal)
