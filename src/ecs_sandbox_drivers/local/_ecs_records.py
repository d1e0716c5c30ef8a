"""The local ECS's records: moto's task records rewritten as ECS reports them, and the
container a task record stands for.

Theory of operation
-------------------
moto keeps a task's record but not its life: its status never moves on its own, its
containers always exit 0, and it keeps no ``enableExecuteCommand``. The emulator
(:mod:`._ecs`) therefore takes the status from the task's local container and rewrites the
record moto answers with (:func:`decorate`): every container's status, the runtime id once
the task is past PENDING, the exec agent only when exec was enabled, and for a stopped task
the stop code ECS would give (``UserInitiated``, ``TaskFailedToStart`` or
``EssentialContainerExited``) with the container's real exit code. In the other direction,
:func:`spec_for` reads the container to start from the task and its definition: the first
essential container, with the RunTask overrides applied.

RunTask's idempotency is decided on records too: a ``clientToken`` is remembered per cluster
(:func:`cluster_name`) with the parameters it came with and the answer it got
(:class:`TokenUse`); a reuse with other parameters gets :func:`conflict`. Everything here is a
pure function of its arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._containers import ContainerSpec, LocalContainer
from ._middleware import Reply

PENDING, RUNNING, STOPPED = "PENDING", "RUNNING", "STOPPED"
CLIENT_TOKEN_TTL_S = 24 * 3600.0
"""How long ECS remembers a RunTask clientToken (per cluster)."""


@dataclass(frozen=True, slots=True)
class TokenUse:
    """What a RunTask clientToken was first used with, and what it answered."""

    params: dict[str, Any]
    response: dict[str, Any]
    expires_at: float


def valid_client_token(token: object) -> bool:
    """ECS's rule for a clientToken: 1 to 64 printable ASCII characters, no spaces."""
    return (
        isinstance(token, str)
        and 1 <= len(token) <= 64
        and all(33 <= ord(char) <= 126 for char in token)
    )


def cluster_name(given: object) -> str:
    """A cluster's name from its name or ARN; ECS's "default" when none is given."""
    return str(given).rsplit("/", 1)[-1] if given else "default"


def conflict(used: TokenUse) -> Reply:
    """ECS's answer to a clientToken reused with other parameters."""
    arns = [t.get("taskArn") for t in used.response.get("tasks", []) if isinstance(t, dict)]
    body = {
        "__type": "ConflictException",
        "message": "The specified client token is already in use with different parameters.",
        "resourceIds": [arn for arn in arns if arn],
    }
    return Reply(
        400,
        json.dumps(body).encode(),
        (("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ConflictException")),
    )


def same_cluster(given: object, cluster_arn: str) -> bool:
    """Whether a request's cluster (name, ARN or none) is the task's."""
    if not given:
        # ECS would assume the "default" cluster; the local transport names no cluster at all.
        return True
    return given in (cluster_arn, cluster_arn.rsplit("/", 1)[-1])


def spec_for(
    task: Mapping[str, Any], definition: Mapping[str, Any], overrides: Mapping[str, Any]
) -> ContainerSpec:
    """The local container of a task: its first essential container definition."""
    definitions = list(definition.get("containerDefinitions", []))
    chosen = next((d for d in definitions if d.get("essential", True)), None)
    chosen = chosen or (definitions[0] if definitions else {"name": "main"})
    name = str(chosen.get("name", "main"))
    override: Mapping[str, Any] = next(
        (o for o in overrides.get("containerOverrides", []) if o.get("name") == name), {}
    )
    command = list(override.get("command") or chosen.get("command") or [])
    command = list(chosen.get("entryPoint") or []) + command
    env = {e["name"]: e["value"] for e in chosen.get("environment", [])}
    env.update({e["name"]: e["value"] for e in override.get("environment", [])})
    container_arn = next(
        (c.get("containerArn", "") for c in task.get("containers", []) if c.get("name") == name),
        "",
    )
    return ContainerSpec(
        task_arn=str(task["taskArn"]),
        name=name,
        command=tuple(str(c) for c in command),
        environment=env,
        cluster_arn=str(task.get("clusterArn", "")),
        container_arn=str(container_arn),
        image=str(chosen.get("image", "")),
    )


def decorate(
    task: dict[str, Any], container: LocalContainer, *, status: str, exec_enabled: bool
) -> None:
    """Rewrite moto's record of ``container``'s task as ECS describes it in ``status``."""
    task["lastStatus"] = status
    # As ECS: the flag the task was started with, and the exec agent only when it is set.
    task["enableExecuteCommand"] = exec_enabled
    exit_code = container.exit_code()
    for entry in task.get("containers", []):
        entry["lastStatus"] = status
        entry.pop("exitCode", None)  # moto always says 0
        if entry.get("name") != container.name:
            continue
        if status != PENDING:
            entry["runtimeId"] = container.runtime_id
        if exec_enabled:
            entry["managedAgents"] = [{"name": "ExecuteCommandAgent", "lastStatus": status}]
        if status == STOPPED and exit_code is not None:
            entry["exitCode"] = exit_code
    if status != STOPPED:
        return
    task["desiredStatus"] = STOPPED
    if container.stopped_by_user:
        task["stopCode"] = "UserInitiated"
        task["stoppedReason"] = container.stop_reason
    elif container.launch_error:
        task["stopCode"] = "TaskFailedToStart"
        task["stoppedReason"] = container.launch_error
    else:
        task["stopCode"] = "EssentialContainerExited"
        task["stoppedReason"] = "Essential container in task exited"


__all__ = [
    "CLIENT_TOKEN_TTL_S",
    "PENDING",
    "RUNNING",
    "STOPPED",
    "TokenUse",
    "cluster_name",
    "conflict",
    "decorate",
    "same_cluster",
    "spec_for",
    "valid_client_token",
]
