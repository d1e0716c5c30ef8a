"""The sync driver: a trampoline that carries out the core's effects inline."""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from typing import Any, TypeVar

from ecs_sandbox_core import (
    AwsCall,
    DescribeTask,
    Effect,
    ExecRun,
    Log,
    Now,
    Presign,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._lifecycle import close_flow, preflight_flow

from ._process import run_sync
from ._runtime import DriverBase, OutputSink, stdout_callback, unexpected

T = TypeVar("T")


class SyncDriver(DriverBase):
    """Runs flows in the calling thread. Share one driver between the sandboxes of a run,
    from any number of threads: what they share (the token budget, the task-definition
    registry, the boto3 clients, the counters) is locked."""

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
        self.run(close_flow(self.registry))
        self.aws.close()

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
            self._spend(effect.service, effect.operation, effect.api_group, effect.priority)
            return self.aws.call(effect)
        if isinstance(effect, DescribeTask):
            self._spend("ecs", "describe_tasks", "", 0)
            return self.aws.describe(effect)
        if isinstance(effect, ExecRun):
            return self._exec(effect, output)
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

    def _spend(self, service: str, operation: str, group: str, priority: int) -> None:
        while (delay := self.take(service, operation, group, priority)) > 0:
            time.sleep(self.real_seconds(delay))

    def _exec(self, effect: ExecRun, output: OutputSink | None) -> TransportResult:
        prepared = self.transport.prepare(
            task_arn=effect.task_arn, container=effect.container, command=effect.command
        )
        if isinstance(prepared, TransportResult):
            return prepared
        self.stats.count_exec()
        returncode, stdout, stderr, timed_out = run_sync(
            prepared, effect.timeout_s, stdout_callback(effect, prepared, output)
        )
        self.stats.count_bytes(len(stdout))
        return self.transport.finish(
            prepared, returncode=returncode, stdout=stdout, stderr=stderr, timed_out=timed_out
        )


__all__ = ["SyncDriver"]
