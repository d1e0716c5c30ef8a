"""RunTask that starts exactly one task per sandbox, whatever the network does.

Theory of operation
-------------------
A RunTask that fails with a server error (5xx) or whose response is lost (read timeout,
connection closed) may have started a task all the same. Retrying it blindly can start a
second task, and giving up leaves the first running with nothing tracking it. Two ECS
features close both holes:

* ``clientToken`` makes RunTask idempotent: a repeat of a request with the same token and
  the same parameters returns the task the first one started instead of starting another
  (ECS keeps tokens for hours, per cluster; a token reused with *other* parameters is a
  ``ConflictException``). botocore would draw a fresh token for every call, which defeats
  it, so the flow draws its own: one per sandbox (a ``Token`` effect), sent with every retry.
* ``startedBy`` labels the task with the same per-sandbox id (``ecs-sandbox-<32 hex>``), and
  ``ListTasks(startedBy=...)`` finds it again: after every ambiguous failure the flow looks,
  and a task found is the sandbox's task. At the end of the retries, a last look either
  finds the task (the sandbox starts with it) or the flow gives up and says at ERROR that a
  task may still appear, and which ``ecs-sandbox gc`` command reaps it (the task carries
  the run's tags like any other).

A response that definitely started nothing (a ``failures[]`` entry such as no Fargate
capacity) moves to the next token, ``<id>-<generation>``: ECS answers a repeated token with
the original result, so reusing it could replay the capacity failure instead of trying
again. Refusals that are not ambiguous (throttling, access denied) keep the token, which is
right either way since nothing was started.

The flow tells its :class:`Tracker` the task's ARN the moment it is known, before it yields
again, so that a spin-up interrupted right then still stops the task; and, while a RunTask
is unanswered or ambiguously answered, that a task started by the sandbox id may exist, so
that a spin-up interrupted *during* RunTask (Ctrl-C, cancellation: the answer never reaches
the flow) looks it up by ``startedBy`` and stops it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol

from ._budget import api_group
from ._config import EcsFargateConfig
from ._effects import AwsCall, AwsResult, Effect, Log, Random, Sleep, Token
from ._errors import RunTaskError
from ._retry import GiveUp, Ok, Retry, classify_aws_error, classify_run_task, is_ambiguous

SANDBOX_ID_PREFIX = "ecs-sandbox-"
"""Every sandbox's ``startedBy`` (and client-token stem) is this and 32 hex digits."""


class Tracker(Protocol):
    """Where the flow records what it may have started (the spin-up's progress record)."""

    def task_started(self, task_arn: str) -> None:
        """The sandbox's task is ``task_arn``."""

    def may_have_started(self, sandbox_id: str | None) -> None:
        """A task started by ``sandbox_id`` may exist unseen (None: no longer)."""


def client_token(sandbox_id: str, generation: int) -> str:
    """The RunTask ``clientToken`` of ``sandbox_id``'s ``generation``-th distinct request
    (at most 64 characters of ASCII 33-126, as ECS requires)."""
    token = f"{sandbox_id}-{generation}"
    if len(token) > 64 or not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError(f"not a valid clientToken: {token!r}")
    return token


def _log(level: int, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase="run-task")


def _ecs(operation: str, params: Mapping[str, Any]) -> AwsCall:
    return AwsCall(
        service="ecs", operation=operation, params=params, api_group=api_group(operation)
    )


def find_started(
    cfg: EcsFargateConfig, sandbox_id: str
) -> Generator[Effect, Any, str | AwsResult | None]:
    """The task ``sandbox_id`` started (``ListTasks`` by ``startedBy``), None when there is
    none, or the failed result when the listing itself failed (then nobody knows)."""
    listed: AwsResult = yield _ecs("list_tasks", {"cluster": cfg.cluster, "startedBy": sandbox_id})
    if listed.error is not None:
        yield _log(
            logging.WARNING,
            "could not look for the task of %s (%s: %s)",
            sandbox_id,
            listed.error.code,
            listed.error.message,
        )
        return listed
    arns = [arn for arn in listed.data.get("taskArns") or () if isinstance(arn, str) and arn]
    return arns[0] if arns else None


