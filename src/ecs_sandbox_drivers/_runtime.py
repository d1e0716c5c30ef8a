"""What the sync and the anyio driver share: configuration of a driver and its statistics."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import boto3

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
from ecs_sandbox_core._doctor_image import ImageProbes, ImageReport
from ecs_sandbox_core._lifecycle import TaskHandle, teardown_flow
from ecs_sandbox_core._markers import OutputStream
from ecs_sandbox_core._registry import Acquire, BaseLookup, TaskDefinitionRegistry

from ._aws import AwsGateway
from ._transport import AwsCliTransport, ExecTransport, PreparedRun, SsmTransport

logger = logging.getLogger("ecs_sandbox")

ProgressCallback = Callable[[str, str], None]
"""Called with (phase, message) for every log record a flow emits (the demo prints them)."""


# One lock for every token budget in the process: a budget may be shared by several
# drivers (one account, several event loops or threads), and a grant takes microseconds.
_BUDGET_LOCK = threading.Lock()


@dataclass
class DriverStats:
    """Counters a driver keeps: exec round trips by transport, AWS calls by operation."""

    exec_round_trips: int = 0
    exec_bytes_out: int = 0  # session-stream bytes the transport delivered (stdout)
    throttle_waits: int = 0
    throttled_by_aws: int = 0  # calls ECS refused with a throttling error
    sessions_opened: int = 0  # command-loop sessions opened (each one ExecuteCommand)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_exec(self) -> None:
        with self._lock:
            self.exec_round_trips += 1

    def count_throttle_wait(self) -> None:
        with self._lock:
            self.throttle_waits += 1

    def count_session(self) -> None:
        with self._lock:
            self.sessions_opened += 1

    def count_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.exec_bytes_out += nbytes


def _local_aws(cfg: EcsFargateConfig) -> Any:
    """The embedded local ECS that ``cfg`` points at, if one runs in this process."""
    server = sys.modules.get("ecs_sandbox_drivers.local._server")
    if server is None or not cfg.endpoint_url:
        return None
    return server.LocalAws.running_at(cfg.endpoint_url)


class SharedRegistry(TaskDefinitionRegistry):
    """A :class:`TaskDefinitionRegistry` whose every transition is atomic across threads.

    The registry is pure bookkeeping that flows call between two effects. Under one event
    loop nothing runs between those calls; a sync driver shared by threads runs flows
    truly in parallel, so each transition (acquire, registered, release...) takes a lock,
    which restores exactly the atomicity the single-threaded protocol relies on.
    """

    __slots__ = ("_lock",)

    def __init__(self, *, share_bases: bool = False) -> None:
        super().__init__(share_bases=share_bases)
        self._lock = threading.RLock()

    def base(self, name: str) -> BaseLookup:
        with self._lock:
            return super().base(name)

    def described(self, name: str, base: Mapping[str, Any] | None) -> None:
        with self._lock:
            super().described(name, base)

    def describe_failed(self, name: str) -> None:
        with self._lock:
            super().describe_failed(name)

    def acquire(self, digest: str) -> Acquire:
        with self._lock:
            return super().acquire(digest)

    def registered(self, digest: str, arn: str) -> None:
        with self._lock:
            super().registered(digest, arn)

    def failed(self, digest: str) -> None:
        with self._lock:
            super().failed(digest)

    def release(self, digest: str) -> str | None:
        with self._lock:
            return super().release(digest)

    def users(self, digest: str) -> int:
        with self._lock:
            return super().users(digest)

    def registering(self, digest: str) -> bool:
        with self._lock:
            return super().registering(digest)

    def outstanding(self) -> list[str]:
        with self._lock:
            return super().outstanding()

    def close(self) -> list[str]:
        with self._lock:
            return super().close()


class SharedImageProbes(ImageProbes):
    """:class:`ImageProbes` whose every step is atomic across threads (as SharedRegistry)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def claim(self, image: str) -> bool:
        with self._lock:
            return super().claim(image)

    def found(self, image: str, report: ImageReport | None) -> None:
        with self._lock:
            super().found(image, report)

    def report(self, image: str) -> ImageReport | None:
        with self._lock:
            return super().report(image)


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

    def sandbox_teardown(self, handle: TaskHandle) -> Generator[Effect, Any, None]:
        """One sandbox's tear-down flow (idempotent): StopTask first, then its exec
        sessions. Drivers run it with their own shielding (:meth:`tear_down`)."""
        try:
            yield from teardown_flow(handle, registry=self.registry)
        finally:
            yield CloseChannels(task_arn=handle.task_arn)

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
        launches = task_launches(effect.operation, effect.params, effect.service)
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


OutputSink = Callable[[bytes], None]
"""Receives a command's output while it arrives (``exec(..., on_output=...)``)."""


def stdout_callback(
    effect: ExecRun, prepared: PreparedRun, sink: OutputSink | None
) -> Callable[[bytes], None] | None:
    """The per-chunk callback for a streamed exec, or None when nothing is streamed."""
    if sink is None or effect.stream_nonce is None:
        return None
    stream = OutputStream(nonce=effect.stream_nonce, pty=prepared.pty)

    def on_chunk(chunk: bytes) -> None:
        shown = stream.feed(chunk)
        if shown:
            sink(shown)

    return on_chunk


def session_callback(
    effect: ExecSession | ChannelRequest, sink: OutputSink | None
) -> Callable[[bytes], None] | None:
    """The per-chunk callback of a streamed native exec.

    A one-off session's stream comes through the PTY's output processing; a command loop
    turns that off (``stty -opost``), so its bytes arrive as the command wrote them.
    """
    if sink is None or effect.stream_nonce is None:
        return None
    stream = OutputStream(nonce=effect.stream_nonce, pty=isinstance(effect, ExecSession))

    def on_chunk(chunk: bytes) -> None:
        shown = stream.feed(chunk)
        if shown:
            sink(shown)

    return on_chunk


def unexpected(effect: Any) -> TypeError:
    return TypeError(f"no handler for effect {effect!r}")


__all__ = [
    "DEFAULT_JITTER_S",
    "DriverBase",
    "DriverStats",
    "ProgressCallback",
    "SharedImageProbes",
    "SharedRegistry",
    "default_budget",
    "default_session",
    "default_transport",
]
