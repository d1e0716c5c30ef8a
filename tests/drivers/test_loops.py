"""anyio drivers and event loops: asyncio then trio, several loops at once, explicit owners.

A default driver belongs to the event loop that asked for it and goes with it; an
explicitly owned driver serves any loop (one set of anyio primitives per loop) and is
closed by its owner, which deregisters what its sandboxes left registered.
"""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from ecs_sandbox_core import EcsFargateConfig, UsageError
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers._common import start, stop
from ecs_sandbox_drivers.local import LocalAws


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config(image_template="ecs-sandbox/loops:{task_id}")


def _status(local_aws: LocalAws, cfg: EcsFargateConfig, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_tasks(cluster=cfg.cluster, tasks=[arn])["tasks"][0]["lastStatus"])


def _definition_status(local_aws: LocalAws, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"])


async def _one_sandbox(
    cfg: EcsFargateConfig, task_id: str, driver: aio.AsyncDriver | None = None
) -> tuple[str, bytes]:
    async with aio.EcsFargateSandbox.spin_up(
        cfg=cfg, task_id=task_id, trial_name="t", run_id="loops", driver=driver
    ) as sandbox:
        result = await sandbox.exec(f"echo {task_id}")
        return sandbox.task_arn, result.output


def _in_threads(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run each job in its own thread at once; return results in order, re-raise failures."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize(
    "backends", [["asyncio", "trio"], ["trio", "asyncio"], ["asyncio", "trio", "asyncio"]]
)
def test_default_drivers_in_one_loop_after_another(
    backends: list[str], cfg: EcsFargateConfig, local_aws: LocalAws
) -> None:
    for i, backend in enumerate(backends):
        task_id = f"seq-{backend}-{i}"
        arn, output = anyio.run(_one_sandbox, cfg, task_id, backend=backend)
        assert output == f"{task_id}\n".encode()
        assert _status(local_aws, cfg, arn) == "STOPPED"


def test_a_default_driver_belongs_to_its_loop_and_goes_with_it(cfg: EcsFargateConfig) -> None:
    refs: list[weakref.ref[aio.AsyncDriver]] = []

    async def main() -> None:
        driver = aio.EcsFargateSandbox.driver_for(cfg)
        assert aio.EcsFargateSandbox.driver_for(cfg) is driver  # shared within the loop
        refs.append(weakref.ref(driver))

    for backend in ("asyncio", "trio", "asyncio"):
        anyio.run(main, backend=backend)
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]  # nothing holds them process-wide


def test_default_drivers_in_several_loops_at_once(
    cfg: EcsFargateConfig, local_aws: LocalAws
) -> None:
    backends = ["asyncio", "trio", "asyncio", "trio"]

    def job(i: int, backend: str) -> Callable[[], Any]:
        async def two_sandboxes() -> tuple[int, list[tuple[str, bytes]]]:
            outputs: list[tuple[str, bytes]] = []

            async def one(n: int) -> None:
                outputs.append(await _one_sandbox(cfg, f"par-{backend}-{i}-{n}"))

            async with anyio.create_task_group() as tg:
                for n in range(2):
                    tg.start_soon(one, n)
            return id(aio.EcsFargateSandbox.driver_for(cfg)), outputs

        return lambda: anyio.run(two_sandboxes, backend=backend)

    results = _in_threads([job(i, backend) for i, backend in enumerate(backends)])
    drivers = {driver_id for driver_id, _ in results}
    assert len(drivers) == len(backends)  # one default driver per loop
    for i, (_, outputs) in enumerate(results):
        assert sorted(out for _, out in outputs) == [
            f"par-{backends[i]}-{i}-{n}\n".encode() for n in range(2)
        ]
        for arn, _ in outputs:
            assert _status(local_aws, cfg, arn) == "STOPPED"


