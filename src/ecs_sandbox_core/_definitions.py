"""The task definition a sandbox runs: described, registered once per content, shared.

With ``cfg.registers_task_definitions`` each sandbox needs a definition that runs its image.
Its content is the base definition (``cfg.task_definition``, described once per driver when
the registry shares bases) with the image and the configuration laid over it; the family is
named after that content's hash (:func:`family_for`). Sandboxes whose content is the same
share one registration through :class:`TaskDefinitionRegistry`: the first registers, the
others wait for it, then use it.

A registration whose answer is lost (a 5xx, a dropped connection, a read timeout) may have
been carried out. Registering again would leave that first revision ACTIVE with nobody to
deregister it. So before each retry after such an answer, the flow looks for it: ACTIVE
revisions of the family (the content is the same by construction) tagged with this run's
id. A registrar holds its digest exclusively within its driver, so such a revision is the
one whose answer was lost (or one this run failed to deregister earlier, which is as good):
it is adopted, and deregistered like any other when its last user is done.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from ._calls import _call, _ecs, _log
from ._config import EcsFargateConfig
from ._effects import AwsCall, AwsError, AwsResult, Effect, Flow, Random, Sleep
from ._errors import TaskDefinitionError
from ._registry import TaskDefinitionRegistry
from ._retry import GiveUp, classify_aws_error, is_ambiguous
from ._taskdef import TAG_PREFIX, definition_hash, family_for, register_payload

if TYPE_CHECKING:
    from ._lifecycle import _Progress

REGISTRY_POLL_S = 0.2
"""How often a sandbox waiting for another's registration looks at the registry again."""

# Attempts per call before giving up on throttling or server errors (RunTask's count is
# cfg.run_task_max_retries). Registration gets the most: its bucket refills at 1 call/s.
REGISTER_MAX_ATTEMPTS = 15
DESCRIBE_MAX_ATTEMPTS = 8

_PLACEHOLDER_FAMILY = "ecs-sandbox-pending"  # family_for needs the digest, the digest not this
_RUN_ID_TAG = TAG_PREFIX + "run-id"
_LOOK_AT_MOST = 5  # revisions examined when looking for a lost registration, newest first


# --- task definition ----------------------------------------------------------------------


def _describe_base(cfg: EcsFargateConfig) -> Generator[Effect, Any, dict[str, Any] | None]:
    result = yield from _call(
        _ecs("describe_task_definition", {"taskDefinition": cfg.task_definition}),
        phase="register",
        max_attempts=DESCRIBE_MAX_ATTEMPTS,
        tolerate=_no_such_definition,
    )
    if result.error is not None:
        yield _log(
            logging.INFO,
            "register",
            "base task definition %s not found; building one from the configuration",
            cfg.task_definition,
        )
        return None
    base = result.data.get("taskDefinition")
    return dict(base) if base else None


def _shared_base(
    cfg: EcsFargateConfig, registry: TaskDefinitionRegistry
) -> Generator[Effect, Any, Mapping[str, Any] | None]:
    # One DescribeTaskDefinition per driver instead of one per sandbox (see _registry).
    name = cfg.task_definition
    while True:
        answer = registry.base(name)
        if answer.action == "use":
            return answer.base
        if answer.action == "describe":
            try:
                base = yield from _describe_base(cfg)
            except BaseException:
                registry.describe_failed(name)
                raise
            registry.described(name, base)
            return base
        yield Sleep(seconds=REGISTRY_POLL_S)


def _no_such_definition(error: AwsError) -> bool:
    # ECS's answer for a family or ARN it does not know; the base is then built from cfg.
    return error.code == "ClientException" and "unable to describe" in error.message.lower()


def _ensure_log_group(cfg: EcsFargateConfig) -> Flow:
    # The awslogs driver fails the task when its group is missing; only definitions we
    # register point at cfg.log_group, so only registrars need it.
    call = AwsCall(
        service="logs", operation="create_log_group", params={"logGroupName": cfg.log_group}
    )
    result: AwsResult = yield call
    if result.error is not None and result.error.code != "ResourceAlreadyExistsException":
        yield _log(
            logging.WARNING,
            "register",
            "could not create log group %s (%s); tasks may fail to start",
            cfg.log_group,
            result.error.code,
        )


