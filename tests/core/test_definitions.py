"""Registering a task definition when RegisterTaskDefinition's answer is lost.

Registering again blindly would leave the first revision ACTIVE with nobody to deregister
it: the flow looks for a revision of the family tagged with its run id before each retry
that follows an ambiguous answer, and adopts it.
"""

from __future__ import annotations

from typing import Any

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._definitions import REGISTER_MAX_ATTEMPTS, _register
from ecs_sandbox_core._effects import AwsCall, AwsError, AwsResult, Log, Random, Sleep
from ecs_sandbox_core._errors import TaskDefinitionError
from ecs_sandbox_core._retry import RESPONSE_LOST

FAMILY = "ecs-sandbox-" + "ab" * 16
ARN = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{FAMILY}:7"
OTHER = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{FAMILY}:6"
TAGS = [{"key": "ecs-sandbox:run-id", "value": "run-42"}, {"key": "team", "value": "evals"}]
CFG = EcsFargateConfig(
    cluster="c",
    task_definition="base:1",
    container_name="main",
    subnets=("subnet-1",),
    security_groups=("sg-1",),
    image_template="img:{task_id}",
)
LOST = AwsResult(error=AwsError(code=RESPONSE_LOST, message="read timeout"))
SERVER = AwsResult(error=AwsError(code="ServerException", message="oops", http_status=500))
THROTTLED = AwsResult(error=AwsError(code="ThrottlingException", message="Rate exceeded"))


def op(name: str) -> Any:
    def matches(effect: object) -> bool:
        return isinstance(effect, AwsCall) and effect.operation == name

    matches.__name__ = name
    return matches


def registered(arn: str = ARN) -> AwsResult:
    return AwsResult(data={"taskDefinition": {"taskDefinitionArn": arn}})


def listed(*arns: str) -> AwsResult:
    return AwsResult(data={"taskDefinitionArns": list(arns)})


def described(run_id: str) -> AwsResult:
    return AwsResult(
        data={"taskDefinition": {}, "tags": [{"key": "ecs-sandbox:run-id", "value": run_id}]}
    )


def retry() -> list[tuple[object, object]]:
    return [(Random(), 0.5), (Log, None), (Sleep, None)]


def flow() -> Any:
    return _register(CFG, {"family": FAMILY, "containerDefinitions": []}, TAGS)


@pytest.mark.parametrize("lost", [LOST, SERVER], ids=["response-lost", "5xx"])
def test_a_lost_registration_is_found_and_adopted_not_repeated(lost: AwsResult) -> None:
    arn = run_script(
        flow(),
        [
            (Log, None),
            (op("register_task_definition"), lost),
            *retry(),
            (op("list_task_definitions"), listed(ARN, OTHER)),
            (op("describe_task_definition"), described("run-42")),
            (Log, None),
        ],
    )
    assert arn == ARN


def test_the_search_skips_other_runs_and_other_families_then_registers_again() -> None:
    seen: list[AwsCall] = []

    def keep(name: str) -> Any:
        def matches(effect: object) -> bool:
            if isinstance(effect, AwsCall) and effect.operation == name:
                seen.append(effect)
                return True
            return False

        return matches

    arn = run_script(
        flow(),
        [
            (Log, None),
            (op("register_task_definition"), LOST),
            *retry(),
            # A family that merely starts with ours is not ours; another run's revision is
            # not ours either (it has its own users).
            (
                keep("list_task_definitions"),
                listed(ARN.replace(FAMILY, FAMILY + "x"), OTHER),
            ),
            (keep("describe_task_definition"), described("run-41")),
            (op("register_task_definition"), registered()),
        ],
    )
    assert arn == ARN
    assert seen[0].params == {"familyPrefix": FAMILY, "status": "ACTIVE", "sort": "DESC"}
    assert seen[1].params == {"taskDefinition": OTHER, "include": ["TAGS"]}


def test_a_failed_search_registers_again() -> None:
    arn = run_script(
        flow(),
        [
            (Log, None),
            (op("register_task_definition"), SERVER),
            *retry(),
            (op("list_task_definitions"), THROTTLED),
            (op("register_task_definition"), registered()),
        ],
    )
    assert arn == ARN


def test_a_refused_registration_is_not_searched_for() -> None:
    # Throttling means the request was refused: nothing to find, so no listing.
    arn = run_script(
        flow(),
        [
            (Log, None),
            (op("register_task_definition"), THROTTLED),
            *retry(),
            (op("register_task_definition"), registered()),
        ],
    )
    assert arn == ARN


def test_giving_up_after_an_ambiguous_answer_names_gc() -> None:
    steps: list[tuple[object, object]] = [(Log, None)]
    for attempt in range(1, REGISTER_MAX_ATTEMPTS + 1):
        if attempt > 1:
            steps.append((op("list_task_definitions"), listed()))
        steps.append((op("register_task_definition"), SERVER))
        steps += retry() if attempt < REGISTER_MAX_ATTEMPTS else [(Random(), 0.5)]
    logs: list[Log] = []

    def error_log(effect: object) -> bool:
        if isinstance(effect, Log):
            logs.append(effect)
            return True
        return False

    steps.append((error_log, None))
    with pytest.raises(TaskDefinitionError):
        run_script(flow(), steps)
    assert "gc --run-id" in logs[-1].message and "run-42" in logs[-1].args


@given(st.lists(st.sampled_from(["lost", "5xx", "throttled"]), min_size=1, max_size=6))
def test_at_most_one_revision_is_registered_per_answer_seen(failures: list[str]) -> None:
    # Model: AWS carries out every registration whose answer is lost or a 5xx (the worst
    # case); the flow must adopt the first such revision instead of registering another.
    results = {"lost": LOST, "5xx": SERVER, "throttled": THROTTLED}
    revisions: list[str] = []
    gen = flow()
    effect = next(gen)
    answers = iter(failures)
    final: str | None = None
    while True:
        if isinstance(effect, (Log, Sleep)):
            reply: object = None
        elif isinstance(effect, Random):
            reply = 0.5
        elif isinstance(effect, AwsCall) and effect.operation == "register_task_definition":
            kind = next(answers, "ok")
            if kind != "throttled":
                revisions.append(f"{FAMILY}:{len(revisions) + 1}")
            reply = registered(revisions[-1]) if kind == "ok" else results[kind]
        elif isinstance(effect, AwsCall) and effect.operation == "list_task_definitions":
            reply = listed(*(f"arn:aws:ecs:r:1:task-definition/{r}" for r in reversed(revisions)))
        elif isinstance(effect, AwsCall) and effect.operation == "describe_task_definition":
            reply = described("run-42")
        else:
            raise AssertionError(effect)
        try:
            effect = gen.send(reply)
        except StopIteration as stop:
            final = stop.value
            break
    assert len(revisions) == 1
    assert final is not None and final.endswith(revisions[0])
