"""The local SSM gateway under many long-lived sessions: ``python -m benchmarks.ssm_gateway``.

Opens N sessions (``cat`` behind a prompt) on one task, keeps them all open, and measures:
opening them (ExecuteCommand + WebSocket + PTY), one echo round trip on every session at
once, the gateway thread's CPU while they all sit idle, and the descriptors and memory they
hold; then the output rate of one session (8 MiB, 1024-byte frames, acknowledged by the
pure-Python client in the same process). The clients are the tests' SsmChannel driver,
pumped together over one poll loop. Not part of ``make bench`` (it starts hundreds of
processes); run it on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ecs_sandbox_drivers.local import LocalAws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drivers"))
from _ssm_client import SsmTestClient

PROMPT = "sh -c 'echo ready; exec cat'"


def pump_all(clients: list[SsmTestClient], done: Any, timeout: float) -> None:
    """Exchange frames for every client until ``done(client)`` holds for all."""
    deadline = time.monotonic() + timeout
    pending = {id(c): c for c in clients}
    while True:
        now = time.time()
        for client in clients:
            if client.channel is not None:
                for frame in client.channel.frames_to_send(now):
                    client.send_frame(frame)
        for key in [k for k, c in pending.items() if done(c)]:
            del pending[key]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} sessions did not finish")
        poller = select.poll()
        by_fd = {}
        for client in pending.values():
            if client.sock is not None:
                poller.register(client.sock, select.POLLIN)
                by_fd[client.sock.fileno()] = client
        for fd, _event in poller.poll(20):
            by_fd[fd]._receive()


def thread_cpu_s(name: str) -> float:
    """User + system CPU seconds of this process's thread called ``name``."""
    thread = next(t for t in threading.enumerate() if t.name == name)
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = (int(v) for v in fields.split()[11:13])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(sessions: int, idle_s: float) -> dict[str, Any]:
    with LocalAws(first_read_delay_s=0.05) as aws:
        ecs = aws.client("ecs")
        cfg = aws.config()
        task = ecs.run_task(
            cluster=cfg.cluster,
            taskDefinition=cfg.task_definition,
            launchType="FARGATE",
            enableExecuteCommand=True,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(cfg.subnets),
                    "securityGroups": list(cfg.security_groups),
                }
            },
        )["tasks"][0]["taskArn"]
        fds_before, rss_before = len(os.listdir("/proc/self/fd")), rss_mb()
        started = time.perf_counter()
        clients = []
        for _ in range(sessions):
            session = ecs.execute_command(
                cluster=cfg.cluster, task=task, container="main", command=PROMPT, interactive=True
            )["session"]
            clients.append(SsmTestClient(session, region=aws.region).connect())
        pump_all(clients, lambda c: b"ready" in c.output, timeout=120)
        opened_s = time.perf_counter() - started

        started = time.perf_counter()
        for n, client in enumerate(clients):
            client.type(b"n%d\n" % n)
        pump_all(
            clients,
            lambda c: c.output.count(b"\r\n") >= 3,  # prompt, echo, cat's line
            timeout=60,
        )
        echo_all_s = time.perf_counter() - started

        cpu_before = thread_cpu_s("ecs-sandbox-ssm-gateway")
        time.sleep(idle_s)
        idle_cpu_s = thread_cpu_s("ecs-sandbox-ssm-gateway") - cpu_before
        stats = aws.ssm_stats
        result = {
            "sessions": sessions,
            "live_sessions": stats.live_sessions,
            "open_all_s": round(opened_s, 3),
            "open_per_session_ms": round(opened_s / sessions * 1000, 2),
            "echo_all_at_once_s": round(echo_all_s, 3),
            "gateway_cpu_idle_s": round(idle_cpu_s, 4),
            "idle_window_s": idle_s,
            # The process holds both ends here: client sockets count too.
            "fds_per_session": round((len(os.listdir("/proc/self/fd")) - fds_before) / sessions, 2),
            "rss_mb_per_session": round((rss_mb() - rss_before) / sessions, 3),
            "frames_resent": stats.frames_resent,
        }
        for client in clients:
            client.close()
        size = 8 * 1024 * 1024
        session = ecs.execute_command(
            cluster=cfg.cluster,
            task=task,
            container="main",
            command=f"head -c {size} /dev/zero",
            interactive=True,
        )["session"]
        started = time.perf_counter()
        with SsmTestClient(session, region=aws.region) as client:
            client.connect().run_to_end(timeout=300)
        took = time.perf_counter() - started
        assert len(client.output) == size, len(client.output)
        result["one_session_mb_per_s"] = round(size / took / 1e6, 2)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(run(args.sessions, args.idle), indent=2))


if __name__ == "__main__":
    main()
