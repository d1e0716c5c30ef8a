"""The gc flow: pure selection, then the flow against a scripted and a simulated account."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import AwsCall, AwsError, AwsResult, Log, Random, Sleep
from ecs_sandbox_core._errors import AwsApiError, UsageError
from ecs_sandbox_core._gc import gc_flow
from ecs_sandbox_core._gc_select import (
    DESCRIBE_BATCH,
    GcCriteria,
    GcReport,
    parse_duration,
    select_definitions,
    select_objects,
    select_tasks,
    staging_prefix,
)
from ecs_sandbox_core._taskdef import definition_hash, family_for, resource_tags
from ecs_sandbox_core._transfer_flow import staging_key

NOW = 1_800_000_000.0
HOUR = 3600.0
CLUSTER = "evals"
BUCKET = "staging-bucket"
ARN = "arn:aws:ecs:us-east-1:123456789012"


def cfg(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "cluster": CLUSTER,
        "task_definition": "base",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        "s3_bucket": BUCKET,
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


def tags(run_id: str, created_at: float, task_id: str = "t") -> list[dict[str, str]]:
    return resource_tags(
        run_id=run_id, task_id=task_id, owner="host:1", created_at=int(created_at), extra={}
    )


def family(n: int) -> str:
    return family_for(cfg(), run_id="ignored", digest=definition_hash({"n": n}))


def task(
    n: int, run_id: str | None, created_at: float = NOW, *, definition: str = "", **fields: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "taskArn": f"{ARN}:task/{CLUSTER}/{n:032x}",
        "taskDefinitionArn": definition or f"{ARN}:task-definition/base:1",
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "tags": tags(run_id, created_at) if run_id is not None else [],
    }
    data.update(fields)
    return data


def definition(
    fam: str, revision: int, run_id: str | None, created_at: float = NOW, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskDefinitionArn": f"{ARN}:task-definition/{fam}:{revision}",
        "family": fam,
        "revision": revision,
        "status": "ACTIVE",
    }
    body.update(fields)
    return {
        "taskDefinition": body,
        "tags": tags(run_id, created_at) if run_id is not None else [],
    }


def obj(key: str, created_at: float = NOW) -> dict[str, Any]:
    return {"Key": key, "LastModified": datetime.fromtimestamp(created_at, tz=timezone.utc)}


def staged(run_id: str, task_id: str = "t1", token: str = "ab" * 8, **kw: Any) -> str:
    return staging_key(cfg(**kw), run_id=run_id, task_id=task_id, token=token, suffix="exec.sh")


def by_run(run_id: str) -> GcCriteria:
    return GcCriteria(run_id=run_id, older_than_s=None, now_epoch=NOW)


def by_age(seconds: float) -> GcCriteria:
    return GcCriteria(run_id=None, older_than_s=seconds, now_epoch=NOW)


# --- durations and criteria -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("45", 45)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2 hours", "-1h", "0s", "1w", "1h-", "nan"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_criteria_need_a_run_id_or_an_age() -> None:
    with pytest.raises(UsageError, match="run id or an age"):
        GcCriteria(run_id=None, older_than_s=None, now_epoch=NOW)
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(UsageError):
            GcCriteria(run_id=None, older_than_s=bad, now_epoch=NOW)
    with pytest.raises(UsageError):
        GcCriteria(run_id="", older_than_s=None, now_epoch=NOW)


# --- select_tasks ---------------------------------------------------------------------------


def test_select_tasks_by_run_takes_only_that_runs_live_tasks() -> None:
    tasks = [
        task(1, "run-a"),
        task(2, "run-b"),
        task(3, None),  # someone else's task in the same cluster
        task(4, "run-a", lastStatus="STOPPED", desiredStatus="STOPPED"),
        task(5, "run-a", lastStatus="RUNNING", desiredStatus="STOPPED"),
        task(6, "run-a", lastStatus="PENDING"),
        {**task(7, None), "tags": [{"key": "run-id", "value": "run-a"}]},  # not our prefix
    ]
    chosen = select_tasks(tasks, by_run("run-a"))
    assert [o.ref for o in chosen] == [tasks[0]["taskArn"], tasks[5]["taskArn"]]
    assert all(o.kind == "task" and o.run_id == "run-a" for o in chosen)
    assert chosen[0].created_at == NOW


def test_select_tasks_by_age() -> None:
    old, young = NOW - 3 * HOUR, NOW - 10
    created = datetime.fromtimestamp(old, tz=timezone.utc)
    untagged_time = task(4, "run-c")
    untagged_time["tags"] = [t for t in untagged_time["tags"] if "created-at" not in t["key"]]
    tasks = [
        task(1, "run-a", old),
        task(2, "run-b", young),
        task(3, None, old, createdAt=created),  # old, but not ours
        untagged_time,  # ours, but no creation time at all: never matches an age
        {**untagged_time, "taskArn": "x", "createdAt": created},  # falls back to createdAt
    ]
    chosen = select_tasks(tasks, by_age(2 * HOUR))
    assert [o.ref for o in chosen] == [tasks[0]["taskArn"], "x"]
    assert chosen[1].created_at == pytest.approx(old)


def test_a_monotonic_created_at_is_not_taken_for_1970() -> None:
    # Seconds since boot in the created-at tag must not make a live sandbox look ancient.
    since_boot = task(1, "run-a", 86_400.0)
    assert not select_tasks([since_boot], by_age(HOUR))
    started = datetime.fromtimestamp(NOW - 2 * HOUR, tz=timezone.utc)
    assert select_tasks([{**since_boot, "createdAt": started}], by_age(HOUR))


def test_select_tasks_with_both_criteria_needs_both() -> None:
    tasks = [
        task(1, "run-a", NOW - 3 * HOUR),
        task(2, "run-a", NOW - 60),
        task(3, "b", NOW - 9 * HOUR),
    ]
    criteria = GcCriteria(run_id="run-a", older_than_s=HOUR, now_epoch=NOW)
    assert [o.ref for o in select_tasks(tasks, criteria)] == [tasks[0]["taskArn"]]


def test_run_ids_are_compared_as_tagged() -> None:
    # Tag values are cleaned to ECS's character set; a run id with other characters must
    # still find its own resources.
    odd = "run#1 (retry)"
    assert select_tasks([task(1, odd)], by_run(odd))
    assert not select_tasks([task(1, odd)], by_run("run#2 (retry)"))


# --- select_definitions ---------------------------------------------------------------------


def test_select_definitions_only_ours() -> None:
    fam = family(1)
    described = [
        definition(fam, 1, "run-a"),
        definition(fam, 2, "run-b"),
        definition(fam, 3, None),  # our family name, no tags: not proven ours
        definition("my-own-family", 1, "run-a"),  # tagged like ours, but not our family
        definition("ecs-sandbox-local", 1, "run-a"),
        definition(fam, 4, "run-a", status="INACTIVE"),
    ]
    chosen, kept = select_definitions(described, by_run("run-a"), in_use=set())
    assert [o.ref for o in chosen] == [described[0]["taskDefinition"]["taskDefinitionArn"]]
    assert kept == []


def test_select_definitions_keeps_one_in_use() -> None:
    described = [definition(family(1), 1, "run-a"), definition(family(2), 1, "run-a")]
    in_use = {described[1]["taskDefinition"]["taskDefinitionArn"]}
    chosen, kept = select_definitions(described, by_run("run-a"), in_use=in_use)
    assert [o.ref for o in chosen] == [described[0]["taskDefinition"]["taskDefinitionArn"]]
    assert [o.ref for o in kept] == list(in_use)


def test_select_definitions_by_age_falls_back_to_registered_at() -> None:
    old = datetime.fromtimestamp(NOW - 5 * HOUR, tz=timezone.utc)
    no_stamp = definition(family(1), 1, "run-a", registeredAt=old)
    no_stamp["tags"] = [t for t in no_stamp["tags"] if "created-at" not in t["key"]]
    described = [no_stamp, definition(family(1), 2, "run-b", NOW - 60)]
    chosen, _ = select_definitions(described, by_age(HOUR), in_use=set())
    assert [o.ref for o in chosen] == [no_stamp["taskDefinition"]["taskDefinitionArn"]]


# --- select_objects -----------------------------------------------------------------------


def test_select_objects_takes_only_the_runs_staged_keys() -> None:
    mine = [staged("run-a"), staged("run-a", "t2", "cd" * 8)]
    others = [
        staged("run-b"),
        "ecs-sandbox/run-a/t1",  # too short
        "ecs-sandbox/run-a/t1/notes.txt",  # not a staged name
        "ecs-sandbox/run-a/t1/x/" + "ab" * 8 + "-exec.sh",  # too deep
        "other-prefix/run-a/t1/" + "ab" * 8 + "-exec.sh",
        "ecs-sandbox-other/run-a/t1/" + "ab" * 8 + "-exec.sh",
        "ecs-sandbox/run a/t1/" + "ab" * 8 + "-exec.sh",  # not a cleaned component
        "user-file.csv",
    ]
    chosen = select_objects(cfg(), [obj(k) for k in mine + others], by_run("run-a"))
    assert [o.ref for o in chosen] == [f"s3://{BUCKET}/{k}" for k in mine]
    assert all(o.kind == "object" and o.run_id == "run-a" for o in chosen)


def test_select_objects_by_age_reads_last_modified() -> None:
    old, young = staged("run-a"), staged("run-b")
    contents = [obj(old, NOW - 3 * HOUR), obj(young, NOW - 60)]
    chosen = select_objects(cfg(), contents, by_age(HOUR))
    assert [o.ref for o in chosen] == [f"s3://{BUCKET}/{old}"]


def test_select_objects_with_an_empty_prefix() -> None:
    key = staged("run-a", s3_prefix="")
    assert staging_prefix(cfg(s3_prefix="")) == ""
    assert select_objects(cfg(s3_prefix=""), [obj(key)], by_run("run-a"))


_ids = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=40)


@given(
    run_id=_ids,
    other=_ids,
    task_id=_ids,
    prefix=st.sampled_from(["ecs-sandbox", "a/b", "", "x y", "deep/er/prefix"]),
)
def test_every_staging_key_belongs_to_its_run_only(
    run_id: str, other: str, task_id: str, prefix: str
) -> None:
    config = cfg(s3_prefix=prefix)
    key = staging_key(config, run_id=run_id, task_id=task_id, token="0f" * 8, suffix="up.tgz")
    assert select_objects(config, [obj(key)], by_run(run_id))
    # Another run finds it only when the two ids clean to the same key component.
    same = staged(other, s3_prefix=prefix).split("/")[-3] == key.split("/")[-3]
    assert bool(select_objects(config, [obj(key)], by_run(other))) == same


def test_family_for_names_are_recognised() -> None:
    for n in range(5):
        chosen, _ = select_definitions(
            [definition(family(n), 1, "r")], by_run("r"), in_use=frozenset()
        )
        assert chosen


# --- the flow against a scripted account --------------------------------------------------


def without_logs(flow: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Forward ``flow``'s effects except Log (answered here), keeping its return value."""
    value: Any = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(effect, Log):
            value = None
            continue
        value = yield effect


