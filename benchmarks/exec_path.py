"""The exec path: ``sandbox.exec("true")`` natively (``ssm``) and through the AWS CLI.

The embedded local ECS serves ExecuteCommand with a real data channel, and its agent waits
AWS's 1 s before its first PTY read, as amazon-ssm-agent does. The harness (the process that
calls ``exec``) runs in a child process of its own, so that its CPU time (its own plus that
of the processes it starts: the AWS CLI and the plugin) is measured apart from the local
ECS's, which runs in this process. Both transports are measured in the same run, on the same
local ECS, one sandbox each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ecs_sandbox_drivers.local import LocalAws

NATIVE_RUNS = 200
CLI_RUNS = 6


def _harness(aws: LocalAws, transport: str, runs: int) -> dict[str, Any]:
    spec = {
        "cfg": {
            "region": aws.region,
            "cluster": aws.cluster,
            "task_definition": aws.task_definition,
            "container_name": aws.container_name,
            "subnets": [aws.subnet_id],
            "security_groups": [aws.security_group_id],
            "s3_bucket": aws.bucket,
            "endpoint_url": aws.endpoint_url,
            "exec_transport": transport,
        },
        "env": aws.aws_env(),
        "runs": runs,
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._exec_harness"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"exec harness failed: {done.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run() -> dict[str, Any]:
    with LocalAws() as aws:  # the agent waits AWS's 1 s before its first read
        delay = aws.first_read_delay_s
        native = _harness(aws, "ssm", NATIVE_RUNS)
        cli = _harness(aws, "aws-cli", CLI_RUNS)
    return {
        "exec_path": {
            "native_ms": native["wall_ms"],
            "cli_ms": cli["wall_ms"],
            "latency_ratio": cli["wall_ms"] / native["wall_ms"],
            "native_cpu_ms": native["cpu_ms"],
            "cli_cpu_ms": cli["cpu_ms"],
            "native_api_calls_per_command": native["api_calls_per_command"],
            "cli_api_calls_per_command": cli["api_calls_per_command"],
            "native_runs": NATIVE_RUNS,
            "cli_runs": CLI_RUNS,
            "native_first_exec_ms": native["first_exec_ms"],
            "agent_first_read_delay_s": delay,
            "api_calls": {"native": native["api_calls"], "cli": cli["api_calls"]},
        }
    }
