"""The sync driver: a trampoline that carries out the core's effects inline.

Threads that share a driver share its DescribeTasks poller too (:class:`SyncTaskPoller`):
every sandbox waiting for RUNNING, in whichever thread, is described by one call per poll
tick (up to 100 tasks a call), as the anyio driver does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, ClassVar, TypeVar

from ecs_sandbox_core import (
    AcquireChannel,
    AwsCall,
    ChannelLease,
    ChannelRequest,
    CloseChannels,
    DescribeTask,
    EcsFargateConfig,
    Effect,
    ExecRun,
    ExecSession,
    Log,
    Now,
    OpenChannel,
    Presign,
    Random,
    ReleaseChannel,
    SessionResult,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._budget import task_launches
from ecs_sandbox_core._lifecycle import (
    TaskHandle,
    abandoned_teardown_log,
    close_flow,
    preflight_flow,
)

from ._poll import SyncTaskPoller
from ._process import run_sync
from ._runtime import DriverBase, OutputSink, session_callback, stdout_callback, unexpected
from ._ssm_pool import ChannelPool
from ._ssm_sync import SyncLoopSession, run_session_sync

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
                record = abandoned_teardown_log(
                    handle, f"tear-down of sandbox {handle.task_id} was interrupted twice"
                )
                if record is not None:
                    self.log(record)
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

    def __init__(self, *args: Any, poll_tick_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                error = None
                try:
                    value = self.handle(effect, output)
                except BaseException as exc:
                    error = exc
        finally:
            flow.close()

    def handle(self, effect: Effect, output: OutputSink | None = None) -> Any:
        """Carry out one effect."""
        if isinstance(effect, AwsCall):
            launches = task_launches(effect.operation, effect.params, effect.service)
            self.spend(
                effect.service, effect.operation, effect.api_group, effect.priority, launches
            )
            result = self.aws.call(effect)
            self.observe(effect, result)
            return result
        if isinstance(effect, DescribeTask):
            return self.poller.describe(effect)
        if isinstance(effect, ExecRun):
            return self._exec(effect, output)
        if isinstance(effect, ExecSession):
            return self._session(effect, output)
        if isinstance(effect, AcquireChannel | OpenChannel | ChannelRequest):
            return self._loop(effect, output)
        if isinstance(effect, ReleaseChannel):
            self._close_session(self.channels.give_back(effect.lease_id, reusable=effect.reusable))
            self._pool_changed()
            return None
        if isinstance(effect, CloseChannels):
            for session in self.channels.remove(effect.task_arn):
                session.close()
            return None
        if isinstance(effect, Sleep):
            time.sleep(self.real_seconds(effect.seconds))
            return None
        if isinstance(effect, Now):
            return self.now()
        if isinstance(effect, Random):
            return random.random()  # noqa: S311 - jitter, not cryptography
        if isinstance(effect, Token):
            return self.token(effect.nbytes)
        if isinstance(effect, Presign):
            return self.aws.presign(effect)
        if isinstance(effect, Log):
            self.log(effect)
            return None
        raise unexpected(effect)

    def spend(
        self, service: str, operation: str, group: str, priority: int, launches: int = 0
    ) -> None:
        """Wait until the client-side budget grants a call of ``operation`` (and the
        ``launches`` tasks it launches)."""
        while (delay := self.take(service, operation, group, priority, launches)) > 0:
            time.sleep(self.real_seconds(delay))

    def _exec(self, effect: ExecRun, output: OutputSink | None) -> TransportResult:
        prepared = self.transport.prepare(
            task_arn=effect.task_arn, container=effect.container, command=effect.command
        )
        if isinstance(prepared, TransportResult):
            return prepared
        for operation in getattr(self.transport, "api_calls", ()):
            self.spend("ecs", operation, "", 0)
            self.aws.count_external(operation)
        self.stats.count_exec()
        returncode, stdout, stderr, timed_out = run_sync(
            prepared,
            effect.timeout_s,
            stdout_callback(effect, prepared, output),
            max_stdout_bytes=effect.max_output_bytes,
        )
        self.stats.count_bytes(len(stdout))
        return self.transport.finish(
            prepared, returncode=returncode, stdout=stdout, stderr=stderr, timed_out=timed_out
        )

    def _session(self, effect: ExecSession, output: OutputSink | None) -> SessionResult:
        self.stats.count_exec()
        result = run_session_sync(
            effect,
            headers=self.aws.stream_headers(effect.stream_url),
            on_output=session_callback(effect, output),
        )
        self.stats.count_bytes(len(result.output))
        return result

    # --- command-loop sessions (see ecs_sandbox_core._cmdloop) -------------------------------

    def _loop(
        self, effect: AcquireChannel | OpenChannel | ChannelRequest, output: OutputSink | None
    ) -> ChannelLease | SessionResult | TransportResult | None:
        if isinstance(effect, AcquireChannel):
            return self._acquire(effect)
        if isinstance(effect, OpenChannel):
            session = SyncLoopSession(effect)
            failure = session.open(effect, self.aws.stream_headers(effect.stream_url))
            if failure is None:
                self.channels.attach(effect.lease_id, session)
                self.stats.count_session()
            return failure
        session_or_none = self.channels.session(effect.lease_id)
        assert session_or_none is not None, "a request on a lease without a session"
        self.stats.count_exec()
        result = session_or_none.request(effect, session_callback(effect, output))
        self.stats.count_bytes(len(result.stdout))
        return result

    def _acquire(self, effect: AcquireChannel) -> ChannelLease:
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
