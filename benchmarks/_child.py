"""Harness processes of the fleet benchmarks (agent_scale, multi_harness), and CPU accounts.

The embedded local ECS (moto, the SSM gateway and agent, the bubblewrap containers) runs in
the benchmark's own process; each harness runs in a child process with its own
``AsyncDriver``, as a user's harness would, so that its CPU time is its own. Parent and
child speak JSON lines: the parent writes the spec and later a ``go`` line to the child's
stdin; the child writes ``{"event": NAME, "t": MONOTONIC}`` lines and finally
``{"result": {...}}`` to its stdout. ``time.monotonic`` is the system-wide
``CLOCK_MONOTONIC`` on Linux, so the two processes' times compare directly.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import boto3

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers.local import LocalAws

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the parent's side ----------------------------------------------------------------------


def harness_spec(
    aws: LocalAws, *, cfg: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """What a harness needs to reach ``aws`` from another process (``cfg``: configuration
    fields to add), plus ``extra``."""
    return {
        "cfg": {
            "region": aws.region,
            "cluster": aws.cluster,
            "task_definition": aws.task_definition,
            "container_name": aws.container_name,
            "subnets": [aws.subnet_id],
            "security_groups": [aws.security_group_id],
            "s3_bucket": aws.bucket,
            "endpoint_url": aws.endpoint_url,
            "exec_transport": "ssm",
            **(cfg or {}),
        },
        "env": aws.aws_env(),
        **extra,
    }


class Child:
    """One harness process (``python -m MODULE``) fed ``spec`` on its stdin."""

    def __init__(self, module: str, spec: dict[str, Any]) -> None:
        # A file, not a pipe: a harness that logs many retries must never block on it.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        self.result: dict[str, Any] | None = None

    def messages(self) -> Iterator[dict[str, Any]]:
        """The child's JSON lines as they come; the last one (``result``) is kept."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message: dict[str, Any] = json.loads(line)
            if "result" in message:
                self.result = message["result"]
            yield message

    def go(self) -> None:
        """Let the child start its measured work."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for the child's exit; its result (RuntimeError with its stderr if none)."""
        for _ in self.messages():
            pass
        code = self.proc.wait(timeout=timeout_s)
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        if code != 0 or self.result is None:
            raise RuntimeError(f"harness exited {code}: {stderr[-4000:]}")
        return self.result


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds at one moment: this process, its container processes, the machine."""

    at: float
    own_s: float
    containers_s: float
    machine_busy_s: float
    machine_total_s: float

    @classmethod
    def take(cls, *, skip_pids: frozenset[int] = frozenset()) -> CpuSnapshot:
        """Now. ``skip_pids``: children (harnesses) whose trees are not containers."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = _machine_jiffies()
        return cls(
            at=time.monotonic(),
            own_s=own.ru_utime + own.ru_stime,
            containers_s=_descendants_cpu_s(os.getpid(), skip_pids),
            machine_busy_s=busy / _CLK_TCK,
            machine_total_s=total / _CLK_TCK,
        )

    def since(self, earlier: CpuSnapshot) -> dict[str, float]:
        """CPU seconds spent between ``earlier`` and this snapshot."""
        wall = self.at - earlier.at
        return {
            "wall_s": wall,
            "local_ecs_cpu_s": self.own_s - earlier.own_s,
            "containers_cpu_s": self.containers_s - earlier.containers_s,
            "machine_busy_cpu_s": self.machine_busy_s - earlier.machine_busy_s,
            "machine_cpus": (self.machine_total_s - earlier.machine_total_s) / max(wall, 1e-9),
        }


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _descendants_cpu_s(root: int, skip: frozenset[int]) -> float:
    """CPU of every live descendant of ``root`` (outside ``skip``'s trees), reaped children
    included: a process that ended within the window is counted by whoever reaped it.
    """
    parent_of: dict[int, int] = {}
    jiffies: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        parent_of[pid] = int(fields[1])
        # utime, stime, cutime, cstime (fields 14-17 of proc(5), 12-15 after the name)
        jiffies[pid] = sum(int(x) for x in fields[11:15])
    total = 0
    for pid, value in jiffies.items():
        ancestor = parent_of.get(pid, 0)
        while ancestor not in (0, 1, root) and ancestor not in skip:
            ancestor = parent_of.get(ancestor, 0)
        if ancestor == root and pid not in skip:
            total += value
    return total / _CLK_TCK


# --- the child's side -----------------------------------------------------------------------


def read_spec(stdin: IO[str]) -> dict[str, Any]:
    """The spec line the parent wrote first."""
    spec: dict[str, Any] = json.loads(stdin.readline())
    return spec


def config_and_session(spec: dict[str, Any]) -> tuple[EcsFargateConfig, boto3.Session]:
    """The harness's configuration and a boto3 session with the local ECS's credentials."""
    cfg = EcsFargateConfig(**spec["cfg"])
    env = spec["env"]
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name=cfg.region,
    )
    return cfg, session


def emit(event: str, **fields: Any) -> None:
    """Tell the parent that ``event`` happened now."""
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def emit_result(result: dict[str, Any]) -> None:
    print(json.dumps({"result": result}), flush=True)


def own_cpu_s() -> float:
    """This process's CPU seconds, with any children it reaped."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of ``samples`` (seconds), in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000}
