"""Sharing registered task definitions between sandboxes, by content hash.

RegisterTaskDefinition and DeregisterTaskDefinition share one ECS token bucket of 20 burst
and 1 call per second. Registering and deregistering a definition for every sandbox thus caps
a whole account at about half a sandbox per second. Sandboxes that would register the same
content (the trials of one task, say) share one definition instead.

:class:`TaskDefinitionRegistry` is the bookkeeping only, shared by all sandboxes of a driver;
the spin-up flow does the calls. For a content digest the registry is in one of three states:

* absent: nobody holds it. ``acquire`` makes the caller the *registrar*
  (``action="register"``) and moves the digest to *registering*.
* registering: one registrar is calling RegisterTaskDefinition. Other callers are told to
  ``wait`` and ask again later. The registrar reports ``registered(digest, arn)``, which makes
  the digest *ready* with the registrar as its first user, or ``failed(digest)``, which makes
  it absent again, so that the next caller to ask becomes the registrar in turn and every
  sandbox gets its own attempt and its own error.
* ready: an ARN with a count of users. ``acquire`` returns ``action="use"`` and adds one user.

``release`` removes one user. Policy: when the last user of a definition is gone, ``release``
returns its ARN and forgets it, so the caller deregisters it at once. Keeping it for later
reuse would save a registration only when the same content comes back after a pause, and
would leave definitions behind whenever the driver dies before closing; the registered
definitions are tagged, but not leaving them is better than finding them. Concurrent users,
the common case, share the definition either way.

``close`` (at driver shut-down) hands over the ARNs still in use, for deregistration, and
forgets them; a later ``release`` of those digests returns None, so that nothing is
deregistered twice, and ``acquire`` refuses new users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import UsageError


@dataclass(frozen=True, slots=True)
class Acquire:
    """What the caller of :meth:`TaskDefinitionRegistry.acquire` must do.

    * ``"use"``: run ``arn``; the caller is now one of its users and must ``release`` it.
    * ``"register"``: register the definition, then call ``registered`` or ``failed``.
    * ``"wait"``: another caller is registering it; ask again after a short sleep.
    """

    action: Literal["use", "register", "wait"]
    arn: str | None = None

    def __post_init__(self) -> None:
        if (self.action == "use") != (self.arn is not None):
            raise ValueError("an ARN comes with action 'use' and only with it")


_REGISTER = Acquire("register")
_WAIT = Acquire("wait")


@dataclass(slots=True)
class _Ready:
    arn: str
    users: int


class TaskDefinitionRegistry:
    """Reference-counted task definitions by content digest (see the module docstring)."""

    __slots__ = ("_closed", "_handed_over", "_ready", "_registering")

    def __init__(self) -> None:
        self._ready: dict[str, _Ready] = {}
        self._registering: set[str] = set()
        self._handed_over: set[str] = set()
        self._closed = False

    def acquire(self, digest: str) -> Acquire:
        """Use, register or wait for the definition with content ``digest``.

        Raises :class:`UsageError` once the registry is closed.
        """
        if self._closed:
            raise UsageError(
                "the task-definition registry is closed",
                remedy="Start sandboxes before closing their driver, not after.",
            )
        entry = self._ready.get(digest)
        if entry is not None:
            entry.users += 1
            return Acquire("use", entry.arn)
        if digest in self._registering:
            return _WAIT
        self._registering.add(digest)
        return _REGISTER

    def registered(self, digest: str, arn: str) -> None:
        """The registrar of ``digest`` registered ``arn``; it is the definition's first user."""
        if digest not in self._registering:
            raise ValueError(f"{digest!r} is not being registered")
        self._registering.remove(digest)
        self._ready[digest] = _Ready(arn, 1)

    def failed(self, digest: str) -> None:
        """The registrar of ``digest`` gave up; the next caller of ``acquire`` registers."""
        if digest not in self._registering:
            raise ValueError(f"{digest!r} is not being registered")
        self._registering.remove(digest)

    def release(self, digest: str) -> str | None:
        """One user of ``digest`` is done: the ARN to deregister when it was the last, or None.

        Releasing a digest that was handed over by :meth:`close` returns None.
        """
        entry = self._ready.get(digest)
        if entry is None:
            if digest in self._handed_over:
                return None
            raise ValueError(f"{digest!r} is not in use")
        entry.users -= 1
        if entry.users:
            return None
        del self._ready[digest]
        return entry.arn

    def users(self, digest: str) -> int:
        """How many sandboxes use the definition of ``digest`` now."""
        entry = self._ready.get(digest)
        return 0 if entry is None else entry.users

    def registering(self, digest: str) -> bool:
        """Whether a registrar is registering ``digest`` now."""
        return digest in self._registering

    def outstanding(self) -> list[str]:
        """The ARNs still in use, sorted; the registry keeps them."""
        return sorted(entry.arn for entry in self._ready.values())

    def close(self) -> list[str]:
        """Hand over the ARNs still in use for deregistration, forget them, refuse new users.

        Registrations in progress are not affected: their registrar still reports them,
        and their last ``release`` returns the ARN as usual.
        """
        arns = self.outstanding()
        self._handed_over.update(self._ready)
        self._ready.clear()
        self._closed = True
        return arns


__all__ = ["Acquire", "TaskDefinitionRegistry"]
