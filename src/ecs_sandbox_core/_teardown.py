"""Tear-down of one sandbox task, and what a tear-down that gives up leaves behind.

:func:`teardown_flow` stops the task with tear-down priority (it may spend the ECS tokens
reserved for it, see ``_budget``), tolerates a task that is already gone, and then gives
back the task definition. The handle remembers which steps are done, so running tear-down
again does only what is left: nothing, after a complete tear-down. Whatever a tear-down
cannot release (its steps failed, or a driver gave up on it: a deadline, a second Ctrl-C)
is named in an ERROR record with the ``ecs-sandbox gc`` command that reaps it.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ._budget import TEARDOWN_PRIORITY
from ._calls import _call, _ecs, _log
from ._effects import AwsError, Effect, Flow, Log
from ._errors import UsageError
from ._registry import TaskDefinitionRegistry

TEARDOWN_MAX_ATTEMPTS = 8
"""Attempts per tear-down call before giving up on throttling or server errors."""

_REASON_MAX = 255


@dataclass(slots=True)
class _TeardownState:
    stopped: bool = False
    released: bool = False
    to_deregister: str | None = None


@dataclass(frozen=True, slots=True)
class TaskHandle:
    """A running sandbox task and what its tear-down must give back.

    ``task_definition_arn`` is the definition this sandbox registered or shares, which
    tear-down gives back; it is None when the sandbox runs ``cfg.task_definition`` as it is.
    ``digest`` is that definition's content hash when it is shared through a registry.
    ``started_at`` is the ``Now`` reading when the task was seen RUNNING. ``image`` is the
    image its container runs (as DescribeTasks reported it), None when that is unknown.
    """

    task_arn: str
    cluster: str
    task_definition_arn: str | None
    digest: str | None
    task_id: str
    run_id: str
    started_at: float
    image: str | None = None
    # Which tear-down steps are done; mutable on purpose inside the frozen handle, so that
    # tear-down is idempotent without the caller keeping a flag.
    _teardown: _TeardownState = field(
        default_factory=_TeardownState, init=False, repr=False, compare=False
    )


def _stop_task(cluster: str, task_arn: str, reason: str) -> Flow:
    params = {"cluster": cluster, "task": task_arn, "reason": reason[:_REASON_MAX]}
    yield from _call(
        _ecs("stop_task", params, priority=TEARDOWN_PRIORITY),
        phase="teardown",
        max_attempts=TEARDOWN_MAX_ATTEMPTS,
        tolerate=_task_gone,
    )
    yield _log(logging.INFO, "teardown", "stopped task %s", task_arn)


def _task_gone(error: AwsError) -> bool:
    # StopTask of an unknown task (or cluster): there is nothing left to stop.
    return error.code in ("InvalidParameterException", "ClusterNotFoundException")


def _deregister(arn: str) -> Flow:
    yield from _call(
        _ecs("deregister_task_definition", {"taskDefinition": arn}, priority=TEARDOWN_PRIORITY),
        phase="teardown",
        max_attempts=TEARDOWN_MAX_ATTEMPTS,
        tolerate=_definition_gone,
    )
    yield _log(logging.INFO, "teardown", "deregistered task definition %s", arn)


def _definition_gone(error: AwsError) -> bool:
    message = error.message.lower()
    return error.code in ("InvalidParameterException", "ClientException") and any(
        word in message for word in ("does not exist", "not found", "inactive")
    )


def _step(flow: Flow) -> Generator[Effect, Any, Exception | None]:
    """Run one tear-down step; an ``Exception`` it raises is logged and returned."""
    try:
        yield from flow
    except Exception as exc:
        yield _log(logging.ERROR, "teardown", "tear-down step failed: %s", exc)
        return exc
    return None


def teardown_flow(
    handle: TaskHandle,
    *,
    registry: TaskDefinitionRegistry | None,
    reason: str = "ecs-sandbox done",
) -> Generator[Effect, Any, None]:
    """Stop the task and give back its task definition; a second call does nothing.

    Both steps are tried even when one fails; then the first failure is raised, since a
    task that could not be stopped keeps running (and billing) until its keep-alive
    command ends. A step that failed is tried again by the next call.
    """
    if handle.digest is not None and registry is None:
        raise UsageError(
            f"task {handle.task_arn} shares task definition {handle.task_definition_arn}",
            remedy="Pass the registry the sandbox was started with, so that the definition "
            "is deregistered only when its last user is done.",
        )
    state = handle._teardown
    failures: list[Exception] = []
    # The registry's bookkeeping comes first, before anything can hang: a tear-down cut
    # short must not keep the shared definition's count up, or it would never go.
    if not state.released:
        state.released = True
        if handle.digest is not None and registry is not None:
            state.to_deregister = registry.release(handle.digest)
        else:
            state.to_deregister = handle.task_definition_arn
    if not state.stopped:
        yield _log(logging.INFO, "teardown", "stopping task %s", handle.task_arn)
        error = yield from _step(_stop_task(handle.cluster, handle.task_arn, reason))
        if error is None:
            state.stopped = True
        else:
            failures.append(error)
    if state.to_deregister is not None:
        error = yield from _step(_deregister(state.to_deregister))
        if error is None:
            state.to_deregister = None
        else:
            failures.append(error)
    if failures:
        yield left_behind_log(
            f"tear-down of sandbox {handle.task_id} failed",
            teardown_leftovers(handle),
            run_id=handle.run_id,
        )
        raise failures[0]


def close_flow(registry: TaskDefinitionRegistry) -> Generator[Effect, Any, list[str]]:
    """A driver's shut-down: close ``registry`` and deregister what it still held.

    A definition still held means a sandbox that was not torn down (its task, if any, keeps
    running on the deregistered revision, which ECS allows; its own tear-down later does
    not deregister again). Returns the ARNs; failures are logged, never raised.
    """
    arns = registry.close()
    if arns:
        yield _log(
            logging.WARNING,
            "teardown",
            "closing the driver with %d task definition(s) still in use (sandboxes not torn "
            "down?); deregistering %s",
            len(arns),
            ", ".join(arns),
        )
    for arn in arns:
        yield from _step(_deregister(arn))
    return arns


def gc_command(run_id: str) -> str:
    """The command that reaps what the sandboxes of ``run_id`` left behind."""
    return f"ecs-sandbox gc --run-id {shlex.quote(run_id)}"


def left_behind_log(why: str, leftovers: list[str], *, run_id: str) -> Log:
    """The ERROR record for resources a tear-down gave up on, with the command to reap them."""
    return _log(
        logging.ERROR,
        "teardown",
        "%s; left behind: %s. They carry the ecs-sandbox tags of run %s: reap them with "
        "`%s` (with the same configuration).",
        why,
        "; ".join(leftovers),
        run_id,
        gc_command(run_id),
    )


def _leftovers(task_arn: str | None, definition_arn: str | None) -> list[str]:
    left = []
    if task_arn is not None:
        left.append(f"task {task_arn} (running until its keep-alive ends)")
    if definition_arn is not None:
        left.append(f"task definition {definition_arn}")
    return left


def teardown_leftovers(handle: TaskHandle) -> list[str]:
    """What tear-down has not released yet for ``handle`` (empty once it is complete)."""
    state = handle._teardown
    definition = state.to_deregister if state.released else handle.task_definition_arn
    if not state.released and handle.digest is not None:
        definition = None  # still shared: the registry decides when it goes
    return _leftovers(None if state.stopped else handle.task_arn, definition)


def abandoned_teardown_log(handle: TaskHandle, why: str) -> Log | None:
    """For a driver that gave up on a tear-down (its deadline passed): the ERROR record
    naming what is left and the ``ecs-sandbox gc`` command, or None when nothing is."""
    leftovers = teardown_leftovers(handle)
    if not leftovers:
        return None
    return left_behind_log(why, leftovers, run_id=handle.run_id)


__all__ = [
    "TEARDOWN_MAX_ATTEMPTS",
    "TaskHandle",
    "abandoned_teardown_log",
    "close_flow",
    "gc_command",
    "left_behind_log",
    "teardown_flow",
    "teardown_leftovers",
]
