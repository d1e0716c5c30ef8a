"""Agents at scale: many sandboxes in one harness process, each running agent steps at once.

One embedded local ECS behind ``EcsThrottle`` (ECS's token buckets, ThrottlingException past
them), its agent waiting AWS's 1 s before its first read of a session. The harness
(``_agent_harness.py``) runs in a child process with one ``aio.AsyncDriver``: it spins up
every sandbox at once, each creates its tmux session, and once all are up every sandbox
runs its agent steps at the same time: ``session.step()`` (type ``echo $((N * N + 1))``,
wait, read the new output, checked) then ``sandbox.exec()`` of
``sh -c 'echo $((N * N)); exit $((N % 7))'`` (exit code and output checked); then all are
torn down.

Figures: ``commands_per_s`` is the steady phase's rate: the step() and exec() round trips
completed from the moment the last sandbox was up (its tmux session started) to the moment
the last sandbox finished its last step, divided by that time. The harness's CPU is its own
process's (``getrusage``) over the same phase. Server-side counts (every ECS request the
local ECS saw, throttled ones included) come from this process; so does the CPU of the
local ECS (this process: moto, the SSM gateway and agent) and of the containers' processes
(every live descendant of this process but the harness, with what they reaped, plus the
execs this process reaped: each exec is an ``nsenter`` child of the local agent, so its
command's CPU, and that of every process the command forked, lands in this process's
``RUSAGE_CHILDREN`` when it ends).
"""

from __future__ import annotations

import resource
from typing import Any

from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._throttle import EcsThrottle

from ._child import Child, CpuSnapshot, harness_spec

SANDBOXES = 200
STEPS = 25


def run(
    *, sandboxes: int = SANDBOXES, steps: int = STEPS, profile: str | None = None
) -> dict[str, Any]:
    """Run the benchmark; ``profile``: a path for the harness's cProfile statistics."""
    with LocalAws() as aws:  # the agent waits AWS's 1 s before its first read
        throttle = EcsThrottle()
        aws.add_hook(throttle)
        child = Child(
            "benchmarks._agent_harness",
            harness_spec(aws, sandboxes=sandboxes, steps=steps, profile=profile),
        )
        skip = frozenset({child.proc.pid})
        snapshots: dict[str, CpuSnapshot] = {}
        reaped: dict[str, float] = {}
        throttled_in_steady: dict[str, int] = {}
        for message in child.messages():
            event = message.get("event")
            if event == "steady_start":
                snapshots["start"] = CpuSnapshot.take(skip_pids=skip)
                reaped["start"] = _reaped_cpu_s()
                throttled_in_steady = dict(throttle.throttled)
            elif event == "steady_end":
                snapshots["end"] = CpuSnapshot.take(skip_pids=skip)
                reaped["end"] = _reaped_cpu_s()
                throttled_in_steady = {
                    op: n - throttled_in_steady.get(op, 0)
                    for op, n in throttle.throttled.items()
                    if n - throttled_in_steady.get(op, 0)
                }
        harness = child.finish()
        left_running = sum(1 for c in aws.containers() if c.alive())
        delay = aws.first_read_delay_s
        gateway = aws.ssm_stats
    server = snapshots["end"].since(snapshots["start"])
    commands = harness["steady_commands"]
    # The harness child is reaped only after the steady phase, so it is not in this figure.
    execs_cpu_s = reaped["end"] - reaped["start"]
    containers_cpu_s = server["containers_cpu_s"] + execs_cpu_s
    ours_cpu_s = harness["harness_cpu_s"] + server["local_ecs_cpu_s"] + containers_cpu_s
    return {
        "agent_scale": {
            "sandboxes": sandboxes,
            "steps_per_sandbox": steps,
            "commands": commands,
            "commands_per_s": harness["commands_per_s"],
            "execute_command_per_sandbox": throttle.calls["ExecuteCommand"] / sandboxes,
            "stop_task_throttled": throttle.throttled.get("StopTask", 0),
            "wrong_exit_codes": harness["wrong_exit_codes"],
            "wrong_outputs": harness["wrong_outputs"],
            "failures": harness["failures"],
            "harness_cpu_ms_per_command": harness["harness_cpu_ms_per_command"],
            "local_ecs_cpu_ms_per_command": server["local_ecs_cpu_s"] / commands * 1000,
            "containers_cpu_ms_per_command": containers_cpu_s / commands * 1000,
            "containers_live_cpu_ms_per_command": server["containers_cpu_s"] / commands * 1000,
            "execs_cpu_ms_per_command": execs_cpu_s / commands * 1000,
            "cpu_ms_per_command": ours_cpu_s / commands * 1000,
            "machine_busy_cpu_ms_per_command": server["machine_busy_cpu_s"] / commands * 1000,
            "commands_per_cpu_s": commands / ours_cpu_s,
            "steady_s": harness["steady_s"],
            "spin_up_s": harness["spin_up_s"],
            "teardown_s": harness["teardown_s"],
            "step_latency": harness["step_latency"],
            "exec_latency": harness["exec_latency"],
            "machine_busy_cpus_in_steady": server["machine_busy_cpu_s"] / server["wall_s"],
            "machine_cpus": server["machine_cpus"],
            "containers_left_running": left_running,
            "agent_first_read_delay_s": delay,
            "server_calls": dict(sorted(throttle.calls.items())),
            "server_throttled": dict(sorted(throttle.throttled.items())),
            "server_throttled_in_steady": throttled_in_steady,
            "ssm_sessions_opened": gateway.sessions_opened,
            "harness": harness,
            "definitions": {
                "commands": "step() and exec() round trips completed in the steady phase "
                "(2 per agent step); session starts are not counted",
                "steady phase": "from the moment the last sandbox was up (its tmux session "
                "started) to the moment the last sandbox finished its last step",
                "commands_per_s": "commands / steady phase seconds",
                "start-up": "tasks start at once (no Fargate image pull); start-up is outside "
                "the steady phase either way",
                "harness_cpu_ms_per_command": "the harness process's CPU (getrusage, user + "
                "system, all threads) over the steady phase / commands",
                "local_ecs_cpu_ms_per_command": "this process's CPU (moto, SSM gateway and "
                "agent) over the steady phase / commands",
                "containers_cpu_ms_per_command": "CPU of the containers' processes over the "
                "steady phase / commands: the live ones (tmux server, shells, keep-alive "
                "loops, with what they reaped) plus the execs that ended (the step and exec "
                "scripts and every process they forked)",
                "containers_live_cpu_ms_per_command": "the live container processes' part",
                "execs_cpu_ms_per_command": "the ended execs' part (this process's "
                "RUSAGE_CHILDREN: nsenter, the command and its children)",
                "cpu_ms_per_command": "harness + local ECS + containers CPU over the steady "
                "phase / commands",
                "machine_busy_cpu_ms_per_command": "CPU busy machine-wide over the steady "
                "phase / commands (includes other load on the machine)",
                "execute_command_per_sandbox": "ExecuteCommand requests the local ECS saw "
                "(throttled ones included) / sandboxes",
                "commands_per_cpu_s": "commands / CPU seconds of the harness, the local ECS "
                "and the containers together over the steady phase: what the run would "
                "reach with every CPU of the machine to itself, if it scaled linearly",
                "machine_busy_cpus_in_steady": "CPUs busy machine-wide over the steady phase, "
                "whoever used them (/proc/stat)",
            },
        }
    }


def _reaped_cpu_s() -> float:
    """CPU seconds of this process's ended and reaped children (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    import json
    import sys

    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(run(**dict(zip(("sandboxes", "steps"), args, strict=False))), indent=2))
