"""What a driver shares between threads, each locked: its counters, its task-definition
registry, the images it has probed."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecs_sandbox_core._doctor_image import ImageProbes, ImageReport
from ecs_sandbox_core._registry import Acquire, BaseLookup, TaskDefinitionRegistry


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


__all__ = ["DriverStats", "SharedImageProbes", "SharedRegistry"]
