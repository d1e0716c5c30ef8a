"""The local ECS's throttling hook: ECS's token buckets, answered as ECS answers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
import botocore.exceptions
import pytest

from ecs_sandbox_drivers import aio
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._throttle import EcsThrottle


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(local_aws: LocalAws, clock: FakeClock) -> Iterator[EcsThrottle]:
    hook = EcsThrottle(
        groups={"ecs-describe-taskdef": (3.0, 2.0), "ecs-run": (2.0, 1.0)}, clock=clock
    )
    local_aws.add_hook(hook)
    try:
        yield hook
    finally:
        local_aws.remove_hook(hook)


def _describe(ecs: Any, local_aws: LocalAws) -> None:
    ecs.describe_task_definition(taskDefinition=local_aws.task_definition)


def test_past_the_burst_calls_are_throttled_as_ecs_does(
    throttle: EcsThrottle, local_aws: LocalAws, ecs: Any
) -> None:
    for _ in range(3):
        _describe(ecs, local_aws)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _describe(ecs, local_aws)
    response = caught.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["Error"]["Message"] == "Rate exceeded"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert throttle.calls["DescribeTaskDefinition"] == 4
    assert throttle.throttled["DescribeTaskDefinition"] == 1
    assert throttle.total_calls() == 4


def test_the_bucket_refills_at_its_sustained_rate(
    throttle: EcsThrottle, local_aws: LocalAws, ecs: Any, clock: FakeClock
) -> None:
    for _ in range(3):
        _describe(ecs, local_aws)
    clock.t += 0.5  # 2 tokens/s: one token back
    _describe(ecs, local_aws)
    with pytest.raises(botocore.exceptions.ClientError):
        _describe(ecs, local_aws)
    clock.t += 10.0  # refills up to the burst, not beyond it
    for _ in range(3):
        _describe(ecs, local_aws)
    with pytest.raises(botocore.exceptions.ClientError):
        _describe(ecs, local_aws)
    assert throttle.throttled["DescribeTaskDefinition"] == 2


def test_time_scale_runs_the_buckets_faster(
    local_aws: LocalAws, ecs: Any, clock: FakeClock
) -> None:
    hook = EcsThrottle(groups={"ecs-describe-taskdef": (1.0, 1.0)}, clock=clock, time_scale=10)
    local_aws.add_hook(hook)
    try:
        _describe(ecs, local_aws)
        clock.t += 0.05  # half a token at 10x
        with pytest.raises(botocore.exceptions.ClientError):
            _describe(ecs, local_aws)
        clock.t += 0.06
        _describe(ecs, local_aws)
    finally:
        local_aws.remove_hook(hook)
    assert hook.throttled["DescribeTaskDefinition"] == 1


def test_a_group_shares_one_bucket_and_other_calls_pass(
    throttle: EcsThrottle, local_aws: LocalAws, ecs: Any
) -> None:
    cfg = local_aws.config()
    # StopTask and RunTask share "ecs-run" (2 tokens here): two StopTasks empty it.
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            ecs.stop_task(cluster=cfg.cluster, task="no-such-task")
        assert caught.value.response["Error"]["Code"] != "ThrottlingException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ecs.run_task(cluster=cfg.cluster, taskDefinition=cfg.task_definition)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    # Operations outside every group, and other services, are never throttled.
    for _ in range(5):
        ecs.list_clusters()
        local_aws.client("sts", max_attempts=1).get_caller_identity()
    assert throttle.throttled == {"RunTask": 1}
    assert throttle.calls["ListClusters"] == 5
    assert "GetCallerIdentity" not in throttle.calls


def test_launches_spend_the_fargate_launch_bucket_per_task(
    local_aws: LocalAws, ecs: Any, clock: FakeClock
) -> None:
    """RunTask spends one API token per call and one launch token per task (its count);
    past the launch quota it is answered as ECS answers, ThrottlingException/Rate exceeded."""
    hook = EcsThrottle(groups={"ecs-run": (100.0, 1.0), "fargate-launch": (3.0, 1.0)}, clock=clock)
    cluster = local_aws.config().cluster

    def run(count: int | None) -> str:
        # An unknown task definition: past the throttle moto refuses the call, so nothing
        # starts, and only the throttle's own answer is a ThrottlingException.
        extra = {} if count is None else {"count": count}
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            ecs.run_task(cluster=cluster, taskDefinition="no-such-definition:1", **extra)
        response = caught.value.response
        if response["Error"]["Code"] == "ThrottlingException":
            assert response["Error"]["Message"] == "Rate exceeded"
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return str(response["Error"]["Code"])

    local_aws.add_hook(hook)
    try:
        assert run(2) != "ThrottlingException"  # 2 of 3 launch tokens
        assert run(2) == "ThrottlingException"  # 1 left: the whole call is refused
        assert run(None) != "ThrottlingException"  # count defaults to 1: the last token
        assert run(None) == "ThrottlingException"
        clock.t += 2.0  # 1 task/s: two tokens back
        assert run(2) != "ThrottlingException"
    finally:
        local_aws.remove_hook(hook)
    assert hook.launched == 5
    assert hook.launch_throttled == 2
    assert hook.throttled == {"RunTask": 2}
    assert hook.total_throttled() == 2
    assert hook.calls["RunTask"] == 5


def test_reset_forgets_the_counts(throttle: EcsThrottle, local_aws: LocalAws, ecs: Any) -> None:
    for _ in range(4):
        with contextlib.suppress(botocore.exceptions.ClientError):
            _describe(ecs, local_aws)
    throttle.reset()
    assert throttle.total_calls() == 0 and not throttle.throttled


def test_invalid_time_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        EcsThrottle(time_scale=0)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_shared_driver_stays_within_ecs_limits(local_aws: LocalAws) -> None:
    """Twelve sandboxes of one driver under ECS's real buckets (scaled): nothing throttled,
    the base definition described once, one shared definition registered and released."""
    hook = EcsThrottle(time_scale=10)
    cfg = local_aws.config(image_template="ecs-sandbox/throttle:shared")
    driver = aio.AsyncDriver(cfg, time_scale=10, poll_tick_s=1.0)
    local_aws.add_hook(hook)
    try:

        async def one(i: int) -> None:
            async with aio.EcsFargateSandbox.spin_up(
                cfg=cfg, task_id=f"thr-{i}", trial_name="t", run_id="thr", driver=driver
            ):
                pass

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
    finally:
        local_aws.remove_hook(hook)
    assert not hook.throttled
    assert hook.calls["RunTask"] == 12
    assert hook.calls["StopTask"] == 12
    assert hook.calls["DescribeTaskDefinition"] == 1
    assert hook.calls["RegisterTaskDefinition"] == 1
    assert hook.calls["DeregisterTaskDefinition"] == 1
    assert driver.registry.outstanding() == []
