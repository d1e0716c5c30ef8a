"""Reaping what a killed harness left behind: ``ecs-sandbox gc`` as an effect flow.

Theory of operation
-------------------
A harness that dies by SIGKILL runs no clean-up, so its tasks keep running (until their
keep-alive ``sleep`` ends), its registered task definitions stay ACTIVE and objects it was
staging stay in the bucket. Everything ecs-sandbox creates is findable afterwards:

* tasks and task definitions carry the ``ecs-sandbox:`` tags of :func:`resource_tags`
  (``run-id``, ``task-id``, ``owner``, ``created-at`` in epoch seconds). The reserved prefix
  cannot be used by ``cfg.tags`` (``resource_tags`` refuses it), so a resource with an
  ``ecs-sandbox:run-id`` tag was created by ecs-sandbox and by nothing else;
* task definitions registered by ecs-sandbox are named ``ecs-sandbox-<32 hex digits>``
  (:func:`family_for`), which narrows the listing to our families before any tag is read;
* staged objects live at ``<s3_prefix>/<run id>/<task id>/<token>-<suffix>``
  (:func:`staging_key`); the key carries the run and task, ``LastModified`` the creation time.
  Objects are not tagged: tagging on PutObject needs ``s3:PutObjectTagging`` in addition to
  ``s3:PutObject``, and the key layout already says everything a sweep needs.

The flow first *lists* (all desired-RUNNING tasks of ``cfg.cluster`` with their tags, our
ACTIVE task-definition revisions with theirs, the staged objects), then *selects* with pure
functions (:func:`select_tasks`, :func:`select_definitions`, :func:`select_objects`, in
:mod:`._gc_select`), then,
unless it is a dry run, *releases*: StopTask (with tear-down priority), then
DeregisterTaskDefinition, then DeleteObject. A resource matches when it is ours and
satisfies every criterion given: the run id, and/or a creation time older than the age.
A resource without a creation time never matches an age. A matching task definition is kept
while a task the sweep does not stop still uses it, whoever started that task.

A failed release is recorded in the report and the sweep goes on: the operator reruns it.
A failed *listing* raises, since the sweep cannot know what it did not see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any

from ._budget import TEARDOWN_PRIORITY
from ._calls import _call, _ecs
from ._config import EcsFargateConfig
from ._effects import AwsCall, AwsError, Effect, Log
from ._gc_select import (
    _OUR_FAMILY,
    DESCRIBE_BATCH,
    FAMILY_PREFIX,
    GcCriteria,
    GcFailure,
    GcReport,
    Orphan,
    select_definitions,
    select_objects,
    select_tasks,
    staging_prefix,
)
from ._lifecycle import DESCRIBE_MAX_ATTEMPTS
from ._teardown import TEARDOWN_MAX_ATTEMPTS, _definition_gone, _task_gone
from ._transfer_flow import _key_part

# --- listing ----------------------------------------------------------------------------------


def _log(level: int, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase="gc")


def _pages(
    call: AwsCall,
    *,
    next_param: str,
    next_field: str,
    tolerate: Callable[[AwsError], bool] = lambda error: False,
) -> Generator[Effect, Any, list[Mapping[str, Any]]]:
    """Every page of a paginated call (a repeated token ends it too: a server bug).

    An error ``tolerate`` accepts ends the listing with the pages read so far.
    """
    pages: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    params = dict(call.params)
    while True:
        page_call = AwsCall(
            service=call.service,
            operation=call.operation,
            params=params,
            api_group=call.api_group,
            priority=call.priority,
        )
        result = yield from _call(
            page_call, phase="gc", max_attempts=DESCRIBE_MAX_ATTEMPTS, tolerate=tolerate
        )
        if not result.ok:
            return pages
        pages.append(result.data)
        token = result.data.get(next_field)
        if not token or token in seen:
            return pages
        seen.add(token)
        params = {**call.params, next_param: token}


def _list_tasks(cfg: EcsFargateConfig) -> Generator[Effect, Any, list[Mapping[str, Any]]]:
    # desiredStatus=RUNNING covers PENDING and RUNNING tasks; it is ECS's default, but moto
    # lists stopped tasks too unless it is given.
    params = {"cluster": cfg.cluster, "desiredStatus": "RUNNING", "maxResults": 100}
    pages = yield from _pages(
        _ecs("list_tasks", params), next_param="nextToken", next_field="nextToken"
    )
    arns = [arn for page in pages for arn in page.get("taskArns") or ()]
    tasks: list[Mapping[str, Any]] = []
    for start in range(0, len(arns), DESCRIBE_BATCH):
        batch = arns[start : start + DESCRIBE_BATCH]
        described = yield from _call(
            _ecs("describe_tasks", {"cluster": cfg.cluster, "tasks": batch, "include": ["TAGS"]}),
            phase="gc",
            max_attempts=DESCRIBE_MAX_ATTEMPTS,
        )
        tasks.extend(t for t in described.data.get("tasks") or () if isinstance(t, Mapping))
    return tasks


def _list_definitions() -> Generator[Effect, Any, list[Mapping[str, Any]]]:
    # ListTaskDefinitions' familyPrefix is a *whole* family name (despite its name), so the
    # families come first from ListTaskDefinitionFamilies, whose familyPrefix is a prefix.
    pages = yield from _pages(
        _ecs("list_task_definition_families", {"familyPrefix": FAMILY_PREFIX, "status": "ACTIVE"}),
        next_param="nextToken",
        next_field="nextToken",
    )
    families = sorted(
        {f for page in pages for f in page.get("families") or () if _OUR_FAMILY.fullmatch(str(f))}
    )
    described: list[Mapping[str, Any]] = []
    for family in families:
        pages = yield from _pages(
            _ecs("list_task_definitions", {"familyPrefix": family, "status": "ACTIVE"}),
            next_param="nextToken",
            next_field="nextToken",
        )
        for arn in [a for page in pages for a in page.get("taskDefinitionArns") or ()]:
            response = yield from _describe_definition(arn)
            if response is not None:
                described.append(response)
    return described


def _describe_definition(arn: str) -> Generator[Effect, Any, Mapping[str, Any] | None]:
    result = yield from _call(
        _ecs("describe_task_definition", {"taskDefinition": arn, "include": ["TAGS"]}),
        phase="gc",
        max_attempts=DESCRIBE_MAX_ATTEMPTS,
        tolerate=_definition_gone,
    )
    if not result.ok:
        return None  # deregistered (or deleted) since it was listed
    if "tags" in result.data:
        return result.data
    # A response without a tags member (an endpoint that ignores include=TAGS): ask directly.
    tags = yield from _call(
        _ecs("list_tags_for_resource", {"resourceArn": arn}),
        phase="gc",
        max_attempts=DESCRIBE_MAX_ATTEMPTS,
    )
    return {**result.data, "tags": tags.data.get("tags") or []}


def _list_objects(
    cfg: EcsFargateConfig, criteria: GcCriteria
) -> Generator[Effect, Any, list[Mapping[str, Any]]]:
    if not cfg.s3_bucket:
        return []
    prefix = staging_prefix(cfg)
    if criteria.run_id is not None:
        prefix += _key_part(criteria.run_id) + "/"
    call = AwsCall(
        service="s3",
        operation="list_objects_v2",
        params={"Bucket": cfg.s3_bucket, "Prefix": prefix},
        api_group="s3",
    )
    # A bucket that does not exist holds no staged objects.
    pages = yield from _pages(
        call,
        next_param="ContinuationToken",
        next_field="NextContinuationToken",
        tolerate=lambda error: error.code == "NoSuchBucket",
    )
    return [item for page in pages for item in page.get("Contents") or ()]


# --- releasing ------------------------------------------------------------------------------


def _release(cfg: EcsFargateConfig, orphan: Orphan) -> Generator[Effect, Any, str | None]:
    """Release one resource; the error's text, or None when it is gone."""
    try:
        if orphan.kind == "task":
            params = {"cluster": cfg.cluster, "task": orphan.ref, "reason": "ecs-sandbox gc"}
            yield from _call(
                _ecs("stop_task", params, priority=TEARDOWN_PRIORITY),
                phase="gc",
                max_attempts=TEARDOWN_MAX_ATTEMPTS,
                tolerate=_task_gone,
            )
        elif orphan.kind == "task-definition":
            yield from _call(
                _ecs(
                    "deregister_task_definition",
                    {"taskDefinition": orphan.ref},
                    priority=TEARDOWN_PRIORITY,
                ),
                phase="gc",
                max_attempts=TEARDOWN_MAX_ATTEMPTS,
                tolerate=_definition_gone,
            )
        else:
            bucket, _, key = orphan.ref.removeprefix("s3://").partition("/")
            yield from _call(
                AwsCall(
                    service="s3",
                    operation="delete_object",
                    params={"Bucket": bucket, "Key": key},
                    api_group="s3",
                ),
                phase="gc",
                max_attempts=TEARDOWN_MAX_ATTEMPTS,
            )
    except Exception as exc:
        yield _log(logging.ERROR, "could not release %s %s: %s", orphan.kind, orphan.ref, exc)
        return str(exc)
    yield _log(logging.INFO, "released %s %s (run %s)", orphan.kind, orphan.ref, orphan.run_id)
    return None