def test_one_owned_driver_serves_several_loops(cfg: EcsFargateConfig, local_aws: LocalAws) -> None:
    shared = local_aws.config(image_template="ecs-sandbox/loops:shared")
    driver = aio.AsyncDriver(shared, poll_tick_s=0.2)
    # One after another...
    for backend in ("asyncio", "trio"):
        _, output = anyio.run(_one_sandbox, shared, f"own-{backend}", driver, backend=backend)
        assert output == f"own-{backend}\n".encode()
    # ...and at once, from threads: the loops share the driver's registry and budget.
    all_up = threading.Barrier(4)
    registered_before = sum(
        n for op, n in local_aws.calls.items() if op == "RegisterTaskDefinition"
    )

    def job(i: int, backend: str) -> Callable[[], Any]:
        async def hold() -> bytes:
            async with aio.EcsFargateSandbox.spin_up(
                cfg=shared, task_id=f"own-par-{i}", trial_name="t", run_id="loops", driver=driver
            ) as sandbox:
                output = (await sandbox.exec(f"echo {i}")).output
                await anyio.to_thread.run_sync(all_up.wait)  # all four hold the definition
                return output

        return lambda: anyio.run(hold, backend=backend)

    outputs = _in_threads([job(i, b) for i, b in enumerate(["asyncio", "trio"] * 2)])
    assert outputs == [f"{i}\n".encode() for i in range(4)]
    registered = sum(n for op, n in local_aws.calls.items() if op == "RegisterTaskDefinition")
    assert registered - registered_before == 1
    assert driver.registry.outstanding() == []
    anyio.run(driver.aclose, backend="trio")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_aclose_releases_what_sandboxes_left_and_refuses_new_ones(
    backend: str, cfg: EcsFargateConfig, local_aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with aio.AsyncDriver(cfg, poll_tick_s=0.2) as driver:
            # A sandbox started and never torn down (a harness that forgot it).
            handle = await driver.run(
                start(driver, task_id=f"left-{backend}", trial_name="t", run_id="loops")
            )
            assert handle.task_definition_arn is not None
            with caplog.at_level(logging.WARNING, logger="ecs_sandbox"):
                await driver.aclose()
            assert "still in use" in caplog.text
            assert _definition_status(local_aws, handle.task_definition_arn) == "INACTIVE"
            with pytest.raises(UsageError, match="closed"):
                await _one_sandbox(cfg, f"late-{backend}", driver)
            # Its tear-down still works, and does not deregister a second time.
            deregistered = local_aws.calls["DeregisterTaskDefinition"]
            await driver.run(stop(driver, handle))
            assert _status(local_aws, cfg, handle.task_arn) == "STOPPED"
            assert local_aws.calls["DeregisterTaskDefinition"] == deregistered
        # A closed default driver is replaced, never handed out.
        default = aio.EcsFargateSandbox.driver_for(cfg)
        await default.aclose()
        assert aio.EcsFargateSandbox.driver_for(cfg) is not default

    anyio.run(main, backend=backend)


def test_sync_close(cfg: EcsFargateConfig, local_aws: LocalAws) -> None:
    with SyncDriver(cfg) as driver:
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="sync-close", trial_name="t", run_id="loops", driver=driver
        ) as sandbox:
            assert sandbox.exec("echo ok").output == b"ok\n"
        handle = driver.run(start(driver, task_id="sync-left", trial_name="t", run_id="loops"))
    assert driver.closed
    assert handle.task_definition_arn is not None
    assert _definition_status(local_aws, handle.task_definition_arn) == "INACTIVE"
    with pytest.raises(UsageError, match="closed"):
        driver.run(start(driver, task_id="sync-late", trial_name="t", run_id="loops"))
    driver.run(stop(driver, handle))
    assert _status(local_aws, cfg, handle.task_arn) == "STOPPED"
    default = EcsFargateSandbox.driver_for(cfg)
    default.close()
    assert EcsFargateSandbox.driver_for(cfg) is not default
