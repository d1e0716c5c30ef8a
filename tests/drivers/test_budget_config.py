"""The account share and the adaptive budget are configuration: field, TOML key, variable."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from ecs_sandbox_core import ConfigError, EcsFargateConfig
from ecs_sandbox_core._budget import API_GROUPS, LAUNCH_GROUP, ApiBudget
from ecs_sandbox_drivers import SyncDriver, _cliconfig
from ecs_sandbox_drivers._runtime import DEFAULT_JITTER_S, default_budget

REQUIRED = {
    "ECS_SANDBOX_CLUSTER": "c",
    "ECS_SANDBOX_TASK_DEFINITION": "td",
    "ECS_SANDBOX_CONTAINER_NAME": "main",
    "ECS_SANDBOX_SUBNETS": "subnet-1",
    "ECS_SANDBOX_SECURITY_GROUPS": "sg-1",
}


def _cfg(**changes: object) -> EcsFargateConfig:
    values: dict[str, object] = {
        "region": "us-east-1",
        "cluster": "c",
        "task_definition": "td",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        "endpoint_url": "http://127.0.0.1:9",
        **changes,
    }
    return EcsFargateConfig(**values)  # type: ignore[arg-type]


def test_environment_variables_set_the_share_and_the_adaptation() -> None:
    environ = {**REQUIRED, "ECS_SANDBOX_API_SHARE": "0.25", "ECS_SANDBOX_API_ADAPTIVE": "no"}
    cfg = _cliconfig.resolve(config_file=None, assignments=[], environ=environ)
    assert cfg.api_share == 0.25 and cfg.api_adaptive is False


def test_a_toml_file_sets_them_too(tmp_path: Path) -> None:
    path = tmp_path / "ecs-sandbox.toml"
    path.write_text("[ecs_sandbox]\napi_share = 0.5\napi_adaptive = false\n")
    cfg = _cliconfig.resolve(config_file=str(path), assignments=[], environ=REQUIRED)
    assert cfg.api_share == 0.5 and cfg.api_adaptive is False


@pytest.mark.parametrize("raw", ["0", "1.01", "many"])
def test_a_bad_share_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="api_share"):
        _cliconfig.resolve(
            config_file=None, assignments=[], environ={**REQUIRED, "ECS_SANDBOX_API_SHARE": raw}
        )


def test_the_default_budget_takes_its_share_of_every_bucket() -> None:
    budget = default_budget(_cfg(api_share=0.25, api_adaptive=False))
    assert budget.share == 0.25 and budget.adaptive is False
    for group, (burst, rate) in API_GROUPS.items():
        bucket = budget.bucket(group)
        assert bucket is not None
        assert bucket.nominal_rate == rate * 0.25
        assert bucket.burst == max(1.0, burst * 0.25 - max(1.0, rate * 0.25 * DEFAULT_JITTER_S))
    assert budget.observe("ecs-run", "ThrottlingException", 1.0) is False


def test_every_driver_uses_the_configured_budget_unless_given_one() -> None:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    cfg = _cfg(api_share=0.5)
    driver = SyncDriver(cfg, transport=object(), session=session)  # type: ignore[arg-type]
    launch = driver.budget.bucket(LAUNCH_GROUP)
    assert driver.budget.share == 0.5 and launch is not None and launch.nominal_rate == 10.0
    mine = ApiBudget()
    given = SyncDriver(cfg, transport=object(), session=session, budget=mine)  # type: ignore[arg-type]
    assert given.budget is mine
