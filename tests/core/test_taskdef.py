"""Task definitions, tags and RunTask requests."""

from __future__ import annotations

import copy
import re
import subprocess
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._errors import ConfigError, TaskDefinitionError, UsageError
from ecs_sandbox_core._taskdef import (
    definition_hash,
    family_for,
    keepalive_command,
    register_payload,
    resource_tags,
    run_task_request,
    sanitize_family,
)

VALID_FAMILY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
TAG_VALUE = re.compile(r"[\w +\-=.:/@]{0,256}")

_ECS = botocore.session.get_session().get_service_model("ecs")


def assert_valid_request(operation: str, params: dict[str, Any]) -> None:
    """Check params against botocore's model of the real ECS API."""
    shape = _ECS.operation_model(operation).input_shape
    assert shape is not None
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()


def config(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "region": "us-east-1",
        "cluster": "sandboxes",
        "task_definition": "base-td",
        "container_name": "main",
        "subnets": ("subnet-1", "subnet-2"),
        "security_groups": ("sg-1",),
        "image_template": "repo/img:{task_id}",
        "execution_role_arn": "arn:aws:iam::123456789012:role/exec",
        "max_task_lifetime_sec": 3600,
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


BASE: dict[str, Any] = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/base-td:3",
    "family": "base-td",
    "revision": 3,
    "status": "ACTIVE",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "1024",
    "memory": "4096",
    "taskRoleArn": "arn:aws:iam::123456789012:role/task",
    "executionRoleArn": "arn:aws:iam::123456789012:role/base-exec",
    "ephemeralStorage": {"sizeInGiB": 50},
    "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "volumes": [],
    "pidMode": None,
    "registeredAt": "2024-01-01T00:00:00Z",
    "containerDefinitions": [
        {"name": "sidecar", "image": "side:1", "essential": False},
        {
            "name": "main",
            "image": "old:1",
            "essential": True,
            "command": ["old"],
            "environment": [{"name": "A", "value": "1"}],
        },
    ],
}


# --- sanitize_family ------------------------------------------------------------------------


@given(st.text(max_size=300))
def test_sanitize_family_is_valid_and_idempotent(raw: str) -> None:
    family = sanitize_family(raw)
    assert VALID_FAMILY.fullmatch(family)
    assert sanitize_family(family) == family
    assert sanitize_family(raw) == family


@given(st.from_regex(VALID_FAMILY, fullmatch=True))
def test_valid_families_are_unchanged(raw: str) -> None:
    assert sanitize_family(raw) == raw


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_names_stay_distinct(a: str, b: str) -> None:
    if a != b:
        assert sanitize_family(a) != sanitize_family(b)


def test_sanitize_family_examples() -> None:
    assert sanitize_family("").startswith("f-")
    assert sanitize_family("_x").startswith("f_x-")
    assert sanitize_family("run/1.2").startswith("run_1_2-")
    assert len(sanitize_family("a" * 400)) == 255


# --- keepalive_command ----------------------------------------------------------------------


def test_keepalive_command_shape_and_syntax() -> None:
    argv = keepalive_command(90)
    assert argv[:2] == ["sh", "-lc"]
    assert argv[2].endswith("; exec sleep 90")
    assert "/usr/local/bin/python" in argv[2] and "|| true" in argv[2]
    subprocess.run(["sh", "-n", "-c", argv[2]], check=True)


@pytest.mark.parametrize("bad", [0, -5, True, 1.5])
def test_keepalive_command_rejects_bad_lifetimes(bad: Any) -> None:
    with pytest.raises(UsageError):
        keepalive_command(bad)


# --- resource_tags --------------------------------------------------------------------------


