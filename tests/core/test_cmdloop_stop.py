"""Stopping an interrupted command-loop request: the stop script against real processes under a
real PTY, and the flow's clean-up by script."""

from __future__ import annotations

import os
import pty
import secrets
import select
import shlex
import subprocess
import time
from collections.abc import Callable

import pytest
from _script import run_script

from ecs_sandbox_core._cmdloop import (
    STOP_TIMEOUT_S,
    frame_complete,
    loop_command,
    loop_round_trip,
    ready_marker,
    request_line,
    stop_command,
)
from ecs_sandbox_core._effects import (
    AcquireChannel,
    ChannelLease,
    ChannelRequest,
    Log,
    ReleaseChannel,
    Token,
    TransportResult,
)
from ecs_sandbox_core._markers import ExecStatus, exec_script, parse_exec_output

TASK = "arn:aws:ecs:us-east-1:123456789012:task/c/0123"


def _read_until(fd: int, done: Callable[[bytes], bool], timeout: float = 15.0) -> bytes:
    buffer = b""
    deadline = time.monotonic() + timeout
    while not done(buffer):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {buffer!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                buffer += os.read(fd, 65536)
            except OSError:
                break
    return buffer


def _gone(found: Callable[[], list[str]], guard_s: float = 5.0) -> list[str]:
    """``found()`` once it is empty, or what it still finds after ``guard_s`` (a hang guard)."""
    deadline = time.monotonic() + guard_s
    while (left := found()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def _matching(pattern: str, start: str = "") -> dict[int, tuple[int, str]]:
    """This machine's processes whose command line contains ``pattern`` (and begins with
    ``start``): pid -> (parent pid, command line)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    line = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{entry}/stat", "rb") as f:
                    # pid (comm) state ppid ...: comm may hold spaces, so split after it.
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if pattern in line and line.startswith(start):
                found[int(entry)] = (parent, line)
    return found


def _processes(pattern: str, start: str = "") -> list[str]:
    """Command lines of this machine's processes that contain ``pattern`` (and begin with
    ``start``)."""
    return [line for _, line in _matching(pattern, start).values()]


def _scripts(pattern: str, start: str = "") -> list[str]:
    """:func:`_processes`, without the shell's own forks: a subshell (the timer's ``sleep
    $1 &``, before it execs) has its parent's command line for a moment."""
    found = _matching(pattern, start)
    return [line for parent, line in found.values() if parent not in found]


@pytest.mark.parametrize("timer", [False, True])
def test_the_stop_script_ends_the_command_and_its_group_and_spares_the_loop(timer: bool) -> None:
    loop_nonce, nonce = secrets.token_hex(16), secrets.token_hex(16)
    # A number no other process on this machine sleeps for (the stop runs on the host here);
    # with a timer, the timeout is that many seconds and the timer's script says so.
    mark = f"{int(nonce[:6], 16) % 100000 + 100000}"
    timeout_s = float(mark) if timer else None
    timer_text = f"i={int(mark) - 1};while"  # in the timer's script (and the wrapper's)
    argv = shlex.split(loop_command(loop_nonce))
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp(argv[0], argv)
    try:
        _read_until(fd, lambda b: ready_marker(loop_nonce) in b)
        command = f"sleep {mark} & sleep {mark}; echo never"
        os.write(fd, request_line(exec_script(command, nonce=nonce, timeout_s=timeout_s)))
        deadline = time.monotonic() + 10
        while len(_processes(f"sleep {mark}")) < 3:  # the sh -c and both sleeps
            assert time.monotonic() < deadline, _processes(f"sleep {mark}")
            time.sleep(0.01)
        assert len(_scripts(timer_text, start="sh -c x= ")) == (1 if timer else 0)
        stop = subprocess.run(
            ["sh", "-c", stop_command(nonce)], capture_output=True, timeout=30, check=False
        )
        assert stop.returncode == 0, stop
        stream = _read_until(fd, lambda b: frame_complete(b, nonce=nonce))
        outcome = parse_exec_output(stream, nonce=nonce, pty=False)
        assert (outcome.status, outcome.exit_code) == (ExecStatus.COMPLETED, 137)
        assert outcome.output in (b"", b"Killed\n")  # what sh says of a killed foreground job
        # The wrapper prints its end marker just before it exits: give it that moment.
        assert _gone(lambda: _processes(f"sleep {mark}")) == []
        assert _gone(lambda: _processes(timer_text, start="sh -c x= ")) == []
        # The loop itself goes on with the next request.
        again = secrets.token_hex(16)
        os.write(fd, request_line(exec_script("echo alive", nonce=again)))
        stream = _read_until(fd, lambda b: frame_complete(b, nonce=again))
        assert parse_exec_output(stream, nonce=again, pty=False).output == b"alive\n"
    finally:
        os.close(fd)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_the_stop_script_never_holds_the_nonce_whole() -> None:
    for _ in range(50):
        nonce = secrets.token_hex(16)
        assert nonce not in stop_command(nonce)
        assert nonce not in exec_script(stop_command(nonce), nonce=secrets.token_hex(16))


