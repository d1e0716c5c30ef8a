"""What the local ECS adds to moto: containers behind tasks, runtime ids, ExecuteCommand.

moto keeps the ECS bookkeeping (clusters, task definitions, task records); this emulator
starts a local container after each RunTask, kills it on StopTask, and rewrites DescribeTasks
so that a task's status follows its container: PENDING until the simulated start-up delay has
passed, RUNNING while the keep-alive command runs, STOPPED (with ECS's stop codes and the
container's exit code) afterwards. moto has no ExecuteCommand; it is answered here: the
session is registered with the local SSM gateway (whose ``ws://`` stream URL is returned) and
also recorded in a file the stand-in session-manager-plugin reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._agent_pty import AGENT_EXEC_PREFIX, agent_env
from ._agent_wire import SessionSpec
from ._containers import ContainerHost, ContainerSpec, LocalContainer, nsenter_argv
from ._gateway import SsmGateway
from ._middleware import ECS_TARGET_PREFIX, Forward, InterceptedRequest, Reply

logger = logging.getLogger(__name__)

PENDING, RUNNING, STOPPED = "PENDING", "RUNNING", "STOPPED"
_NOT_CONNECTED = "The execute command failed due to an internal error. Try again later."
_NOT_ENABLED = (
    "The execute command failed because execute command was not enabled when the task was "
    "run or the execute command agent isn't running. Wait and try the command again or run a "
    "new task with execute command enabled and try again."
)
_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]{1,128}")
CLIENT_TOKEN_TTL_S = 24 * 3600.0
"""How long ECS remembers a RunTask clientToken (per cluster)."""


@dataclass(frozen=True, slots=True)
class _TokenUse:
    """What a RunTask clientToken was first used with, and what it answered."""

    params: dict[str, Any]
    response: dict[str, Any]
    expires_at: float


def _valid_client_token(token: object) -> bool:
    return (
        isinstance(token, str)
        and 1 <= len(token) <= 64
        and all(33 <= ord(char) <= 126 for char in token)
    )


@dataclass(frozen=True, slots=True)
class ExecRefusal:
    """Why ExecuteCommand cannot reach a task's container: an ECS error code and message."""

    code: str
    message: str


