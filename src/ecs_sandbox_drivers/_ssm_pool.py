"""The drivers' pool of command-loop sessions: which lease holds which open session.

The core decides when to open, use and give back a session (``_cmdloop``); this is only the
book-keeping, shared by both drivers and safe to use from several threads: per sandbox, a
list of idle sessions, how many leases are out, and the session of each lease. Waiting for a
free place is the driver's business (a condition variable or an anyio event): :meth:`take`
never blocks and returns ``None`` when the caller must wait.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ecs_sandbox_core import ChannelLease

S = TypeVar("S")


@dataclass
class _Sandbox(Generic[S]):
    idle: list[S] = field(default_factory=list)
    leased: int = 0


class ChannelPool(Generic[S]):
    """Leases of command-loop sessions ``S``, per task ARN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sandboxes: dict[str, _Sandbox[S]] = {}
        self._leases: dict[int, tuple[str, S | None]] = {}
        self.opened = 0  # sessions attached over the pool's life (for statistics)

    def take(self, task_arn: str, max_sessions: int) -> tuple[ChannelLease, S | None] | None:
        """An idle session's lease, a fresh lease if there is room, or None (wait)."""
        with self._lock:
            box = self._sandboxes.setdefault(task_arn, _Sandbox())
            lease_id = next(self._ids)
            if box.idle:
                session = box.idle.pop()
                box.leased += 1
                self._leases[lease_id] = (task_arn, session)
                return ChannelLease(lease_id=lease_id, fresh=False), session
            if box.leased < max_sessions:
                box.leased += 1
                self._leases[lease_id] = (task_arn, None)
                return ChannelLease(lease_id=lease_id, fresh=True), None
            return None

    def attach(self, lease_id: int, session: S) -> None:
        """Give a fresh lease the session just opened for it."""
        with self._lock:
            task_arn, _ = self._leases[lease_id]
            self._leases[lease_id] = (task_arn, session)
            self.opened += 1

    def session(self, lease_id: int) -> S | None:
        """The session a lease holds (None for a fresh lease not attached yet)."""
        with self._lock:
            return self._leases[lease_id][1]

    def give_back(self, lease_id: int, *, reusable: bool) -> S | None:
        """End a lease; return its session when the caller must close it."""
        with self._lock:
            task_arn, session = self._leases.pop(lease_id)
            box = self._sandboxes.get(task_arn)
            if box is None:  # the sandbox was torn down meanwhile
                return session
            box.leased -= 1
            if reusable and session is not None:
                box.idle.append(session)
                return None
            return session

    def drop_idle(self, task_arn: str, session: S) -> None:
        """Forget an idle session found ended (the caller closes it)."""
        with self._lock:
            box = self._sandboxes.get(task_arn)
            if box is not None and session in box.idle:
                box.idle.remove(session)

    def remove(self, task_arn: str) -> list[S]:
        """Forget a sandbox (tear-down); return every session of it to close.

        Leased ones are included (a lease whose flow was abandoned is never given back);
        closing a session twice is harmless, and a later give-back just closes it again.
        """
        with self._lock:
            box = self._sandboxes.pop(task_arn, None)
            leased = [s for arn, s in self._leases.values() if arn == task_arn and s is not None]
            return (list(box.idle) if box is not None else []) + leased

    def remove_all(self) -> list[S]:
        """Forget every sandbox (the driver closes); return the idle sessions to close."""
        with self._lock:
            sessions = [s for box in self._sandboxes.values() for s in box.idle]
            sessions += [s for _, s in self._leases.values() if s is not None]
            self._sandboxes.clear()
            return sessions


__all__ = ["ChannelPool"]
