"""The harness process of agent_scale (see agent_scale.py).

Reads a spec line on stdin, then, on one ``AsyncDriver``: spins up ``sandboxes`` sandboxes at
once, each creating its tmux session; once every one is up (or has failed), all of them run
``steps`` agent steps at the same time, each step a ``session.step()`` (type a command,
wait for it, read the new output) followed by a ``sandbox.exec()`` whose exit code and
output are checked; then tears them all down. Events on stdout: ``spin_up_start``,
``steady_start`` (every sandbox up), ``steady_end`` (the last step done), ``teardown_end``;
then the result.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio

from ecs_sandbox_drivers import aio

from ._child import config_and_session, emit, emit_result, own_cpu_s, percentiles, read_spec


@dataclass
class _Fleet:
    """What the sandboxes of one run share: the barrier, the checks and the clocks."""

    sandboxes: int
    steps: int
    arrived: int = 0
    finished: int = 0
    all_up: anyio.Event = field(default_factory=anyio.Event)
    step_latency: list[float] = field(default_factory=list)
    exec_latency: list[float] = field(default_factory=list)
    commands: int = 0
    wrong_exit_codes: int = 0
    wrong_outputs: int = 0
    wrong_samples: list[str] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    failure_samples: list[str] = field(default_factory=list)
    steady: dict[str, float] = field(default_factory=dict)

    def arrive(self) -> None:
        """A sandbox is up (or failed to come up); the last one starts the steady phase."""
        self.arrived += 1
        if self.arrived == self.sandboxes:
            self.steady["start"] = time.monotonic()
            self.steady["cpu_start"] = own_cpu_s()
            self.steady["commands_start"] = self.commands
            emit("steady_start")
            self.all_up.set()

    def finish(self) -> None:
        self.finished += 1
        if self.finished == self.sandboxes:
            self.steady["end"] = time.monotonic()
            self.steady["cpu_end"] = own_cpu_s()
            self.steady["commands_end"] = self.commands
            emit("steady_end")

    def fail(self, phase: str, exc: BaseException) -> None:
        self.failures[phase] += 1
        if len(self.failure_samples) < 5:
            self.failure_samples.append(f"{phase}: {type(exc).__name__}: {str(exc)[:300]}")

    def wrong(self, what: str) -> None:
        if len(self.wrong_samples) < 5:
            self.wrong_samples.append(what[:300])


async def _steps(fleet: _Fleet, index: int, sandbox: Any, session: Any) -> None:
    for k in range(fleet.steps):
        n = index * 1000 + k
        started = time.monotonic()
        # The agent types a command into its terminal and reads what it printed.
        shown = await session.step([f"echo $(({n} * {n} + 1))", "Enter"], block=True)
        fleet.step_latency.append(time.monotonic() - started)
        fleet.commands += 1
        if str(n * n + 1) not in shown.splitlines():
            fleet.wrong_outputs += 1
            fleet.wrong(f"step {n}: {shown!r}")
        started = time.monotonic()
        result = await sandbox.exec(["sh", "-c", f"echo $(({n} * {n})); exit $(({n} % 7))"])
        fleet.exec_latency.append(time.monotonic() - started)
        fleet.commands += 1
        if result.exit_code != n % 7:
            fleet.wrong_exit_codes += 1
            fleet.wrong(f"exec {n}: exit {result.exit_code}, wanted {n % 7}")
        if result.output != f"{n * n}\n".encode():
            fleet.wrong_outputs += 1
            fleet.wrong(f"exec {n}: output {result.output!r}")


async def _one(fleet: _Fleet, index: int, cfg: Any, driver: aio.AsyncDriver) -> None:
    arrived = finished = False
    phase = "spin-up"
    try:
        async with aio.EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=f"agent-{index}", trial_name="bench", run_id="agent-scale",
            driver=driver,
        ) as sandbox:  # fmt: skip
            phase = "create-session"
            session = await sandbox.create_session("agent")
            arrived = True
            fleet.arrive()
            await fleet.all_up.wait()
            phase = "steps"
            try:
                await _steps(fleet, index, sandbox, session)
            finally:
                finished = True
                fleet.finish()
            phase = "tear-down"
    except Exception as exc:
        fleet.fail(phase, exc)
    finally:
        if not arrived:
            fleet.arrive()
            await fleet.all_up.wait()
        if not finished:
            fleet.finish()


async def _main(spec: dict[str, Any]) -> dict[str, Any]:
    cfg, boto_session = config_and_session(spec)
    driver = aio.AsyncDriver(cfg, session=boto_session)
    await driver.preflight()
    fleet = _Fleet(sandboxes=int(spec["sandboxes"]), steps=int(spec["steps"]))
    started = time.monotonic()
    emit("spin_up_start")
    async with anyio.create_task_group() as tg:
        for i in range(fleet.sandboxes):
            tg.start_soon(_one, fleet, i, cfg, driver)
    ended = time.monotonic()
    emit("teardown_end")
    await driver.aclose()
    s = fleet.steady
    steady_s = s["end"] - s["start"]
    steady_commands = s["commands_end"] - s["commands_start"]
    return {
        "sandboxes": fleet.sandboxes,
        "steps": fleet.steps,
        "commands": fleet.commands,
        "steady_commands": steady_commands,
        "steady_s": steady_s,
        "commands_per_s": steady_commands / steady_s if steady_s > 0 else 0.0,
        "harness_cpu_s": s["cpu_end"] - s["cpu_start"],
        "harness_cpu_ms_per_command": (s["cpu_end"] - s["cpu_start"])
        / max(steady_commands, 1)
        * 1000,
        "spin_up_s": s["start"] - started,
        "teardown_s": ended - s["end"],
        "wall_s": ended - started,
        "step_latency": percentiles(fleet.step_latency),
        "exec_latency": percentiles(fleet.exec_latency),
        "wrong_exit_codes": fleet.wrong_exit_codes,
        "wrong_outputs": fleet.wrong_outputs,
        "wrong_samples": fleet.wrong_samples,
        "failures": dict(fleet.failures),
        "failure_samples": fleet.failure_samples,
        "sessions_opened": driver.stats.sessions_opened,
        "client_throttle_waits": driver.stats.throttle_waits,
        "client_api_calls": dict(sorted(driver.api_calls.items())),
    }


def main() -> int:
    spec = read_spec(sys.stdin)
    if spec.get("profile"):  # cProfile statistics of the whole run, written to that path
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        result = profiler.runcall(anyio.run, _main, spec)
        profiler.dump_stats(spec["profile"])
    else:
        result = anyio.run(_main, spec)
    emit_result(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
