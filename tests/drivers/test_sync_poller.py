"""The sync driver's DescribeTasks poller, shared by every thread that uses the driver.

Sandboxes waiting for RUNNING in many threads must cost one DescribeTasks per tick between
them, not one per sandbox; every poll must get an answer about its own task, made by a call
that started after the poll arrived.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import AwsResult, DescribeTask, EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver
from ecs_sandbox_drivers.local import LocalAws

TICK_S = 0.05


@dataclass
class Recorder:
    """Wraps the gateway's describe_many: numbers the calls and what they answered."""

    inner: Callable[[str, list[str]], dict[str, AwsResult]]
    clock: Iterator[int]
    calls: list[tuple[int, list[str], dict[str, AwsResult]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> int:
        with self.lock:
            return next(self.clock)

    def __call__(self, cluster: str, arns: list[str]) -> dict[str, AwsResult]:
        started = self.tick()
        results = self.inner(cluster, arns)
        with self.lock:
            self.calls.append((started, list(arns), results))
        return results

    def call_of(self, answer: AwsResult) -> tuple[int, list[str]]:
        for started, arns, results in self.calls:
            if any(result is answer for result in results.values()):
                return started, arns
        raise AssertionError(f"{answer!r} came from no DescribeTasks call")


def _driver(cfg: EcsFargateConfig, tick_s: float = TICK_S) -> tuple[SyncDriver, Recorder]:
    driver = SyncDriver(cfg, poll_tick_s=tick_s)
    recorder = Recorder(driver.aws.describe_many, itertools.count())
    driver.aws.describe_many = recorder  # type: ignore[method-assign]
    return driver, recorder


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads started at one barrier; re-raise a failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_sandboxes_waiting_in_many_threads_share_each_describe_tasks(
    local_aws: LocalAws,
) -> None:
    """16 threads, one sandbox each, tasks PENDING for 0.6 s and a 0.1 s tick: each sandbox
    polls several times, and the polls of one tick go out as one DescribeTasks."""
    threads = 16
    cfg = local_aws.config()
    driver, recorder = _driver(cfg, tick_s=0.1)
    driver.preflight()
    before = local_aws.calls["DescribeTasks"]
    delay_before = local_aws.start_delay_s
    local_aws.start_delay_s = 0.6
    up: list[str] = []

    def one(i: int) -> None:
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=f"sp-{i}", trial_name="t", run_id="sync-poller", driver=driver
        ) as sandbox:
            up.append(sandbox.task_arn)

    try:
        _in_threads(threads, one)
    finally:
        local_aws.start_delay_s = delay_before
        driver.close()
    assert len(set(up)) == threads
    calls = local_aws.calls["DescribeTasks"] - before
    described = sum(len(arns) for _, arns, _ in recorder.calls)
    assert calls == len(recorder.calls)  # every DescribeTasks went through the poller
    assert described >= 2 * threads  # the sandboxes really waited, several polls each
    # Polled one call per sandbox per poll (as before), calls == described; shared, a call
    # names several tasks. Start-up is spread by the RunTasks, so not every call has all 16.
    assert calls * 3 <= described
    assert max(len(arns) for _, arns, _ in recorder.calls) >= threads // 2
    for _, arns, _ in recorder.calls:
        assert len(arns) == len(set(arns))  # each task once per call


@dataclass(frozen=True)
class Poll:
    task: int  # index into the tasks of the scenario (the last one does not exist)
    delay_ticks: float


polls = st.lists(
    st.builds(
        Poll,
        task=st.integers(0, 2),
        delay_ticks=st.sampled_from([0.0, 0.0, 0.3, 1.0, 1.7, 2.5]),
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


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=polls)
def test_any_schedule_of_polls_from_threads_gets_fresh_answers_about_its_own_task(
    schedule: list[Poll], local_aws: LocalAws, two_tasks: list[str]
) -> None:
    cfg = local_aws.config()
    missing = two_tasks[0].rsplit("/", 1)[0] + "/" + "0" * 32
    tasks = [*two_tasks, missing]
    driver, recorder = _driver(cfg)
    outcomes: list[tuple[Poll, int, AwsResult]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        poll = schedule[i]
        time.sleep(poll.delay_ticks * TICK_S)
        arrived = recorder.tick()
        answer = driver.handle(DescribeTask(cluster=cfg.cluster, task_arn=tasks[poll.task]))
        with lock:
            outcomes.append((poll, arrived, answer))

    try:
        _in_threads(len(schedule), one)
    finally:
        driver.close()
    assert len(outcomes) == len(schedule)
    for poll, arrived, answer in outcomes:
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


def test_a_tick_must_be_positive(local_aws: LocalAws) -> None:
    with pytest.raises(ValueError, match="poll tick"):
        SyncDriver(local_aws.config(), poll_tick_s=0)
