"""A client-side token budget for ECS API calls, one bucket per ECS throttling group.

ECS throttles each account and region with one token bucket per group of API actions (see
``API_GROUPS``). Going over the budget does not fail fast: the call comes back as a
``ThrottlingException``, is retried, and meanwhile every other caller in the same group is
throttled too. Worst of all, ExecuteCommand spends from the bucket that StopTask needs, so a
fleet of busy sandboxes can keep its own tear-down from getting through.

A driver therefore asks :class:`ApiBudget` before each call and waits the delay it returns.
The budget is pure: the clock is a value passed in, so the arithmetic is tested without
waiting.

Adapting to other callers. Several harness processes on one account do not know of each
other: each believes it has ECS's whole bucket. So a bucket also listens to ECS: when a call
of its group comes back throttled (:meth:`ApiBudget.observe`), its rate is halved (at most
once per second, never below a twentieth of its nominal rate) and its tokens above the
reserve are dropped; the rate then grows back linearly, to the nominal rate in
``RECOVERY_S`` seconds of no further throttling. Uncoordinated processes thus settle below
the account's rate together (additive increase, multiplicative decrease, as TCP does), and the
reserve keeps tear-down ahead of them.

Launches. Fargate also limits how fast an account *launches* tasks, with a bucket of its own
that every task launched spends from (``LAUNCH_GROUP``): a RunTask of ``count`` tasks takes
one token from the RunTask API bucket and ``count`` from the launch bucket, both at once or
neither (:meth:`ApiBudget.delay_for_group` with ``launches``). ECS refuses a launch over that
rate exactly as it refuses a call over an API rate, with ``ThrottlingException`` ("Rate
exceeded", HTTP 400), so a throttled RunTask cannot say which bucket ran dry. It slows the
launch bucket down (as above), not the API bucket: that slows RunTask whichever bucket it
was, without slowing the StopTask and ExecuteCommand calls that share the API bucket.

Drivers build their budget from the configuration: ``api_share`` is ``share`` and
``api_adaptive`` switches the adaptation on or off.

Reservation: each bucket keeps ``reserve`` of its tokens for high-priority calls (priority
> 0: StopTask and DeregisterTaskDefinition during tear-down). Normal calls are granted only
while more than ``reserve`` tokens remain; high-priority calls may spend the bucket down to
zero. Tokens that refill while normal calls wait go first to the reserve, so however hard
normal calls press, tear-down finds ``reserve`` tokens within ``reserve / rate`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

LAUNCH_GROUP = "fargate-launch"
"""The bucket that tasks launched spend from (one token per task, not per call)."""

# Group key -> (burst, sustained tokens per second). The "ecs-*" rows are the ECS API
# reference's "Request throttling" table (one token per call; keys are this library's names,
# carried in AwsCall.api_group). LAUNCH_GROUP is the ECS developer guide's "AWS Fargate
# throttling quotas": 100 tasks launched at once, 20 per second sustained, per account and
# region (on-demand; Fargate Spot has a bucket of its own of the same size).
API_GROUPS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "ecs-run": (100.0, 40.0),
        "ecs-describe": (100.0, 20.0),
        "ecs-register": (20.0, 1.0),
        "ecs-describe-taskdef": (50.0, 20.0),
        "ecs-tag": (20.0, 10.0),
        LAUNCH_GROUP: (100.0, 20.0),
    }
)
# Tear-down never launches a task: a reserve in the launch bucket would only be lost.
_UNRESERVED = frozenset({LAUNCH_GROUP})
MAX_RUN_TASK_COUNT = 10
"""The most tasks one RunTask may launch (ECS refuses a larger ``count``)."""

_OPERATION_GROUP: Mapping[str, str] = MappingProxyType(
    {
        "run_task": "ecs-run",
        "stop_task": "ecs-run",
        "execute_command": "ecs-run",
        "describe_tasks": "ecs-describe",
        "list_tasks": "ecs-describe",
        "register_task_definition": "ecs-register",
        "deregister_task_definition": "ecs-register",
        "describe_task_definition": "ecs-describe-taskdef",
        "tag_resource": "ecs-tag",
        "untag_resource": "ecs-tag",
    }
)

TEARDOWN_PRIORITY = 1
"""The priority of tear-down calls: they may spend a bucket's reserved tokens."""

DEFAULT_RESERVE_FRACTION = 0.1
"""The share of each bucket's burst kept for high-priority calls."""

# Refilling by float arithmetic can leave 0.9999999 tokens after waiting exactly the delay
# take() asked for (monotonic clocks read 1e6 s and more); counting that as a whole token
# avoids a second, microscopic wait at the price of a millionth of a token per grant.
_EPSILON = 1e-6