def run_task_flow(
    cfg: EcsFargateConfig,
    request: Mapping[str, Any],
    *,
    task_id: str,
    run_id: str,
    tracker: Tracker,
    gc_hint: str,
) -> Generator[Effect, Any, str]:
    """Start the sandbox's task with ``request`` (RunTask parameters); returns its ARN.

    See the module docstring. ``tracker`` hears of the task as soon as it is known, and of
    a task that may exist unseen; ``gc_hint`` is the command that reaps the run's
    leftovers, for the give-up message.
    """
    sandbox_id = SANDBOX_ID_PREFIX + (yield Token(nbytes=16))
    record = tracker.task_started
    yield _log(logging.INFO, "starting a task for %s (%s)", task_id, sandbox_id)
    attempts = cfg.run_task_max_retries
    generation = 0
    ambiguous = False
    attempt = 0
    while True:
        attempt += 1
        params = {
            **request,
            "clientToken": client_token(sandbox_id, generation),
            "startedBy": sandbox_id,
        }
        tracker.may_have_started(sandbox_id)  # until the answer says otherwise
        result: AwsResult = yield _ecs("run_task", params)
        if not ambiguous and (result.error is None or not is_ambiguous(result.error)):
            tracker.may_have_started(None)  # answered: any task it started is in the answer
        # A clean response needs no jitter; anything else may be retried after a delay.
        rand: float = 0.0
        if result.error is not None or result.data.get("failures"):
            rand = yield Random()
        decision: Ok | Retry | GiveUp
        if result.error is not None:
            decision = classify_aws_error(
                "run_task", result.error, attempt=attempt, max_attempts=attempts, rand=rand
            )
            if is_ambiguous(result.error):
                ambiguous = True
                found = yield from find_started(cfg, sandbox_id)
                if isinstance(found, str):
                    return (yield from _adopt(found, record, result.error.code, task_id))
        else:
            decision = classify_run_task(
                result.data, attempt=attempt, max_attempts=attempts, rand=rand
            )
            if isinstance(decision, Retry):
                generation += 1  # nothing started: a fresh token (see the module docstring)
        if isinstance(decision, Ok):
            return (yield from _started(decision.value, record))
        if isinstance(decision, GiveUp):
            if ambiguous:
                # A last look: the task an earlier attempt started may be visible by now.
                found = yield from find_started(cfg, sandbox_id)
                if isinstance(found, str):
                    return (yield from _adopt(found, record, "gave up", task_id))
                yield _log(
                    logging.ERROR,
                    "RunTask for %s gave up after a failure that may have started a task, "
                    "and %s; if one appears it carries the ecs-sandbox tags of run %s and "
                    "startedBy %s: reap it with `%s`",
                    task_id,
                    "none was found" if found is None else "looking for it failed",
                    run_id,
                    sandbox_id,
                    gc_hint,
                )
            raise decision.error
        yield _log(
            logging.WARNING,
            "RunTask for %s: %s; attempt %d/%d, retrying in %.1fs",
            task_id,
            decision.reason,
            attempt,
            attempts,
            decision.delay_s,
        )
        yield Sleep(seconds=decision.delay_s)


def _started(task: object, record: Callable[[str], None]) -> Generator[Effect, Any, str]:
    task_arn = task.get("taskArn") if isinstance(task, Mapping) else None
    if not isinstance(task_arn, str) or not task_arn:
        raise RunTaskError("RunTask returned a task without a taskArn", operation="run_task")
    record(task_arn)
    yield _log(logging.INFO, "started task %s", task_arn)
    return task_arn


def _adopt(
    task_arn: str, record: Callable[[str], None], why: str, task_id: str
) -> Generator[Effect, Any, str]:
    """The task an ambiguous RunTask started is the sandbox's task."""
    record(task_arn)
    yield _log(
        logging.WARNING,
        "RunTask for %s failed (%s) but its task %s was found: using it",
        task_id,
        why,
        task_arn,
    )
    return task_arn


__all__ = ["SANDBOX_ID_PREFIX", "Tracker", "client_token", "find_started", "run_task_flow"]
