"""Task definitions and RunTask requests, built as plain data.

Registering a task definition spends from a bucket of 1 call/s per account (see the API limits
in the project facts), so a per-sandbox definition caps the whole account at about 0.5
sandboxes/s. The family is therefore *content-addressed*: :func:`definition_hash` digests
everything that changes what runs, and :func:`family_for` names the family after it, so
every sandbox that needs the same image and settings can use one registration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ._config import EcsFargateConfig
from ._errors import ConfigError, TaskDefinitionError, UsageError

FAMILY_MAX = 255
TAG_PREFIX = "ecs-sandbox:"
_FAMILY_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_FAMILY_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_TAG_KEY_MAX = 128
_TAG_VALUE_MAX = 256
_TAGS_MAX = 50  # ECS's limit of tags per resource
_TAG_PUNCTUATION = frozenset(" +-=._:/@")
_HEX = re.compile(r"[0-9a-f]{32,}")

# Keys of a described task definition that do not depend on the family and that
# RegisterTaskDefinition accepts back unchanged.
_COPIED_KEYS = (
    "taskRoleArn",
    "executionRoleArn",
    "ephemeralStorage",
    "runtimePlatform",
    "volumes",
    "placementConstraints",
    "proxyConfiguration",
    "pidMode",
    "ipcMode",
    "inferenceAccelerators",
)


def sanitize_family(raw: str) -> str:
    """Turn ``raw`` into a valid task-definition family name.

    A valid name is 1-255 ASCII letters, digits, ``-`` and ``_``, starting with a letter or
    digit; valid names come back unchanged (so the function is idempotent). Any other name is
    cleaned (bad characters become ``_``, a leading ``_``/``-`` gets an ``f`` in front) and,
    because cleaning can make different names equal, suffixed with a short hash of ``raw``.
    """
    if _FAMILY_OK.fullmatch(raw):
        return raw
    cleaned = _FAMILY_BAD_CHAR.sub("_", raw)
    if not cleaned[:1].isalnum():
        cleaned = "f" + cleaned
    suffix = "-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return cleaned[: FAMILY_MAX - len(suffix)] + suffix


def keepalive_command(max_lifetime_s: int) -> list[str]:
    """The container command that keeps a task alive for at most ``max_lifetime_s`` seconds.

    It first makes ``python`` available when the image only has ``python3`` (many tools call
    ``python``), ignoring failures on read-only images, then ``exec``s ``sleep`` so that the
    task ends by itself even when the harness that started it is gone.
    """
    if isinstance(max_lifetime_s, bool) or not isinstance(max_lifetime_s, int):
        raise UsageError(f"max_lifetime_s must be an int, not {max_lifetime_s!r}")
    if max_lifetime_s <= 0:
        raise UsageError(f"max_lifetime_s must be positive, not {max_lifetime_s}")
    bootstrap = (
        "if ! command -v python >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then "
        'ln -sf "$(command -v python3)" /usr/local/bin/python 2>/dev/null || true; fi'
    )
    return ["sh", "-lc", f"{bootstrap}; exec sleep {max_lifetime_s}"]


def _tag_value(value: str) -> str:
    # ECS accepts letters, digits and spaces representable in UTF-8 plus "+-=._:/@".
    cleaned = "".join(c if c.isalnum() or c in _TAG_PUNCTUATION else "_" for c in value)
    return cleaned[:_TAG_VALUE_MAX]


def _check_tag_key(key: str) -> None:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= _TAG_KEY_MAX
        or any(not (c.isalnum() or c in _TAG_PUNCTUATION) for c in key)
        or key.lower().startswith("aws:")
    ):
        raise UsageError(
            f"tag key {key!r} is not allowed",
            remedy="Tag keys are 1-128 letters, digits, spaces and '+-=._:/@', "
            "and may not start with 'aws:'.",
        )
    if key.startswith(TAG_PREFIX):
        raise UsageError(
            f"tag key {key!r} uses the reserved prefix {TAG_PREFIX!r}",
            remedy="Those tags identify sandboxes for clean-up; pick another key.",
        )


def resource_tags(
    *, run_id: str, task_id: str, owner: str, created_at: int, extra: Mapping[str, str]
) -> list[dict[str, str]]:
    """Tags for every task, task definition and staged object, in ECS's ``key``/``value`` form.

    The ``ecs-sandbox:`` tags come first (run, task, owner, creation time in epoch seconds)
    so that orphans can be found and attributed after a harness dies; ``extra`` follows,
    sorted by key. Values are made to fit ECS's tag character set and length; keys in
    ``extra`` must already be valid and may not use the reserved prefix.
    """
    tags = [
        {"key": TAG_PREFIX + "run-id", "value": _tag_value(run_id)},
        {"key": TAG_PREFIX + "task-id", "value": _tag_value(task_id)},
        {"key": TAG_PREFIX + "owner", "value": _tag_value(owner)},
        {"key": TAG_PREFIX + "created-at", "value": _tag_value(str(int(created_at)))},
    ]
    for key in sorted(extra):
        _check_tag_key(key)
        tags.append({"key": key, "value": _tag_value(str(extra[key]))})
    if len(tags) > _TAGS_MAX:
        raise UsageError(
            f"{len(tags)} tags, but ECS allows {_TAGS_MAX} per resource",
            remedy=f"Give at most {_TAGS_MAX - 4} extra tags.",
        )
    return tags


def _log_configuration(cfg: EcsFargateConfig) -> dict[str, Any]:
    if not cfg.region:
        # The awslogs driver needs the region; the core cannot read it from the environment.
        raise ConfigError(
            "log_group is set but region is not",
            remedy="Set region explicitly when log_group is set (the awslogs driver needs it).",
        )
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": str(cfg.log_group),
            "awslogs-region": cfg.region,
            "awslogs-stream-prefix": cfg.log_stream_prefix,
        },
    }


def _check_family(family: str) -> None:
    if sanitize_family(family) != family:
        raise UsageError(
            f"{family!r} is not a valid task-definition family",
            remedy="Build it with family_for() or sanitize_family().",
        )


def _check_image(image: str) -> None:
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise UsageError(f"{image!r} is not an image reference")


def register_payload(
    cfg: EcsFargateConfig, *, base: Mapping[str, Any] | None, image: str, family: str
) -> dict[str, Any]:
    """The RegisterTaskDefinition parameters for a definition that runs ``image``.

    With ``base`` (DescribeTaskDefinition's ``taskDefinition``), its family-independent
    settings are kept and only the container named ``cfg.container_name`` changes: image,
    keep-alive command and, with ``cfg.log_group``, its awslogs configuration. Task-level
    cpu, memory and roles missing from ``base`` are filled in from ``cfg``. ``base`` is not
    modified. Without ``base`` a one-container definition is built from ``cfg`` alone, which
    needs ``cfg.execution_role_arn``.
    """
    _check_family(family)
    _check_image(image)
    command = keepalive_command(cfg.max_task_lifetime_sec)
    if base is None:
        return _from_scratch(cfg, image=image, family=family, command=command)

    containers = copy.deepcopy(list(base.get("containerDefinitions") or []))
    target = next((c for c in containers if c.get("name") == cfg.container_name), None)
    if target is None:
        names = [c.get("name") for c in containers]
        raise TaskDefinitionError(
            f"task definition {cfg.task_definition!r} has no container named "
            f"{cfg.container_name!r}; its containers are {names}",
            operation="RegisterTaskDefinition",
            remedy="Set container_name to one of the containers above, or point "
            "task_definition at a definition that has that container.",
        )
    target["image"] = image
    target["command"] = command
    if cfg.log_group:
        target["logConfiguration"] = _log_configuration(cfg)

    payload: dict[str, Any] = {
        "family": family,
        "networkMode": base.get("networkMode") or "awsvpc",
        "requiresCompatibilities": list(base.get("requiresCompatibilities") or ["FARGATE"]),
        # Fargate requires task-level cpu and memory; a base without them gets cfg's.
        "cpu": str(base.get("cpu") or cfg.cpu),
        "memory": str(base.get("memory") or cfg.memory),
        "containerDefinitions": containers,
    }
    for key in _COPIED_KEYS:
        if base.get(key) is not None:
            payload[key] = copy.deepcopy(base[key])
    if "executionRoleArn" not in payload and cfg.execution_role_arn:
        payload["executionRoleArn"] = cfg.execution_role_arn
    if "taskRoleArn" not in payload and cfg.task_role_arn:
        payload["taskRoleArn"] = cfg.task_role_arn
    return payload


def _from_scratch(
    cfg: EcsFargateConfig, *, image: str, family: str, command: list[str]
) -> dict[str, Any]:
    if not cfg.execution_role_arn:
        raise ConfigError(
            f"task definition {cfg.task_definition!r} could not be used as a base and "
            "execution_role_arn is not set",
            remedy="Set execution_role_arn (ECS needs it to pull the image and write logs), "
            "or make task_definition name a definition this account can describe.",
        )
    container: dict[str, Any] = {
        "name": cfg.container_name,
        "image": image,
        "essential": True,
        "command": command,
        # ECS accepts task-level memory alone, but moto needs it on the container too.
        "memory": int(cfg.memory),
    }
    if cfg.log_group:
        container["logConfiguration"] = _log_configuration(cfg)
    payload: dict[str, Any] = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cfg.cpu),
        "memory": str(cfg.memory),
        "executionRoleArn": cfg.execution_role_arn,
        "containerDefinitions": [container],
    }
    if cfg.task_role_arn:
        payload["taskRoleArn"] = cfg.task_role_arn
    return payload


def definition_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of what a register payload makes run, whatever its key order.

    ``family`` and ``tags`` are left out: they name and label a definition but do not change
    what runs, and leaving the family out is what lets :func:`family_for` derive it from here.
    """
    content = {k: v for k, v in payload.items() if k not in ("family", "tags")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def family_for(cfg: EcsFargateConfig, *, run_id: str, digest: str) -> str:
    """The family for a definition whose :func:`definition_hash` is ``digest``.

    ``run_id`` is deliberately not part of the name: the name depends on content only, so
    every sandbox of a run, and of later runs, that needs the same definition finds the
    same family, and a revision that is still ACTIVE can be reused instead of registering
    another (registration is the scarcest ECS call). Which run created a revision is
    recorded in its tags, not its name; a run deregisters only revisions it registered.
    """
    del cfg, run_id  # part of the contract, not of the name (see above)
    if not isinstance(digest, str) or not _HEX.fullmatch(digest):
        raise UsageError(
            f"digest {digest!r} is not a definition hash",
            remedy="Pass definition_hash(payload).",
        )
    return sanitize_family(f"ecs-sandbox-{digest[:32]}")


def run_task_request(
    cfg: EcsFargateConfig,
    *,
    task_definition: str,
    tags: list[dict[str, str]],
    environment: Mapping[str, str],
) -> dict[str, Any]:
    """The RunTask parameters that start one sandbox task.

    ECS Exec is enabled, the keep-alive command is set again as an override (so that a base
    definition used unchanged also ends by itself), and ``environment`` is passed to the
    sandbox container sorted by name.
    """
    if not task_definition:
        raise UsageError("task_definition is empty")
    for name, value in environment.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise UsageError(f"environment variable name {name!r} is not valid")
        if not isinstance(value, str):
            raise UsageError(f"environment variable {name!r} needs a string value")
    request: dict[str, Any] = {
        "cluster": cfg.cluster,
        "taskDefinition": task_definition,
        "launchType": "FARGATE",
        "platformVersion": cfg.platform_version,
        "enableExecuteCommand": True,
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(cfg.subnets),
                "securityGroups": list(cfg.security_groups),
                "assignPublicIp": "ENABLED" if cfg.assign_public_ip else "DISABLED",
            }
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": cfg.container_name,
                    "command": keepalive_command(cfg.max_task_lifetime_sec),
                    "environment": [
                        {"name": name, "value": environment[name]} for name in sorted(environment)
                    ],
                }
            ]
        },
    }
    if tags:
        request["tags"] = [dict(tag) for tag in tags]
    return request


__all__ = [
    "FAMILY_MAX",
    "TAG_PREFIX",
    "definition_hash",
    "family_for",
    "keepalive_command",
    "register_payload",
    "resource_tags",
    "run_task_request",
    "sanitize_family",
]
