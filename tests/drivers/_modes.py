"""Running one async scenario through the sync API, asyncio or trio.

The sync API runs in worker threads behind an awaitable facade, so that the same scenario
code drives all three modes.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, EcsFargateTmuxSession, aio

MODES = ["sync", "asyncio", "trio"]


def mode_fixtures() -> tuple[Any, Any]:
    """The fixtures of a module whose tests run in every mode: ``mode`` (a parameter over
    :data:`MODES`) and the ``anyio_backend`` it needs (the sync API runs under asyncio, in
    worker threads). Bind them in the module: ``mode, anyio_backend = mode_fixtures()``."""

    @pytest.fixture(params=MODES, name="mode")
    def mode(request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture(name="anyio_backend")
    def anyio_backend(mode: str) -> str:
        return "trio" if mode == "trio" else "asyncio"

    return mode, anyio_backend


class Threaded:
    """Makes a sync object's methods awaitable by running them in a worker thread."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            value = await anyio.to_thread.run_sync(functools.partial(attr, *args, **kwargs))
            if isinstance(value, EcsFargateSandbox | EcsFargateTmuxSession):
                return Threaded(value)
            return value

        return call


@asynccontextmanager
async def spin_up(
    mode: str, cfg: EcsFargateConfig, task_id: str, *, driver: Any = None, **kwargs: Any
) -> AsyncIterator[Any]:
    """A sandbox of ``mode`` ("sync", "asyncio" or "trio"; the caller runs the backend)."""
    args: dict[str, Any] = {
        "cfg": cfg,
        "task_id": task_id,
        "trial_name": "t",
        "run_id": kwargs.pop("run_id", "regress"),
        "driver": driver,
        **kwargs,
    }
    if mode != "sync":
        async with aio.EcsFargateSandbox.spin_up(**args) as sandbox:
            yield sandbox
        return
    cm = EcsFargateSandbox.spin_up(**args)
    sandbox = await anyio.to_thread.run_sync(cm.__enter__)
    try:
        yield Threaded(sandbox)
    except BaseException as exc:
        await anyio.to_thread.run_sync(cm.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        await anyio.to_thread.run_sync(cm.__exit__, None, None, None)