def gc_flow(
    cfg: EcsFargateConfig,
    *,
    run_id: str | None,
    older_than_s: float | None,
    now_epoch: float,
    dry_run: bool = False,
) -> Generator[Effect, Any, GcReport]:
    """Find and release what ecs-sandbox created for ``run_id`` and/or before an age.

    Stops matching tasks in ``cfg.cluster``, deregisters matching task definitions that no
    remaining task of ``cfg.cluster`` uses (tasks in other clusters are not seen), deletes
    matching staged objects under ``cfg.s3_prefix`` in ``cfg.s3_bucket``; touches nothing
    without ecs-sandbox's tags or key layout (see the module docstring). ``now_epoch`` is
    the wall clock (epoch seconds) the driver read.
    With ``dry_run`` nothing is released and the report lists what would be. Raises
    :class:`UsageError` without a run id and an age, an AWS error when a listing fails.
    """
    criteria = GcCriteria(run_id=run_id, older_than_s=older_than_s, now_epoch=now_epoch)
    tasks = yield from _list_tasks(cfg)
    doomed_tasks = select_tasks(tasks, criteria)
    stopping = {o.ref for o in doomed_tasks}
    in_use = {
        str(t.get("taskDefinitionArn"))
        for t in tasks
        if t.get("taskArn") not in stopping and t.get("taskDefinitionArn")
    }
    described = yield from _list_definitions()
    doomed_definitions, kept = select_definitions(described, criteria, in_use=in_use)
    listed = yield from _list_objects(cfg, criteria)
    doomed_objects = select_objects(cfg, listed, criteria)
    for orphan in kept:
        yield _log(logging.INFO, "keeping %s: a remaining task still uses it", orphan.ref)

    selected = [*doomed_tasks, *doomed_definitions, *doomed_objects]
    if dry_run:
        return GcReport(dry_run=True, released=tuple(selected), kept=tuple(kept))
    released: list[Orphan] = []
    failed: list[GcFailure] = []
    # Tasks first: a definition is deregistered only after the tasks using it are stopping.
    for orphan in selected:
        error = yield from _release(cfg, orphan)
        if error is None:
            released.append(orphan)
        else:
            failed.append(GcFailure(orphan=orphan, error=error))
    return GcReport(dry_run=False, released=tuple(released), kept=tuple(kept), failed=tuple(failed))


__all__ = ["gc_flow"]
