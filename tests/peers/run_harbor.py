"""Run a Harbor trial (its oracle agent) on ecs-sandbox's embedded local ECS; exit 0 on reward 1.

``make peers`` runs this with the Python 3.12 venv ``.venv-peers`` (ecs-sandbox with its
``local`` and ``harbor`` extras). It runs Harbor's own command line as a user would::

    harbor run -p tests/peers/harbor_task -a oracle \\
        -e ecs_sandbox_drivers.harbor_env:EcsSandboxEnvironment --ek config=<file>

with a configuration file that says ``local = true``, then reads the trial's result and
checks that the verifier's reward is 1 and that nothing failed. Outbound HTTP goes to a
closed local port (only 127.0.0.1 is reached), and Harbor's telemetry is off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TASK = HERE / "harbor_task"
ENVIRONMENT = "ecs_sandbox_drivers.harbor_env:EcsSandboxEnvironment"
TRIAL_TIMEOUT_S = 600
_CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once


def harbor_command(harbor: str, config: Path, jobs: Path) -> list[str]:
    return [
        harbor,
        "run",
        "--path",
        str(TASK),
        "--agent",
        "oracle",
        "--env",
        ENVIRONMENT,
        "--ek",
        f"config={config}",
        "--jobs-dir",
        str(jobs),
        "--job-name",
        "ecs-sandbox-peers",
        "--n-concurrent",
        "1",
        "--yes",
    ]


def offline_environ() -> dict[str, str]:
    env = dict(os.environ)
    env["HARBOR_TELEMETRY"] = "0"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = _CLOSED
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def trial_results(jobs: Path) -> list[dict[str, Any]]:
    """Every trial's result.json under the job directory (job-level results left out)."""
    found = []
    for path in sorted(jobs.glob("*/*/result.json")):
        data = json.loads(path.read_text())
        if "verifier_result" in data or "trial_name" in data:
            found.append(data)
    return found


def verdict(results: list[dict[str, Any]]) -> str | None:
    """None when there is exactly one trial, without exception, with reward 1."""
    if len(results) != 1:
        return f"expected one trial result, found {len(results)}"
    result = results[0]
    if result.get("exception_info"):
        info = result["exception_info"]
        return f"the trial failed: {info.get('exception_type')}: {info.get('exception_message')}"
    rewards = (result.get("verifier_result") or {}).get("rewards") or {}
    if rewards.get("reward") != 1:
        return f"reward is {rewards!r}, not 1"
    return None


def main() -> int:
    harbor = str(Path(sys.executable).with_name("harbor"))
    with tempfile.TemporaryDirectory(prefix="ecs-sandbox-peers-") as scratch:
        config = Path(scratch) / "ecs-sandbox.toml"
        config.write_text("[ecs_sandbox]\nlocal = true\n", encoding="utf-8")
        jobs = Path(scratch) / "jobs"
        argv = harbor_command(harbor, config, jobs)
        print("$", " ".join(argv), flush=True)
        started = time.monotonic()
        try:
            run = subprocess.run(
                argv, env=offline_environ(), cwd=scratch, timeout=TRIAL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            print(f"FAIL: harbor run did not finish in {TRIAL_TIMEOUT_S} s", file=sys.stderr)
            return 1
        took = time.monotonic() - started
        results = trial_results(jobs)
        problem = verdict(results)
        if run.returncode != 0:
            problem = problem or f"harbor run exited {run.returncode}"
        if problem is not None:
            print(f"FAIL ({took:.1f} s): {problem}", file=sys.stderr)
            for path in sorted(jobs.rglob("*")):
                if path.is_file() and path.suffix in {".txt", ".log", ".json"}:
                    print(f"--- {path.relative_to(jobs)}\n{path.read_text()[-2000:]}")
            return 1
        rewards = results[0]["verifier_result"]["rewards"]
        print(f"PASS ({took:.1f} s): Harbor's oracle trial on the local ECS, rewards {rewards}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
