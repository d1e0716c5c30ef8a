"""One step of a flow at a time: what the sync and the anyio trampolines share.

A driver's ``run`` asks :meth:`FlowSteps.next` for the next effect, carries it out, and
reports how that went: :meth:`~FlowSteps.answer` with the value, or
:meth:`~FlowSteps.fail` with the exception its handler raised, which the next step throws
into the flow, so that the flow's own clean-up (tear-down on a failed start) runs before
the exception propagates. ``with FlowSteps(flow)`` closes the flow however the run ends.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

from ecs_sandbox_core import Effect

T = TypeVar("T")


class FlowSteps(Generic[T]):
    """Drives ``flow`` one effect at a time (see the module docstring)."""

    __slots__ = ("_error", "_flow", "_value", "result", "threw")

    def __init__(self, flow: Generator[Effect, Any, T]) -> None:
        self._flow = flow
        self._value: Any = None
        self._error: BaseException | None = None
        self.threw = False
        """True when the last effect came after an exception was thrown into the flow."""
        self.result: T
        """The flow's return value, once :meth:`next` returned None."""

    def next(self) -> Effect | None:
        """The flow's next effect, or None once it returned (see :attr:`result`)."""
        error, self._error = self._error, None
        try:
            effect = self._flow.throw(error) if error is not None else self._flow.send(self._value)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self.threw = error is not None
        return effect

    def answer(self, value: object) -> None:
        """The last effect's value, which the next step sends into the flow."""
        self._value = value

    def fail(self, error: BaseException) -> None:
        """The exception the last effect's handler raised, thrown into the flow next."""
        self._error = error

    def __enter__(self) -> FlowSteps[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._flow.close()


__all__ = ["FlowSteps"]
