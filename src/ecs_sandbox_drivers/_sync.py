"""The sync driver: a trampoline that carries out the core's effects inline.

Threads that share a driver share its DescribeTasks poller too (:class:`SyncTaskPoller`):
every sandbox waiting for RUNNING, in whichever thread, is described by one call per poll
tick (up to 100 tasks a call), as the anyio driver does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import ecs_sandbox_core as core
from ecs_sandbox_core import EcsFargateConfig, Effect
from ecs_sandbox_core._lifecycle import TaskHandle, close_flow, preflight_flow

from ._poll import SyncTaskPoller
from ._process import run_sync
from ._runtime import DriverBase, DriverOptions, OutputSink, session_callback, stdout_callback
from ._ssm_pool import ChannelPool
from ._ssm_sync import SyncLoopSession, run_session_sync
from ._trampoline import FlowSteps

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")


class SyncDriver(DriverBase):
    """Runs flows in the calling thread. Share one driver between the sandboxes of a run,
    from any number of threads: what they share (the token budget, the task-definition
    registry, the boto3 clients, the counters) is locked."""

    # The default drivers (see shared): one per configuration in the process.
    _shared: ClassVar[dict[EcsFargateConfig, SyncDriver]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, cfg: EcsFargateConfig) -> SyncDriver:
        """The driver shared by every sandbox of ``cfg`` in this process, from any thread
        (a closed one is replaced)."""
        with cls._shared_lock:
            driver = cls._shared.get(cfg)
            if driver is None or driver.closed:
                driver = cls._shared[cfg] = cls(cfg)
            return driver

    def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Call blocking ``fn`` (file I/O, archive building): here, in this thread."""
        return fn(*args)

    def tear_down(self, handle: TaskHandle) -> None:
        """Stop the sandbox's task and release its definition, even across one Ctrl-C.

        A ``KeyboardInterrupt`` that lands during tear-down would leave the task running
        (and billing) until its keep-alive ends, so tear-down goes on (it is idempotent:
        only what is left is done) and the interrupt is re-raised afterwards. A second
        Ctrl-C ends it at once; what it leaves is logged at ERROR with the ``ecs-sandbox
        gc`` command.
        """
        try:
            self.run(self.sandbox_teardown(handle))
        except KeyboardInterrupt:
            try:
                self.run(self.sandbox_teardown(handle))
            except KeyboardInterrupt:
                self.abandoned(
                    handle, f"tear-down of sandbox {handle.task_id} was interrupted twice"
                )
            raise

    def __enter__(self) -> SyncDriver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the driver: refuse new sandboxes, deregister the task definitions it still
        holds (sandboxes that were not torn down), close its AWS connections.

        Tear-down of sandboxes still running keeps working.
        """
        if self.closed:
            return
        self.closed = True
        for session in self.channels.remove_all():
            session.close()
        self.run(close_flow(self.registry))
        self.aws.close()

    def __init__(
        self, cfg: EcsFargateConfig, *, poll_tick_s: float = 1.0, **options: Unpack[DriverOptions]
    ) -> None:
        super().__init__(cfg, **options)
        self.channels: ChannelPool[SyncLoopSession] = ChannelPool()
        self._pool_free = threading.Condition()
        self.poller = SyncTaskPoller(self, poll_tick_s)

    def preflight(self) -> None:
        """Check the exec tools and credentials once, before the first task is started."""
        with self._preflight_lock:
            if self.preflight_done:
                return
            self.transport.check_available()
            self.run(preflight_flow(self.cfg))
            self.preflight_done = True

    def run(self, flow: Generator[Effect, Any, T], *, output: OutputSink | None = None) -> T:
        """Drive ``flow`` to completion and return its value.

        An exception from a handler (KeyboardInterrupt included) is thrown into the flow,
        so the flow's own clean-up (tear-down on a failed start) runs before it propagates.
        ``output`` receives streamed command output while it arrives.
        """
        with FlowSteps(flow) as steps:
            while (effect := steps.next()) is not None:
                try:
                    steps.answer(self.handle(effect, output))
                except BaseException as exc:
                    steps.fail(exc)
            return steps.result

    def handle(self, effect: Effect, output: OutputSink | None = None) -> Any:
        """Carry out one effect: waiting for it here, or at once (:meth:`answer`)."""
        wait = self.waiting(effect)
        return self.answer(effect) if wait is None else wait(effect, output)

    def spend(
        self, service: str, operation: str, group: str, priority: int, launches: int = 0
    ) -> None:
        """Wait until the client-side budget grants a call of ``operation`` (and the
        ``launches`` tasks it launches)."""
        for delay in self.waits_for_budget(service, operation, group, priority, launches):
            time.sleep(delay)

    # --- the effects that wait (see _runtime._WAITING) -----------------------------------------

    def _aws_call(self, effect: core.AwsCall, _output: OutputSink | None) -> core.AwsResult:
        launches = self.launches(effect)
        self.spend(effect.service, effect.operation, effect.api_group, effect.priority, launches)
        result = self.aws.call(effect)
        self.observe(effect, result)
        return result

    def _describe(self, effect: core.DescribeTask, _output: OutputSink | None) -> Any:
        return self.poller.describe(effect)

    def _sleep(self, effect: core.Sleep, _output: OutputSink | None) -> None:
        time.sleep(self.real_seconds(effect.seconds))

    def _exec(self, effect: core.ExecRun, output: OutputSink | None) -> core.TransportResult:
        prepared = self.exec_plan(effect)
        if isinstance(prepared, core.TransportResult):
            return prepared
        for operation in self.exec_calls():
            self.spend("ecs", operation, "", 0)
        self.stats.count_exec()
        outcome = run_sync(
            prepared,
            effect.timeout_s,
            stdout_callback(effect, prepared, output),
            max_stdout_bytes=effect.max_output_bytes,
        )
        return self.exec_done(prepared, outcome)

    def _session(self, effect: core.ExecSession, output: OutputSink | None) -> core.SessionResult:
        self.stats.count_exec()
        result = run_session_sync(
            effect,
            headers=self.aws.stream_headers(effect.stream_url),
            on_output=session_callback(effect, output),
        )
        self.stats.count_bytes(len(result.output))
        return result

    # --- command-loop sessions (see ecs_sandbox_core._cmdloop) -------------------------------

    def _open_channel(
        self, effect: core.OpenChannel, _output: OutputSink | None
    ) -> core.SessionResult | None:
        session = SyncLoopSession(effect)
        failure = session.open(effect, self.aws.stream_headers(effect.stream_url))
        return self.channel_opened(self.channels, effect, session, failure)

    def _channel_request(
        self, effect: core.ChannelRequest, output: OutputSink | None
    ) -> core.TransportResult:
        session = self.leased(self.channels, effect)
        return self.received(session.request(effect, session_callback(effect, output)))

    def _release_channel(self, effect: core.ReleaseChannel, _output: OutputSink | None) -> None:
        self._close_session(self.channels.give_back(effect.lease_id, reusable=effect.reusable))
        self._pool_changed()

    def _close_task_channels(self, effect: core.CloseChannels, _output: OutputSink | None) -> None:
        for session in self.channels.remove(effect.task_arn):
            session.close()

    def _acquire(
        self, effect: core.AcquireChannel, _output: OutputSink | None
    ) -> core.ChannelLease:
        while True:
            with self._pool_free:
                taken = self.channels.take(effect.task_arn, effect.max_sessions)
                while taken is None:
                    self._pool_free.wait()
                    taken = self.channels.take(effect.task_arn, effect.max_sessions)
            lease, session = taken
            if session is None or session.alive():
                return lease
            # It ended while idle (the agent's idle timeout, a restart): never lease it.
            self.channels.give_back(lease.lease_id, reusable=False)
            session.close()

    def _pool_changed(self) -> None:
        with self._pool_free:
            self._pool_free.notify_all()

    @staticmethod
    def _close_session(session: SyncLoopSession | None) -> None:
        if session is not None:
            session.close()


__all__ = ["SyncDriver", "SyncTaskPoller"]
