"""What the sync and the anyio driver share: configuration of a driver, its statistics, and
every effect that needs no waiting.

A driver carries out an effect either at once, the same way in both drivers (a clock
reading, a token, a log record: :meth:`DriverBase.answer`), or by waiting (on a clock, a
worker thread, a process, a socket), which each driver writes its own way in the method
that ``_WAITING`` names. Around the waiting, the bookkeeping (budget grants, ECS's answer
fed back to the budget, counters) is the base's too.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypedDict, TypeVar, cast

import boto3

import ecs_sandbox_core as core
from ecs_sandbox_core import (
    AwsCall,
    AwsResult,
    ChannelRequest,
    CloseChannels,
    EcsFargateConfig,
    Effect,
    ExecRun,
    ExecSession,
    Log,
    UsageError,
)
from ecs_sandbox_core._budget import ApiBudget, api_group, task_launches
from ecs_sandbox_core._doctor_image import ImageProbes
from ecs_sandbox_core._lifecycle import TaskHandle, abandoned_teardown_log, teardown_flow
from ecs_sandbox_core._markers import OutputStream
from ecs_sandbox_core._registry import TaskDefinitionRegistry

from ._aws import AwsGateway
from ._process import RunOutcome
from ._shared_state import DriverStats, SharedImageProbes, SharedRegistry
from ._ssm_pool import ChannelPool
from ._transport import AwsCliTransport, ExecTransport, PreparedRun, SsmTransport

logger = logging.getLogger("ecs_sandbox")

S = TypeVar("S")

ProgressCallback = Callable[[str, str], None]
"""Called with (phase, message) for every log record a flow emits (the demo prints them)."""


# One lock for every token budget in the process: a budget may be shared by several
# drivers (one account, several event loops or threads), and a grant takes microseconds.
_BUDGET_LOCK = threading.Lock()


def _local_aws(cfg: EcsFargateConfig) -> Any:
    """The embedded local ECS that ``cfg`` points at, if one runs in this process."""
    server = sys.modules.get("ecs_sandbox_drivers.local._server")
    if server is None or not cfg.endpoint_url:
        return None
    return server.LocalAws.running_at(cfg.endpoint_url)


def default_transport(cfg: EcsFargateConfig) -> ExecTransport:
    """The exec transport a configuration asks for (see ``exec_transport``)."""
    if cfg.exec_transport in ("nsenter", "local"):
        from .local import transport_for  # noqa: PLC0415 - only local runs need it

        return transport_for(cfg)
    if cfg.exec_transport == "ssm":
        return SsmTransport()
    local = _local_aws(cfg)
    if local is not None:
        return cast(ExecTransport, local.cli_transport())  # finds the stand-in plugin
    return AwsCliTransport(cluster=cfg.cluster, region=cfg.region, endpoint_url=cfg.endpoint_url)


def default_session(cfg: EcsFargateConfig) -> boto3.session.Session:
    """A boto3 session for ``cfg``: the embedded local ECS's dummy credentials, or the default."""
    local = _local_aws(cfg)
    if local is not None:
        return cast(boto3.session.Session, local.boto3_session())
    if cfg.exec_transport in ("nsenter", "local"):
        from .local import session_for  # noqa: PLC0415

        return session_for(cfg)  # raises ConfigError: no local ECS at that endpoint
    return boto3.session.Session(region_name=cfg.region)


DEFAULT_JITTER_S = 0.25
"""The default budget's headroom below ECS's buckets, in seconds of refill."""


def default_budget(cfg: EcsFargateConfig) -> ApiBudget:
    """The token budget a driver of ``cfg`` uses unless it is given one (``api_share``,
    ``api_adaptive``)."""
    # 0.25 s: threads, the GIL and the network delay calls by up to about that much on a
    # busy harness (0.1 s left 200 tear-downs at once throttled 1-3 times in about half
    # of the agent_scale runs on 2 loaded cores).
    return ApiBudget(share=cfg.api_share, adaptive=cfg.api_adaptive, jitter_s=DEFAULT_JITTER_S)


class DriverOptions(TypedDict, total=False):
    """The options every driver takes (see :class:`DriverBase`)."""

    transport: ExecTransport | None
    session: boto3.session.Session | None
    progress: ProgressCallback | None
    budget: ApiBudget | None
    time_scale: float


# The driver's method that carries out each effect that waits (each driver writes its own).
_WAITING: dict[type[Any], str] = {
    core.AwsCall: "_aws_call",
    core.DescribeTask: "_describe",
    core.ExecRun: "_exec",
    core.ExecSession: "_session",
    core.AcquireChannel: "_acquire",
    core.OpenChannel: "_open_channel",
    core.ChannelRequest: "_channel_request",
    core.ReleaseChannel: "_release_channel",
    core.CloseChannels: "_close_task_channels",
    core.Sleep: "_sleep",
}