# --- the flow's clean-up, by script -----------------------------------------------------------

NONCE = "cd" * 16
STOP_NONCE = "ef" * 16


TRIP: dict[str, object] = {
    "cluster": "c",
    "task_arn": TASK,
    "container": "main",
    "script": "echo hi",
    "nonce": NONCE,
    "binary": False,
    "timeout_s": 30.0,
    "open_timeout_s": 10.0,
    "max_sessions": 2,
}
OK = TransportResult(stdout=b"frame", may_have_started=True)


def trip() -> object:
    return loop_round_trip(**TRIP)  # type: ignore[arg-type]


def stop_request(lease: int) -> ChannelRequest:
    script = exec_script(stop_command(NONCE), nonce=STOP_NONCE)
    return ChannelRequest(
        lease_id=lease,
        request=request_line(script),
        nonce=STOP_NONCE,
        binary=False,
        timeout_s=STOP_TIMEOUT_S,
    )


def warned(effect: object) -> bool:
    return isinstance(effect, Log) and "could not stop" in effect.message


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), TimeoutError("driver")])
@pytest.mark.parametrize("stopped", [True, False])
def test_an_interrupted_request_is_stopped_before_its_session_is_closed(
    interruption: BaseException, stopped: bool
) -> None:
    answer = (
        OK
        if stopped
        else TransportResult(stderr=b"session ended", returncode=255, may_have_started=True)
    )
    steps: list[tuple[object, object]] = [
        (AcquireChannel(task_arn=TASK, max_sessions=2), ChannelLease(lease_id=1, fresh=False)),
        (ChannelRequest, interruption),
        (Log, None),
        (Token(nbytes=16), STOP_NONCE),
        # One more place than the pool allows: the interrupted lease is still out.
        (AcquireChannel(task_arn=TASK, max_sessions=3), ChannelLease(lease_id=2, fresh=False)),
        (stop_request(2), answer),
        (ReleaseChannel(lease_id=2, reusable=stopped), None),
        *([] if stopped else [(warned, None)]),
        (ReleaseChannel(lease_id=1, reusable=False), None),
    ]
    with pytest.raises(type(interruption)):
        run_script(trip(), steps)  # type: ignore[arg-type]


def test_a_failing_stop_never_hides_the_interruption() -> None:
    steps: list[tuple[object, object]] = [
        (AcquireChannel, ChannelLease(lease_id=1, fresh=False)),
        (ChannelRequest, KeyboardInterrupt()),
        (Log, None),
        (Token, STOP_NONCE),
        (AcquireChannel, ChannelLease(lease_id=2, fresh=False)),
        (ChannelRequest, OSError("broken socket")),  # the driver failed during the stop
        (ReleaseChannel(lease_id=2, reusable=False), None),
        (warned, None),
        (ReleaseChannel(lease_id=1, reusable=False), None),
    ]
    with pytest.raises(KeyboardInterrupt):
        run_script(trip(), steps)  # type: ignore[arg-type]


def test_output_past_the_limit_stops_the_command_before_its_session_is_closed() -> None:
    flow = loop_round_trip(**{**TRIP, "max_output_bytes": 4})  # type: ignore[arg-type]
    capped = TransportResult(stdout=b"12345", returncode=255, may_have_started=True)
    within = TransportResult(stdout=b"1234", returncode=255, may_have_started=True)
    steps: list[tuple[object, object]] = [
        (AcquireChannel, ChannelLease(lease_id=1, fresh=False)),
        (ChannelRequest, capped),
        (Log, None),
        (Token, STOP_NONCE),
        (AcquireChannel(task_arn=TASK, max_sessions=3), ChannelLease(lease_id=2, fresh=False)),
        (lambda e: isinstance(e, ChannelRequest) and e.nonce == STOP_NONCE, OK),
        (ReleaseChannel(lease_id=2, reusable=True), None),
        (ReleaseChannel(lease_id=1, reusable=False), None),
    ]
    assert run_script(flow, steps) == capped  # type: ignore[arg-type]
    # At the limit, nothing is stopped.
    flow = loop_round_trip(**{**TRIP, "max_output_bytes": 4})  # type: ignore[arg-type]
    steps = [
        (AcquireChannel, ChannelLease(lease_id=1, fresh=False)),
        (ChannelRequest, within),
        (ReleaseChannel(lease_id=1, reusable=False), None),
    ]
    assert run_script(flow, steps) == within


def test_an_interruption_before_the_request_went_out_stops_nothing() -> None:
    steps: list[tuple[object, object]] = [
        (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
        (Token, KeyboardInterrupt()),
        (ReleaseChannel(lease_id=1, reusable=False), None),
    ]
    with pytest.raises(KeyboardInterrupt):
        run_script(trip(), steps)  # type: ignore[arg-type]
