"""The tmux session flows, driven by scripted effects and a scripted ``run``.

``run`` is the sub-flow that executes a shell script in the sandbox. Here it is either a
list of canned results (recording every script it was given) or /bin/sh against a real
tmux server on a private socket. Either way the flow's own effects (Log, Sleep) are
checked step by step with ``run_script``, so an unexpected Sleep or Log fails the test.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _script import run_script

from ecs_sandbox_core._effects import Effect, Log, Sleep
from ecs_sandbox_core._errors import PhaseTimeoutError, SessionError
from ecs_sandbox_core._pane import Increment, PaneTracker
from ecs_sandbox_core._session import (
    SessionSpec,
    StepResult,
    alive_flow,
    capture_flow,
    read_flow,
    send_keys_flow,
    start_session_flow,
)
from ecs_sandbox_core._terminal import parse_status
from ecs_sandbox_core._tmux import (
    StartInfo,
    alive_script,
    capture_script,
    incremental_script,
    plan_keys,
    send_script,
    start_script,
)

SPEC = SessionSpec(name="main", width=100, height=30, history_limit=5000)
LOOK = "7 7 S 7 7 P r0 0 bash /root"


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: bytes


class Scripted:
    """A ``run`` sub-flow answering from canned results; records (script, timeout_s)."""

    def __init__(self, *results: Result) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, float]] = []

    def __call__(self, script: str, timeout_s: float) -> Generator[Effect, Any, Result]:
        self.calls.append((script, timeout_s))
        assert self.results, f"unexpected extra script:\n{script}"
        return self.results.pop(0)
        yield  # a generator, like the exec flow it stands for


def ok(output: str) -> Result:
    return Result(exit_code=0, output=output.encode())


def is_log(level: int, contains: str = "") -> Callable[[object], bool]:
    def check(effect: object) -> bool:
        if not isinstance(effect, Log) or effect.level != level:
            return False
        return contains in effect.message % effect.args

    check.__name__ = f"log_{logging.getLevelName(level)}_{contains}"
    return check


# --- start ----------------------------------------------------------------------------------


def test_start_creates_and_logs_without_a_version_warning() -> None:
    run = Scripted(ok("1 tmux 3.3a\n"))
    info = run_script(
        start_session_flow(SPEC, run),
        [(is_log(logging.INFO, "tmux session main created (tmux tmux 3.3a)"), None)],
    )
    assert info == StartInfo(created=True, version=(3, 3), raw_version="tmux 3.3a")
    assert run.calls == [(start_script("main", width=100, height=30, history_limit=5000), 60.0)]


def test_start_of_a_running_session() -> None:
    info = run_script(
        start_session_flow(SPEC, Scripted(ok("0 tmux 3.4\n"))),
        [(is_log(logging.INFO, "already running"), None)],
    )
    assert not info.created


@pytest.mark.parametrize("version", ["2.9a", "3.5", "next-3.6"])
def test_start_warns_outside_the_tested_versions(version: str) -> None:
    run = Scripted(ok(f"1 tmux {version}\n"))
    run_script(
        start_session_flow(SPEC, run),
        [
            (is_log(logging.WARNING, f"'tmux {version}' is outside the tested range"), None),
            (is_log(logging.INFO, "created"), None),
        ],
    )


def test_start_version_warning_can_be_turned_off() -> None:
    run = Scripted(ok("1 tmux 2.1\n"))
    run_script(start_session_flow(SPEC, run, warn_version=False), [(is_log(logging.INFO), None)])


def test_start_without_tmux_is_a_session_error() -> None:
    run = Scripted(Result(exit_code=127, output=b"tmux: not found\n"))
    with pytest.raises(SessionError, match="not installed") as caught:
        run_script(start_session_flow(SPEC, run), [])
    assert "apt-get install -y tmux" in str(caught.value)


def test_start_failure_is_a_session_error_with_the_output() -> None:
    run = Scripted(Result(exit_code=1, output=b"create window failed: fork failed\n"))
    with pytest.raises(SessionError, match="fork failed"):
        run_script(start_session_flow(SPEC, run), [])


def test_start_with_garbage_output_is_a_session_error() -> None:
    with pytest.raises(SessionError, match="start output"):
        run_script(start_session_flow(SPEC, Scripted(ok("hello\n"))), [])


@pytest.mark.parametrize("name", ["", "a b", "a:b", "x" * 65])
def test_spec_validates_the_name(name: str) -> None:
    with pytest.raises(SessionError):
        SessionSpec(name=name)


# --- send_keys ------------------------------------------------------------------------------


def test_blocking_send_waits_and_reports_the_terminal() -> None:
    run = Scripted(ok(f"S=0\nW=0\nT={LOOK}\n"))
    result = run_script(
        send_keys_flow(SPEC, ["make", "Enter"], run, block=True, max_timeout_s=100),
        [],
    )
    assert result == StepResult(
        waited=True, timed_out=False, increment=None, status=parse_status(LOOK)
    )
    assert result.status is not None and result.status.exit_code == 0
    plan = plan_keys(["make", "Enter"], block=True)
    assert run.calls == [(send_script("main", plan, wait_timeout_s=100), 130.0)]


def test_blocking_send_that_times_out_raises() -> None:
    run = Scripted(ok("S=0\nW=124\nT=-\n"))
    with pytest.raises(PhaseTimeoutError) as caught:
        run_script(send_keys_flow(SPEC, "sleep 99\n", run, block=True, max_timeout_s=5), [])
    assert (caught.value.phase, caught.value.timeout_s) == ("send-keys", 5)
    assert run.calls[0][1] == 60.0  # at least the operation timeout


def test_blocking_send_that_times_out_can_return_instead() -> None:
    tracker = PaneTracker()
    tracker.feed("0 5000 1 30 160 0 f 0\n$ ls\n$\n")
    run = Scripted(ok("S=0\nW=124\nT=-\n0 5000 2 30 160 0 n 0\n$ sleep 99\n\n"))
    result = run_script(
        send_keys_flow(
            SPEC, "sleep 99\n", run, block=True, tracker=tracker, raise_on_timeout=False
        ),
        [],
    )
    assert result == StepResult(
        waited=True, timed_out=True, increment=Increment("new", " sleep 99\n")
    )


def test_non_blocking_send_with_min_timeout_sleeps_in_the_driver() -> None:
    run = Scripted(ok("S=0\nW=-\nT=-\n"))
    result = run_script(
        send_keys_flow(SPEC, ["top", "Enter"], run, min_timeout_s=2.5),
        [(Sleep(seconds=2.5), None)],
    )
    assert result == StepResult(waited=False, timed_out=False, increment=None)
    script, timeout_s = run.calls[0]
    assert "sleep 2.5" not in script
    assert " wl " not in script
    assert timeout_s == 60.0


def test_non_blocking_send_without_min_timeout_never_sleeps() -> None:
    run = Scripted(ok("S=0\nW=-\nT=-\n"))
    run_script(send_keys_flow(SPEC, "q", run), [])


def test_blocking_send_ignores_min_timeout() -> None:
    run = Scripted(ok(f"S=0\nW=0\nT={LOOK}\n"))
    run_script(send_keys_flow(SPEC, "ls\n", run, block=True, min_timeout_s=3), [])
    plan = plan_keys("ls\n", block=True)
    assert run.calls[0][0] == send_script("main", plan, wait_timeout_s=180)


def test_block_without_a_final_enter_logs_and_does_not_wait() -> None:
    """Defect 3: such a send used to sit out its whole timeout."""
    run = Scripted(ok("S=0\nW=-\nT=-\n"))
    result = run_script(
        send_keys_flow(SPEC, "vim", run, block=True, min_timeout_s=1),
        [(is_log(logging.WARNING, "block=True needs keys ending in Enter"), None),
         (Sleep(seconds=1), None)],
    )  # fmt: skip
    assert not result.waited
    assert "&& wl " not in run.calls[0][0]


def test_send_with_a_tracker_reads_in_the_same_round_trip() -> None:
    tracker = PaneTracker()
    tracker.feed("0 5000 0 30 160 0 f 0\n$\n")
    request = tracker.request()
    run = Scripted(ok("S=0\nW=-\nT=-\n0 5000 0 30 160 0 n 0\n$ top\n"))
    result = run_script(
        send_keys_flow(SPEC, ["top", "Enter"], run, min_timeout_s=0.5, tracker=tracker),
        [],
    )
    assert result.increment == Increment("new", " top")
    assert len(run.calls) == 1
    plan = plan_keys(["top", "Enter"])
    assert run.calls[0][0] == send_script(
        "main", plan, wait_timeout_s=180, read=request, settle_s=0.5
    )


def test_a_session_that_ends_during_the_wait_is_a_session_error() -> None:
    run = Scripted(ok("S=0\nW=3\nT=-\n"))
    with pytest.raises(SessionError, match="ended while"):
        run_script(send_keys_flow(SPEC, "exit\n", run, block=True, max_timeout_s=None), [])


def test_send_whose_typing_failed_is_a_session_error() -> None:
    run = Scripted(ok("S=1\nW=-\nT=-\n"))
    with pytest.raises(SessionError, match="could not type"):
        run_script(send_keys_flow(SPEC, "ls\n", run, block=True), [])


def test_send_whose_script_failed_is_a_session_error() -> None:
    run = Scripted(Result(exit_code=3, output=b"S=0\nW=-\nT=-\ntmux: no such session\n"))
    with pytest.raises(SessionError, match="send-keys failed"):
        run_script(send_keys_flow(SPEC, "ls", run, tracker=PaneTracker()), [])


@pytest.mark.parametrize(("low", "high"), [(0, 0), (-1, 10), (0, -5)])
def test_send_refuses_bad_timeouts_before_doing_anything(low: float, high: float) -> None:
    run = Scripted()
    with pytest.raises(SessionError, match="timeout"):
        run_script(send_keys_flow(SPEC, "ls", run, min_timeout_s=low, max_timeout_s=high), [])
    assert run.calls == []


def test_send_refuses_nul_before_running_anything() -> None:
    run = Scripted()
    with pytest.raises(SessionError, match="NUL"):
        run_script(send_keys_flow(SPEC, "a\0b", run), [])
    assert run.calls == []


# --- read, capture, alive -------------------------------------------------------------------


def test_read_flow_feeds_the_tracker() -> None:
    tracker = PaneTracker()
    run = Scripted(ok("0 5000 1 30 160 0 f 0\nhello\n$\n"), ok("0 5000 2 30 160 0 n 0\n$ ls\n$\n"))
    assert run_script(read_flow(SPEC, tracker, run), []) == Increment("screen", "hello\n$")
    assert run.calls[0] == (incremental_script("main", PaneTracker().request()), 60.0)
    request = tracker.request()
    assert run_script(read_flow(SPEC, tracker, run), []) == Increment("new", " ls\n$")
    assert run.calls[1][0] == incremental_script("main", request)


def test_read_flow_of_a_missing_session() -> None:
    run = Scripted(Result(exit_code=3, output=b"tmux: no such session\n"))
    with pytest.raises(SessionError, match="pane read failed") as caught:
        run_script(read_flow(SPEC, PaneTracker(), run), [])
    assert "create_session" in str(caught.value)


@pytest.mark.parametrize("entire", [False, True])
def test_capture_flow(entire: bool) -> None:
    run = Scripted(ok("a\nb\n"))
    assert run_script(capture_flow(SPEC, run, entire=entire), []) == "a\nb\n"
    assert run.calls == [(capture_script("main", entire=entire), 60.0)]


def test_capture_flow_failure() -> None:
    run = Scripted(Result(exit_code=1, output=b"can't find session: =main\n"))
    with pytest.raises(SessionError, match="capture-pane failed"):
        run_script(capture_flow(SPEC, run), [])


@pytest.mark.parametrize(
    ("result", "alive"),
    [(ok("1\n"), True), (ok("0\n"), False), (Result(1, b"1\n"), False), (ok(""), False)],
)
def test_alive_flow(result: Result, alive: bool) -> None:
    run = Scripted(result)
    assert run_script(alive_flow(SPEC, run), []) is alive
    assert run.calls == [(alive_script("main"), 60.0)]


# --- against a real tmux --------------------------------------------------------------------


class RealRun:
    """A ``run`` sub-flow executing scripts with /bin/sh against a private tmux server."""

    def __init__(self, root: Path) -> None:
        self.env = {
            "TMUX_TMPDIR": str(root),
            "TMPDIR": str(root),  # the hook file and the recording, gone with the root
            "PATH": os.environ["PATH"],
            "HOME": str(root),
        }
        self.root = root
        self.calls: list[str] = []

    def __call__(self, script: str, timeout_s: float) -> Generator[Effect, Any, Result]:
        self.calls.append(script)
        proc = subprocess.run(
            ["/bin/sh", "-c", script],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            check=False,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
        return Result(exit_code=proc.returncode, output=proc.stdout + proc.stderr)
        yield  # a generator, like the exec flow it stands for


@pytest.fixture
def real() -> Iterator[RealRun]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    root = Path(tempfile.mkdtemp(prefix="tms"))  # short: the socket path has a size limit
    run = RealRun(root)
    try:
        yield run
    finally:
        subprocess.run(
            ["tmux", "kill-server"], env=run.env, capture_output=True, check=False, timeout=30
        )
        shutil.rmtree(root, ignore_errors=True)


def start(run: RealRun) -> StartInfo:
    return run_script(start_session_flow(SPEC, run), [(Log, None)])


def test_real_start_alive_and_capture(real: RealRun) -> None:
    assert not run_script(alive_flow(SPEC, real), [])
    assert start(real).created
    assert not start(real).created
    assert run_script(alive_flow(SPEC, real), [])
    assert not run_script(alive_flow(SessionSpec(name="mai"), real), [])
    screen = run_script(capture_flow(SPEC, real), [])
    assert screen.count("\n") == SPEC.height


def test_real_step_is_one_round_trip(real: RealRun) -> None:
    start(real)
    tracker = PaneTracker()
    first = run_script(read_flow(SPEC, tracker, real), [])
    assert first.kind == "screen"
    calls = len(real.calls)
    result = run_script(
        send_keys_flow(SPEC, ["echo $((6 * 7))", "Enter"], real, block=True, tracker=tracker),
        [],
    )
    assert len(real.calls) == calls + 1
    assert (result.waited, result.timed_out) == (True, False)
    assert result.increment is not None
    assert result.increment.kind == "new"
    assert "echo $((6 * 7))\n42\n" in result.increment.text
    assert result.status is not None
    assert (result.status.exit_code, result.status.running) == (0, False)


def test_real_blocking_timeout(real: RealRun) -> None:
    start(real)
    with pytest.raises(PhaseTimeoutError):
        run_script(send_keys_flow(SPEC, "sleep 30\n", real, block=True, max_timeout_s=1), [])
    tracker = PaneTracker()
    run_script(read_flow(SPEC, tracker, real), [])
    result = run_script(
        send_keys_flow(
            SPEC, "C-c", real, min_timeout_s=0.3, tracker=tracker, raise_on_timeout=False
        ),
        [],
    )
    assert not result.waited
    assert result.increment is not None
    assert "^C" in result.increment.text


def test_real_session_missing(real: RealRun) -> None:
    start(real)
    other = SessionSpec(name="other")
    with pytest.raises(SessionError, match="could not type"):
        run_script(send_keys_flow(other, "ls\n", real), [])
    with pytest.raises(SessionError, match="pane read failed"):
        run_script(read_flow(other, PaneTracker(), real), [])