def api_group(operation: str, service: str = "ecs") -> str:
    """The throttling group of boto3 operation ``operation`` of ``service``, or ``""``.

    Only ECS operations are budgeted; other services' names (CloudWatch Logs also has a
    ``tag_resource``) map to ``""``.
    """
    if service != "ecs":
        return ""
    return _OPERATION_GROUP.get(operation, "")


def task_launches(operation: str, params: Mapping[str, Any], service: str = "ecs") -> int:
    """How many tasks ECS ``operation`` with ``params`` asks Fargate to launch.

    RunTask launches its ``count`` (1 when absent; a value ECS would refuse counts as the
    most it could be, which errs on the side of waiting); every other call launches none.
    """
    if service != "ecs" or operation != "run_task":
        return 0
    count = params.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return MAX_RUN_TASK_COUNT
    return min(count, MAX_RUN_TASK_COUNT)


class TokenBucket:
    """A token bucket of ``burst`` tokens refilled at ``rate`` tokens per second.

    It starts full. ``reserve`` tokens (default: a tenth of the burst, rounded, at least one
    when the burst allows) are for high-priority calls only; see the module docstring.
    """

    __slots__ = ("_cut_at", "_cut_rate", "_last", "_tokens", "burst", "nominal_rate", "reserve")

    def __init__(self, burst: float, rate: float, *, reserve: float | None = None) -> None:
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be a finite number >= 1, not {burst!r}")
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive finite number, not {rate!r}")
        if reserve is None:
            reserve = min(float(max(1, round(burst * DEFAULT_RESERVE_FRACTION))), burst - 1)
        if not 0 <= reserve <= burst - 1:
            raise ValueError(f"reserve must be between 0 and burst - 1, not {reserve!r}")
        self.burst = float(burst)
        self.nominal_rate = float(rate)
        self.reserve = float(reserve)
        self._tokens = float(burst)
        self._last: float | None = None
        self._cut_at: float | None = None  # when ECS last throttled this group
        self._cut_rate = float(rate)

    @property
    def rate(self) -> float:
        """The current refill rate (below ``nominal_rate`` for a while after a throttle)."""
        return self.rate_at(self._last if self._last is not None else 0.0)

    def rate_at(self, now: float) -> float:
        """The refill rate at ``now``: recovering linearly since the last throttle."""
        if self._cut_at is None:
            return self.nominal_rate
        regained = (now - self._cut_at) / RECOVERY_S * self.nominal_rate
        return min(self.nominal_rate, self._cut_rate + max(regained, 0.0))

    def slow_down(self, now: float) -> None:
        """ECS throttled a call of this group: halve the rate, drop tokens above the reserve."""
        self._refill(now)
        if self._cut_at is not None and now - self._cut_at < _CUT_INTERVAL_S:
            return  # one burst of refusals is one signal
        self._cut_rate = max(self.rate_at(now) / 2, self.nominal_rate * _MIN_RATE_FRACTION)
        self._cut_at = now
        self._tokens = min(self._tokens, self.reserve)

    def tokens(self, now: float) -> float:
        """The tokens available at ``now`` (reserved ones included)."""
        self._refill(now)
        return self._tokens

    def take(self, now: float, priority: int = 0, cost: float = 1.0) -> float:
        """Take ``cost`` tokens at ``now``: 0.0 when granted, else the delay before asking again.

        A refused call takes nothing, so asking again after the delay is fair to whoever
        asks first. ``priority > 0`` may spend the reserved tokens.
        """
        delay = self.delay(now, priority, cost)
        if delay == 0.0:
            self._tokens = max(self._tokens - self._cost(priority, cost), 0.0)
        return delay

    def delay(self, now: float, priority: int = 0, cost: float = 1.0) -> float:
        """How long until :meth:`take` of ``cost`` tokens would be granted (0.0: now).

        Takes nothing. A cost larger than the bucket can ever hold above its floor waits
        for a full bucket and then spends all of it, rather than never being granted.
        """
        self._refill(now)
        floor = 0.0 if priority > 0 else self.reserve
        cost = self._cost(priority, cost)
        if self._tokens - cost >= floor - _EPSILON:
            return 0.0
        return (floor + cost - self._tokens) / self.rate_at(now)

    def _cost(self, priority: int, cost: float) -> float:
        if not (cost > 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a positive finite number, not {cost!r}")
        floor = 0.0 if priority > 0 else self.reserve
        return min(float(cost), self.burst - floor)

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
            return
        # A clock that steps back must not mint tokens; keep the latest time seen.
        if now > self._last:
            # The rate at the end of the interval: it only grows, so this errs on the side
            # of a few tokens too many, recovered within one refill.
            rate = self.rate_at(now)
            self._tokens = min(self.burst, self._tokens + (now - self._last) * rate)
            self._last = now


RECOVERY_S = 30.0
"""Seconds for a throttled bucket's rate to grow back from its cut to the nominal rate."""
_CUT_INTERVAL_S = 1.0
_MIN_RATE_FRACTION = 0.05
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
     "TooManyRequestsException"}
)  # fmt: skip
"""Error codes with which ECS says a call went over the account's rate."""


