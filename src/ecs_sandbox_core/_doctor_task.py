"""What a task's own description says about ECS Exec, for ``doctor --task-arn`` and for an
exec that cannot connect (so that its error names the task's own reason first)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._doctor_checks import FAIL, PASS, UNKNOWN, Check
from ._errors import ExecAgentNotConnectedError

EXEC_AGENT = "ExecuteCommandAgent"


def task_exec_check(task: Mapping[str, Any], container: str) -> Check:
    """What a task's description says about ECS Exec into ``container``.

    ``fail`` for what cannot change while the task runs (started without
    ``enableExecuteCommand``, the agent STOPPED or absent from a RUNNING task), ``unknown``
    while the task or its agent is still starting, ``pass`` when the agent is RUNNING.
    """
    arn = str(task.get("taskArn", "the task"))
    title = f"task {arn.rsplit('/', 1)[-1]} runs the ECS Exec agent"
    if task.get("enableExecuteCommand") is False:
        return Check(
            name="task-exec",
            title=title,
            status=FAIL,
            detail="the task was started without enableExecuteCommand; ECS never starts the "
            "exec agent in it",
            fix="Start a new task with enableExecuteCommand (ecs-sandbox always sets it; "
            "`aws ecs run-task --enable-execute-command`); a running task cannot be changed.",
        )
    entry = next(
        (c for c in task.get("containers") or [] if c.get("name") == container),
        None,
    )
    if entry is None:
        names = [c.get("name") for c in task.get("containers") or []]
        if not names:
            return Check(
                name="task-exec",
                title=title,
                status=UNKNOWN,
                detail="the task's description lists no containers",
            )
        return Check(
            name="task-exec",
            title=title,
            status=FAIL,
            detail=f"the task has no container {container!r} (it has {names})",
            fix="Set container_name to one of the task's containers.",
        )
    agent = next((a for a in entry.get("managedAgents") or [] if a.get("name") == EXEC_AGENT), None)
    status = str(task.get("lastStatus", ""))
    if agent is None:
        if status != "RUNNING":
            return Check(name="task-exec", title=title, status=UNKNOWN, detail=f"task {status}")
        return Check(
            name="task-exec",
            title=title,
            status=FAIL,
            detail=f"the RUNNING task's container {container!r} lists no {EXEC_AGENT} (platform "
            f"version {task.get('platformVersion', '?')})",
            fix="Run tasks on platform version 1.4.0 or later (platform_version = LATEST).",
        )
    agent_status = str(agent.get("lastStatus", "PENDING"))
    reason = f": {agent['reason']}" if agent.get("reason") else ""
    if agent_status == "RUNNING":
        return Check(
            name="task-exec",
            title=title,
            status=PASS,
            detail=f"{EXEC_AGENT} is RUNNING{reason}",
        )
    if agent_status == "STOPPED":
        return Check(
            name="task-exec",
            title=title,
            status=FAIL,
            detail=f"{EXEC_AGENT} is STOPPED{reason}",
            fix="Start a new task; if the agent stops again, check the task role's "
            "ssmmessages permissions and the subnets' route to ssmmessages "
            "(ecs-sandbox doctor).",
        )
    return Check(
        name="task-exec",
        title=title,
        status=UNKNOWN,
        detail=f"{EXEC_AGENT} is {agent_status}{reason} (task {status})",
    )


def _permanent(task: Mapping[str, Any], container: str) -> bool:
    """Whether a failed :func:`task_exec_check` cannot change while the task runs."""
    if task.get("enableExecuteCommand") is False:
        return True
    for entry in task.get("containers") or []:
        if entry.get("name") == container:
            agents = entry.get("managedAgents") or []
            return any(
                a.get("name") == EXEC_AGENT and a.get("lastStatus") == "STOPPED" for a in agents
            )
    return False


def exec_blocked_error(
    task: Mapping[str, Any],
    container: str,
    error: ExecAgentNotConnectedError | None,
) -> ExecAgentNotConnectedError | None:
    """The error an exec into ``task`` should raise, judged from the task's description.

    While an exec is still being retried (``error`` None), only what can never change
    (no ``enableExecuteCommand``, the agent STOPPED) ends it at once. Once it gave up with
    ``error``, any failed prerequisite of the description replaces the generic message,
    and an agent that reports RUNNING points at the task role and the network. None keeps
    the exec's own decision.
    """
    check = task_exec_check(task, container)
    arn = str(task.get("taskArn", "the task"))
    if check.status == FAIL and (error is not None or _permanent(task, container)):
        return ExecAgentNotConnectedError(
            f"ECS Exec cannot reach task {arn}: {check.detail}", remedy=check.fix
        )
    if error is None or check.status != PASS:
        return None
    return ExecAgentNotConnectedError(
        f"{error.message}; the task's {check.detail}, so its agent cannot reach the "
        "ssmmessages endpoint or may not use it",
        remedy=f"Run `ecs-sandbox doctor --task-arn {arn}`: it checks the task role's "
        "ssmmessages (and KMS) permissions, the subnets' route to ssmmessages (NAT, public "
        "IP or a VPC endpoint) and the security groups, and prints the fix for each.",
    )


__all__ = ["EXEC_AGENT", "exec_blocked_error", "task_exec_check"]
