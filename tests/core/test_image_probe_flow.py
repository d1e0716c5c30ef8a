"""The image probe at the end of a spin-up, with every effect answered by the test.

AWS calls and polls get canned answers; the probe's exec is answered by really running
the command ECS Exec would receive under /bin/sh, with a PATH holding only the tools the
"image" has, so what the flow reads is what a shell prints.
"""

from __future__ import annotations

import logging
import pickle
import shlex
import subprocess
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _images import tool_dir
from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._doctor_image import (
    DOWNLOAD_TOOLS,
    SESSION_TOOLS,
    TOOLS,
    ImageProbes,
    ImageReport,
    name_missing_tools_flow,
    probe_on_start_flow,
)
from ecs_sandbox_core._effects import (
    AcquireChannel,
    AwsCall,
    AwsResult,
    CloseChannels,
    DescribeTask,
    ExecRun,
    ExecSession,
    Log,
    Now,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import EcsExecError, ExecAgentNotConnectedError, SessionError
from ecs_sandbox_core._lifecycle import TaskHandle, start_flow
from ecs_sandbox_core._sandbox import SandboxContext

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/sandboxes/abc123"
EVERYTHING = ["base64", "stty", "tmux", "setsid", "sleep", "python3"]
NO_TMUX = ["base64", "stty", "setsid", "sleep", "python3"]
TMUX = next(t for t in TOOLS if t.name == "tmux")
EXEC_EFFECTS = (ExecRun, ExecSession, AcquireChannel)


def make_cfg(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "region": "us-east-1",
        "cluster": "sandboxes",
        "task_definition": "sandbox-base:3",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        # One ExecRun per command: the script stays one effect per round trip.
        "exec_transport": "aws-cli",
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


@dataclass
class Answers:
    """Answers every effect of a spin-up as a driver would, and keeps what it saw."""

    image: str | None  # what DescribeTasks says the container runs
    path: Path | None  # the image's PATH; None: the exec agent never connects
    cut: bool = False  # the session ends right after the command started
    throw_at_exec: BaseException | None = None
    """Raised (thrown into the flow) at the first exec effect instead of answering it."""
    clock: float = 100.0
    logs: list[Log] = field(default_factory=list)
    execs: list[object] = field(default_factory=list)
    effects: list[object] = field(default_factory=list)

    def answer(self, effect: object) -> object:
        self.effects.append(effect)
        if isinstance(effect, Log):
            self.logs.append(effect)
            return None
        if isinstance(effect, Now):
            self.clock += 0.5
            return self.clock
        if isinstance(effect, Random):
            return 0.0
        if isinstance(effect, Token):
            return "5a" * effect.nbytes
        if isinstance(effect, Sleep | CloseChannels):
            return None
        if self.throw_at_exec is not None and isinstance(effect, EXEC_EFFECTS):
            self.execs.append(effect)  # type: ignore[arg-type]
            raise self.throw_at_exec
        if isinstance(effect, AwsCall) and effect.operation == "run_task":
            return AwsResult(data={"tasks": [{"taskArn": TASK_ARN}], "failures": []})
        if isinstance(effect, AwsCall):
            return AwsResult()  # stop_task, deregister...
        if isinstance(effect, DescribeTask):
            containers = [{"name": "main", "image": self.image}] if self.image else []
            return AwsResult(
                data={"taskArn": TASK_ARN, "lastStatus": "RUNNING", "containers": containers}
            )
        if isinstance(effect, ExecRun):
            self.execs.append(effect)
            return self.run(effect)
        raise AssertionError(f"unexpected effect {effect!r}")

    def run(self, effect: ExecRun) -> TransportResult:
        if self.path is None:
            return TransportResult(
                stderr=b"\nAn error occurred (InvalidParameterException) when calling the "
                b"ExecuteCommand operation: The execute command failed because execute command "
                b"was not enabled when the task was run.\n",
                returncode=255,
            )
        argv = shlex.split(effect.command)
        # The wrapper runs in a login shell, whose /etc/profile (this host's) would put the
        # host's PATH back; a plain shell keeps the "image's" PATH.
        assert argv[:2] == ["sh", "-lc"], argv[:2]
        done = subprocess.run(
            ["sh", "-c", *argv[2:]],
            env={"PATH": str(self.path)},
            capture_output=True,
            timeout=30,
            check=False,
        )
        stream = done.stdout
        if self.cut:
            stream = stream[: stream.index(b">>\n") + 3]
        return TransportResult(stdout=stream, returncode=0)


def drive(flow: Generator[Any, Any, Any], answers: Answers) -> Any:
    """Run ``flow`` to its end; a failing answer is thrown in, as drivers do."""
    try:
        effect = next(flow)
        while True:
            try:
                reply = answers.answer(effect)
            except BaseException as exc:
                effect = flow.throw(exc)
            else:
                effect = flow.send(reply)
    except StopIteration as stop:
        return stop.value


def spin_up(cfg: EcsFargateConfig, probes: ImageProbes, answers: Answers) -> TaskHandle:
    def probe(handle: TaskHandle) -> Generator[Any, Any, Any]:
        ctx = SandboxContext(cfg=cfg, handle=handle, trial_name="t")
        return probe_on_start_flow(ctx, probes)

    flow = start_flow(
        cfg,
        task_id="task-7",
        trial_name="t",
        run_id="run-1",
        owner="me",
        registry=None,
        created_at=1_700_000_000.0,
        after_running=probe,
    )
    handle: TaskHandle = drive(flow, answers)
    return handle


def messages(answers: Answers, level: int) -> list[str]:
    return [log.message % log.args for log in answers.logs if log.level == level]


def stops(answers: Answers) -> int:
    return sum(isinstance(e, AwsCall) and e.operation == "stop_task" for e in answers.effects)


# --- once per image ---------------------------------------------------------------------------


def test_the_first_sandbox_of_an_image_probes_it_and_the_next_one_does_not(
    tmp_path: Path,
) -> None:
    cfg, probes = make_cfg(), ImageProbes()
    first = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, EVERYTHING))
    handle = spin_up(cfg, probes, first)
    assert handle.image == "registry.example/a:1"
    assert len(first.execs) == 1  # one round trip
    assert "image registry.example/a:1 has every tool ecs-sandbox uses" in messages(
        first, logging.INFO
    )
    report = probes.report("registry.example/a:1")
    assert report is not None and report.ok
    assert not messages(first, logging.WARNING)

    second = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, EVERYTHING))
    spin_up(cfg, probes, second)
    assert second.execs == []  # the same image on the same driver: no probe
    assert probes.report("registry.example/a:1") is report

    third = Answers(image="registry.example/b:1", path=tool_dir(tmp_path, NO_TMUX))
    spin_up(cfg, probes, third)
    assert len(third.execs) == 1  # a new image is probed again
    assert probes.report("registry.example/a:1") is report  # the first one's report stays