def _register(
    cfg: EcsFargateConfig, payload: Mapping[str, Any], tags: list[dict[str, str]]
) -> Generator[Effect, Any, str]:
    """Register ``payload`` (see the module docstring for answers that were lost)."""
    if cfg.log_group:
        yield from _ensure_log_group(cfg)
    family = str(payload["family"])
    run_id = next((t["value"] for t in tags if t.get("key") == _RUN_ID_TAG), None)
    yield _log(logging.INFO, "register", "registering task definition %s", family)
    call = _ecs("register_task_definition", {**payload, "tags": tags})
    ambiguous = False
    attempt = 0
    while True:
        attempt += 1
        if ambiguous and run_id is not None:
            found = yield from _find_registered(family, run_id)
            if found is not None:
                yield _log(
                    logging.INFO,
                    "register",
                    "found %s, registered by a call whose answer was lost",
                    found,
                )
                return found
        result: AwsResult = yield call
        if result.error is None:
            return _registered_arn(result)
        rand: float = yield Random()
        decision = classify_aws_error(
            call.operation,
            result.error,
            attempt=attempt,
            max_attempts=REGISTER_MAX_ATTEMPTS,
            rand=rand,
        )
        ambiguous = ambiguous or is_ambiguous(result.error)
        if isinstance(decision, GiveUp):
            if ambiguous:
                yield _log(
                    logging.ERROR,
                    "register",
                    "a revision of %s may have been registered unseen; "
                    "`ecs-sandbox gc --run-id %s` deregisters it",
                    family,
                    run_id,
                )
            raise decision.error
        yield _log(
            logging.WARNING,
            "register",
            "%s failed (%s), attempt %d/%d; retrying in %.1fs",
            call.operation,
            result.error.code,
            attempt,
            REGISTER_MAX_ATTEMPTS,
            decision.delay_s,
        )
        yield Sleep(seconds=decision.delay_s)


def _registered_arn(result: AwsResult) -> str:
    arn = (result.data.get("taskDefinition") or {}).get("taskDefinitionArn")
    if not isinstance(arn, str) or not arn:
        raise TaskDefinitionError(
            "RegisterTaskDefinition returned no taskDefinitionArn",
            operation="register_task_definition",
        )
    return arn


def _find_registered(family: str, run_id: str) -> Generator[Effect, Any, str | None]:
    """The newest ACTIVE revision of ``family`` tagged with ``run_id``, or None.

    A listing or description that fails counts as not found: registering again is what the
    flow did before it looked, and gc still finds what that leaves.
    """
    listed: AwsResult = yield _ecs(
        "list_task_definitions",
        {"familyPrefix": family, "status": "ACTIVE", "sort": "DESC"},
    )
    if listed.error is not None:
        return None
    arns = [
        arn
        for arn in listed.data.get("taskDefinitionArns") or ()
        if isinstance(arn, str) and arn.rpartition("/")[2].rpartition(":")[0] == family
    ]
    for arn in arns[:_LOOK_AT_MOST]:
        described: AwsResult = yield _ecs(
            "describe_task_definition", {"taskDefinition": arn, "include": ["TAGS"]}
        )
        if described.error is not None:
            continue
        tags = described.data.get("tags") or ()
        if any(t.get("key") == _RUN_ID_TAG and t.get("value") == run_id for t in tags):
            return arn
    return None


def _obtain_definition(
    cfg: EcsFargateConfig,
    *,
    task_id: str,
    run_id: str,
    tags: list[dict[str, str]],
    registry: TaskDefinitionRegistry | None,
    progress: _Progress,
) -> Generator[Effect, Any, str]:
    image = cfg.image_for(task_id)
    assert image is not None  # registers_task_definitions implies an image template
    if registry is not None and registry.share_bases:
        base = yield from _shared_base(cfg, registry)
    else:
        base = yield from _describe_base(cfg)
    draft = register_payload(cfg, base=base, image=image, family=_PLACEHOLDER_FAMILY)
    digest = definition_hash(draft)
    payload = {**draft, "family": family_for(cfg, run_id=run_id, digest=digest)}
    if registry is None:
        arn = yield from _register(cfg, payload, tags)
        progress.own_definition = arn
        return arn
    waited = False
    while True:
        answer = registry.acquire(digest)
        if answer.action == "use":
            assert answer.arn is not None
            progress.digest = digest
            yield _log(logging.INFO, "register", "sharing task definition %s", answer.arn)
            return answer.arn
        if answer.action == "register":
            progress.registering = digest
            arn = yield from _register(cfg, payload, tags)
            registry.registered(digest, arn)
            progress.registering, progress.digest = None, digest
            return arn
        if not waited:
            waited = True
            yield _log(
                logging.INFO, "register", "waiting for another sandbox to register %s", digest
            )
        yield Sleep(seconds=REGISTRY_POLL_S)


__all__ = [
    "DESCRIBE_MAX_ATTEMPTS",
    "REGISTER_MAX_ATTEMPTS",
    "REGISTRY_POLL_S",
]
