"""What the local ECS adds to moto: containers behind tasks, runtime ids, ExecuteCommand.

Theory of operation
-------------------
moto keeps the ECS bookkeeping (clusters, task definitions, task records); this emulator
starts a local container after each RunTask, kills it on StopTask, and rewrites DescribeTasks
so that a task's status follows its container: PENDING until the simulated start-up delay has
passed, RUNNING while the keep-alive command runs, STOPPED (with ECS's stop codes and the
container's exit code) afterwards. How a record is rewritten, and which container a task
stands for, is :mod:`._ecs_records`'s; this module holds the state (the clock, the tokens, the
exec flags, the cached task definitions) and the order of the calls to moto. RunTask is
idempotent by ``clientToken``, as on ECS. moto has no ExecuteCommand; :mod:`._ecs_exec`
answers it (a mixin of :class:`EcsEmulator`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._containers import ContainerHost, LocalContainer
from ._ecs_exec import EcsExec, ExecRefusal
from ._ecs_records import (
    CLIENT_TOKEN_TTL_S,
    PENDING,
    RUNNING,
    STOPPED,
    TokenUse,
    cluster_name,
    conflict,
    decorate,
    same_cluster,
    spec_for,
    valid_client_token,
)
from ._gateway import SsmGateway
from ._middleware import ECS_TARGET_PREFIX, Forward, InterceptedRequest, Reply

logger = logging.getLogger(__name__)

_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]{1,128}")


class EcsEmulator(EcsExec):
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
        self._tokens: dict[tuple[str, str], TokenUse] = {}
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
        if not valid_client_token(token):
            return Reply.json_error(
                "InvalidParameterException",
                "clientToken: up to 64 characters in the range 33-126 are allowed.",
            )
        key = (cluster_name(params.get("cluster")), str(token))
        same = {name: value for name, value in params.items() if name != "clientToken"}
        with self._lock:
            token_lock = self._token_locks.setdefault(key, threading.Lock())
        with token_lock:  # one request per token at a time, as ECS serialises them
            used = self._tokens.get(key)
            if used is not None and used.expires_at <= self._clock():
                used = None
            if used is not None:
                if used.params != same:
                    return conflict(used)
                return Reply.json(used.response)
            reply = self._start_tasks(request, forward)
            if reply.status == 200:
                self._tokens[key] = TokenUse(
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
            spec = spec_for(task, definition, params.get("overrides") or {})
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
        if container is not None and same_cluster(
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

    # --- helpers ------------------------------------------------------------------------------

    def _decorate(self, task: dict[str, Any], container: LocalContainer) -> None:
        enabled = container.task_arn in self._exec_enabled
        decorate(task, container, status=self.status(container), exec_enabled=enabled)

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


__all__ = ["CLIENT_TOKEN_TTL_S", "PENDING", "RUNNING", "STOPPED", "EcsEmulator", "ExecRefusal"]
