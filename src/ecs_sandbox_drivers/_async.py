"""The anyio driver (asyncio and trio): boto3 on worker threads, exec as subprocesses.

Many sandboxes share one driver, and with it one token budget, one task-definition
registry and one DescribeTasks poller: every task waiting for RUNNING is described by a
single call per poll tick (up to 100 tasks a call) instead of one poll loop per sandbox.

anyio's primitives (capacity limiters, locks) belong to the event loop that first uses
them, so the driver keeps one set of them, and one poller, per event loop: a driver may
serve asyncio and then trio, or several loops in several threads at once, which then
share its budget and registry (both thread-safe).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

import ecs_sandbox_core as core
from ecs_sandbox_core import EcsFargateConfig, Effect
from ecs_sandbox_core._lifecycle import TaskHandle, close_flow, preflight_flow

from ._poll import AsyncTaskPoller
from ._process import run_async
from ._runtime import DriverBase, DriverOptions, OutputSink, session_callback, stdout_callback
from ._ssm_async import AsyncLoopSession, run_session_async
from ._ssm_pool import ChannelPool
from ._trampoline import FlowSteps

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")

CLEANUP_TIMEOUT_S = 300.0
"""How long a flow's clean-up (and ``spin_up``'s tear-down) may take by default."""


# The default drivers of the running event loop, by configuration (see AsyncDriver.shared).
_LOOP_DRIVERS: anyio.lowlevel.RunVar[dict[EcsFargateConfig, AsyncDriver] | None] = (
    anyio.lowlevel.RunVar("ecs_sandbox_default_drivers", None)
)


@dataclass(slots=True)
class _LoopState:
    """What the driver keeps per event loop (see the module docstring)."""

    threads: anyio.CapacityLimiter
    # Tear-down has worker threads of its own, so that calls waiting for their budget
    # can never keep StopTask from running.
    teardown_threads: anyio.CapacityLimiter
    unlimited: anyio.CapacityLimiter
    execs: anyio.CapacityLimiter
    poller: AsyncTaskPoller
    # Command-loop sessions are streams of this loop: each loop has its own pool.
    channels: ChannelPool[AsyncLoopSession] = field(default_factory=ChannelPool)
    pool_free: anyio.Event = field(default_factory=anyio.Event)
    # Concurrent first spin-ups wait for one preflight instead of each making their own.
    preflight: anyio.Lock = field(default_factory=anyio.Lock)


class AsyncDriver(DriverBase):
    """Runs flows on anyio event loops. Share one driver between concurrent sandboxes.

    Own it explicitly (``async with AsyncDriver(cfg) as driver:`` or :meth:`aclose`), or
    let ``spin_up`` use the current event loop's default driver for the configuration.
    """

    def __init__(
        self,
        cfg: EcsFargateConfig,
        *,
        max_threads: int = 32,
        max_concurrent_execs: int = 64,
        poll_tick_s: float = 1.0,
        cleanup_timeout_s: float = CLEANUP_TIMEOUT_S,
        **options: Unpack[DriverOptions],
    ) -> None:
        super().__init__(cfg, **options)
        # Clean-up runs shielded from cancellation, so it is bounded instead: past this,
        # what is left is logged at ERROR with the `ecs-sandbox gc` command that reaps it.
        self.cleanup_timeout_s = cleanup_timeout_s
        self._max_threads = max_threads
        self._max_concurrent_execs = max_concurrent_execs
        self._poll_tick_s = poll_tick_s
        self._loops: weakref.WeakKeyDictionary[object, _LoopState] = weakref.WeakKeyDictionary()
        self._loops_lock = threading.Lock()

    def _loop(self) -> _LoopState:
        """This event loop's primitives and poller, made on the loop's first use."""
        token = anyio.lowlevel.current_token().native_token
        with self._loops_lock:
            state = self._loops.get(token)
            if state is None:
                state = self._loops[token] = _LoopState(
                    threads=anyio.CapacityLimiter(self._max_threads),
                    teardown_threads=anyio.CapacityLimiter(8),
                    unlimited=anyio.CapacityLimiter(math.inf),
                    execs=anyio.CapacityLimiter(self._max_concurrent_execs),
                    poller=AsyncTaskPoller(self, self._poll_tick_s),
                )
            return state

    @classmethod
    def shared(cls, cfg: EcsFargateConfig) -> AsyncDriver:
        """The driver shared by every sandbox of ``cfg`` in the running event loop.

        It belongs to the loop: another loop (asyncio after trio, a loop in another thread)
        gets a driver of its own, and the driver goes when its loop does. Call it from
        inside the loop.
        """
        drivers = _LOOP_DRIVERS.get(None)
        if drivers is None:
            drivers = {}
            _LOOP_DRIVERS.set(drivers)
        driver = drivers.get(cfg)
        if driver is None or driver.closed:
            driver = drivers[cfg] = cls(cfg)
        return driver

    async def tear_down(self, handle: TaskHandle) -> None:
        """Stop the sandbox's task and release its definition, shielded from cancellation.

        A cancelled harness must still stop its task; the tear-down is bounded by
        ``cleanup_timeout_s`` so that a dead endpoint cannot hang it forever. Giving up is
        never silent: what is left is logged at ERROR with the ``ecs-sandbox gc`` command.
        """
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self.cleanup_timeout_s
            await self.run(self.sandbox_teardown(handle))
        if scope.cancelled_caught:
            self.abandoned(
                handle,
                f"tear-down of sandbox {handle.task_id} did not finish within "
                f"{self.cleanup_timeout_s:g} s",
            )

    async def __aenter__(self) -> AsyncDriver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the driver: refuse new sandboxes, deregister the task definitions it still
        holds (sandboxes that were not torn down), close its AWS connections.

        Tear-down of sandboxes still running keeps working. Shielded from cancellation.
        """
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            await self._close_channels()
            await self.run(close_flow(self.registry))
            await anyio.to_thread.run_sync(self.aws.close)

    async def preflight(self) -> None:
        """Check the exec tools and credentials once, before the first task is started."""
        if self.preflight_done:
            return
        async with self._loop().preflight:
            if self.preflight_done:
                return
            await self.in_thread(self.transport.check_available)
            await self.run(preflight_flow(self.cfg))
            self.preflight_done = True

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._loop().threads)

    async def budgeted(
        self,
        service: str,
        operation: str,
        group: str,
        priority: int,
        fn: Any,
        *args: Any,
        launches: int = 0,
    ) -> Any:
        """Run an AWS call in a worker thread once its budget allows.

        The token is taken only after a thread is free, just before the request leaves:
        tokens taken while calls queued for threads would let the queue reach ECS in a
        burst that its own bucket throttles.
        """
        loop = self._loop()
        slots = loop.teardown_threads if priority > 0 else loop.threads
        async with slots:
            await self.spend(service, operation, group, priority, launches)
            return await anyio.to_thread.run_sync(fn, *args, limiter=loop.unlimited)

    async def run(self, flow: Generator[Effect, Any, T], *, output: OutputSink | None = None) -> T:
        """Drive ``flow`` to completion and return its value.

        A handler's exception (cancellation included) is thrown into the flow; whatever the
        flow then yields to clean up runs shielded from cancellation, bounded in time.
        """
        cleanup_deadline: float | None = None
        with FlowSteps(flow) as steps:
            while (effect := steps.next()) is not None:
                if steps.threw and cleanup_deadline is None:
                    cleanup_deadline = anyio.current_time() + self.cleanup_timeout_s
                try:
                    if cleanup_deadline is None:
                        value = await self.handle(effect, output)
                    else:
                        value = await self._shielded(effect, output, cleanup_deadline)
                except BaseException as exc:
                    steps.fail(exc)
                else:
                    steps.answer(value)
            return steps.result

    async def _shielded(self, effect: Effect, output: OutputSink | None, deadline: float) -> Any:
        """Carry out a clean-up effect: shielded from cancellation, until ``deadline``."""
        with anyio.CancelScope(shield=True, deadline=deadline) as scope:
            value = await self.handle(effect, output)
        if scope.cancelled_caught:
            raise TimeoutError("clean-up did not finish in time")
        return value

    async def handle(self, effect: Effect, output: OutputSink | None = None) -> Any:
        """Carry out one effect: awaiting it, or at once (:meth:`answer`)."""
        if isinstance(effect, core.Presign):  # botocore may look credentials up: not on the loop
            return await self.in_thread(self.answer, effect)
        wait = self.waiting(effect)
        return self.answer(effect) if wait is None else await wait(effect, output)

    async def spend(
        self, service: str, operation: str, group: str, priority: int, launches: int = 0
    ) -> None:
        """Wait until the client-side budget grants a call of ``operation`` (and the
        ``launches`` tasks it launches)."""
        for delay in self.waits_for_budget(service, operation, group, priority, launches):
            await anyio.sleep(delay)

    # --- the effects that wait (see _runtime._WAITING) -----------------------------------------

    async def _aws_call(self, effect: core.AwsCall, _output: OutputSink | None) -> core.AwsResult:
        call = (effect.service, effect.operation, effect.api_group, effect.priority)
        result: core.AwsResult = await self.budgeted(
            *call, self.aws.call, effect, launches=self.launches(effect)
        )
        self.observe(effect, result)
        return result

    async def _describe(self, effect: core.DescribeTask, _output: OutputSink | None) -> Any:
        return await self._loop().poller.describe(effect)

    async def _sleep(self, effect: core.Sleep, _output: OutputSink | None) -> None:
        await anyio.sleep(self.real_seconds(effect.seconds))

    async def _exec(self, effect: core.ExecRun, output: OutputSink | None) -> core.TransportResult:
        prepared = self.exec_plan(effect)
        if isinstance(prepared, core.TransportResult):
            return prepared
        for operation in self.exec_calls():
            await self.spend("ecs", operation, "", 0)
        async with self._loop().execs:
            self.stats.count_exec()
            outcome = await run_async(
                prepared,
                effect.timeout_s,
                stdout_callback(effect, prepared, output),
                max_stdout_bytes=effect.max_output_bytes,
            )
        return self.exec_done(prepared, outcome)

    async def _session(
        self, effect: core.ExecSession, output: OutputSink | None
    ) -> core.SessionResult:
        headers = await self.in_thread(self.aws.stream_headers, effect.stream_url)
        async with self._loop().execs:
            self.stats.count_exec()
            result = await run_session_async(
                effect, headers=headers, on_output=session_callback(effect, output)
            )
        self.stats.count_bytes(len(result.output))
        return result

    # --- command-loop sessions (see ecs_sandbox_core._cmdloop) -------------------------------

    async def _acquire(
        self, effect: core.AcquireChannel, _output: OutputSink | None
    ) -> core.ChannelLease:
        state = self._loop()
        while True:
            taken = state.channels.take(effect.task_arn, effect.max_sessions)
            if taken is None:
                await state.pool_free.wait()  # a lease was given back; look again
                continue
            lease, session = taken
            if session is None or await session.alive():
                return lease
            # It ended while idle (the agent's idle timeout, a restart): never lease it.
            state.channels.give_back(lease.lease_id, reusable=False)
            await session.aclose()

    async def _open_channel(
        self, effect: core.OpenChannel, _output: OutputSink | None
    ) -> core.SessionResult | None:
        headers = await self.in_thread(self.aws.stream_headers, effect.stream_url)
        session = AsyncLoopSession(effect)
        failure = await session.open(effect, headers)
        return self.channel_opened(self._loop().channels, effect, session, failure)

    async def _channel_request(
        self, effect: core.ChannelRequest, output: OutputSink | None
    ) -> core.TransportResult:
        session = self.leased(self._loop().channels, effect)
        return self.received(await session.request(effect, session_callback(effect, output)))

    async def _release_channel(
        self, effect: core.ReleaseChannel, _output: OutputSink | None
    ) -> None:
        session = self._loop().channels.give_back(effect.lease_id, reusable=effect.reusable)
        self._pool_changed()
        if session is not None:
            await session.aclose()

    async def _close_task_channels(
        self, effect: core.CloseChannels, _output: OutputSink | None
    ) -> None:
        for idle in self._loop().channels.remove(effect.task_arn):
            await idle.aclose()

    def _pool_changed(self) -> None:
        state = self._loop()
        event, state.pool_free = state.pool_free, anyio.Event()
        event.set()

    async def _close_channels(self) -> None:
        """Close every command-loop session this driver holds on this event loop."""
        for session in self._loop().channels.remove_all():
            await session.aclose()


__all__ = ["CLEANUP_TIMEOUT_S", "AsyncDriver"]
