"""What both drivers' DescribeTasks pollers share: requests, batches, answers.

Each driver coalesces its sandboxes' DescribeTask effects into one DescribeTasks call per
tick (up to 100 tasks a call, one call per cluster); how it waits for the tick and guards
its list differs (threads or an event loop), the bookkeeping does not. Each request has
its own answer cell: several flows may poll one task at once (a spin-up and an exec that
checks whether its task stopped), and an answer is only ever one made after the request
arrived.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ecs_sandbox_core import AwsResult, DescribeTask

if TYPE_CHECKING:
    from ._async import AsyncDriver
    from ._sync import SyncDriver

DESCRIBE_BATCH = 100
"""Tasks one DescribeTasks call may name."""


@dataclass(eq=False, slots=True)
class PollRequest:
    """One waiting DescribeTask; its own cell, so that two requests never share a slot."""

    cluster: str
    task_arn: str
    answer: AwsResult | None = None

    @classmethod
    def of(cls, effect: DescribeTask) -> PollRequest:
        return cls(effect.cluster, effect.task_arn)


def until_tick(now: float, tick_s: float) -> float:
    """Seconds from ``now`` to the next tick: ticks are aligned to the clock, so requests
    arriving within one tick share its call."""
    return tick_s - (now % tick_s)


def batches(pending: Iterable[PollRequest]) -> Iterator[tuple[str, list[str]]]:
    """(cluster, up to 100 distinct task ARNs) for every call that answers ``pending``."""
    by_cluster: dict[str, list[str]] = {}
    for request in pending:
        arns = by_cluster.setdefault(request.cluster, [])
        if request.task_arn not in arns:
            arns.append(request.task_arn)
    for cluster, arns in by_cluster.items():
        for i in range(0, len(arns), DESCRIBE_BATCH):
            yield cluster, arns[i : i + DESCRIBE_BATCH]


def deliver(pending: Iterable[PollRequest], answers: Mapping[tuple[str, str], AwsResult]) -> None:
    """Give each request the answer about its own task."""
    for request in pending:
        request.answer = answers.get((request.cluster, request.task_arn))


def unanswered(effect: DescribeTask) -> RuntimeError:
    """The error of a request no call answered (a bug: every call answers all it saw)."""
    return RuntimeError(f"the DescribeTasks poller left {effect.task_arn} unanswered")


class SyncTaskPoller:
    """Coalesces the DescribeTask effects of every thread into one DescribeTasks per tick.

    Theory of operation
    -------------------
    There is no background thread. A thread that polls registers its request, sleeps to the
    next tick of the driver's clock (ticks are aligned to the clock, so requests arriving
    within one tick share it), then takes the poll lock. The first thread through finds its
    request unanswered and answers every request waiting at that moment: one DescribeTasks
    per cluster and 100 tasks, budgeted like any other call. The others woke at the same
    tick, waited for the lock while that call ran, and find their answers made. A request
    that arrives while a call is under way is not in it, so an answer is only ever one made
    after its request arrived; it is answered at the next tick. Should the call raise (a
    bug, KeyboardInterrupt), the exception goes to the thread that made it; the others find
    no answer and make the call themselves.
    """

    def __init__(self, driver: SyncDriver, tick_s: float) -> None:
        if not tick_s > 0:
            raise ValueError(f"poll tick must be positive, not {tick_s!r}")
        self._driver = driver
        self._tick_s = tick_s
        self._waiting: list[PollRequest] = []
        self._waiting_lock = threading.Lock()  # guards _waiting, held for microseconds
        self._poll_lock = threading.Lock()  # one DescribeTasks round at a time

    def describe(self, effect: DescribeTask) -> AwsResult:
        """The task's description from the first poll made after this call."""
        request = PollRequest.of(effect)
        with self._waiting_lock:
            self._waiting.append(request)
        try:
            time.sleep(self._driver.real_seconds(until_tick(self._driver.now(), self._tick_s)))
            with self._poll_lock:
                if request.answer is None:
                    self._answer_all()
            if request.answer is None:  # _answer_all answers every request it saw
                raise unanswered(effect)
            return request.answer
        finally:
            with self._waiting_lock:
                self._waiting.remove(request)

    def _answer_all(self) -> None:
        with self._waiting_lock:
            pending = [request for request in self._waiting if request.answer is None]
        answers: dict[tuple[str, str], AwsResult] = {}
        for cluster, batch in batches(pending):
            self._driver.spend("ecs", "describe_tasks", "", 0)
            results = self._driver.aws.describe_many(cluster, batch)
            answers.update(((cluster, arn), result) for arn, result in results.items())
        deliver(pending, answers)


class AsyncTaskPoller:
    """Coalesces DescribeTask effects into one DescribeTasks call per tick.

    There is no background task: whoever finds its request unanswered after the tick takes
    the lock and answers every request waiting at that moment, so the poller needs no task
    group and a cancelled waiter leaves nothing behind. Each request has its own answer
    cell: several flows may poll one task at once (a spin-up and an exec that checks
    whether its task stopped), and an answer is only ever one made after the request
    arrived.
    """

    def __init__(self, driver: AsyncDriver, tick_s: float) -> None:
        self._driver = driver
        self._tick_s = tick_s
        self._waiting: list[PollRequest] = []
        self._lock = anyio.Lock()

    async def describe(self, effect: DescribeTask) -> AwsResult:
        request = PollRequest.of(effect)
        self._waiting.append(request)
        try:
            await anyio.sleep(
                self._driver.real_seconds(until_tick(self._driver.now(), self._tick_s))
            )
            async with self._lock:
                if request.answer is None:
                    await self._answer_all()
            if request.answer is None:  # _answer_all answers every request it saw
                raise unanswered(effect)
            return request.answer
        finally:
            self._waiting.remove(request)

    async def _answer_all(self) -> None:
        pending = [request for request in self._waiting if request.answer is None]
        answers: dict[tuple[str, str], AwsResult] = {}
        for cluster, batch in batches(pending):
            # Shielded: the answers are shared, so one waiter's cancellation must not
            # leave the others without theirs.
            with anyio.CancelScope(shield=True):
                results = await self._driver.budgeted(
                    "ecs", "describe_tasks", "", 0, self._driver.aws.describe_many, cluster, batch
                )
            answers.update(((cluster, arn), result) for arn, result in results.items())
        deliver(pending, answers)


__all__ = [
    "DESCRIBE_BATCH",
    "AsyncTaskPoller",
    "PollRequest",
    "SyncTaskPoller",
    "batches",
    "deliver",
    "unanswered",
    "until_tick",
]
