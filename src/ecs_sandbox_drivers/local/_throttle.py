"""A LocalAws hook that throttles ECS calls the way an AWS account does.

ECS gives each account and region one token bucket per group of API actions (the table in
``ecs_sandbox_core._budget.API_GROUPS``). :class:`EcsThrottle` keeps one server-side
:class:`~ecs_sandbox_core._budget.TokenBucket` per group, with no reserve: every call takes a
token, and a call that finds its bucket empty is answered as ECS answers it, HTTP 400 with
``ThrottlingException`` / "Rate exceeded", without reaching moto. Operations outside every
group (and other services) pass untouched.

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

from ecs_sandbox_core._budget import API_GROUPS, TokenBucket, api_group

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

    def now(self) -> float:
        """The buckets' clock: real seconds times ``time_scale``."""
        return self._clock() * self.time_scale

    def __call__(self, request: InterceptedRequest) -> Reply | None:
        if not request.is_ecs:
            return None
        group = api_group(_snake(request.operation))
        with self._lock:
            self.calls[request.operation] += 1
            bucket = self._buckets.get(group)
            if bucket is None or bucket.take(self.now(), priority=1) == 0.0:
                return None
            self.throttled[request.operation] += 1
        return Reply.json_error(THROTTLING_CODE, THROTTLING_MESSAGE)

    def total_calls(self) -> int:
        """ECS requests seen so far, throttled ones included."""
        with self._lock:
            return sum(self.calls.values())

    def reset(self) -> None:
        """Forget the counts (the buckets keep their state)."""
        with self._lock:
            self.calls.clear()
            self.throttled.clear()


__all__ = ["THROTTLING_CODE", "THROTTLING_MESSAGE", "EcsThrottle"]
