"""One sync driver shared by many threads: its budget, registry and counters stay exact.

The races are made likely rather than hoped for: the interpreter switches threads every
microsecond, threads start together at a barrier, and each case runs many trials. Every
check is an exact count, so a single lost update fails the test.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_core._budget import ApiBudget
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver
from ecs_sandbox_drivers.local import LocalAws

THREADS = 8


@pytest.fixture
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.fixture
def driver() -> SyncDriver:
    """A sync driver that never reaches AWS (the tests below use only its shared state)."""
    cfg = EcsFargateConfig(
        region="us-east-1",
        cluster="c",
        task_definition="td",
        container_name="main",
        subnets=("subnet-1",),
        security_groups=("sg-1",),
        endpoint_url="http://127.0.0.1:9",
    )
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    return SyncDriver(cfg, transport=object(), session=session)  # type: ignore[arg-type]


def together(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads that start at one barrier; re-raise a failure."""
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


@pytest.mark.usefixtures("fast_switching")
def test_threads_never_get_more_tokens_than_the_bucket_holds(driver: SyncDriver) -> None:
    takes = 50
    for _ in range(30):
        # A bucket that refills about nothing during a trial: exactly THREADS * takes
        # tokens are spent, so exactly that many must be gone from it.
        driver.budget = ApiBudget({"g": (THREADS * takes * 1.15, 1e-6)})
        bucket = driver.budget.bucket("g")
        assert bucket is not None
        waits_before = driver.stats.throttle_waits
        together(THREADS, lambda _: [driver.spend("ecs", "x", "g", 0) for _ in range(takes)])
        left = bucket.tokens(driver.now())
        assert left == pytest.approx(bucket.burst - THREADS * takes, abs=0.01)
        assert driver.stats.throttle_waits == waits_before


@pytest.mark.usefixtures("fast_switching")
def test_the_registry_protocol_holds_across_threads(driver: SyncDriver) -> None:
    registry = driver.registry
    rounds = 200
    deregistered: list[str] = []
    registrations: list[str] = []
    lock = threading.Lock()

    def user(i: int) -> None:
        for n in range(rounds):
            digest = f"d{n % 3}"
            while True:
                answer = registry.acquire(digest)
                if answer.action == "register":
                    arn = f"arn:{digest}:{i}:{n}"
                    with lock:
                        registrations.append(arn)
                    registry.registered(digest, arn)
                    break
                if answer.action == "use":
                    break
            arn_out = registry.release(digest)
            if arn_out is not None:
                with lock:
                    deregistered.append(arn_out)

    for _ in range(5):
        registrations.clear()
        deregistered.clear()
        together(THREADS, user)
        assert registry.outstanding() == []
        # Every registration is deregistered exactly once, by its last user.
        assert sorted(deregistered) == sorted(registrations)


@pytest.mark.usefixtures("fast_switching")
def test_shared_base_lookups_describe_once(driver: SyncDriver) -> None:
    registry = driver.registry
    for trial in range(20):
        name = f"base-{trial}"
        describers: list[int] = []

        def look(i: int, name: str = name, describers: list[int] = describers) -> None:
            while True:
                lookup = registry.base(name)
                if lookup.action == "describe":
                    describers.append(i)
                    registry.described(name, {"family": name})
                    return
                if lookup.action == "use":
                    assert lookup.base == {"family": name}
                    return

        together(THREADS, look)
        assert len(describers) == 1


def test_one_sync_driver_many_threads_many_sandboxes(local_aws: LocalAws) -> None:
    cfg = local_aws.config(image_template="ecs-sandbox/threads:shared")
    driver = SyncDriver(cfg)
    registered_before = sum(
        n for op, n in local_aws.calls.items() if op == "RegisterTaskDefinition"
    )
    results: dict[int, Any] = {}
    all_up = threading.Barrier(THREADS)

    def trial(i: int) -> None:
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=f"thr-{i}", trial_name="t", run_id="threads", driver=driver
        ) as sandbox:
            results[i] = sandbox.exec(f"echo {i}").output
            all_up.wait()  # every sandbox holds the shared definition at once

    together(THREADS, trial)
    assert results == {i: f"{i}\n".encode() for i in range(THREADS)}
    registered = sum(n for op, n in local_aws.calls.items() if op == "RegisterTaskDefinition")
    assert registered - registered_before == 1  # one shared definition, registered once
    assert driver.registry.outstanding() == []