class EcsEmulator:
    """Handles the ECS operations LocalAws adds to or changes in moto."""

    def __init__(
        self,
        host: ContainerHost,
        *,
        sessions_dir: Path,
        nsenter: str,
        start_delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        gateway: SsmGateway | None = None,
    ) -> None:
        self.host = host
        self.gateway = gateway
        self.sessions_dir = sessions_dir
        self.nsenter = nsenter
        self.start_delay_s = start_delay_s
        self._clock = clock
        self._task_definitions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _TokenUse] = {}
        self._token_locks: dict[tuple[str, str], threading.Lock] = {}
        # Tasks started with enableExecuteCommand (moto does not keep the flag).
        self._exec_enabled: set[str] = set()
        self._handlers: dict[str, Callable[[InterceptedRequest, Forward], Reply | None]] = {
            "RunTask": self._run_task,
            "StopTask": self._stop_task,
            "DescribeTasks": self._describe_tasks,
            "ListTasks": self._list_tasks,
            "ExecuteCommand": self._execute_command,
        }

    def handle(self, request: InterceptedRequest, forward: Forward) -> Reply | None:
        """Answer or post-process an ECS request; None lets moto answer it alone."""
        handler = self._handlers.get(request.operation)
        return handler(request, forward) if handler is not None else None

    # --- task status ------------------------------------------------------------------------

    def status(self, container: LocalContainer) -> str:
        """The task status DescribeTasks reports for ``container``'s task."""
        if container.stopped_by_user or not container.running:
            return STOPPED
        if self._clock() - container.started_at < self.start_delay_s:
            return PENDING
        return RUNNING

    def exec_target(
        self, task: str, container_name: str | None = None, cluster: str | None = None
    ) -> LocalContainer | ExecRefusal:
        """The container an exec on ``task`` reaches, or why ExecuteCommand would refuse."""
        container = self.host.get(task)
        if container is None or not _same_cluster(cluster, container.spec.cluster_arn):
            return ExecRefusal("InvalidParameterException", "The specified task was not found.")
        if container_name and container_name != container.name:
            return ExecRefusal(
                "InvalidParameterException",
                f"The container {container_name} does not exist in the task.",
            )
        if container.task_arn not in self._exec_enabled:
            return ExecRefusal("InvalidParameterException", _NOT_ENABLED)
        if self.status(container) != RUNNING:
            return ExecRefusal("TargetNotConnectedException", _NOT_CONNECTED)
        return container

    # --- handlers ---------------------------------------------------------------------------

    def _run_task(self, request: InterceptedRequest, forward: Forward) -> Reply:
        """RunTask, idempotent by ``clientToken`` as ECS is: a token repeated with the same
        parameters answers with the original result (no second task), with other
        parameters ``ConflictException``; tokens are per cluster and kept 24 hours."""
        params = request.params or {}
        started_by = params.get("startedBy")
        if started_by is not None and not (
            isinstance(started_by, str) and _STARTED_BY.fullmatch(started_by)
        ):
            return Reply.json_error(
                "InvalidParameterException",
                "startedBy: up to 128 letters, numbers, hyphens, forward slashes and "
                "underscores are allowed.",
            )
        if "clientToken" not in params:
            return self._start_tasks(request, forward)
        token = params["clientToken"]
        if not _valid_client_token(token):
            return Reply.json_error(
                "InvalidParameterException",
                "clientToken: up to 64 characters in the range 33-126 are allowed.",
            )
        key = (_cluster_name(params.get("cluster")), str(token))
        same = {name: value for name, value in params.items() if name != "clientToken"}
        with self._lock:
            token_lock = self._token_locks.setdefault(key, threading.Lock())
        with token_lock:  # one request per token at a time, as ECS serialises them
            used = self._tokens.get(key)
            if used is not None and used.expires_at <= self._clock():
                used = None
            if used is not None:
                if used.params != same:
                    return _conflict(used)
                return Reply.json(used.response)
            reply = self._start_tasks(request, forward)
            if reply.status == 200:
                self._tokens[key] = _TokenUse(
                    same, reply.json_body(), self._clock() + CLIENT_TOKEN_TTL_S
                )
            return reply

    def _start_tasks(self, request: InterceptedRequest, forward: Forward) -> Reply:
        reply = forward(request)
        if reply.status != 200:
            return reply
        data = reply.json_body()
        params = request.params or {}
        for task in data.get("tasks", []):
            definition = self._task_definition(request, forward, task["taskDefinitionArn"])
            spec = _spec_for(task, definition, params.get("overrides") or {})
            enabled = params.get("enableExecuteCommand") is True
            if enabled:  # before the container exists, so no description misses the flag
                with self._lock:
                    self._exec_enabled.add(spec.task_arn)
            task["enableExecuteCommand"] = enabled
            started = time.monotonic()
            container = self.host.start(spec)
            logger.debug(
                "task %s: container started in %.1f ms (pid %s)",
                container.task_id,
                (time.monotonic() - started) * 1000,
                container.init_pid,
            )
            # Real RunTask answers before anything has started.
            task["lastStatus"] = "PROVISIONING"
        return Reply.json(data)

    def _stop_task(self, request: InterceptedRequest, forward: Forward) -> Reply:
        params = request.params or {}
        task = str(params.get("task", ""))
        container = self.host.get(task)
        if container is not None and _same_cluster(
            params.get("cluster"), container.spec.cluster_arn
        ):
            self.host.stop(task, reason=str(params.get("reason") or ""))
        reply = forward(request)
        if reply.status == 200 and container is not None:
            data = reply.json_body()
            if isinstance(data.get("task"), dict):
                self._decorate(data["task"], container)
                return Reply.json(data)
        return reply

    def _describe_tasks(self, request: InterceptedRequest, forward: Forward) -> Reply:
        reply = forward(request)
        if reply.status != 200:
            return reply
        data = reply.json_body()
        seen: set[str] = set()
        for task in data.get("tasks", []):
            arn = task.get("taskArn", "")
            seen.update((arn, arn.rsplit("/", 1)[-1]))
            container = self.host.get(arn)
            if container is not None:
                self._decorate(task, container)
        # moto drops unknown tasks silently; ECS lists them as failures.
        failures = data.setdefault("failures", [])
        for wanted in (request.params or {}).get("tasks", []):
            if wanted not in seen:
                failures.append({"arn": wanted, "reason": "MISSING"})
        return Reply.json(data)

    def _list_tasks(self, request: InterceptedRequest, forward: Forward) -> Reply:
        """ListTasks lists desired-RUNNING tasks unless asked otherwise (moto lists every
        task), a task whose container has exited is no longer desired RUNNING, and
        ``startedBy`` must be the only filter (ECS's rule; moto combines them)."""
        params = dict(request.params or {})
        others = {"family", "serviceName", "containerInstance", "desiredStatus"} & set(params)
        if params.get("startedBy") and others:
            return Reply.json_error(
                "InvalidParameterException",
                f"startedBy must be the only filter, not combined with {sorted(others)}",
            )
        desired = params.setdefault("desiredStatus", RUNNING)
        reply = forward(replace(request, body=json.dumps(params).encode(), params=params))
        if reply.status != 200 or desired != RUNNING:
            return reply
        data = reply.json_body()
        kept = []
        for arn in data.get("taskArns", []):
            container = self.host.get(arn)
            if container is None or self.status(container) != STOPPED:
                kept.append(arn)
        data["taskArns"] = kept
        return Reply.json(data)

    def _execute_command(self, request: InterceptedRequest, forward: Forward) -> Reply:
        params = request.params or {}
        if not params.get("task") or not params.get("command"):
            return Reply.json_error("InvalidParameterException", "task and command are required")
        if params.get("interactive") is not True:
            return Reply.json_error(
                "InvalidParameterException", "Interactive is the only mode supported currently."
            )
        target = self.exec_target(
            str(params["task"]), params.get("container"), params.get("cluster")
        )
        if isinstance(target, ExecRefusal):
            return Reply.json_error(target.code, target.message)
        assert target.init_pid is not None  # RUNNING implies a pid 1
        command = str(params["command"])
        try:
            args = shlex.split(command)
        except ValueError as exc:
            return Reply.json_error("InvalidParameterException", f"command: {exc}")
        session_id = f"ecs-execute-command-{secrets.token_hex(9)}"
        token = secrets.token_urlsafe(48)
        self._record_session(session_id, target, command, args)
        stream_url = (
            f"wss://ssmmessages.{request.region}.amazonaws.com/v1/data-channel/"
            f"{session_id}?role=publish_subscribe&cell-number=local"
        )
        if self.gateway is not None:
            argv = nsenter_argv(self.nsenter, target.init_pid, [*AGENT_EXEC_PREFIX, *args])
            spec = SessionSpec(
                session_id=session_id,
                token=token,
                region=request.region,
                argv=tuple(argv),
                env=agent_env(target.env),
                task_arn=target.task_arn,
                dev_root=f"/proc/{target.init_pid}/root/dev",
            )
            self.gateway.register(spec)
            stream_url = self.gateway.stream_url(session_id)
        return Reply.json(
            {
                "clusterArn": target.spec.cluster_arn,
                "containerArn": target.spec.container_arn,
                "containerName": target.name,
                "interactive": True,
                "session": {
                    "sessionId": session_id,
                    "streamUrl": stream_url,
                    "tokenValue": token,
                },
                "taskArn": target.task_arn,
            }
        )

    # --- helpers ------------------------------------------------------------------------------

    def _record_session(
        self, session_id: str, container: LocalContainer, command: str, args: list[str]
    ) -> None:
        assert container.init_pid is not None
        record = {
            "sessionId": session_id,
            "taskArn": container.task_arn,
            "container": container.name,
            "command": command,
            "argv": nsenter_argv(self.nsenter, container.init_pid, args),
            "env": container.env,
        }
        path = self.sessions_dir / f"{session_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)  # the plugin never sees a half-written record

    def _decorate(self, task: dict[str, Any], container: LocalContainer) -> None:
        status = self.status(container)
        task["lastStatus"] = status
        # As ECS: the flag the task was started with, and the exec agent only when it is set.
        enabled = container.task_arn in self._exec_enabled
        task["enableExecuteCommand"] = enabled
        exit_code = container.exit_code()
        for entry in task.get("containers", []):
            entry["lastStatus"] = status
            entry.pop("exitCode", None)  # moto always says 0
            if entry.get("name") != container.name:
                continue
            if status != PENDING:
                entry["runtimeId"] = container.runtime_id
            if enabled:
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

    def _task_definition(
        self, request: InterceptedRequest, forward: Forward, arn: str
    ) -> dict[str, Any]:
        with self._lock:
            cached = self._task_definitions.get(arn)
        if cached is not None:
            return cached
        body = {"taskDefinition": arn}
        lookup = replace(
            request,
            headers={
                **request.headers,
                "x-amz-target": f"{ECS_TARGET_PREFIX}DescribeTaskDefinition",
            },
            body=json.dumps(body).encode(),
            operation="DescribeTaskDefinition",
            params=body,
        )
        reply = forward(lookup)
        definition: dict[str, Any] = (reply.json_body() or {}).get("taskDefinition", {})
        with self._lock:
            self._task_definitions[arn] = definition
        return definition


def _cluster_name(given: object) -> str:
    # ECS takes a cluster's name or ARN, and "default" when none is given.
    return str(given).rsplit("/", 1)[-1] if given else "default"


def _conflict(used: _TokenUse) -> Reply:
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


def _same_cluster(given: object, cluster_arn: str) -> bool:
    if not given:
        # ECS would assume the "default" cluster; the local transport names no cluster at all.
        return True
    return given in (cluster_arn, cluster_arn.rsplit("/", 1)[-1])


def _spec_for(
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


__all__ = ["CLIENT_TOKEN_TTL_S", "PENDING", "RUNNING", "STOPPED", "EcsEmulator", "ExecRefusal"]
