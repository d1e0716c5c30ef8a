""" "No limit", as harnesses say it: None and ``float("inf")`` wherever a timeout is passed.

Terminal-Bench's oracle agent passes ``max_timeout_sec=float("inf")`` to ``send_keys``;
Harbor and inspect pass ``None`` to mean no limit. Both must wait without limit, and no
value at all may reach the tmux key plan or the exec effect as an infinity or a NaN.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import (
    NO_LIMIT_ABOVE_S,
    Effect,
    ExecRun,
    Now,
    Token,
    time_limit,
)
from ecs_sandbox_core._errors import SessionError, UsageError
from ecs_sandbox_core._exec_flow import transport_timeout
from ecs_sandbox_core._lifecycle import TaskHandle
from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._sandbox import SandboxContext, command_flow
from ecs_sandbox_core._session import SessionSpec, send_keys_flow, start_session_flow
from ecs_sandbox_core._tmux import parse_send, plan_keys, send_script

SPEC = SessionSpec(name="main", width=100, height=30, history_limit=5000)
NO_LIMIT = [None, math.inf, 1e300, NO_LIMIT_ABOVE_S * 2]

any_number = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 5e-324, NO_LIMIT_ABOVE_S]),
)


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: bytes


class Recorded:
    """A ``run`` sub-flow that answers every script with one result; records the calls."""

    def __init__(self, output: bytes = b"S=0\nW=0\nT=-\n") -> None:
        self.output = output
        self.calls: list[tuple[str, float | None]] = []

    def __call__(self, script: str, timeout_s: float | None) -> Generator[Effect, Any, Result]:
        self.calls.append((script, timeout_s))
        return Result(0, self.output)
        yield  # a generator, like the exec flow it stands for


# --- the value itself --------------------------------------------------------------------


@given(any_number)
def test_time_limit_is_none_a_positive_finite_number_or_an_error(value: Any) -> None:
    try:
        limit = time_limit(value, what="t")
    except UsageError:
        assert value is not None
        assert math.isnan(value) or value <= 0
        return
    if value is None or value > NO_LIMIT_ABOVE_S:
        assert limit is None
    else:
        assert limit == float(value)
        assert limit is not None and 0 < limit <= NO_LIMIT_ABOVE_S


@pytest.mark.parametrize("value", [True, "10", [1.0]])
def test_time_limit_refuses_what_is_not_a_number(value: Any) -> None:
    with pytest.raises(UsageError, match="number of seconds"):
        time_limit(value, what="t")


def test_an_exec_effect_never_carries_an_infinity() -> None:
    for bad in (math.inf, math.nan, 0.0, -1.0):
        with pytest.raises(ValueError, match="timeout_s"):
            ExecRun(task_arn="t", container="c", command="true", timeout_s=bad)
    assert ExecRun(task_arn="t", container="c", command="true", timeout_s=None).timeout_s is None


# --- the tmux key plan and the send flow ---------------------------------------------------


@pytest.mark.parametrize("limit", NO_LIMIT)
def test_a_wait_without_limit_has_no_timeout_in_the_script(limit: float | None) -> None:
    plan = plan_keys(["make", "Enter"], block=True)
    script = send_script("main", plan, wait_timeout_s=limit)
    assert '[ "$s" = 0 ] && wl 0' in script  # deadline 0: none
    assert "+inf" not in script and "e+" not in script


@given(st.floats(min_value=5e-324, max_value=NO_LIMIT_ABOVE_S))
def test_a_bounded_wait_rounds_up_to_whole_seconds(limit: float) -> None:
    plan = plan_keys(["make", "Enter"], block=True)
    script = send_script("main", plan, wait_timeout_s=limit)
    (line,) = [line for line in script.splitlines() if "nw; wl " in line]
    seconds = int(line.split("wl $((n+")[1].split(")")[0])
    assert seconds == max(1, math.ceil(limit))


@pytest.mark.parametrize("limit", NO_LIMIT)
def test_blocking_send_without_limit(limit: float | None) -> None:
    run = Recorded()
    result = run_script(
        send_keys_flow(SPEC, ["make", "Enter"], run, block=True, max_timeout_s=limit), []
    )
    assert (result.waited, result.timed_out) == (True, False)
    ((script, round_trip),) = run.calls
    assert round_trip is None  # the exec waits as long as the command does
    assert script == send_script(
        "main", plan_keys(["make", "Enter"], block=True), wait_timeout_s=None
    )


@given(limit=any_number, block=st.booleans())
def test_every_max_timeout_is_refused_or_becomes_a_sane_round_trip(limit: Any, block: bool) -> None:
    run = Recorded()
    flow = send_keys_flow(SPEC, ["make", "Enter"], run, block=block, max_timeout_s=limit)
    try:
        effect = next(flow)
        raise AssertionError(f"unexpected effect {effect!r}")
    except StopIteration:
        pass
    except SessionError as exc:
        assert "max_timeout_s" in str(exc)
        assert limit is not None and (math.isnan(limit) or limit <= 0)
        assert run.calls == []
        return
    ((_, round_trip),) = run.calls
    unlimited = limit is None or limit > NO_LIMIT_ABOVE_S
    if block and unlimited:
        assert round_trip is None
    else:
        assert round_trip is not None and 60.0 <= round_trip < math.inf
        if block:
            assert round_trip >= limit + 30


@pytest.mark.parametrize("low", [math.inf, math.nan, -1.0])
def test_min_timeout_must_be_finite(low: float) -> None:
    run = Recorded()
    with pytest.raises(SessionError, match="min_timeout_s"):
        run_script(send_keys_flow(SPEC, "ls", run, min_timeout_s=low), [])
    assert run.calls == []


# --- a real tmux waits without limit ---------------------------------------------------------


class RealRun:
    """Runs scripts with /bin/sh against a private tmux server, honouring the limit."""

    def __init__(self, root: Path, path: str | None = None) -> None:
        self.env = {
            "TMUX_TMPDIR": str(root),
            "TMPDIR": str(root),  # the hook file and the recording, gone with the root
            "PATH": path or os.environ["PATH"],
            "HOME": str(root),
        }
        self.root = root

    def __call__(self, script: str, timeout_s: float | None) -> Generator[Effect, Any, Result]:
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
        yield


@pytest.fixture
def tmux_root() -> Iterator[Path]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    root = Path(tempfile.mkdtemp(prefix="tnl"))  # short: the socket path has a size limit
    try:
        yield root
    finally:
        subprocess.run(
            ["tmux", "kill-server"],
            env={"TMUX_TMPDIR": str(root), "PATH": os.environ["PATH"]},
            capture_output=True,
            check=False,
            timeout=30,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("without_timeout_command", [False, True])
@pytest.mark.parametrize("limit", [None, math.inf])
def test_a_real_wait_without_limit_returns_when_the_command_is_done(
    tmux_root: Path, limit: float | None, without_timeout_command: bool
) -> None:
    path = None
    if without_timeout_command:  # busybox-like images: the fallback path
        bin_dir = tmux_root / "bin"
        bin_dir.mkdir()
        for tool in ("tmux", "sleep", "sh", "cat", "date"):
            found = shutil.which(tool)
            assert found
            (bin_dir / tool).symlink_to(found)
        path = str(bin_dir)
    run = RealRun(tmux_root, path)
    run_script(start_session_flow(SPEC, run), [(lambda e: True, None)])
    tracker = PaneTracker()
    result = run_script(
        send_keys_flow(
            SPEC,
            ["sleep 1; echo fin-$((6 * 7))", "Enter"],
            run,
            block=True,
            max_timeout_s=limit,
            tracker=tracker,
        ),
        [],
    )
    assert (result.waited, result.timed_out) == (True, False)
    assert result.increment is not None and "fin-42" in result.increment.text


def test_the_parsed_status_of_an_unlimited_wait() -> None:
    assert parse_send("S=0\nW=0\nT=-\n").timed_out is False


# --- exec: the sandbox's command flow --------------------------------------------------------


def _ctx() -> SandboxContext:
    cfg = EcsFargateConfig(
        region="us-east-1",
        cluster="c",
        task_definition="td",
        container_name="main",
        subnets=("subnet-1",),
        security_groups=("sg-1",),
        # These checks read the ExecRun; the native paths carry the same limit (see
        # test_limits and test_cmdloop).
        exec_transport="aws-cli",
    )
    handle = TaskHandle(
        task_arn="arn:aws:ecs:us-east-1:1:task/c/t",
        cluster="c",
        task_definition_arn=None,
        digest=None,
        task_id="t",
        run_id="r",
        started_at=0.0,
    )
    return SandboxContext(cfg=cfg, handle=handle, trial_name="a")


def _first_exec(timeout_s: float | None) -> ExecRun:
    flow = command_flow(_ctx(), "true", timeout_s=timeout_s)
    try:
        assert next(flow) == Token(nbytes=16)
        assert flow.send("0" * 32) == Now()
        effect = flow.send(0.0)
        assert isinstance(effect, ExecRun)
        return effect
    finally:
        flow.close()


@pytest.mark.parametrize("limit", NO_LIMIT)
def test_exec_without_limit(limit: float | None) -> None:
    assert _first_exec(limit).timeout_s is None


@given(st.floats(min_value=1e-3, max_value=NO_LIMIT_ABOVE_S))
def test_exec_with_a_limit_keeps_it(limit: float) -> None:
    # The wrapper enforces the limit in the container; the transport's deadline is the
    # backstop a little past it (see _exec_flow.transport_timeout).
    run = _first_exec(limit)
    assert run.timeout_s == transport_timeout(limit)
    assert "x= z= c=" in run.command  # the in-container timer is there


@pytest.mark.parametrize("bad", [math.nan, 0.0, -5.0, -math.inf])
def test_exec_refuses_a_limit_that_is_no_duration(bad: float) -> None:
    with pytest.raises(UsageError, match="timeout_sec"):
        _first_exec(bad)
