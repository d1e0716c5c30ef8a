"""A LocalAws hook that throttles ECS calls the way an AWS account does.

ECS gives each account and region one token bucket per group of API actions (the table in
``ecs_sandbox_core._budget.API_GROUPS``). :class:`EcsThrottle` keeps one server-side
:class:`~ecs_sandbox_core._budget.TokenBucket` per group, with no reserve: every call takes a
token, and a call that finds its bucket empty is answered as ECS answers it, HTTP 400 with
``ThrottlingException`` / "Rate exceeded", without reaching moto. Operations outside every
group (and other services) pass untouched.

Fargate's task-launch quota (``_budget.LAUNCH_GROUP``: 100 tasks at once, 20 a second) is one
more bucket, spent per task a RunTask launches (its ``count``, 1 by default) after the call
has spent its API token. A RunTask that finds too few launch tokens launches nothing and is
answered like any other throttled call, ``ThrottlingException`` / "Rate exceeded" (HTTP 400):
ECS documents that going over a throttling quota gives that code ("Request throttling for
the Amazon ECS API", ECS API reference), the launch quota is a throttling quota of the same
token-bucket kind ("AWS Fargate throttling quotas", ECS developer guide), and users hitting
the launch rate report exactly that answer to RunTask (AllenInstitute/neuron_morphology#151,
"Rate exceeded. (Service: AmazonECS; Status Code: 400; Error Code: ThrottlingException)";
cisagov/crossfeed#247). Whether ECS launches part of a larger ``count`` when only some
tokens are left is not documented; refusing the whole call is the answer a client must
handle anyway.

``time_scale`` runs the buckets faster than real time (10 means ten times the burst refill
rate per real second), for benchmarks that scale every clock by the same factor; the figures
they report stay in unscaled units.

Use: ``throttle = EcsThrottle(time_scale=10); local_aws.add_hook(throttle)``; then
``throttle.calls`` and ``throttle.throttled`` count ECS requests by operation (``RunTask``),
throttled ones included in ``calls``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from ecs_sandbox_core._budget import (
    API_GROUPS,
    LAUNCH_GROUP,
    TokenBucket,
    api_group,
    task_launches,
)

from ._middleware import InterceptedRequest, Reply

THROTTLING_CODE = "ThrottlingException"
THROTTLING_MESSAGE = "Rate exceeded"

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(operation: str) -> str:
    """``RunTask`` -> ``run_task`` (the boto3 names ``api_group`` knows)."""
    return _CAMEL.sub("_", operation).lower()


class EcsThrottle:
    """Enforces ECS's per-group token buckets on the requests LocalAws serves (a ``Hook``)."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        groups: Mapping[str, tuple[float, float]] = API_GROUPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._clock = clock
        # ECS keeps nothing back for anyone: a bucket may be spent down to zero.
        self._buckets = {
            name: TokenBucket(burst, rate, reserve=0.0) for name, (burst, rate) in groups.items()
        }
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.launched = 0  # tasks the launch bucket let through
        self.launch_throttled = 0  # RunTasks refused by the launch bucket (in ``throttled`` too)

    def now(self) -> float:
        """The buckets' clock: real seconds times ``time_scale``."""
        return self._clock() * self.time_scale

    def __call__(self, request: InterceptedRequest) -> Reply | None:
        if not request.is_ecs:
            return None
        operation = _snake(request.operation)
        launches = task_launches(operation, request.params or {})
        with self._lock:
            self.calls[request.operation] += 1
            now = self.now()
            bucket = self._buckets.get(api_group(operation))
            if bucket is not None and bucket.take(now, priority=1) > 0.0:
                self.throttled[request.operation] += 1
                return _throttled()
            launch = self._buckets.get(LAUNCH_GROUP) if launches else None
            if launch is not None:
                if launch.take(now, priority=1, cost=launches) > 0.0:
                    self.throttled[request.operation] += 1
                    self.launch_throttled += 1
                    return _throttled()
                self.launched += launches
        return None

    def total_throttled(self) -> int:
        """ECS requests refused so far, by any bucket."""
        with self._lock:
            return sum(self.throttled.values())

    def total_calls(self) -> int:
        """ECS requests seen so far, throttled ones included."""
        with self._lock:
            return sum(self.calls.values())

    def reset(self) -> None:
        """Forget the counts (the buckets keep their state)."""
        with self._lock:
            self.calls.clear()
            self.throttled.clear()
            self.launched = 0
            self.launch_throttled = 0


def _throttled() -> Reply:
    return Reply.json_error(THROTTLING_CODE, THROTTLING_MESSAGE)


__all__ = ["THROTTLING_CODE", "THROTTLING_MESSAGE", "EcsThrottle"]
