"""Several harness processes on one account, each unaware of the others.

One embedded local ECS behind ``EcsThrottle`` (ECS's token buckets, one account), and
``HARNESSES`` child processes (``_churn_harness.py``), each with its own ``aio.AsyncDriver``
and so its own client-side budget that believes it has the account to itself. Once every
harness is ready (preflight done), all are told to go at once; each spins up ``SANDBOXES``
sandboxes together (one shared task definition per harness, from an image template), runs
``EXECS`` commands in each (exit code and output checked) and tears them down.

Figures: ``throttled_calls`` is what the local ECS answered with ThrottlingException, by
operation (server side); ``stop_task_failures`` counts sandboxes whose tear-down raised, plus
tasks still running once every harness has exited (server side: nothing must be left);
``sandboxes_per_s`` is sandboxes completed / the time from the go to the last harness's end.
"""

from __future__ import annotations

from typing import Any

from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._throttle import EcsThrottle

from ._child import Child, harness_spec

HARNESSES = 4
SANDBOXES = 50
EXECS = 3
IMAGE = "ecs-sandbox/bench:multi"


def _left_behind(aws: LocalAws) -> tuple[list[str], int]:
    """Tasks not stopped and task definitions still ACTIVE (asked without the throttle)."""
    ecs = aws.client("ecs")
    running = [
        arn
        for status in ("RUNNING", "PENDING")
        for arn in ecs.list_tasks(cluster=aws.cluster, desiredStatus=status)["taskArns"]
    ]
    definitions = ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    ours = [d for d in definitions if aws.task_definition_family not in d]
    return running, len(ours)


def run(
    *, harnesses: int = HARNESSES, sandboxes: int = SANDBOXES, execs: int = EXECS
) -> dict[str, Any]:
    with LocalAws() as aws:  # the agent waits AWS's 1 s before its first read
        throttle = EcsThrottle()
        aws.add_hook(throttle)
        children = [
            Child(
                "benchmarks._churn_harness",
                harness_spec(
                    aws,
                    cfg={"image_template": IMAGE},
                    sandboxes=sandboxes,
                    execs=execs,
                    prefix=f"h{i}",
                ),
            )
            for i in range(harnesses)
        ]
        for child in children:
            if not any(m.get("event") == "ready" for m in child.messages()):
                child.finish()  # it ended before its preflight: raises with its stderr
        for child in children:
            child.go()
        times: dict[str, list[float]] = {"start": [], "end": []}
        results = []
        for child in children:
            for message in child.messages():
                if message.get("event") in times:
                    times[message["event"]].append(message["t"])
            results.append(child.finish())
        aws.remove_hook(throttle)
        running, definitions_left = _left_behind(aws)
        containers_alive = sum(1 for c in aws.containers() if c.alive())
    teardown_failed = {arn for r in results for arn in r["teardown_failed_tasks"]}
    completed = sum(r["completed"] for r in results)
    wall = max(times["end"]) - min(times["start"])
    failures: dict[str, int] = {}
    for r in results:
        for phase, n in r["failures"].items():
            failures[phase] = failures.get(phase, 0) + n
    return {
        "multi_harness": {
            "harnesses": harnesses,
            "sandboxes_per_harness": sandboxes,
            "execs_per_sandbox": execs,
            "sandboxes_per_s": completed / wall,
            "stop_task_failures": len(teardown_failed | set(running)),
            "throttled_calls": dict(sorted(throttle.throttled.items())),
            "server_calls": dict(sorted(throttle.calls.items())),
            "completed": completed,
            "failures": failures,
            "wrong_exit_codes": sum(r["wrong_exit_codes"] for r in results),
            "wrong_outputs": sum(r["wrong_outputs"] for r in results),
            "tasks_left_running": len(running),
            "definitions_left_active": definitions_left,
            "containers_left_alive": containers_alive,
            "wall_s": wall,
            "start_spread_s": max(times["start"]) - min(times["start"]),
            "harnesses_detail": results,
            "definitions": {
                "sandboxes_per_s": "sandboxes completed (up, execs, down) / seconds from the "
                "first harness's start to the last harness's end",
                "stop_task_failures": "sandboxes whose tear-down raised, with tasks still "
                "RUNNING or PENDING at the server after every harness exited",
                "throttled_calls": "ThrottlingException answers of the local ECS, by operation",
                "start-up": "tasks start at once (no Fargate image pull), so sandboxes_per_s "
                "is what the account's API buckets and the harnesses let through",
            },
        }
    }


if __name__ == "__main__":
    import json
    import sys

    args = [int(a) for a in sys.argv[1:]]
    names = ("harnesses", "sandboxes", "execs")
    print(json.dumps(run(**dict(zip(names, args, strict=False))), indent=2))
