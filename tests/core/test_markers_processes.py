"""What the wrapper does with the command's processes: timeouts, survivors, signals, the PTY.

Run with real shells, and under a real PTY the way the SSM agent runs a command (issue 10,
item 13: the wrapper itself stops a command at its timeout, whatever the transport does).
Sleeps that the tests start have odd lengths so that they can be found in ``/proc``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _shells import GUARD_S, SHELLS, alive, gone, processes_with_argv, run_in_pty, run_shell

from ecs_sandbox_core._markers import (
    ExecOutcome,
    ExecStatus,
    exec_script,
    parse_exec_output,
    wrap_command,
)

NONCE = "00112233445566778899aabbccddeeff"
ALL_SHELLS = sorted(SHELLS)


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids of processes a test leaves running on purpose; killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def outcome_of(
    command: str, *, binary: bool = False, shell: str = "dash", timeout_s: float | None = None
) -> ExecOutcome:
    script = exec_script(command, nonce=NONCE, binary=binary, timeout_s=timeout_s)
    return parse_exec_output(run_shell(script, shell), nonce=NONCE, binary=binary)


# --- timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_a_timeout_stops_the_whole_process_group(shell: str, binary: bool) -> None:
    # A background job, a child that ignores SIGTERM, and the command itself.
    command = (
        "sleep 987601 & echo $!; sh -c 'trap \"\" TERM; echo $$; exec sleep 987602' & "
        "sleep 0.5; echo started; sleep 987603"
    )
    outcome = outcome_of(command, binary=binary, shell=shell, timeout_s=1)
    assert outcome.status is ExecStatus.TIMED_OUT, outcome
    assert outcome.exit_code is None
    lines = outcome.output.split(b"\n")
    assert b"started" in lines
    for pid in (int(lines[0]), int(lines[1])):
        assert gone(pid)
    assert processes_with_argv(["sleep", "987603"]) == []


@pytest.mark.parametrize("binary", [False, True])
def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(binary: bool) -> None:
    outcome = outcome_of("trap '' TERM; echo $$; sleep 987604", binary=binary, timeout_s=1)
    assert outcome.status is ExecStatus.TIMED_OUT
    assert gone(int(outcome.output.split(b"\n")[0]))


@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_the_timer_leaves_nothing_behind(shell: str) -> None:
    # Stopped in its first second, and later (its second sleep is then timeout - 1 s).
    for command in ("exit 3", "sleep 1.2; exit 3"):
        proc = subprocess.run(
            [*SHELLS[shell], "-c", exec_script(command, nonce=NONCE, timeout_s=587)],
            capture_output=True,
            timeout=GUARD_S,
            check=False,
        )
        assert parse_exec_output(proc.stdout, nonce=NONCE) == ExecOutcome(
            ExecStatus.COMPLETED, 3, b""
        )
        assert processes_with_argv(["sleep", "586"]) == []


@pytest.mark.parametrize("kill", ["wrapper", "group"])
def test_the_timer_outlives_the_transport(kill: str, started: list[int]) -> None:
    # Ending an ECS Exec session SIGKILLs the wrapper alone (the command ran on for ever,
    # issue 10 item 13); a local transport kills its whole process group. Either way the
    # timer, in a session of its own, still stops the command at its timeout.
    command = "echo $$; sleep 2.5; echo ready; exec sleep 987605"
    line = wrap_command(command, nonce=NONCE, timeout_s=4)
    proc = subprocess.Popen(
        shlex.split(line), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    seen = b""
    while b"ready\n" not in seen:  # the timer has had its first second: it knows the command
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, seen
        seen += chunk
    command_pid = int(seen.split(b">>\n", 1)[1].split(b"\n")[0])
    started.append(command_pid)
    if kill == "wrapper":
        os.kill(proc.pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert alive(command_pid)  # the transport is gone, the command is not
    # The command holds the pipe: its end of file is the command's end.
    while os.read(proc.stdout.fileno(), 4096):
        pass
    proc.stdout.close()
    assert gone(command_pid)


# --- what the command leaves behind ---------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_the_process_group_is_hung_up_nohup_and_setsid_survive(
    shell: str, binary: bool, started: list[int]
) -> None:
    # As a terminal's hang-up would: background jobs end with the command, whether or not
    # they hold its output; nohup-ed ones survive (even forked just before the end), and so
    # do processes in sessions of their own (they must let go of the output themselves).
    command = (
        "sleep 987606 & echo $!; "
        "sleep 987607 >/dev/null 2>&1 & echo $!; "
        "nohup sleep 987608 >/dev/null 2>&1 & echo $!; "
        "setsid sleep 987609 >/dev/null 2>&1 & echo $!"
    )
    outcome = outcome_of(command, binary=binary, shell=shell)
    assert outcome.status is ExecStatus.COMPLETED
    pids = [int(pid) for pid in outcome.output.split()]
    started.extend(pids)
    assert [gone(pid) for pid in pids[:2]] == [True, True]
    assert [alive(pid) for pid in pids[2:]] == [True, True]


@pytest.mark.parametrize("timeout_s", [None, 30.0])
@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_keep_background_leaves_what_the_command_started_running(
    shell: str, timeout_s: float | None, started: list[int]
) -> None:
    # docker exec's semantics (inspect's sandbox tools start a server this way): nothing
    # is hung up when the command ends, with or without a timer.
    command = (
        "sleep 987616 >/dev/null 2>&1 & echo $!; sh -c 'sleep 987617' >/dev/null 2>&1 & echo $!"
    )
    script = exec_script(command, nonce=NONCE, timeout_s=timeout_s, keep_background=True)
    outcome = parse_exec_output(run_shell(script, shell), nonce=NONCE)
    assert outcome.status is ExecStatus.COMPLETED and outcome.exit_code == 0
    pids = [int(pid) for pid in outcome.output.split()]
    started.extend(pids)
    time.sleep(0.5)  # past the hang-up's 0.1 s delay, had there been one
    assert [alive(pid) for pid in pids] == [True, True]


def test_keep_background_still_stops_everything_at_a_timeout() -> None:
    script = exec_script(
        "sleep 987618 & echo $!; sleep 987619", nonce=NONCE, timeout_s=1, keep_background=True
    )
    outcome = parse_exec_output(run_shell(script, "dash"), nonce=NONCE)
    assert outcome.status is ExecStatus.TIMED_OUT
    assert gone(int(outcome.output.split()[0]))
    assert processes_with_argv(["sleep", "987619"]) == []


def test_the_command_runs_in_a_session_of_its_own_with_sigint_and_sigquit_as_usual() -> None:
    # In the foreground, not as an asynchronous list (which would ignore SIGINT and SIGQUIT
    # for good); in its own session, so that its process group can be stopped as a whole.
    report = (
        'read -r l </proc/self/stat; set -- ${l##*") "}; echo $4; grep SigIgn /proc/self/status'
    )
    baseline = subprocess.run(["sh", "-c", report], capture_output=True, check=True).stdout
    outcome = outcome_of(f"echo $$; exec sh -c {shlex.quote(report)}")
    pid, session, ignored = outcome.output.decode().splitlines()
    assert session == pid
    assert ignored == baseline.decode().splitlines()[1]
    assert int(ignored.split()[1], 16) & (1 << (signal.SIGINT - 1) | 1 << (signal.SIGQUIT - 1)) == 0


def test_shell_text_too_long_for_one_argument_runs_exactly(tmp_path: Path) -> None:
    # Over Linux's 128 KiB per argument, the text travels as a quoted here-document; lines
    # that look like its delimiter, parentheses and quotes must not end or break it.
    body = "ECSX_END\nECSX_END_\n) ' \" `\n\\\n$HOME\n"
    big = shlex.quote("x" * 150_000)
    text = "cat <<'EOF'\n" + body + "EOF\nprintf '%s' " + big + "\nexit 5\\\n"
    for binary in (False, True):
        path = tmp_path / f"long-{binary}.sh"
        path.write_text(exec_script(text, nonce=NONCE, binary=binary, timeout_s=600))
        proc = subprocess.run(["sh", str(path)], capture_output=True, timeout=GUARD_S, check=False)
        assert parse_exec_output(proc.stdout, nonce=NONCE, binary=binary) == ExecOutcome(
            ExecStatus.COMPLETED, 5, body.encode() + b"x" * 150_000
        )


# --- under a PTY, as the SSM agent runs it --------------------------------------------------


def in_pty(
    command: str, *, binary: bool = False, cwd: Path | None = None, timeout_s: float | None = None
) -> ExecOutcome:
    line = wrap_command(command, nonce=NONCE, binary=binary, timeout_s=timeout_s)
    stream = run_in_pty(shlex.split(line), cwd=cwd)
    return parse_exec_output(stream, nonce=NONCE, binary=binary, pty=True)


@pytest.mark.parametrize("binary", [False, True])
def test_exact_output_and_exit_code_through_a_pty(binary: bool) -> None:
    tag = f"<<ecsx-{NONCE}:"
    text = f"a\nb\r\n\n{tag}end:0>>\n{tag}end:0:00000000-0000-0000-0000-000000000000>>"
    outcome = in_pty(f"printf '%s' {shlex.quote(text)}; exit 9", binary=binary)
    assert outcome == ExecOutcome(ExecStatus.COMPLETED, 9, text.encode())


def test_background_jobs_do_not_hold_the_session_open(tmp_path: Path, started: list[int]) -> None:
    # run_in_pty returns only when nothing holds the terminal any more. nohup, finding a
    # terminal, sends its output to nohup.out and survives.
    outcome = in_pty("sleep 987610 & echo $!; nohup sleep 987611 & echo $!", cwd=tmp_path)
    assert outcome.status is ExecStatus.COMPLETED
    # (nohup may say where its output goes.)
    pids = [int(word) for word in outcome.output.split() if word.isdigit()]
    started.extend(pids)
    assert gone(pids[0])
    assert alive(pids[1])


def test_a_timeout_through_a_pty() -> None:
    outcome = in_pty("sleep 987612 & echo $!; sleep 987613", timeout_s=1)
    assert outcome.status is ExecStatus.TIMED_OUT
    assert gone(int(outcome.output.split()[0]))
    assert processes_with_argv(["sleep", "987613"]) == []


def test_the_command_has_no_controlling_terminal() -> None:
    # Its own session: a program that asks the terminal for a password fails at once
    # instead of waiting for input that never comes.
    outcome = in_pty("if (: </dev/tty) 2>/dev/null; then echo tty; else echo none; fi")
    assert outcome == ExecOutcome(ExecStatus.COMPLETED, 0, b"none\n")


def test_a_command_whose_wrapper_is_killed_is_stopped_before_its_timeout() -> None:
    """A cancelled exec: the session's process (the wrapper) dies, and may stay a zombie (a
    task's pid 1 need not reap); the command must not run on until its timeout."""
    marker = f"sleep 61.{os.getpid()}"
    script = exec_script(f"exec {marker}", nonce="ab" * 16, timeout_s=600)
    wrapper = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not _pids_running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pids_running(marker), "the command never started"
        time.sleep(1.2)  # the timer looks the command up after its first second
        os.kill(wrapper.pid, signal.SIGKILL)  # not reaped yet: a zombie, as under pid 1
        deadline = time.monotonic() + 10  # a hang guard, not a timing assertion
        while _pids_running(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pids_running(marker), "the command outlived its killed wrapper"
    finally:
        wrapper.wait()
        for pid in _pids_running(marker):
            os.kill(pid, signal.SIGKILL)


def _pids_running(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(") ", 1)[1].split()[0]
        except OSError:
            continue
        if needle.encode() in b" ".join(argv) and state != "Z":
            found.append(int(entry))
    return found
