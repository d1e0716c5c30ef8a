"""Exec overhead: ``sandbox.exec("true")`` against the very same transport run, bare.

The bare run is the argv and environment ``LocalTransport.prepare`` builds for the same
wrapped command string (the same nsenter isolation wrapper, the same ``sh -lc`` script),
run with ``subprocess.run``. What is left is the library's own cost: the flow, wrapping,
the process runner and parsing. Runs alternate, median of each.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from ecs_sandbox_core._markers import wrap_command
from ecs_sandbox_drivers import EcsFargateSandbox
from ecs_sandbox_drivers._transport import PreparedRun

from ._util import ratio

RUNS = 50


def run(sandbox: EcsFargateSandbox) -> dict[str, Any]:
    driver = sandbox.driver
    # The same wrapped command as sandbox.exec sends: with the default timeout's timer.
    timeout_s = float(driver.cfg.ecs_exec_timeout_sec)
    command = wrap_command("true", nonce=driver.token(16), timeout_s=timeout_s)
    prepared = driver.transport.prepare(
        task_arn=sandbox.task_arn, container=driver.cfg.container_name, command=command
    )
    assert isinstance(prepared, PreparedRun)

    def bare() -> None:
        done = subprocess.run(prepared.argv, env=prepared.env, capture_output=True, check=False)
        if done.returncode != 0 or b":end:0:" not in done.stdout:
            raise AssertionError(done)

    def ours() -> None:
        if sandbox.exec("true").exit_code != 0:
            raise AssertionError("exec failed")

    lib: list[float] = []
    raw: list[float] = []
    for _ in range(3):
        ours()
        bare()
    for _ in range(RUNS):
        for fn, sink in ((ours, lib), (bare, raw)):
            started = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - started)
    local, direct = statistics.median(lib), statistics.median(raw)
    return {
        "exec_overhead": {
            "local_exec_s": local,
            "raw_subprocess_s": direct,
            "ratio": ratio(local, direct),
            "runs": RUNS,
        }
    }
