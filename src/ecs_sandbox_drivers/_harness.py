"""What an adapter for an evaluation harness shares: its configuration and its driver.

A harness (Harbor, inspect_ai) names one configuration file for a whole run and creates
sandboxes from many places at once. :func:`open_harness` reads the file as the command line
does (``[ecs_sandbox]`` table or top level, then ``ECS_SANDBOX_*`` variables), starts the
embedded local ECS when the file says ``local = true``, and opens one driver;
:class:`Harnesses` shares one :class:`Harness` per file among the run's users and closes it
when the last one leaves.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import anyio

from ecs_sandbox_core import ConfigError, EcsFargateConfig

from ._async import AsyncDriver
from ._cliconfig import DEFAULT_FILE, _convert, from_environment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)


def config_path(named: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The file to read: the one named, else ``$ECS_SANDBOX_CONFIG``, else
    ``./ecs-sandbox.toml`` when it exists, else none (variables only)."""
    path = named or environ.get("ECS_SANDBOX_CONFIG")
    if path:
        return Path(path)
    default = cwd / DEFAULT_FILE
    return default if default.is_file() else None


def load(path: Path) -> tuple[bool, dict[str, Any]]:
    """The file's ``local`` flag and its configuration keys (as the command line reads them)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("ecs_sandbox", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [ecs_sandbox] must be a table")
    table = dict(table)
    local = table.pop("local", False)
    if not isinstance(local, bool):
        raise ConfigError(f"{path}: local must be true or false, not {local!r}")
    return local, {key: _convert(key, value, str(path)) for key, value in table.items()}


@dataclass
class Harness:
    """One configuration's driver and, when local, the embedded ECS serving it."""

    cfg: EcsFargateConfig
    driver: AsyncDriver
    local: Any = None
    users: int = 0

    async def aclose(self) -> None:
        """Close the driver (its sandboxes are torn down), then the local ECS; shielded."""
        with anyio.CancelScope(shield=True):
            try:
                await self.driver.aclose()
            finally:
                if self.local is not None:
                    await anyio.to_thread.run_sync(self.local.close)


async def open_harness(named: str | None, environ: Mapping[str, str] | None = None) -> Harness:
    """Read the configuration (see :func:`config_path`) and open its driver, checked
    (:meth:`AsyncDriver.preflight`); with ``local = true`` the embedded local ECS is
    started first and its values are the base the file's keys override."""
    environ = os.environ if environ is None else environ
    path = config_path(named, environ, Path.cwd())
    want_local, values = load(path) if path else (False, {})
    values.update(from_environment(environ))
    local = None
    if want_local:
        from .local import LocalAws  # noqa: PLC0415 - only local runs start moto

        local = LocalAws()
        await anyio.to_thread.run_sync(local.start)
        base = local.config()
        values = {**{f.name: getattr(base, f.name) for f in fields(EcsFargateConfig)}, **values}
    try:
        cfg = EcsFargateConfig.from_mapping(values)
        driver = AsyncDriver(cfg)
        await driver.preflight()
    except BaseException:
        if local is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(local.close)
        raise
    log.info("ecs-sandbox: %s", "embedded local ECS" if local else f"cluster {cfg.cluster}")
    return Harness(cfg=cfg, driver=driver, local=local)


class Harnesses:
    """One :class:`Harness` per configuration file, shared by the run's users."""

    def __init__(self) -> None:
        self._open: dict[str, Harness] = {}
        self._lock = anyio.Lock()

    async def acquire(self, named: str | None) -> Harness:
        """The harness for ``named`` (opened on first use); pair with :meth:`release`."""
        key = named or ""
        async with self._lock:
            harness = self._open.get(key)
            if harness is None or harness.driver.closed:
                harness = self._open[key] = await open_harness(named)
            harness.users += 1
            return harness

    def current(self, named: str | None) -> Harness | None:
        """The open harness for ``named``, if a user holds it (no new share is taken)."""
        harness = self._open.get(named or "")
        return harness if harness is not None and not harness.driver.closed else None

    async def release(self, harness: Harness) -> None:
        """One user fewer; the last one closes the harness. Shielded: a trial cancelled
        while it stops must still hand its share back, or the run's ECS outlives it."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                harness.users -= 1
                if harness.users > 0:
                    return
                for key, value in list(self._open.items()):
                    if value is harness:
                        del self._open[key]
            await harness.aclose()


__all__ = ["Harness", "Harnesses", "config_path", "load", "open_harness"]