def test_resource_tags_order_and_form() -> None:
    tags = resource_tags(
        run_id="run 1",
        task_id="t#1",
        owner="me@host",
        created_at=1700000000,
        extra={"z": "1", "a": "2"},
    )
    assert tags == [
        {"key": "ecs-sandbox:run-id", "value": "run 1"},
        {"key": "ecs-sandbox:task-id", "value": "t_1"},
        {"key": "ecs-sandbox:owner", "value": "me@host"},
        {"key": "ecs-sandbox:created-at", "value": "1700000000"},
        {"key": "a", "value": "2"},
        {"key": "z", "value": "1"},
    ]


@given(st.text(max_size=400), st.text(max_size=400))
def test_tag_values_always_fit_ecs(run_id: str, owner: str) -> None:
    tags = resource_tags(run_id=run_id, task_id="t", owner=owner, created_at=0, extra={})
    for tag in tags:
        assert TAG_VALUE.fullmatch(tag["value"]), tag


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"aws:x": "v"}, "not allowed"),
        ({"ecs-sandbox:run-id": "v"}, "reserved"),
        ({"": "v"}, "not allowed"),
        ({"bad#key": "v"}, "not allowed"),
        ({f"k{i}": "v" for i in range(47)}, "ECS allows 50"),
    ],
)
def test_resource_tags_rejects_bad_extra(extra: dict[str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        resource_tags(run_id="r", task_id="t", owner="o", created_at=0, extra=extra)


# --- register_payload -----------------------------------------------------------------------


def test_register_payload_from_base_changes_only_the_container() -> None:
    base = copy.deepcopy(BASE)
    cfg = config(log_group="/sandboxes")
    payload = register_payload(cfg, base=base, image="repo/img:t1", family="fam")
    assert base == BASE  # not mutated
    assert payload["family"] == "fam"
    assert (payload["cpu"], payload["memory"]) == ("1024", "4096")
    assert payload["executionRoleArn"] == BASE["executionRoleArn"]  # the base's role wins
    assert payload["ephemeralStorage"] == {"sizeInGiB": 50}
    for absent in ("pidMode", "taskDefinitionArn", "revision", "status", "registeredAt"):
        assert absent not in payload
    sidecar, main = payload["containerDefinitions"]
    assert sidecar == BASE["containerDefinitions"][0]
    assert main["image"] == "repo/img:t1"
    assert main["command"] == keepalive_command(3600)
    assert main["environment"] == [{"name": "A", "value": "1"}]
    assert main["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/sandboxes",
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "ecs-sandbox",
        },
    }
    payload["containerDefinitions"][1]["environment"].append({"name": "B", "value": "2"})
    assert base == BASE  # deep copy: editing the payload leaves the base alone
    assert_valid_request("RegisterTaskDefinition", payload)


def test_register_payload_fills_gaps_from_config() -> None:
    base = {k: v for k, v in BASE.items() if k not in ("cpu", "memory", "executionRoleArn")}
    payload = register_payload(config(cpu="512", memory="2048"), base=base, image="i", family="f")
    assert (payload["cpu"], payload["memory"]) == ("512", "2048")
    assert payload["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec"


def test_register_payload_missing_container_lists_the_names() -> None:
    with pytest.raises(TaskDefinitionError, match=r"\['sidecar', 'main'\]") as info:
        register_payload(config(container_name="app"), base=BASE, image="i", family="f")
    assert "container_name" in info.value.remedy


def test_register_payload_from_scratch() -> None:
    cfg = config(task_role_arn="arn:aws:iam::123456789012:role/task", log_group="g")
    payload = register_payload(cfg, base=None, image="repo/img:t1", family="fam")
    (container,) = payload["containerDefinitions"]
    assert container == {
        "name": "main",
        "image": "repo/img:t1",
        "essential": True,
        "command": keepalive_command(3600),
        "memory": 32768,
        "logConfiguration": payload["containerDefinitions"][0]["logConfiguration"],
    }
    assert payload["taskRoleArn"] == cfg.task_role_arn
    assert (payload["cpu"], payload["memory"]) == ("8192", "32768")
    assert_valid_request("RegisterTaskDefinition", payload)


def test_register_payload_from_scratch_needs_an_execution_role() -> None:
    with pytest.raises(ConfigError, match="execution_role_arn") as info:
        register_payload(config(execution_role_arn=None), base=None, image="i", family="f")
    assert info.value.remedy


def test_log_group_needs_a_region() -> None:
    with pytest.raises(ConfigError, match="region"):
        register_payload(config(region=None, log_group="g"), base=None, image="i", family="f")


@pytest.mark.parametrize(("image", "family"), [("", "f"), ("a b", "f"), ("i", "bad/family")])
def test_register_payload_rejects_bad_image_or_family(image: str, family: str) -> None:
    with pytest.raises(UsageError):
        register_payload(config(), base=None, image=image, family=family)


# --- definition_hash and family_for ----------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


def reorder(value: Any, rnd: Any) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: reorder(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [reorder(v, rnd) for v in value]
    return value


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6), st.randoms())
def test_definition_hash_ignores_key_order(payload: dict[str, Any], rnd: Any) -> None:
    assert definition_hash(reorder(payload, rnd)) == definition_hash(payload)


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6), st.text(max_size=8), JSON)
def test_definition_hash_changes_with_content(
    payload: dict[str, Any], key: str, value: Any
) -> None:
    changed = {**payload, key: value}
    if key in ("family", "tags"):
        assert definition_hash(changed) == definition_hash(payload)
    elif payload.get(key, object()) != value or key not in payload:
        assert definition_hash(changed) != definition_hash(payload)