def test_a_sandbox_started_while_another_probes_its_image_does_not_probe(
    tmp_path: Path,
) -> None:
    probes = ImageProbes()
    assert probes.claim("registry.example/a:1")  # another sandbox's probe is in flight
    answers = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, EVERYTHING))
    spin_up(make_cfg(), probes, answers)
    assert answers.execs == []
    assert probes.report("registry.example/a:1") is None


def test_probe_image_false_skips_the_round_trip(tmp_path: Path) -> None:
    probes = ImageProbes()
    answers = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, NO_TMUX))
    spin_up(make_cfg(probe_image=False), probes, answers)
    assert answers.execs == []
    assert not messages(answers, logging.WARNING)
    assert probes.report("registry.example/a:1") is None


# --- what it says -----------------------------------------------------------------------------


def test_a_missing_tool_is_one_warning_naming_the_image_the_tool_and_what_it_breaks(
    tmp_path: Path,
) -> None:
    probes = ImageProbes()
    answers = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, NO_TMUX))
    spin_up(make_cfg(), probes, answers)
    (warning,) = messages(answers, logging.WARNING)
    assert warning == (
        "image registry.example/a:1 lacks tmux (needed for tmux sessions (create_session, "
        "send_keys))"
    )
    report = probes.report("registry.example/a:1")
    assert report is not None and report.missing == (TMUX,)


def test_several_missing_tools_are_each_named_in_the_one_warning(tmp_path: Path) -> None:
    answers = Answers(image="alpine:3", path=tool_dir(tmp_path, ["stty", "setsid", "sleep"]))
    spin_up(make_cfg(), ImageProbes(), answers)
    (warning,) = messages(answers, logging.WARNING)
    assert warning.startswith("image alpine:3 lacks base64 (needed for binary exec output")
    assert "; tmux (needed for tmux sessions" in warning
    assert "; python3>=3.8 (needed for copy_to_sandbox / copy_from_sandbox" in warning


def test_the_image_of_a_base_definition_that_says_none_is_named_by_the_definition(
    tmp_path: Path,
) -> None:
    probes = ImageProbes()
    answers = Answers(image=None, path=tool_dir(tmp_path, NO_TMUX))
    handle = spin_up(make_cfg(), probes, answers)
    assert handle.image is None
    (warning,) = messages(answers, logging.WARNING)
    assert warning.startswith("image of task definition sandbox-base:3 lacks tmux")
    assert probes.report("of task definition sandbox-base:3") is not None


# --- a probe that cannot run ------------------------------------------------------------------


def test_a_probe_that_cannot_run_never_fails_the_spin_up_and_is_tried_again(
    tmp_path: Path,
) -> None:
    cfg, probes = make_cfg(), ImageProbes()
    failing = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, EVERYTHING), cut=True)
    handle = spin_up(cfg, probes, failing)
    assert handle.task_arn == TASK_ARN and stops(failing) == 0  # the sandbox is up
    assert len(failing.execs) == 1  # a cut-off command is not run again
    (said,) = [m for m in messages(failing, logging.INFO) if "could not probe" in m]
    assert said.startswith(
        "could not probe image registry.example/a:1 for the tools ecs-sandbox uses "
        "(ExecCutOffError: "
    )
    assert not messages(failing, logging.WARNING)
    assert probes.report("registry.example/a:1") is None

    # The claim was given back: the next sandbox of that image probes it.
    working = Answers(image="registry.example/a:1", path=tool_dir(tmp_path, EVERYTHING))
    spin_up(cfg, probes, working)
    assert len(working.execs) == 1
    assert probes.report("registry.example/a:1") is not None


