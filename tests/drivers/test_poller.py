"""The anyio driver's DescribeTasks poller, on the local ECS, under asyncio and trio.

Several flows may poll one task at once: a spin-up waiting for RUNNING and an exec that
looks whether its task stopped, or two sandboxes' checks of a shared task. Every request
must get an answer about its own task, made by a DescribeTasks call that started after
the request arrived, and requests of one tick must share one call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import AwsResult, DescribeTask, EcsFargateConfig
from ecs_sandbox_drivers import aio
from ecs_sandbox_drivers.local import LocalAws

StartTask = Callable[..., str]
BACKENDS = ["asyncio", "trio"]
TICK_S = 0.05


@dataclass
class Recorder:
    """Wraps the gateway's describe_many: numbers the calls and what they answered."""

    inner: Callable[[str, list[str]], dict[str, AwsResult]]
    clock: itertools.count[int]
    calls: list[tuple[int, list[str], dict[str, AwsResult]]] = field(default_factory=list)

    def __call__(self, cluster: str, arns: list[str]) -> dict[str, AwsResult]:
        started = next(self.clock)
        results = self.inner(cluster, arns)
        self.calls.append((started, list(arns), results))
        return results

    def call_of(self, answer: AwsResult) -> tuple[int, list[str]]:
        for started, arns, results in self.calls:
            if any(result is answer for result in results.values()):
                return started, arns
        raise AssertionError(f"{answer!r} came from no DescribeTasks call")


def _driver(cfg: EcsFargateConfig) -> tuple[aio.AsyncDriver, Recorder]:
    driver = aio.AsyncDriver(cfg, poll_tick_s=TICK_S)
    recorder = Recorder(driver.aws.describe_many, itertools.count())
    driver.aws.describe_many = recorder  # type: ignore[method-assign]
    return driver, recorder


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("concurrent", [2, 7])
def test_concurrent_polls_of_one_task_all_get_its_answer(
    backend: str, concurrent: int, local_aws: LocalAws, start_task: StartTask
) -> None:
    cfg = local_aws.config()
    arn = start_task()
    answers: list[AwsResult] = []

    async def main() -> None:
        driver, recorder = _driver(cfg)

        async def poll() -> None:
            answers.append(await driver.handle(DescribeTask(cluster=cfg.cluster, task_arn=arn)))

        async with anyio.create_task_group() as tg:
            for _ in range(concurrent):
                tg.start_soon(poll)
        # Requests that arrive together share one call (the tick may split them in two).
        assert 1 <= len(recorder.calls) <= 2
        for _, arns, _ in recorder.calls:
            assert arns == [arn]  # each task once per call

    anyio.run(main, backend=backend)
    assert len(answers) == concurrent
    for answer in answers:
        assert answer.error is None
        assert answer.data["taskArn"] == arn


@dataclass(frozen=True)
class Poll:
    task: int  # index into the tasks of the scenario (the last one does not exist)
    delay_ticks: float
    cancel_after_ticks: float | None


polls = st.lists(
    st.builds(
        Poll,
        task=st.integers(0, 2),
        delay_ticks=st.sampled_from([0.0, 0.0, 0.3, 1.0, 1.7, 2.5]),
        cancel_after_ticks=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.2])),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def two_tasks(local_aws: LocalAws) -> Iterator[list[str]]:
    cfg = local_aws.config()
    ecs = local_aws.client("ecs", max_attempts=1)
    arns = []
    for _ in range(2):
        response = ecs.run_task(
            cluster=cfg.cluster,
            taskDefinition=cfg.task_definition,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(cfg.subnets),
                    "securityGroups": list(cfg.security_groups),
                }
            },
            overrides={"containerOverrides": [{"name": "main", "command": ["sleep", "600"]}]},
        )
        arns.append(response["tasks"][0]["taskArn"])
    yield arns
    for arn in arns:
        ecs.stop_task(cluster=cfg.cluster, task=arn, reason="test over")


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=polls)
def test_any_schedule_of_polls_gets_fresh_answers_about_its_own_task(
    backend: str, schedule: list[Poll], local_aws: LocalAws, two_tasks: list[str]
) -> None:
    cfg = local_aws.config()
    missing = two_tasks[0].rsplit("/", 1)[0] + "/" + "0" * 32
    tasks = [*two_tasks, missing]
    outcomes: list[tuple[Poll, int, AwsResult | None]] = []

    async def main() -> Recorder:
        driver, recorder = _driver(cfg)

        async def one(poll: Poll) -> None:
            await anyio.sleep(poll.delay_ticks * TICK_S)
            arrived = next(recorder.clock)
            answer: AwsResult | None = None
            with anyio.CancelScope() as scope:
                if poll.cancel_after_ticks is not None:
                    scope.deadline = anyio.current_time() + poll.cancel_after_ticks * TICK_S
                effect = DescribeTask(cluster=cfg.cluster, task_arn=tasks[poll.task])
                answer = await driver.handle(effect)
            outcomes.append((poll, arrived, answer))

        async with anyio.create_task_group() as tg:
            for poll in schedule:
                tg.start_soon(one, poll)
        return recorder

    recorder = anyio.run(main, backend=backend)
    assert len(outcomes) == len(schedule)
    for poll, arrived, answer in outcomes:
        if answer is None:
            assert poll.cancel_after_ticks is not None  # only a cancelled poll goes unanswered
            continue
        started, arns = recorder.call_of(answer)
        assert started > arrived  # never an answer made before the request
        assert tasks[poll.task] in arns
        if poll.task == 2:
            assert answer.error is not None and answer.error.code == "MISSING"
        else:
            assert answer.error is None and answer.data["taskArn"] == tasks[poll.task]
    for _, arns, _ in recorder.calls:
        assert len(arns) == len(set(arns))
    # Polls that arrive together share a call: at most one call per distinct arrival time
    # (and one more where a tick boundary splits them).
    assert len(recorder.calls) <= len({poll.delay_ticks for poll in schedule}) + 1
