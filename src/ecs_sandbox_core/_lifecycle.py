"""Spin-up and tear-down of one sandbox task, as effect generators.

Theory of operation
-------------------
Spin-up (:func:`start_flow`) creates up to two AWS resources, in this order:

1. a task definition, only when ``cfg.registers_task_definitions``. Its content (base
   definition + image + keep-alive command) is hashed; sandboxes of one driver that need the
   same content share one registration through :class:`TaskDefinitionRegistry` (the first
   registers, the others wait for it, then use it). Registration is retried on throttling.
2. a task, by RunTask, retried while Fargate reports no capacity. The flow then polls the
   task (:class:`DescribeTask`) until it is RUNNING, stops on its own, disappears, or the
   deadline passes. Drivers answer DescribeTask at their poll tick, with one DescribeTasks
   for every sandbox waiting then, so the flow asks again at once: it sees RUNNING within a
   tick of ECS reporting it, and a short tick costs one call per tick, not one per sandbox.

Once the task is RUNNING, an ``after_running`` flow may still run as part of the spin-up
(drivers pass the image probe of ``_doctor_image``): what it raises, or what is thrown into
it, tears the task down like any other failure of the spin-up.

The flow records each resource in a small progress record the moment the response that
created it arrives, before it yields again. Whatever then goes wrong (an AWS error, the
deadline, a bug, or an exception the driver throws in: a handler's failure, cancellation,
``KeyboardInterrupt``), the flow yields the tear-down of exactly what it recorded (StopTask;
giving back the task definition, which deregisters it when nobody else uses it) and then
re-raises the original exception. Tear-down failures are logged and never replace it.

Drivers cancel a flow by *throwing* the cancellation into it and driving it to its end;
``generator.close()`` cannot run clean-up (Python forbids yielding after ``GeneratorExit``
raised by ``close``), so closing a spin-up that already created something raises
``RuntimeError`` rather than leaking silently. What no flow can clean up is a resource whose
creating call was interrupted before its response arrived; such resources carry the
``ecs-sandbox:*`` tags (run, task, owner, creation time) and a task ends by itself after
``cfg.max_task_lifetime_sec`` because its keep-alive command is a bounded ``sleep``.

Tear-down (:func:`teardown_flow`, in ``_teardown``) stops the task and gives back the
task definition, doing only what is left when run again. RunTask itself, idempotent across
ambiguous failures, is ``_run_task``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from ._calls import _log
from ._config import EcsFargateConfig
from ._definitions import (
    DESCRIBE_MAX_ATTEMPTS,
    REGISTER_MAX_ATTEMPTS,
    REGISTRY_POLL_S,
    _obtain_definition,
)
from ._effects import AwsCall, AwsError, AwsResult, DescribeTask, Effect, Flow, Now, Random, Sleep
from ._errors import AwsCredentialsError, PhaseTimeoutError, TaskStoppedError
from ._registry import TaskDefinitionRegistry
from ._retry import GiveUp, classify_aws_error
from ._run_task import find_started, run_task_flow
from ._taskdef import resource_tags, run_task_request
from ._teardown import (
    TEARDOWN_MAX_ATTEMPTS,
    TaskHandle,
    _deregister,
    _leftovers,
    _step,
    _stop_task,
    abandoned_teardown_log,
    close_flow,
    gc_command,
    left_behind_log,
    teardown_flow,
    teardown_leftovers,
)

_STOPPING = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"})


@dataclass(slots=True)
class _Progress:
    """What spin-up has created so far: what its failure path must undo."""

    registering: str | None = None  # digest whose registration this flow owns
    digest: str | None = None  # digest this flow holds a registry reference to
    own_definition: str | None = None  # ARN registered without a registry
    task_arn: str | None = None
    unseen: str | None = None  # the startedBy of a task that may exist unseen

    def task_started(self, task_arn: str) -> None:
        self.task_arn, self.unseen = task_arn, None

    def may_have_started(self, sandbox_id: str | None) -> None:
        self.unseen = sandbox_id


# --- preflight ----------------------------------------------------------------------------


def preflight_flow(cfg: EcsFargateConfig) -> Generator[Effect, Any, str]:
    """Check that AWS credentials work (STS GetCallerIdentity); returns the account id.

    Any failure, returned or thrown in by the driver (no credentials at all), becomes
    :class:`AwsCredentialsError` with its remedy.
    """
    try:
        result: AwsResult = yield AwsCall(service="sts", operation="get_caller_identity")
    except Exception as exc:
        raise AwsCredentialsError(
            f"AWS credential check (sts:GetCallerIdentity) failed in region "
            f"{cfg.region or '(default)'}: {type(exc).__name__}: {exc}"
        ) from exc
    if result.error is not None:
        raise AwsCredentialsError(
            f"AWS credential check (sts:GetCallerIdentity) failed in region "
            f"{cfg.region or '(default)'}: {result.error.code}: {result.error.message}"
        )
    account = str(result.data.get("Account") or "unknown")
    yield _log(logging.INFO, "preflight", "AWS credentials work (account %s)", account)
    return account


# --- task ---------------------------------------------------------------------------------


def _stopped_error(
    cfg: EcsFargateConfig, task_arn: str, task: Mapping[str, Any]
) -> TaskStoppedError:
    return stopped_task_error(
        task_arn, task, container_name=cfg.container_name, when="before it was RUNNING"
    )


def stopped_task_error(
    task_arn: str,
    task: Mapping[str, Any],
    *,
    container_name: str,
    when: str,
    remedy: str | None = None,
) -> TaskStoppedError:
    """The error for a task found stopped (``task`` is its DescribeTasks entry): its stop
    code, stopped reason and the container's exit code, and ``remedy`` (by default, what a
    task that stopped during start-up means)."""
    containers = [c for c in task.get("containers") or () if isinstance(c, Mapping)]
    ours = next((c for c in containers if c.get("name") == container_name), None)
    container = ours or (containers[0] if containers else {})
    exit_code = container.get("exitCode")
    stop_code = str(task.get("stopCode") or "")
    reason = str(task.get("stoppedReason") or "")
    details = [f"stopCode={stop_code or '?'}", f"stoppedReason={reason or '?'}"]
    if container.get("reason"):
        details.append(f"container reason={container['reason']}")
    if exit_code is not None:
        details.append(f"exit code={exit_code}")
    error = TaskStoppedError(
        f"task {task_arn} stopped {when} ({task.get('lastStatus')}): " + ", ".join(details),
        task_arn=task_arn,
        stop_code=stop_code,
        stopped_reason=reason,
        exit_code=exit_code if isinstance(exit_code, int) else None,
    )
    error.remedy = remedy or (
        "Read the reasons above: CannotPullContainerError means the image (image_template) "
        "or the execution role's registry access is wrong; an essential container that exited "
        "means the image cannot run the keep-alive command (sh and sleep); a capacity or "
        "spot stop can be retried."
    )
    return error


def _wait_running(
    cfg: EcsFargateConfig, task_arn: str
) -> Generator[Effect, Any, tuple[float, Mapping[str, Any]]]:
    """Poll until the task is RUNNING; the ``Now`` reading then, and its description."""
    yield _log(logging.INFO, "wait-running", "waiting for task %s to be RUNNING", task_arn)
    timeout = cfg.running_timeout_sec
    deadline = float((yield Now())) + timeout
    errors = 0
    while True:
        # No sleep between polls: the driver paces DescribeTask to its poll tick (see the
        # module docstring); only errors back off.
        result: AwsResult = yield DescribeTask(cluster=cfg.cluster, task_arn=task_arn)
        delay = 0.0
        if result.error is None:
            errors = 0
            status = result.data.get("lastStatus")
            if status == "RUNNING":
                now: float = yield Now()
                yield _log(logging.INFO, "wait-running", "task %s is RUNNING", task_arn)
                return now, result.data
            if status in _STOPPING or result.data.get("desiredStatus") == "STOPPED":
                raise _stopped_error(cfg, task_arn, result.data)
        elif result.error.code == "MISSING":
            raise TaskStoppedError(
                f"task {task_arn} disappeared while waiting for it to be RUNNING",
                task_arn=task_arn,
            )
        else:
            errors += 1
            delay = yield from _poll_error_delay(result.error, errors)
        now = yield Now()
        if now >= deadline:
            raise PhaseTimeoutError(
                f"task {task_arn} was not RUNNING after {timeout:g}s "
                f"(last status {result.data.get('lastStatus') or 'unknown'})",
                phase="wait-running",
                timeout_s=timeout,
            )
        if delay > 0:
            yield Sleep(seconds=min(delay, deadline - now))


def _poll_error_delay(error: AwsError, errors: int) -> Generator[Effect, Any, float]:
    rand: float = yield Random()
    decision = classify_aws_error(
        "describe_tasks", error, attempt=errors, max_attempts=DESCRIBE_MAX_ATTEMPTS, rand=rand
    )
    if isinstance(decision, GiveUp):
        raise decision.error
    yield _log(
        logging.WARNING,
        "wait-running",
        "DescribeTasks failed (%s); retrying in %.1fs",
        error.code,
        decision.delay_s,
    )
    return decision.delay_s


# --- spin-up ------------------------------------------------------------------------------


def start_flow(
    cfg: EcsFargateConfig,
    *,
    task_id: str,
    trial_name: str,
    run_id: str,
    owner: str,
    registry: TaskDefinitionRegistry | None,
    environment: Mapping[str, str] | None = None,
    created_at: float | None = None,
    after_running: Callable[[TaskHandle], Flow] | None = None,
) -> Generator[Effect, Any, TaskHandle]:
    """Start one sandbox task and wait until it is RUNNING; returns its :class:`TaskHandle`.

    With ``cfg.registers_task_definitions`` a task definition running
    ``cfg.image_for(task_id)`` is registered, shared through ``registry`` when one is given
    (one registry per driver). On any failure, including an exception thrown in by the
    driver, the flow first tears down what it created, then re-raises (see the module
    docstring). ``environment`` values reach the container and are never logged.

    ``created_at`` (epoch seconds) goes into the ``ecs-sandbox:created-at`` tag that orphan
    sweeps read. ``Now`` is a monotonic clock, so a driver should pass its wall clock here;
    without it the ``Now`` reading is used.

    ``after_running`` runs with the handle once the task is RUNNING, still inside the
    spin-up: a failure there tears the task down.
    """
    progress = _Progress()
    try:
        if created_at is None:
            created_at = yield Now()
        tags = resource_tags(
            run_id=run_id, task_id=task_id, owner=owner, created_at=int(created_at), extra=cfg.tags
        )
        yield _log(logging.INFO, "start", "starting sandbox %s (trial %s)", task_id, trial_name)
        held: str | None = None
        if cfg.registers_task_definitions:
            held = yield from _obtain_definition(
                cfg, task_id=task_id, run_id=run_id, tags=tags, registry=registry, progress=progress
            )
        request = run_task_request(
            cfg,
            task_definition=held or cfg.task_definition,
            tags=tags,
            environment=dict(environment or {}),
        )
        task_arn = yield from run_task_flow(
            cfg,
            request,
            task_id=task_id,
            run_id=run_id,
            tracker=progress,
            gc_hint=gc_command(run_id),
        )
        started_at, running = yield from _wait_running(cfg, task_arn)
        handle = TaskHandle(
            task_arn=task_arn,
            cluster=cfg.cluster,
            task_definition_arn=held,
            digest=progress.digest,
            task_id=task_id,
            run_id=run_id,
            started_at=started_at,
            image=_running_image(running, cfg.container_name)
            or (cfg.image_for(task_id) if held else None),
        )
        if after_running is not None:
            yield from after_running(handle)
    except BaseException as exc:
        yield from _undo(cfg, registry, progress, exc, run_id=run_id)
        raise
    return handle


def _running_image(task: Mapping[str, Any], container_name: str) -> str | None:
    """The image the task's container runs, from its DescribeTasks entry (None if unsaid)."""
    for container in task.get("containers") or ():
        if isinstance(container, Mapping) and container.get("name") == container_name:
            image = container.get("image")
            return image if isinstance(image, str) and image else None
    return None