def call(operation: str, **params: Any) -> Any:
    def check(effect: object) -> bool:
        return (
            isinstance(effect, AwsCall)
            and effect.operation == operation
            and all(effect.params.get(k) == v for k, v in params.items())
        )

    check.__name__ = f"{operation}({params})"
    return check


def ok(**data: Any) -> AwsResult:
    return AwsResult(data=data)


def test_flow_releases_only_ours_in_order() -> None:
    fam = family(7)
    a_task, b_task, foreign = task(1, "run-a"), task(2, "run-b"), task(3, None)
    a_def = definition(fam, 1, "run-a")
    a_def_arn = a_def["taskDefinition"]["taskDefinitionArn"]
    a_task["taskDefinitionArn"] = a_def_arn
    a_key = staged("run-a")
    arns = [t["taskArn"] for t in (a_task, b_task, foreign)]
    report = run_script(
        without_logs(gc_flow(cfg(), run_id="run-a", older_than_s=None, now_epoch=NOW)),
        [
            (call("list_tasks", cluster=CLUSTER, desiredStatus="RUNNING"), ok(taskArns=arns)),
            (
                call("describe_tasks", cluster=CLUSTER, tasks=arns, include=["TAGS"]),
                ok(tasks=[a_task, b_task, foreign]),
            ),
            (
                call("list_task_definition_families", familyPrefix="ecs-sandbox-"),
                ok(families=[fam, "ecs-sandbox-local-1234", "users-family"]),
            ),
            (
                call("list_task_definitions", familyPrefix=fam, status="ACTIVE"),
                ok(taskDefinitionArns=[a_def_arn]),
            ),
            (
                call("describe_task_definition", taskDefinition=a_def_arn, include=["TAGS"]),
                ok(**a_def),
            ),
            (
                call("list_objects_v2", Bucket=BUCKET, Prefix="ecs-sandbox/run-a/"),
                ok(Contents=[obj(a_key)]),
            ),
            (call("stop_task", cluster=CLUSTER, task=a_task["taskArn"]), ok()),
            (call("deregister_task_definition", taskDefinition=a_def_arn), ok()),
            (call("delete_object", Bucket=BUCKET, Key=a_key), ok()),
        ],
    )
    assert isinstance(report, GcReport) and report.ok and not report.dry_run
    assert [o.ref for o in report.released] == [
        a_task["taskArn"],
        a_def_arn,
        f"s3://{BUCKET}/{a_key}",
    ]


