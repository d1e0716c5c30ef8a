"""The harness process of the exec-path benchmark (see exec_path.py); reads a JSON spec on
stdin, runs ``exec("true")`` ``runs`` times in one sandbox, prints JSON figures."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections import Counter

import boto3

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver
from ecs_sandbox_drivers._transport import AwsCliTransport, ExecTransport, SsmTransport

_EXEC_CALLS = ("ecs:execute_command", "ecs:describe_tasks")


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    spec = json.load(sys.stdin)
    cfg = EcsFargateConfig(**spec["cfg"])
    env = spec["env"]
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name=cfg.region,
    )
    transport: ExecTransport = SsmTransport()
    if cfg.exec_transport == "aws-cli":
        transport = AwsCliTransport(
            cluster=cfg.cluster, region=cfg.region, endpoint_url=cfg.endpoint_url, env=env
        )
    driver = SyncDriver(cfg, session=session, transport=transport)
    runs = int(spec["runs"])
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="exec-path", trial_name="bench", run_id="bench", driver=driver
    ) as sandbox:
        before = Counter(driver.api_calls)
        first = time.perf_counter()
        sandbox.exec("true")  # the first command opens what the path keeps (a session)
        first_s = time.perf_counter() - first
        cpu0 = _cpu_s()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            result = sandbox.exec("true")
            samples.append(time.perf_counter() - started)
            if result.exit_code != 0:
                raise AssertionError(f"exec true exited {result.exit_code}")
        cpu = _cpu_s() - cpu0
        calls = Counter(driver.api_calls)
        calls.subtract(before)
    # Every exec-related call since before the first command, over every command run.
    exec_calls = sum(calls[name] for name in _EXEC_CALLS)
    json.dump(
        {
            "wall_ms": statistics.median(samples) * 1000,
            "cpu_ms": cpu / runs * 1000,
            "api_calls_per_command": exec_calls / (runs + 1),
            "api_calls": {k: v for k, v in calls.items() if v},
            "first_exec_ms": first_s * 1000,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