class DriverBase:
    """State shared by every sandbox of one driver: clients, budget, registry, counters."""

    def __init__(
        self,
        cfg: EcsFargateConfig,
        *,
        transport: ExecTransport | None = None,
        session: boto3.session.Session | None = None,
        progress: ProgressCallback | None = None,
        budget: ApiBudget | None = None,
        time_scale: float = 1.0,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.cfg = cfg
        # Benchmarks run a simulated account faster than real time: the flows, the budget
        # and the poller all see a clock running ``time_scale`` times faster, and sleeps
        # shrink by the same factor, so every figure stays in unscaled units.
        self.time_scale = time_scale
        self.transport = transport if transport is not None else default_transport(cfg)
        self.aws = AwsGateway(cfg, session=session or default_session(cfg))
        self.budget = budget if budget is not None else default_budget(cfg)
        self.registry: TaskDefinitionRegistry = SharedRegistry(share_bases=True)
        self.image_probes: ImageProbes = SharedImageProbes()  # images probed at spin-up
        self.stats = DriverStats()
        self.progress = progress
        self.owner = f"{os.uname().nodename}:{os.getpid()}"
        self.preflight_done = False
        self._preflight_lock = threading.Lock()
        self.closed = False

    def waiting(self, effect: Effect) -> Callable[[Any, OutputSink | None], Any] | None:
        """This driver's handler of ``effect`` when carrying it out waits, else None."""
        name = _WAITING.get(type(effect))
        return None if name is None else cast(Callable[..., Any], getattr(self, name))

    def answer(self, effect: Effect) -> Any:
        """Carry out an effect that needs no waiting (:class:`TypeError` for any other)."""
        at_once = _AT_ONCE.get(type(effect))
        if at_once is None:
            raise unexpected(effect)
        return at_once(self, effect)

    def sandbox_teardown(self, handle: TaskHandle) -> Generator[Effect, Any, None]:
        """One sandbox's tear-down flow (idempotent): StopTask first, then its exec
        sessions. Drivers run it with their own shielding (:meth:`tear_down`)."""
        try:
            yield from teardown_flow(handle, registry=self.registry)
        finally:
            yield CloseChannels(task_arn=handle.task_arn)

    def abandoned(self, handle: TaskHandle, why: str) -> None:
        """Log at ERROR what a tear-down that gave up leaves, with the command that reaps it."""
        record = abandoned_teardown_log(handle, why)
        if record is not None:
            self.log(record)

    def check_open(self) -> None:
        """Raise :class:`UsageError` once the driver is closed (no new sandboxes then)."""
        if self.closed:
            raise UsageError(
                "this driver is closed",
                remedy="Start sandboxes before closing their driver, or create a new driver.",
            )

    def now(self) -> float:
        """The driver's monotonic clock, in (possibly scaled) seconds."""
        return time.monotonic() * self.time_scale

    def real_seconds(self, seconds: float) -> float:
        """How long to really wait for ``seconds`` of the driver's clock."""
        return seconds / self.time_scale

    @property
    def api_calls(self) -> Counter[str]:
        """AWS API calls made so far, by ``service:operation``."""
        return self.aws.calls

    def log(self, effect: Log) -> None:
        logger.log(effect.level, effect.message, *effect.args, extra={"phase": effect.phase})
        if self.progress is not None:
            try:
                text = effect.message % effect.args if effect.args else effect.message
            except (TypeError, ValueError):
                text = effect.message
            self.progress(effect.phase, text)

    def observe(self, effect: AwsCall, result: AwsResult) -> None:
        """Let the budget adapt to how ECS answered (a throttle slows the group down)."""
        group = self.group_of(effect.service, effect.operation, effect.api_group)
        code = result.error.code if result.error is not None else None
        launches = self.launches(effect)
        with _BUDGET_LOCK:
            slowed = self.budget.observe(group, code, self.now(), launches=launches)
        if slowed:
            self.stats.throttled_by_aws += 1
            logger.info("ECS throttled %s: budget group %s slowed down", effect.operation, group)

    @staticmethod
    def token(nbytes: int) -> str:
        return secrets.token_hex(nbytes)

    @staticmethod
    def group_of(service: str, operation: str, declared: str) -> str:
        if declared:
            return declared
        return api_group(operation) if service == "ecs" else ""

    def take(
        self, service: str, operation: str, group: str, priority: int, launches: int = 0
    ) -> float:
        """Ask the budget for a call of ``operation``: 0.0 when granted, else the delay.

        ``launches`` is the number of tasks the call launches (``task_launches``), which
        spend from Fargate's launch bucket too. Safe from any thread: the buckets'
        refill-and-take is one atomic step.
        """
        group = self.group_of(service, operation, group)
        with _BUDGET_LOCK:
            delay = self.budget.delay_for_group(group, self.now(), priority, launches=launches)
        if delay > 0:
            self.stats.count_throttle_wait()
        return delay

    def waits_for_budget(
        self, service: str, operation: str, group: str, priority: int, launches: int = 0
    ) -> Iterator[float]:
        """The waits, in real seconds, before the budget grants a call (see :meth:`take`):
        the driver sleeps each one, then this asks again."""
        while (delay := self.take(service, operation, group, priority, launches)) > 0:
            yield self.real_seconds(delay)

    @staticmethod
    def launches(effect: AwsCall) -> int:
        """How many tasks ``effect`` launches (they spend from Fargate's launch bucket)."""
        return task_launches(effect.operation, effect.params, effect.service)

    def exec_plan(self, effect: ExecRun) -> PreparedRun | core.TransportResult:
        """How the transport runs ``effect`` (or its result when it cannot run at all)."""
        return self.transport.prepare(
            task_arn=effect.task_arn, container=effect.container, command=effect.command
        )

    def exec_calls(self) -> Iterator[str]:
        """The ECS operations the transport makes per exec (the CLI's ExecuteCommand): the
        driver spends the budget for each, and it is counted once it has."""
        for operation in getattr(self.transport, "api_calls", ()):
            yield operation
            self.aws.count_external(operation)

    def channel_opened(
        self,
        pool: ChannelPool[S],
        effect: core.OpenChannel,
        session: S,
        failure: core.SessionResult | None,
    ) -> core.SessionResult | None:
        """Keep a command-loop session that opened (``failure`` None); pass a failure on."""
        if failure is None:
            pool.attach(effect.lease_id, session)
            self.stats.count_session()
        return failure

    def leased(self, pool: ChannelPool[S], effect: ChannelRequest) -> S:
        """The session of ``effect``'s lease, for one more exec round trip."""
        session = pool.session(effect.lease_id)
        assert session is not None, "a request on a lease without a session"
        self.stats.count_exec()
        return session

    def received(self, result: core.TransportResult) -> core.TransportResult:
        """A command-loop request's result, its output counted."""
        self.stats.count_bytes(len(result.stdout))
        return result

    def exec_done(self, prepared: PreparedRun, outcome: RunOutcome) -> core.TransportResult:
        """What an exec's process produced, counted and read by the transport."""
        returncode, stdout, stderr, timed_out = outcome
        self.stats.count_bytes(len(stdout))
        return self.transport.finish(
            prepared, returncode=returncode, stdout=stdout, stderr=stderr, timed_out=timed_out
        )


# How every driver answers the effects that need no waiting.
_AT_ONCE: dict[type[Any], Callable[[DriverBase, Any], Any]] = {
    core.Now: lambda driver, _: driver.now(),
    core.Random: lambda _driver, _effect: random.random(),  # noqa: S311 - jitter, not crypto
    core.Token: lambda driver, effect: driver.token(effect.nbytes),
    core.Presign: lambda driver, effect: driver.aws.presign(effect),
    core.Log: lambda driver, effect: driver.log(effect),
}


OutputSink = Callable[[bytes], None]
"""Receives a command's output while it arrives (``exec(..., on_output=...)``)."""


def _streamed(nonce: str | None, pty: bool, sink: OutputSink | None) -> OutputSink | None:
    """The per-chunk callback that shows a streamed command's output (None: none is)."""
    if sink is None or nonce is None:
        return None
    stream = OutputStream(nonce=nonce, pty=pty)

    def on_chunk(chunk: bytes) -> None:
        shown = stream.feed(chunk)
        if shown:
            sink(shown)

    return on_chunk


def stdout_callback(
    effect: ExecRun, prepared: PreparedRun, sink: OutputSink | None
) -> Callable[[bytes], None] | None:
    """The per-chunk callback for a streamed exec, or None when nothing is streamed."""
    return _streamed(effect.stream_nonce, prepared.pty, sink)


def session_callback(
    effect: ExecSession | ChannelRequest, sink: OutputSink | None
) -> Callable[[bytes], None] | None:
    """The per-chunk callback of a streamed native exec.

    A one-off session's stream comes through the PTY's output processing; a command loop
    turns that off (``stty -opost``), so its bytes arrive as the command wrote them.
    """
    return _streamed(effect.stream_nonce, isinstance(effect, ExecSession), sink)


def unexpected(effect: Any) -> TypeError:
    return TypeError(f"no handler for effect {effect!r}")


__all__ = [
    "DEFAULT_JITTER_S",
    "DriverBase",
    "DriverOptions",
    "DriverStats",
    "ProgressCallback",
    "SharedImageProbes",
    "SharedRegistry",
    "default_budget",
    "default_session",
    "default_transport",
]
