"""A harness process of multi_harness (see multi_harness.py).

Reads a spec line on stdin, makes its own ``AsyncDriver`` (it knows of no other harness),
runs its preflight, says ``ready`` and waits for the parent's ``go`` line; then spins up
``sandboxes`` sandboxes at once, each running ``execs`` commands (exit code and output
checked) and tearing down. Events on stdout: ``ready``, ``start``, ``end``; then the result.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio

from ecs_sandbox_drivers import aio

from ._child import config_and_session, emit, emit_result, read_spec


@dataclass
class _Tally:
    completed: int = 0
    wrong_exit_codes: int = 0
    wrong_outputs: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    teardown_failed: list[str] = field(default_factory=list)
    lifetimes: list[float] = field(default_factory=list)

    def fail(self, phase: str, exc: BaseException) -> None:
        self.failures[phase] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{phase}: {type(exc).__name__}: {str(exc)[:300]}")


async def _one(tally: _Tally, name: str, execs: int, cfg: Any, driver: aio.AsyncDriver) -> None:
    phase = "spin-up"
    task_arn = ""
    started = time.monotonic()
    try:
        async with aio.EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=name, trial_name="bench", run_id="multi-harness", driver=driver
        ) as sandbox:
            task_arn = sandbox.task_arn
            phase = "exec"
            for k in range(execs):
                result = await sandbox.exec(["sh", "-c", f"echo {name}-{k}; exit {k + 1}"])
                if result.exit_code != k + 1:
                    tally.wrong_exit_codes += 1
                if result.output != f"{name}-{k}\n".encode():
                    tally.wrong_outputs += 1
            phase = "tear-down"
        tally.completed += 1
        tally.lifetimes.append(time.monotonic() - started)
    except Exception as exc:
        tally.fail(phase, exc)
        if phase == "tear-down":
            tally.teardown_failed.append(task_arn)


async def _main(spec: dict[str, Any]) -> dict[str, Any]:
    cfg, session = config_and_session(spec)
    driver = aio.AsyncDriver(cfg, session=session)
    await driver.preflight()
    emit("ready")
    await anyio.to_thread.run_sync(sys.stdin.readline)  # the parent's "go"
    tally = _Tally()
    sandboxes, execs, prefix = int(spec["sandboxes"]), int(spec["execs"]), spec["prefix"]
    started = time.monotonic()
    emit("start")
    async with anyio.create_task_group() as tg:
        for i in range(sandboxes):
            tg.start_soon(_one, tally, f"{prefix}-{i}", execs, cfg, driver)
    ended = time.monotonic()
    emit("end")
    await driver.aclose()
    lifetimes = sorted(tally.lifetimes)
    return {
        "sandboxes": sandboxes,
        "completed": tally.completed,
        "wall_s": ended - started,
        "failures": dict(tally.failures),
        "failure_samples": tally.samples,
        "teardown_failed_tasks": tally.teardown_failed,
        "wrong_exit_codes": tally.wrong_exit_codes,
        "wrong_outputs": tally.wrong_outputs,
        "median_lifetime_s": lifetimes[len(lifetimes) // 2] if lifetimes else None,
        "client_throttle_waits": driver.stats.throttle_waits,
        "client_api_calls": dict(sorted(driver.api_calls.items())),
    }


def main() -> int:
    spec = read_spec(sys.stdin)
    emit_result(anyio.run(_main, spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