def test_definition_hash_ignores_family_and_tags_only() -> None:
    payload = register_payload(config(), base=BASE, image="i:1", family="a")
    same = {**payload, "family": "b", "tags": [{"key": "k", "value": "v"}]}
    assert definition_hash(same) == definition_hash(payload)
    other = register_payload(config(), base=BASE, image="i:2", family="a")
    assert definition_hash(other) != definition_hash(payload)


def test_family_for_is_content_addressed_and_run_independent() -> None:
    digest = definition_hash(register_payload(config(), base=BASE, image="i:1", family="a"))
    family = family_for(config(), run_id="run-1", digest=digest)
    assert family == f"ecs-sandbox-{digest[:32]}"
    assert family_for(config(), run_id="run-2", digest=digest) == family
    assert sanitize_family(family) == family
    with pytest.raises(UsageError):
        family_for(config(), run_id="r", digest="not-hex")


# --- run_task_request -----------------------------------------------------------------------


def test_run_task_request() -> None:
    cfg = config(assign_public_ip=True, platform_version="1.4.0")
    tags = resource_tags(run_id="r", task_id="t", owner="o", created_at=1, extra={})
    request = run_task_request(
        cfg, task_definition="arn:td:1", tags=tags, environment={"Z": "1", "A": "x y"}
    )
    assert request["cluster"] == "sandboxes"
    assert request["taskDefinition"] == "arn:td:1"
    assert (request["launchType"], request["platformVersion"], request["count"]) == (
        "FARGATE",
        "1.4.0",
        1,
    )
    assert request["enableExecuteCommand"] is True
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-1", "subnet-2"],
        "securityGroups": ["sg-1"],
        "assignPublicIp": "ENABLED",
    }
    (override,) = request["overrides"]["containerOverrides"]
    assert override == {
        "name": "main",
        "command": keepalive_command(3600),
        "environment": [{"name": "A", "value": "x y"}, {"name": "Z", "value": "1"}],
    }
    assert request["tags"] == tags and request["tags"] is not tags
    assert "propagateTags" not in request
    assert_valid_request("RunTask", request)


def test_run_task_request_defaults_and_validation() -> None:
    request = run_task_request(config(), task_definition="td", tags=[], environment={})
    assert request["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert "tags" not in request
    with pytest.raises(UsageError):
        run_task_request(config(), task_definition="td", tags=[], environment={"": "x"})
    with pytest.raises(UsageError):
        run_task_request(config(), task_definition="", tags=[], environment={})
