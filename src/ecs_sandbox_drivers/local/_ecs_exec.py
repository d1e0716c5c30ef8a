"""ExecuteCommand on the local ECS: which container an exec reaches, and its session.

Theory of operation
-------------------
moto has no ExecuteCommand, so the emulator answers it. The target is checked with ECS's
error codes and messages (:meth:`EcsExec.exec_target`): the task must exist in the named
cluster, the container (if named) must be the task's, the task must have been started with
``enableExecuteCommand``, and it must be RUNNING, since before that its agent is not
connected. An accepted exec becomes a session: its id and a single-use token are drawn here,
the command is wrapped to enter the container's namespaces (``nsenter``) with the agent's
PTY as its controlling terminal, and the session is registered with the local SSM gateway
(whose ``ws://`` stream URL is returned where AWS returns its ``wss://`` one) and also
recorded in a file the stand-in session-manager-plugin reads, written whole by a rename.

This is a mixin of :class:`._ecs.EcsEmulator`, which owns the state declared here.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._agent_pty import AGENT_EXEC_PREFIX, agent_env
from ._agent_wire import SessionSpec
from ._containers import ContainerHost, LocalContainer, nsenter_argv
from ._ecs_records import RUNNING, same_cluster
from ._gateway import SsmGateway
from ._middleware import Forward, InterceptedRequest, Reply

_NOT_CONNECTED = "The execute command failed due to an internal error. Try again later."
_NOT_ENABLED = (
    "The execute command failed because execute command was not enabled when the task was "
    "run or the execute command agent isn't running. Wait and try the command again or run a "
    "new task with execute command enabled and try again."
)


@dataclass(frozen=True, slots=True)
class ExecRefusal:
    """Why ExecuteCommand cannot reach a task's container: an ECS error code and message."""

    code: str
    message: str


class EcsExec:
    """ExecuteCommand's checks and sessions, on the ECS emulator."""

    host: ContainerHost
    gateway: SsmGateway | None
    sessions_dir: Path
    nsenter: str
    _exec_enabled: set[str]
    status: Callable[[LocalContainer], str]

    def exec_target(
        self, task: str, container_name: str | None = None, cluster: str | None = None
    ) -> LocalContainer | ExecRefusal:
        """The container an exec on ``task`` reaches, or why ExecuteCommand would refuse."""
        container = self.host.get(task)
        if container is None or not same_cluster(cluster, container.spec.cluster_arn):
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


__all__ = ["EcsExec", "ExecRefusal"]