def _headroom(rate: float, jitter_s: float) -> float:
    return max(1.0, rate * jitter_s) if jitter_s > 0 else 0.0


class ApiBudget:
    """One :class:`TokenBucket` per ECS API group, shared by every sandbox of a driver.

    ``share`` scales each group's burst and rate, for when several processes use the same
    account and region (each then takes ``1/n`` of it). ``jitter_s`` keeps each bucket
    ``rate * jitter_s`` tokens (at least one) below ECS's, to absorb delivery jitter.
    ``adaptive`` makes a group slow down when ECS throttles one of its calls (see the module
    docstring); without it :meth:`observe` changes nothing.
    """

    __slots__ = ("_buckets", "adaptive", "share")

    def __init__(
        self,
        groups: Mapping[str, tuple[float, float]] = API_GROUPS,
        *,
        share: float = 1.0,
        jitter_s: float = 0.0,
        adaptive: bool = True,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share!r}")
        if jitter_s < 0:
            raise ValueError(f"jitter_s must not be negative, not {jitter_s!r}")
        # A call granted here reaches ECS a little later, and calls granted in order may
        # arrive a little out of it. Running the buckets exactly level with ECS's would let
        # that jitter throttle the call that lands early, so each bucket keeps the tokens
        # that refill within ``jitter_s`` (at least one) below ECS's.
        self.share = share
        self.adaptive = adaptive
        self._buckets = {
            name: TokenBucket(
                max(1.0, burst * share - _headroom(rate * share, jitter_s)),
                rate * share,
                reserve=0.0 if name in _UNRESERVED else None,
            )
            for name, (burst, rate) in groups.items()
        }

    def bucket(self, group: str) -> TokenBucket | None:
        """The bucket of ``group``, or None when the group is not budgeted."""
        return self._buckets.get(group)

    def delay_for_group(
        self, group: str, now: float, priority: int = 0, *, launches: int = 0
    ) -> float:
        """Like :meth:`delay_for`, for a group key such as ``AwsCall.api_group``.

        ``launches`` tasks are taken from the launch bucket too (see ``task_launches``):
        the call is granted only when both buckets allow it, and then spends from both;
        otherwise it takes nothing and the delay is the longer of the two.
        """
        buckets: list[tuple[TokenBucket, float]] = []
        bucket = self._buckets.get(group)
        if bucket is not None:
            buckets.append((bucket, 1.0))
        launch = self._buckets.get(LAUNCH_GROUP) if launches > 0 else None
        if launch is not None:
            buckets.append((launch, float(launches)))
        delay = max((b.delay(now, priority, cost) for b, cost in buckets), default=0.0)
        if delay > 0.0:
            return delay
        for b, cost in buckets:
            b.take(now, priority, cost)
        return 0.0

    def observe(self, group: str, error_code: str | None, now: float, *, launches: int = 0) -> bool:
        """Tell the budget how a call of ``group`` ended; True when it slowed down.

        A throttling error (``THROTTLING_CODES``) means other callers share the account:
        the group's bucket slows down (see the module docstring), or for a call that
        launches tasks, the launch bucket. Nothing changes unless the budget is adaptive.
        """
        if not self.adaptive or error_code not in THROTTLING_CODES:
            return False
        bucket = self._buckets.get(group)
        launch = self._buckets.get(LAUNCH_GROUP) if launches > 0 else None
        target = launch if launch is not None else bucket
        if target is None:
            return False
        target.slow_down(now)
        return True

    def delay_for(
        self,
        operation: str,
        now: float,
        priority: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> float:
        """Take a token for ECS ``operation`` (boto3 name): 0.0, or the delay before retrying.

        With ``params``, a RunTask also takes one launch token per task it launches.
        Operations outside every group are never delayed.
        """
        launches = task_launches(operation, params or {}) if params is not None else 0
        return self.delay_for_group(api_group(operation), now, priority, launches=launches)


__all__ = [
    "API_GROUPS",
    "DEFAULT_RESERVE_FRACTION",
    "LAUNCH_GROUP",
    "MAX_RUN_TASK_COUNT",
    "RECOVERY_S",
    "TEARDOWN_PRIORITY",
    "THROTTLING_CODES",
    "ApiBudget",
    "TokenBucket",
    "api_group",
    "task_launches",
]
