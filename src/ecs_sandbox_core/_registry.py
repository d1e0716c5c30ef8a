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

Base definitions (opt-in, ``share_bases=True``, as drivers construct it): the digest is
computed from the *base* definition (``cfg.task_definition``, described by
DescribeTaskDefinition), so without sharing every sandbox describes the base once, which is
one call per sandbox from a 50-burst, 20-per-second bucket. With sharing, the base is
described once per name and driver, with the same single-flight states as registration
(``base`` answers ``use``, ``describe`` or ``wait``; the describer reports ``described`` or
``describe_failed``). The base is then the one seen when the driver first needed it: a
revision of the family added later is picked up by the next driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True, slots=True)
class BaseLookup:
    """What the caller of :meth:`TaskDefinitionRegistry.base` must do.

    * ``"use"``: use ``base`` (None: there is no such definition; build from the config).
    * ``"describe"``: describe it, then call ``described`` or ``describe_failed``.
    * ``"wait"``: another caller is describing it; ask again after a short sleep.
    """

    action: Literal["use", "describe", "wait"]
    base: Mapping[str, Any] | None = None


@dataclass(slots=True)
class _Ready:
    arn: str
    users: int


class TaskDefinitionRegistry:
    """Reference-counted task definitions by content digest (see the module docstring)."""

    __slots__ = (
        "_bases",
        "_closed",
        "_describing",
        "_handed_over",
        "_ready",
        "_registering",
        "share_bases",
    )

    def __init__(self, *, share_bases: bool = False) -> None:
        self._ready: dict[str, _Ready] = {}
        self._registering: set[str] = set()
        self._handed_over: set[str] = set()
        self._closed = False
        self.share_bases = share_bases
        self._bases: dict[str, Mapping[str, Any] | None] = {}
        self._describing: set[str] = set()

    def base(self, name: str) -> BaseLookup:
        """Use, describe or wait for the base definition ``name`` (with ``share_bases``)."""
        if not self.share_bases:
            raise UsageError("this registry does not share base definitions")
        if name in self._bases:
            return BaseLookup("use", self._bases[name])
        if name in self._describing:
            return BaseLookup("wait")
        self._describing.add(name)
        return BaseLookup("describe")

    def described(self, name: str, base: Mapping[str, Any] | None) -> None:
        """The describer of ``name`` found ``base`` (None: no such definition)."""
        self._describing.discard(name)
        self._bases[name] = base

    def describe_failed(self, name: str) -> None:
        """The describer of ``name`` gave up; the next caller of ``base`` describes."""
        self._describing.discard(name)

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


__all__ = ["Acquire", "BaseLookup", "TaskDefinitionRegistry"]
