"""Control plane: many sandboxes spun up and torn down at once under ECS's API limits.

One embedded local ECS whose tasks take ``START_UP_S`` to start, behind
``local._throttle.EcsThrottle`` (ECS's documented token buckets, Fargate's task-launch quota
of 100 tasks at once and 20 a second among them, ThrottlingException past them). Every
clock runs ``SCALE`` times faster than real time (the buckets, the start-up, each design's
sleeps and back-off), so both designs meet the same account, and every figure is converted
back to unscaled seconds.

* ours: ``aio.EcsFargateSandbox.spin_up`` on one shared ``AsyncDriver`` (one DescribeTasks
  poller, one token budget, one task definition shared by content);
* baseline: the reference's spin-up and tear-down (``baseline.reference_sandbox``) on threads,
  one per sandbox, with its per-sandbox registration and 2 s DescribeTasks loop;
* sync (``control_plane_sync``, :func:`run_sync`): ``EcsFargateSandbox.spin_up`` from
  ``SYNC_THREADS`` threads, each starting and tearing down one sandbox after another, on
  the driver the sync API shares between them. Tasks start at once here: with Fargate's
  start-up, 16 threads holding one sandbox each through it could not pass 16 / 30 s, so
  this figure is what the control plane and the driver let through.

Calls are counted at the server (every ECS request, throttled ones included). The sustained
rate leaves out the start-up every sandbox waits for whatever the design: it is
``sandboxes / (wall time - START_UP_S)`` in unscaled seconds, the rate at which the control
plane moves sandboxes through once the first ones are up.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import botocore.config
import botocore.endpoint

from ecs_sandbox_drivers import EcsFargateSandbox, aio
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._throttle import EcsThrottle

from ._util import ratio
from .baseline import ReferencePlan, ScaledBotocoreSleep, ScaledClock, reference_sandbox

SANDBOXES = 200
BASELINE_SANDBOXES = 40
START_UP_S = 30.0
SCALE = 1.0
IMAGE = "ecs-sandbox/bench:shared"
SYNC_SANDBOXES = 200
SYNC_THREADS = 16
SYNC_IMAGE = "ecs-sandbox/bench:sync"


def _figures(hook: EcsThrottle, sandboxes: int, wall_s: float, scale: float) -> dict[str, Any]:
    unscaled = wall_s * scale
    return {
        "calls_per_sandbox": hook.total_calls() / sandboxes,
        "sandboxes_per_s": sandboxes / max(unscaled - START_UP_S, 1e-9),
        "wall_s_unscaled": unscaled,
        "calls": dict(sorted(hook.calls.items())),
        "throttled": dict(sorted(hook.throttled.items())),
        "tasks_launched": hook.launched,
        "run_task_refused_by_launch_quota": hook.launch_throttled,
    }


async def _ours(aws: LocalAws, sandboxes: int, scale: float) -> dict[str, Any]:
    cfg = aws.config(image_template=IMAGE)
    driver = aio.AsyncDriver(cfg, time_scale=scale, poll_tick_s=1.0)
    await driver.preflight()  # once per driver (STS, not ECS), before the clock starts
    hook = EcsThrottle(time_scale=scale)
    aws.add_hook(hook)
    failures: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            async with aio.EcsFargateSandbox.spin_up(
                cfg=cfg, task_id=f"cp-{i}", trial_name="bench", run_id="bench", driver=driver
            ):
                pass
        except Exception as exc:
            failures.append(exc)

    try:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(sandboxes):
                tg.start_soon(one, i)
        wall = time.monotonic() - started
    finally:
        aws.remove_hook(hook)
    figures = _figures(hook, sandboxes, wall, scale)
    figures["failed"] = len(failures)
    figures["client_throttle_waits"] = driver.stats.throttle_waits
    return figures


def _baseline(aws: LocalAws, sandboxes: int, scale: float) -> dict[str, Any]:
    cfg = aws.config(image_template=IMAGE)
    session = aws.boto3_session()
    retries = botocore.config.Config(
        retries={"max_attempts": 12, "mode": "standard"}, max_pool_connections=sandboxes
    )
    ecs = session.client("ecs", endpoint_url=aws.endpoint_url, config=retries)
    sts = session.client("sts", endpoint_url=aws.endpoint_url, config=retries)
    clock = ScaledClock(scale)
    hook = EcsThrottle(time_scale=scale)
    failures: list[str] = []

    def one(i: int) -> None:
        plan = ReferencePlan(
            cluster=cfg.cluster,
            task_definition=cfg.task_definition,
            container=cfg.container_name,
            subnets=list(cfg.subnets),
            security_groups=list(cfg.security_groups),
            image=IMAGE,
            run_id="bench",
            task_id=f"ref-{i}",
        )
        try:
            reference_sandbox(ecs, sts, plan, clock, random.Random(i))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    real_time = botocore.endpoint.time
    botocore.endpoint.time = ScaledBotocoreSleep(scale)  # type: ignore[assignment]
    aws.add_hook(hook)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=sandboxes) as pool:
            list(pool.map(one, range(sandboxes)))
        wall = time.monotonic() - started
    finally:
        aws.remove_hook(hook)
        botocore.endpoint.time = real_time
    figures = _figures(hook, sandboxes, wall, scale)
    figures["failed"] = len(failures)
    figures["failures_sample"] = sorted(set(failures))[:3]
    return figures


def run(
    *,
    sandboxes: int = SANDBOXES,
    baseline_sandboxes: int = BASELINE_SANDBOXES,
    scale: float = SCALE,
) -> dict[str, Any]:
    with LocalAws(start_delay_s=START_UP_S / scale) as aws:
        ours = anyio.run(_ours, aws, sandboxes, scale)
        base = _baseline(aws, baseline_sandboxes, scale)
    return {
        "control_plane": {
            "sandboxes": sandboxes,
            "calls_per_sandbox": ours["calls_per_sandbox"],
            "baseline_calls_per_sandbox": base["calls_per_sandbox"],
            "sandboxes_per_s": ours["sandboxes_per_s"],
            "baseline_sandboxes_per_s": base["sandboxes_per_s"],
            "stop_task_throttled": ours["throttled"].get("StopTask", 0),
            "run_task_throttled": ours["throttled"].get("RunTask", 0),
            "baseline_stop_task_throttled": base["throttled"].get("StopTask", 0),
            "baseline_sandboxes": baseline_sandboxes,
            "speedup": ratio(ours["sandboxes_per_s"], base["sandboxes_per_s"]),
            "time_scale": scale,
            "start_up_s": START_UP_S,
            "sustained_rate": "sandboxes / (wall time - start-up), unscaled seconds",
            "notes": [
                "Fargate's task-launch quota (100 tasks, 20/s) is enforced by the local ECS "
                "with the API buckets; run_task_throttled counts RunTasks refused by either",
                "the baseline runs fewer sandboxes to keep the run short; with 40 of them, "
                "20 registrations come from the register bucket's burst, so its rate sits "
                "above the 0.5/s it tends to with more sandboxes",
                "time_scale 1: the embedded ECS spends real milliseconds per RunTask "
                "(moto plus a bubblewrap start, in this process), which a faster clock "
                "would turn into a bottleneck that AWS does not have",
            ],
            "ours": ours,
            "baseline": base,
        }
    }


def _sync(aws: LocalAws, sandboxes: int, threads: int) -> dict[str, Any]:
    cfg = aws.config(image_template=SYNC_IMAGE)
    driver = EcsFargateSandbox.driver_for(cfg)  # the one every sync sandbox of cfg shares
    driver.preflight()  # once per driver (STS, not ECS), before the clock starts
    hook = EcsThrottle()
    failures: list[str] = []

    def one(i: int) -> None:
        try:
            with EcsFargateSandbox.spin_up(
                cfg=cfg, task_id=f"cps-{i}", trial_name="bench", run_id="bench-sync"
            ):
                pass
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    aws.add_hook(hook)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(sandboxes)))
        wall = time.monotonic() - started
    finally:
        aws.remove_hook(hook)
        driver.close()
    return {
        "calls_per_sandbox": hook.total_calls() / sandboxes,
        "sandboxes_per_s": sandboxes / wall,
        "wall_s": wall,
        "describe_tasks_calls": hook.calls.get("DescribeTasks", 0),
        "calls": dict(sorted(hook.calls.items())),
        "throttled": dict(sorted(hook.throttled.items())),
        "tasks_launched": hook.launched,
        "run_task_refused_by_launch_quota": hook.launch_throttled,
        "failed": len(failures),
        "failures_sample": sorted(set(failures))[:3],
        "client_throttle_waits": driver.stats.throttle_waits,
    }


def run_sync(*, sandboxes: int = SYNC_SANDBOXES, threads: int = SYNC_THREADS) -> dict[str, Any]:
    """``control_plane_sync``: sandboxes spun up and torn down through the sync API."""
    with LocalAws() as aws:  # tasks RUNNING at once (see the module docstring)
        figures = _sync(aws, sandboxes, threads)
    return {
        "control_plane_sync": {
            "sandboxes": sandboxes,
            "threads": threads,
            "start_up_s": 0.0,
            "poll_tick_s": 1.0,
            "rate": "sandboxes / wall time, tasks RUNNING at their first DescribeTasks",
            **figures,
        }
    }


if __name__ == "__main__":
    import json
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which not in ("all", "async", "sync"):
        raise SystemExit("usage: python -m benchmarks.control_plane [all|async|sync]")
    found: dict[str, Any] = {}
    if which in ("all", "async"):
        found.update(run())
    if which in ("all", "sync"):
        found.update(run_sync())
    print(json.dumps(found, indent=2))