def test_flow_asks_for_tags_when_the_description_has_none() -> None:
    fam = family(1)
    a_def = definition(fam, 1, "run-a")
    arn = a_def["taskDefinition"]["taskDefinitionArn"]
    report = run_script(
        without_logs(
            gc_flow(cfg(s3_bucket=None), run_id="run-a", older_than_s=None, now_epoch=NOW)
        ),
        [
            (call("list_tasks"), ok(taskArns=[])),
            (call("list_task_definition_families"), ok(families=[fam])),
            (call("list_task_definitions"), ok(taskDefinitionArns=[arn])),
            (call("describe_task_definition"), ok(taskDefinition=a_def["taskDefinition"])),
            (call("list_tags_for_resource", resourceArn=arn), ok(tags=a_def["tags"])),
            (call("deregister_task_definition", taskDefinition=arn), ok()),
        ],
    )
    assert [o.ref for o in report.released] == [arn]


# --- the flow against a simulated account ---------------------------------------------------


@dataclass
class Account:
    """A small in-memory ECS + S3 that answers the gc flow's calls, a page at a time."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    definitions: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    page: int = 3
    mutations: list[tuple[str, str]] = field(default_factory=list)
    describe_batches: list[int] = field(default_factory=list)
    fail: dict[str, AwsError] = field(default_factory=dict)

    def _paged(self, items: list[Any], token: str | None, key: str, next_key: str) -> AwsResult:
        start = int(token or 0)
        data: dict[str, Any] = {key: items[start : start + self.page]}
        if start + self.page < len(items):
            data[next_key] = str(start + self.page)
        return AwsResult(data=data)

    def answer(self, effect: AwsCall) -> AwsResult:
        p: Mapping[str, Any] = effect.params
        if effect.operation in self.fail:
            return AwsResult(error=self.fail[effect.operation])
        if effect.operation == "list_tasks":
            live = [t["taskArn"] for t in self.tasks if t["desiredStatus"] == p["desiredStatus"]]
            return self._paged(live, p.get("nextToken"), "taskArns", "nextToken")
        if effect.operation == "describe_tasks":
            assert len(p["tasks"]) <= DESCRIBE_BATCH
            self.describe_batches.append(len(p["tasks"]))
            return AwsResult(data={"tasks": [t for t in self.tasks if t["taskArn"] in p["tasks"]]})
        if effect.operation == "list_task_definition_families":
            fams = sorted({d["taskDefinition"]["family"] for d in self.definitions})
            fams = [f for f in fams if f.startswith(p["familyPrefix"])]
            return self._paged(fams, p.get("nextToken"), "families", "nextToken")
        if effect.operation == "list_task_definitions":
            arns = [
                d["taskDefinition"]["taskDefinitionArn"]
                for d in self.definitions
                if d["taskDefinition"]["family"] == p["familyPrefix"]
                and d["taskDefinition"]["status"] == p["status"]
            ]
            return self._paged(arns, p.get("nextToken"), "taskDefinitionArns", "nextToken")
        if effect.operation == "describe_task_definition":
            found = [
                d
                for d in self.definitions
                if d["taskDefinition"]["taskDefinitionArn"] == p["taskDefinition"]
            ]
            return AwsResult(data=found[0])
        if effect.operation == "list_objects_v2":
            keys = [o for o in self.objects if o["Key"].startswith(p["Prefix"])]
            return self._paged(
                keys, p.get("ContinuationToken"), "Contents", "NextContinuationToken"
            )
        self.mutations.append(
            (effect.operation, p.get("task") or p.get("taskDefinition") or p.get("Key"))
        )
        return AwsResult()

    def run(self, flow: Generator[Any, Any, Any]) -> Any:
        value: Any = None
        while True:
            try:
                effect = flow.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(effect, AwsCall):
                value = self.answer(effect)
            elif isinstance(effect, Random):
                value = 0.0
            else:
                assert isinstance(effect, Log | Sleep), effect
                value = None


def populated() -> tuple[Account, dict[str, Any]]:
    """Run A (killed: 130 tasks, so DescribeTasks needs two batches), run B and strangers."""
    old = NOW - 5 * HOUR
    a_def, b_def = definition(family(1), 1, "run-a", old), definition(family(1), 2, "run-b")
    shared = definition(family(2), 1, "run-a", old)  # A's, but a task of B still uses it
    user_def = definition("my-team-app", 3, None)
    a_def_arn = a_def["taskDefinition"]["taskDefinitionArn"]
    a_tasks = [task(n, "run-a", old, definition=a_def_arn) for n in range(130)]
    b_tasks = [
        task(1000, "run-b", definition=b_def["taskDefinition"]["taskDefinitionArn"]),
        task(1001, "run-b", definition=shared["taskDefinition"]["taskDefinitionArn"]),
    ]
    strangers = [task(2000 + n, None, old) for n in range(4)]
    a_keys = [staged("run-a", f"t{n}") for n in range(7)]
    b_keys = [staged("run-b")]
    foreign_keys = ["reports/run-a/summary.json", "ecs-sandbox/run-a/README"]
    account = Account(
        tasks=a_tasks + b_tasks + strangers,
        definitions=[a_def, b_def, shared, user_def],
        objects=[obj(k, old) for k in a_keys + foreign_keys] + [obj(k) for k in b_keys],
    )
    expect = {
        "tasks": {t["taskArn"] for t in a_tasks},
        "definitions": {a_def_arn},
        "kept": {shared["taskDefinition"]["taskDefinitionArn"]},
        "objects": {f"s3://{BUCKET}/{k}" for k in a_keys},
    }
    return account, expect


def refs(report: GcReport, kind: Any) -> set[str]:
    return {o.ref for o in report.of_kind(kind)}


@pytest.mark.parametrize(
    "criteria", [{"run_id": "run-a"}, {"older_than_s": 2 * HOUR}], ids=["run-id", "age"]
)
def test_flow_touches_only_ours(criteria: dict[str, Any]) -> None:
    account, expect = populated()
    args = {"run_id": None, "older_than_s": None, **criteria}
    report = account.run(gc_flow(cfg(), now_epoch=NOW, **args))
    assert report.ok
    assert refs(report, "task") == expect["tasks"]
    assert refs(report, "task-definition") == expect["definitions"]
    assert refs(report, "object") == expect["objects"]
    assert {o.ref for o in report.kept} == expect["kept"]
    released = {ref for _, ref in account.mutations}
    assert released == {
        *expect["tasks"],
        *expect["definitions"],
        *(r.removeprefix(f"s3://{BUCKET}/") for r in expect["objects"]),
    }
    assert sorted(account.describe_batches) == [36, 100]  # 136 live tasks, listed 3 a page


def test_dry_run_releases_nothing() -> None:
    account, expect = populated()
    report = account.run(
        gc_flow(cfg(), run_id="run-a", older_than_s=None, now_epoch=NOW, dry_run=True)
    )
    assert report.dry_run and account.mutations == []
    assert refs(report, "task") == expect["tasks"]
    assert refs(report, "object") == expect["objects"]


def test_a_failed_release_is_reported_and_the_rest_goes_on() -> None:
    account, expect = populated()
    account.fail["stop_task"] = AwsError(code="AccessDeniedException", message="no")
    report = account.run(gc_flow(cfg(), run_id="run-a", older_than_s=None, now_epoch=NOW))
    assert not report.ok
    assert {f.orphan.ref for f in report.failed} == expect["tasks"]
    assert "AccessDeniedException" in report.failed[0].error
    assert refs(report, "object") == expect["objects"]


def test_a_failed_listing_raises() -> None:
    account, _ = populated()
    account.fail["list_tasks"] = AwsError(code="ClusterNotFoundException", message="gone")
    with pytest.raises(AwsApiError, match="ClusterNotFoundException"):
        account.run(gc_flow(cfg(), run_id="run-a", older_than_s=None, now_epoch=NOW))


def test_a_missing_bucket_holds_nothing() -> None:
    account, expect = populated()
    account.fail["list_objects_v2"] = AwsError(code="NoSuchBucket", message="none")
    report = account.run(gc_flow(cfg(), run_id="run-a", older_than_s=None, now_epoch=NOW))
    assert report.ok and refs(report, "object") == set()
    assert refs(report, "task") == expect["tasks"]


def test_throttled_listing_is_retried() -> None:
    throttled = AwsResult(error=AwsError(code="ThrottlingException", message="Rate exceeded"))
    report = run_script(
        without_logs(gc_flow(cfg(s3_bucket=None), run_id="r", older_than_s=None, now_epoch=NOW)),
        [
            (call("list_tasks"), throttled),
            (Random, 0.5),
            (Sleep, None),
            (call("list_tasks"), ok(taskArns=[])),
            (call("list_task_definition_families"), ok(families=[])),
        ],
    )
    assert report == GcReport(dry_run=False)


def test_a_repeated_page_token_ends_the_listing() -> None:
    # A server that hands out the same token forever must not loop the sweep forever.
    pages = itertools.repeat(ok(taskArns=[], nextToken="same"))
    script = [
        (call("list_tasks"), next(pages)),
        (call("list_tasks", nextToken="same"), next(pages)),
    ]
    report = run_script(
        without_logs(gc_flow(cfg(s3_bucket=None), run_id="r", older_than_s=None, now_epoch=NOW)),
        [*script, (call("list_task_definition_families"), ok(families=[]))],
    )
    assert report.released == ()


def test_naive_timestamps_are_utc() -> None:
    naive = datetime.fromtimestamp(NOW - 2 * HOUR, tz=timezone.utc).replace(tzinfo=None)
    key = staged("r")
    chosen = select_objects(cfg(), [{"Key": key, "LastModified": naive}], by_age(HOUR))
    assert chosen and chosen[0].created_at == pytest.approx(NOW - 2 * HOUR)
    not_old = naive + timedelta(hours=1, minutes=30)
    assert not select_objects(cfg(), [{"Key": key, "LastModified": not_old}], by_age(HOUR))
