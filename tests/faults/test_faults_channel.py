"""Faults in ECS Exec's data channel, under the native transport (the default): the local SSM
gateway damages what the agent sends (``ChannelFaults``) or ECS refuses ExecuteCommand.

A fault the protocol recovers from must leave every command's output and exit code exact,
each command run once and in order; one it cannot recover from must end in a typed error that
says what happened, with the command never run twice and the sandbox still usable.
"""

from __future__ import annotations

from typing import Any

import pytest
from _faults_harness import Case
from _faults_inject import FailCalls, json_error

from ecs_sandbox_core import EcsExecError, ExecAgentNotConnectedError, ExecCutOffError
from ecs_sandbox_drivers.local import ChannelFaults
from ecs_sandbox_drivers.local._agent_faults import FaultPlan, Transmission

pytestmark = pytest.mark.faults
CATEGORY = "ssm-channel"

# About 24 KB of numbered lines (two dozen output frames), so that a lost, repeated or
# reordered frame shows as a wrong line.
LINES = 4000
NUMBERED = b"".join(b"%d\n" % i for i in range(1, LINES + 1))

# Each set of switches applies to every session of its case, from the loop's start-up on.
RECOVERABLE: dict[str, dict[str, Any]] = {
    "frames-dropped": {"seed": 11, "drop_output": 0.3},
    "frames-duplicated": {"seed": 12, "duplicate_output": 0.5},
    "frames-reordered": {"seed": 13, "reorder_output": 0.5},
    "frames-delayed": {"seed": 14, "delay_output": 0.3, "delay_output_s": 0.05},
    "acks-dropped": {"seed": 15, "drop_acks": 0.5},
    "corrupt-digest": {"seed": 16, "corrupt_digest": 0.3},
    "output-paused": {"pause_after_bytes": 3000, "pause_for_s": 1.0},
    "slow-agent-start": {"start_delay_s": 0.5},
}


def fires_early(switches: dict[str, Any], draws: int = 8) -> bool:
    """Whether a seeded fault strikes within the first ``draws`` output frames (or input
    acks): each case sends more than that, so its fault really happens."""
    plan = FaultPlan(ChannelFaults(**switches))
    if switches.get("drop_acks"):
        return any(plan.drop_ack() for _ in range(draws))
    return any(plan.transmission(first=True) != Transmission(copies=1) for _ in range(draws))


@pytest.mark.parametrize("fault", list(RECOVERABLE))
def test_recoverable_fault_keeps_every_byte(case: Case, fault: str) -> None:
    switches = RECOVERABLE[fault]
    assert "seed" not in switches or fires_early(switches)
    case.channel_faults(**switches)
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            first = await sandbox.exec(case.cmd("first", f"seq 1 {LINES}; exit 7"))
            assert first.exit_code == 7
            assert first.output == NUMBERED
            second = await sandbox.exec(case.cmd("second", "printf 'b\\n%.0s' 1 2 3"))
            assert (second.exit_code, second.output) == (0, b"b\nb\nb\n")

    case.run(scenario)
    assert case.executions("first") == 1
    assert case.executions("second") == 1
    assert case.sessions_opened() == 1  # both commands on the one command-loop session


def test_lossy_channel_with_a_session_per_command(case: Case) -> None:
    """The same faults at once, with one session per command (exec_sessions_per_sandbox=0)."""
    switches = {"seed": 21, "drop_output": 0.2, "duplicate_output": 0.2, "reorder_output": 0.2}
    assert fires_early(switches)
    case.channel_faults(**switches, drop_acks=0.3)
    api = case.api(case.cfg(exec_sessions_per_sandbox=0))

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            for tag in ("one", "two"):
                result = await sandbox.exec(case.cmd(tag, f"seq 1 {LINES}; exit 3"))
                assert (result.exit_code, result.output) == (3, NUMBERED)

    case.run(scenario)
    assert case.executions("one") == case.executions("two") == 1
    assert case.sessions_opened() == 2


# Ends the session once this many output bytes went out: past the loop's ready marker and
# the command's begin marker, well before the end of its output.
CUT_AT = 6000
ENDINGS = {
    "tcp-dropped": ({"drop_tcp_after_bytes": CUT_AT}, "connection dropped"),
    "channel-closed": ({"close_after_bytes": CUT_AT}, f"after {CUT_AT} output bytes"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_session_lost_mid_command(case: Case, ending: str) -> None:
    switches, why = ENDINGS[ending]
    case.channel_faults(**switches)
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(ExecCutOffError, "ended before the command finished", why):
                await sandbox.exec(case.cmd("cut", f"seq 1 {LINES}; sleep 1; echo end"))
            case.channel_faults()  # the next session is healthy
            after = await sandbox.exec(case.cmd("after", "echo fine"))
            assert (after.exit_code, after.output) == (0, b"fine\n")

    case.run(scenario)
    assert case.executions("cut") == 1  # started, never run again
    assert case.executions("after") == 1
    assert case.sessions_opened() == 2


def test_token_refused(case: Case) -> None:
    case.channel_faults(refuse_token=True)
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(EcsExecError, "before the command started", "token was refused"):
                await sandbox.exec(case.cmd("refused", "echo never"))
            case.channel_faults()
            after = await sandbox.exec(case.cmd("after", "echo fine"))
            assert after.output == b"fine\n"

    case.run(scenario)
    assert case.executions("refused") == 0
    assert case.executions("after") == 1


NOT_CONNECTED = json_error(
    "TargetNotConnectedException",
    "The execute command failed due to an internal error. Try again later.",
)
REFUSALS = {
    "target-not-connected": NOT_CONNECTED,
    "throttled": json_error("ThrottlingException", "Rate exceeded"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_execute_command_refused_for_a_while(case: Case, refusal: str) -> None:
    hook = case.add_hook(FailCalls("ExecuteCommand", REFUSALS[refusal], times=2))
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            result = await sandbox.exec(case.cmd("once", "echo ran"))
            assert (result.exit_code, result.output) == (0, b"ran\n")

    case.run(scenario)
    assert (hook.failed, hook.seen) == (2, 3)
    assert case.executions("once") == 1
    retried = [m for phase, m in case.progress_log if phase == "exec" and "did not start" in m]
    assert len(retried) == 2, case.progress_log


def test_agent_never_connects(case: Case) -> None:
    hook = case.add_hook(FailCalls("ExecuteCommand", NOT_CONNECTED, times=None))
    api = case.api(case.cfg(exec_connect_timeout_sec=20.0))

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(
                ExecAgentNotConnectedError, "did not connect within 20 s", "TargetNotConnected"
            ):
                await sandbox.exec(case.cmd("never", "echo never"))

    case.run(scenario)
    assert hook.seen >= 2
    assert case.executions("never") == 0
