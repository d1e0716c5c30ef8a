"""Configuration for the command line: a TOML file, then environment variables, then flags.

Later sources win. Environment variables are ``ECS_SANDBOX_<FIELD>`` (upper case), e.g.
``ECS_SANDBOX_CLUSTER``; list fields take commas; booleans take 1/0, true/false, yes/no.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecs_sandbox_core import ConfigError, EcsFargateConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_PREFIX = "ECS_SANDBOX_"
DEFAULT_FILE = "ecs-sandbox.toml"
# Variables with the prefix that are not configuration keys: the file to read, and the
# embedded local ECS's state directory (set for its stand-in session-manager-plugin), and
# the persistent local ECS's directory (see _localecs).
_NOT_CONFIGURATION = {"ECS_SANDBOX_CONFIG", "ECS_SANDBOX_LOCAL_STATE", "ECS_SANDBOX_LOCAL_DIR"}
_FIELDS = {f.name: f for f in dataclasses.fields(EcsFargateConfig)}
_LISTS = {"subnets", "security_groups"}
_BOOLS = {
    "assign_public_ip",
    "register_task_definition_per_task",
    "api_adaptive",
    "probe_image",
}
_INTS = {
    "max_task_lifetime_sec",
    "run_task_max_retries",
    "ecs_exec_timeout_sec",
    "max_exec_output_bytes",
    "max_download_bytes",
    "max_download_members",
}
_FLOATS = {"running_timeout_sec", "exec_connect_timeout_sec", "api_share"}


def _convert(name: str, raw: Any, source: str) -> Any:
    if name not in _FIELDS:
        raise ConfigError(
            f"{source}: unknown configuration key {name!r}",
            remedy=f"Known keys: {', '.join(sorted(_FIELDS))}.",
        )
    if not isinstance(raw, str):
        return raw
    try:
        if name in _LISTS:
            return [part.strip() for part in raw.split(",") if part.strip()]
        if name in _BOOLS:
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes"}
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
        if name == "tags":
            pairs = [p.split("=", 1) for p in raw.split(",") if p]
            return {k.strip(): v.strip() for k, v in pairs}
    except ValueError:
        raise ConfigError(f"{source}: {name} has an invalid value {raw!r}") from None
    return raw


def load_file(path: Path) -> dict[str, Any]:
    """Keys of a TOML file: its ``[ecs_sandbox]`` table, or its top level."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("ecs_sandbox", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [ecs_sandbox] must be a table")
    return {k: _convert(k, v, str(path)) for k, v in table.items()}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """``ECS_SANDBOX_<FIELD>`` variables."""
    values = {}
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and key not in _NOT_CONFIGURATION:
            name = key[len(ENV_PREFIX) :].lower()
            values[name] = _convert(name, raw, f"environment variable {key}")
    return values


def from_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` flags."""
    values = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} must look like key=value")
        values[name.strip()] = _convert(name.strip(), raw, f"--set {name}")
    return values


def resolve(
    *,
    config_file: str | None,
    assignments: Sequence[str],
    base: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> EcsFargateConfig:
    """Merge ``base`` (e.g. the embedded local ECS's values), the file, the environment and
    the flags, in that order, into a validated configuration."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = dict(base or {})
    path = config_file or environ.get("ECS_SANDBOX_CONFIG")
    if path:
        values.update(load_file(Path(path)))
    elif Path(DEFAULT_FILE).is_file():
        values.update(load_file(Path(DEFAULT_FILE)))
    values.update(from_environment(environ))
    values.update(from_assignments(assignments))
    return EcsFargateConfig.from_mapping(values)


__all__ = ["DEFAULT_FILE", "ENV_PREFIX", "resolve"]