def _undo(
    cfg: EcsFargateConfig,
    registry: TaskDefinitionRegistry | None,
    progress: _Progress,
    exc: BaseException,
    *,
    run_id: str,
) -> Flow:
    """Tear down what a failed spin-up created; never raises what the clean-up hits.

    Whatever it could not release is logged at ERROR with the ``ecs-sandbox gc`` command
    that reaps it.
    """
    if registry is not None and progress.registering is not None:
        registry.failed(progress.registering)  # bookkeeping only: lets a waiter register
    to_deregister = progress.own_definition
    if registry is not None and progress.digest is not None:
        to_deregister = registry.release(progress.digest)
    task_arn = progress.task_arn
    unseen = progress.unseen  # a RunTask whose answer never came, or was ambiguous
    if task_arn is None and to_deregister is None and unseen is None:
        return
    errors: list[Exception] = []
    why = "the clean-up of a failed spin-up could not finish"
    try:
        yield _log(
            logging.WARNING,
            "teardown",
            "spin-up failed (%s); cleaning up what it created",
            type(exc).__name__,
        )
        if task_arn is None and unseen is not None:
            found = yield from find_started(cfg, unseen)
            if isinstance(found, str):
                task_arn, unseen = found, None
            elif found is None:
                unseen = None  # looked, and there is none
            # else the listing failed: the task may exist, and is said to below
        if task_arn is not None:
            error = yield from _step(
                _stop_task(cfg.cluster, task_arn, "ecs-sandbox spin-up failed")
            )
            if error is None:
                task_arn = None
            else:
                errors.append(error)
        if to_deregister is not None:
            error = yield from _step(_deregister(to_deregister))
            if error is None:
                to_deregister = None
            else:
                errors.append(error)
        if errors:  # the driver's clean-up deadline (TimeoutError) ends up here too
            why = f"{why} ({type(errors[0]).__name__}: {errors[0]})"
    except GeneratorExit:
        return  # close(): nothing may be yielded any more
    except BaseException as interruption:
        # A second interruption (another Ctrl-C) ends the clean-up: the driver wants out
        # now, and the original exception is what the caller must see. What is left is
        # said, once, below.
        why = f"the clean-up of a failed spin-up was interrupted ({type(interruption).__name__})"
    leftovers = _leftovers(task_arn, to_deregister)
    if unseen is not None and task_arn is None:
        leftovers.insert(0, f"perhaps a task started by {unseen} (its RunTask went unanswered)")
    if leftovers:
        yield left_behind_log(why, leftovers, run_id=run_id)


__all__ = [
    "DESCRIBE_MAX_ATTEMPTS",
    "REGISTER_MAX_ATTEMPTS",
    "REGISTRY_POLL_S",
    "TEARDOWN_MAX_ATTEMPTS",
    "TaskHandle",
    "abandoned_teardown_log",
    "close_flow",
    "gc_command",
    "left_behind_log",
    "preflight_flow",
    "start_flow",
    "stopped_task_error",
    "teardown_flow",
    "teardown_leftovers",
]
