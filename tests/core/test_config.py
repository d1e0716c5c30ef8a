"""Configuration: validated on construction, errors that say what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core import ConfigError, EcsFargateConfig, UsageError

BASE: dict[str, Any] = {
    "cluster": "evals",
    "task_definition": "base",
    "container_name": "main",
    "subnets": ["subnet-1"],
    "security_groups": ["sg-1"],
}


def make(**changes: Any) -> EcsFargateConfig:
    return EcsFargateConfig(**{**BASE, **changes})


def test_defaults_follow_the_reference() -> None:
    cfg = make()
    assert cfg.cpu == "8192" and cfg.memory == "32768"
    assert cfg.max_task_lifetime_sec == 180 * 60
    assert cfg.run_task_max_retries == 30
    assert cfg.ecs_exec_timeout_sec == 180
    assert cfg.register_task_definition_per_task is True
    assert cfg.api_share == 1.0 and cfg.api_adaptive is True  # the whole account, adapting
    assert cfg.subnets == ("subnet-1",)  # lists are stored as tuples: the config is hashable
    assert hash(cfg) == hash(make())


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"cluster": ""}, "cluster is required"),
        ({"subnets": []}, "subnets is empty"),
        ({"security_groups": []}, "security_groups is empty"),
        ({"region": "Mars-1"}, "not an AWS region"),
        ({"cpu": "3"}, "not a Fargate cpu value"),
        ({"memory": "lots"}, "positive number of MiB"),
        ({"max_task_lifetime_sec": 0}, "max_task_lifetime_sec must be a positive"),
        ({"run_task_max_retries": -1}, "run_task_max_retries"),
        ({"s3_bucket": "Bad_Bucket"}, "not a valid bucket name"),
        ({"s3_prefix": "/abs"}, "relative key prefix"),
        ({"endpoint_url": "ftp://x"}, "not an http(s) URL"),
        ({"image_template": "repo:{task}"}, "placeholder other than"),
        ({"tags": {"aws:x": "y"}}, "tag key"),
        ({"exec_transport": "carrier-pigeon"}, "exec_transport"),
        ({"api_share": 0}, "api_share must be a number in (0, 1]"),
        ({"api_share": 1.5}, "api_share"),
        ({"api_share": True}, "api_share"),
        ({"api_share": "0.5"}, "api_share"),
        ({"api_adaptive": "yes"}, "api_adaptive must be true or false"),
    ],
)
def test_invalid_values_are_refused_with_a_remedy(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(**changes)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, UsageError)  # the caller's fault, not AWS's


def test_image_template_substitutes_the_task_id() -> None:
    cfg = make(image_template="repo/img:{task_id}")
    assert cfg.image_for("t-1") == "repo/img:t-1"
    assert cfg.registers_task_definitions
    assert make().image_for("t-1") is None


def test_from_mapping_names_unknown_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key.*clustr"):
        EcsFargateConfig.from_mapping({**BASE, "clustr": "x"})
    with pytest.raises(ConfigError, match="missing required configuration: subnets"):
        EcsFargateConfig.from_mapping({k: v for k, v in BASE.items() if k != "subnets"})
    assert EcsFargateConfig.from_mapping(BASE) == make()


@given(st.lists(st.text(alphabet="abcdef-0123", min_size=1, max_size=12), min_size=1))
def test_subnets_from_a_comma_string_or_a_list_agree(names: list[str]) -> None:
    assert make(subnets=",".join(names)).subnets == make(subnets=names).subnets


@pytest.mark.parametrize("user", ["", "root user", "../x", "a" * 40, "x;id"])
def test_exec_user_must_be_a_user_name(user: str) -> None:
    with pytest.raises(ConfigError, match="exec_user"):
        EcsFargateConfig(**{**BASE, "exec_user": user})


@pytest.mark.parametrize("workdir", ["", "tmp", "./app", "/a\0b"])
def test_exec_workdir_must_be_absolute(workdir: str) -> None:
    with pytest.raises(ConfigError, match="exec_workdir"):
        EcsFargateConfig(**{**BASE, "exec_workdir": workdir})


def test_exec_user_and_workdir_are_kept() -> None:
    cfg = EcsFargateConfig(**{**BASE, "exec_user": "1000", "exec_workdir": "/work"})
    assert (cfg.exec_user, cfg.exec_workdir) == ("1000", "/work")
