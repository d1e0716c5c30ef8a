"""The drivers' effect tables (``_runtime._WAITING`` and ``_AT_ONCE``) cover every effect.

The waiting handlers are looked up by name, so a missing or misspelt method, or an effect
added to the core without a handler, would otherwise show only when a flow first yields it.
"""

from __future__ import annotations

import inspect
import typing

import pytest

from ecs_sandbox_core import Effect
from ecs_sandbox_drivers._async import AsyncDriver
from ecs_sandbox_drivers._runtime import _AT_ONCE, _WAITING
from ecs_sandbox_drivers._sync import SyncDriver


def test_every_effect_is_either_answered_at_once_or_waited_for() -> None:
    effects = set(typing.get_args(Effect))
    assert effects == set(_WAITING) | set(_AT_ONCE)
    assert not set(_WAITING) & set(_AT_ONCE)


@pytest.mark.parametrize("effect", list(_WAITING), ids=lambda effect: effect.__name__)
def test_each_driver_has_its_own_handler_of_an_effect_that_waits(effect: type) -> None:
    name = _WAITING[effect]
    assert inspect.iscoroutinefunction(getattr(AsyncDriver, name))
    handler = getattr(SyncDriver, name)
    assert callable(handler)
    assert not inspect.iscoroutinefunction(handler)