def test_an_agent_that_never_connects_fails_the_spin_up_once() -> None:
    # The probe waits for the exec agent as any first command would; when it never comes,
    # no command can reach the sandbox: the spin-up fails (and stops the task) instead of
    # handing back a sandbox whose first command would wait out the timeout again.
    probes = ImageProbes()
    answers = Answers(image="registry.example/a:1", path=None)
    with pytest.raises(ExecAgentNotConnectedError):
        spin_up(make_cfg(exec_connect_timeout_sec=5.0), probes, answers)
    assert len(answers.execs) > 1  # retried while the agent might still come up
    assert stops(answers) == 1
    assert probes.claim("registry.example/a:1")  # the next sandbox of the image probes


def test_a_driver_failure_in_the_probe_is_swallowed_too() -> None:
    answers = Answers(
        image="registry.example/a:1", path=None, throw_at_exec=OSError("connection reset")
    )
    handle = spin_up(make_cfg(), ImageProbes(), answers)
    assert handle.task_arn == TASK_ARN and stops(answers) == 0
    assert any("OSError: connection reset" in m for m in messages(answers, logging.INFO))


@pytest.mark.parametrize("transport", ["aws-cli", "ssm"])
def test_an_interrupted_probe_tears_the_task_down_and_gives_the_claim_back(
    transport: str,
) -> None:
    probes = ImageProbes()
    cfg = make_cfg(exec_transport=transport)
    # Ctrl-C while the probe's exec (a command-loop channel, natively) is under way.
    answers = Answers(image="registry.example/a:1", path=None, throw_at_exec=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        spin_up(cfg, probes, answers)
    assert stops(answers) == 1  # spin-up's clean-up stopped the task
    closed = [e for e in answers.effects if isinstance(e, CloseChannels)]
    assert closed == ([CloseChannels(task_arn=TASK_ARN)] if transport == "ssm" else [])
    assert probes.claim("registry.example/a:1")  # nobody holds it any more


# --- the bookkeeping --------------------------------------------------------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["claim", "ok", "failed"]), st.sampled_from(["a", "b", "c"])),
    max_size=40,
)


@given(OPS)
def test_image_probes_hand_each_image_to_one_prober_at_a_time(ops: list[tuple[str, str]]) -> None:
    probes = ImageProbes()
    held: set[str] = set()
    reported: dict[str, ImageReport] = {}
    for op, image in ops:
        if op == "claim":
            assert probes.claim(image) == (image not in held)
            held.add(image)
        elif image in held:  # only a claimant reports
            report = ImageReport(missing=()) if op == "ok" else None
            probes.found(image, report)
            if report is None:
                held.discard(image)
            else:
                reported[image] = report
        assert probes.report(image) is reported.get(image)


# --- naming the missing tool in a later failure -----------------------------------------------

NO_TMUX_REPORT = ImageReport(missing=(TMUX,))


def failing(error: Exception) -> Generator[Any, Any, None]:
    yield Now()
    raise error


def run_failing(
    error: Exception, report: ImageReport | None, needs: Sequence[str]
) -> BaseException:
    flow = name_missing_tools_flow(failing(error), report, "registry.example/a:1", needs)
    assert next(flow) == Now()
    with pytest.raises(type(error)) as info:
        flow.send(0.0)
    return info.value


def test_a_session_start_in_an_image_without_tmux_says_the_image_lacks_tmux() -> None:
    original = SessionError("tmux is not installed in the sandbox's image", remedy="Use tmux.")
    error = run_failing(original, NO_TMUX_REPORT, SESSION_TOOLS)
    assert error is original and type(error) is SessionError  # same error, same type
    text = str(error)
    assert text.startswith(
        "image registry.example/a:1 lacks tmux (the image probe found it missing when the "
        "sandbox started; tmux is needed for tmux sessions (create_session, send_keys)): "
        "tmux is not installed in the sandbox's image"
    )
    assert "How to fix: Install tmux in image registry.example/a:1" in text
    copy = pickle.loads(pickle.dumps(error))  # harnesses send errors between processes
    assert str(copy) == text


def test_a_failure_is_left_alone_when_the_image_has_what_it_needs() -> None:
    for report in (None, ImageReport(missing=()), NO_TMUX_REPORT):
        original = EcsExecError("download failed", exit_code=1)
        error = run_failing(original, report, DOWNLOAD_TOOLS)
        assert str(error) == "download failed"


def test_a_flow_that_succeeds_is_untouched() -> None:
    def fine() -> Generator[Any, Any, int]:
        yield Now()
        return 7

    flow = name_missing_tools_flow(fine(), NO_TMUX_REPORT, "img", SESSION_TOOLS)
    assert next(flow) == Now()
    with pytest.raises(StopIteration) as info:
        flow.send(0.0)
    assert info.value.value == 7
