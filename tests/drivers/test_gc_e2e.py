"""``ecs-sandbox gc`` end to end on the embedded local ECS.

Harnesses are "killed" by starting sandboxes and never tearing them down, and once for real:
a child process spins up a sandbox against this LocalAws and is SIGKILLed. Then the CLI's
``main()`` runs gc, configured the way an operator would (environment, ``--set``), and the
test checks what is left in the local AWS and on the local sandboxes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_core._lifecycle import TaskHandle, start_flow
from ecs_sandbox_core._transfer_flow import stage_object_flow, staging_key
from ecs_sandbox_drivers import SyncDriver
from ecs_sandbox_drivers._common import start, stop
from ecs_sandbox_drivers.cli import main
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._plugin import STATE_ENV

HOUR = 3600


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    # An image per task id: each sandbox registers (and so must release) its own definition.
    return local_aws.config(image_template="ecs-sandbox/gc:{task_id}")


@pytest.fixture
def gc_cli(
    local_aws: LocalAws,
    cfg: EcsFargateConfig,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str]]:
    """``gc_cli(*args)``: run ``ecs-sandbox gc ARGS`` as an operator would; (status, stdout).

    Configuration comes from ECS_SANDBOX_* variables plus ``--set endpoint_url``, the
    credentials from the environment (the local AWS's dummy ones), as on a real machine.
    """
    for key in list(os.environ):
        if key.startswith("ECS_SANDBOX_") or key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in local_aws.aws_env().items():
        # aws_env() also names the stand-in plugin's state directory in an ECS_SANDBOX_*
        # variable, which the CLI would read as configuration; gc runs no plugin.
        if key != STATE_ENV:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only --set endpoint_url should point there
    settings = {
        "CLUSTER": cfg.cluster,
        "TASK_DEFINITION": cfg.task_definition,
        "CONTAINER_NAME": cfg.container_name,
        "SUBNETS": ",".join(cfg.subnets),
        "SECURITY_GROUPS": ",".join(cfg.security_groups),
        "S3_BUCKET": str(cfg.s3_bucket),
        "REGION": str(cfg.region),
    }
    for key, value in settings.items():
        monkeypatch.setenv(f"ECS_SANDBOX_{key}", value)
    monkeypatch.chdir(tmp_path)  # no ./ecs-sandbox.toml from wherever pytest runs

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        status = main(["--set", f"endpoint_url={local_aws.endpoint_url}", "gc", *args])
        captured = capsys.readouterr()
        # Errors go to stderr; keep them visible in failed assertions about the output.
        return status, captured.out + captured.err

    return run


@dataclass
class Left:
    """What a killed harness left behind."""

    handle: TaskHandle
    keys: list[str] = field(default_factory=list)

    @property
    def definition(self) -> str:
        assert self.handle.task_definition_arn is not None
        return self.handle.task_definition_arn


@pytest.fixture
def harness(local_aws: LocalAws, cfg: EcsFargateConfig) -> Iterator[Callable[..., Left]]:
    """``harness(run_id, task_id, created_at=None)``: a sandbox and a staged object that
    nobody tears down (as if the harness died); torn down after the test if gc did not."""
    left: list[tuple[SyncDriver, Left]] = []

    def spin(run_id: str, task_id: str, created_at: float | None = None) -> Left:
        driver = SyncDriver(cfg)
        if created_at is None:
            flow = start(driver, task_id=task_id, trial_name="gc", run_id=run_id)
        else:
            flow = start_flow(
                cfg,
                task_id=task_id,
                trial_name="gc",
                run_id=run_id,
                owner=driver.owner,
                registry=driver.registry,
                created_at=created_at,
            )
        handle = driver.run(flow)
        key = staging_key(cfg, run_id=run_id, task_id=task_id, token="0f" * 8, suffix="exec.sh")
        assert cfg.s3_bucket is not None
        driver.run(stage_object_flow(bucket=cfg.s3_bucket, key=key, body=b"echo staged"))
        result = Left(handle=handle, keys=[key])
        left.append((driver, result))
        return result

    yield spin
    for driver, result in left:
        driver.run(stop(driver, result.handle))
        for key in result.keys:
            local_aws.client("s3").delete_object(Bucket=cfg.s3_bucket, Key=key)


@pytest.fixture
def foreign(
    local_aws: LocalAws, cfg: EcsFargateConfig, start_task: Any
) -> Iterator[dict[str, Any]]:
    """Things in the same account that ecs-sandbox did not create."""
    ecs, s3 = local_aws.client("ecs"), local_aws.client("s3")
    suffix = uuid.uuid4().hex[:8]
    definition = ecs.register_task_definition(
        family=f"users-own-app-{suffix}",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": "app:1", "memory": 512}],
        tags=[{"key": "team", "value": "evals"}],
    )["taskDefinition"]["taskDefinitionArn"]
    keys = [f"reports/{suffix}.json", f"ecs-sandbox/{suffix}/notes.txt", f"{suffix}.csv"]
    for key in keys:
        s3.put_object(Bucket=cfg.s3_bucket, Key=key, Body=b"user data")
    yield {"definition": definition, "keys": keys, "task": start_task()}
    ecs.deregister_task_definition(taskDefinition=definition)
    for key in keys:
        s3.delete_object(Bucket=cfg.s3_bucket, Key=key)


# --- what is there ---------------------------------------------------------------------------


def task_status(local_aws: LocalAws, cfg: EcsFargateConfig, arn: str) -> str:
    tasks = local_aws.client("ecs").describe_tasks(cluster=cfg.cluster, tasks=[arn])["tasks"]
    return str(tasks[0]["lastStatus"])


def definition_status(local_aws: LocalAws, arn: str) -> str:
    described = local_aws.client("ecs").describe_task_definition(taskDefinition=arn)
    return str(described["taskDefinition"]["status"])


def keys_present(local_aws: LocalAws, cfg: EcsFargateConfig) -> set[str]:
    listed = local_aws.client("s3").list_objects_v2(Bucket=cfg.s3_bucket)
    return {item["Key"] for item in listed.get("Contents", [])}


def container_running(local_aws: LocalAws, arn: str) -> bool:
    container = local_aws.container(arn)
    return container is not None and container.running


def wait_stopped(local_aws: LocalAws, arn: str, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while container_running(local_aws, arn):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def assert_alive(local_aws: LocalAws, cfg: EcsFargateConfig, left: Left) -> None:
    assert task_status(local_aws, cfg, left.handle.task_arn) == "RUNNING"
    assert container_running(local_aws, left.handle.task_arn)
    assert definition_status(local_aws, left.definition) == "ACTIVE"
    assert set(left.keys) <= keys_present(local_aws, cfg)


def assert_reaped(local_aws: LocalAws, cfg: EcsFargateConfig, left: Left) -> None:
    assert task_status(local_aws, cfg, left.handle.task_arn) == "STOPPED"
    assert wait_stopped(local_aws, left.handle.task_arn)
    assert definition_status(local_aws, left.definition) == "INACTIVE"
    assert not set(left.keys) & keys_present(local_aws, cfg)


def assert_foreign_untouched(
    local_aws: LocalAws, cfg: EcsFargateConfig, things: dict[str, Any]
) -> None:
    assert definition_status(local_aws, things["definition"]) == "ACTIVE"
    assert definition_status(local_aws, cfg.task_definition) == "ACTIVE"
    assert set(things["keys"]) <= keys_present(local_aws, cfg)
    assert task_status(local_aws, cfg, things["task"]) == "RUNNING"


# --- tests -----------------------------------------------------------------------------------


def test_gc_by_run_id_reaps_that_run_only(
    local_aws: LocalAws,
    cfg: EcsFargateConfig,
    harness: Callable[..., Left],
    foreign: dict[str, Any],
    gc_cli: Callable[..., tuple[int, str]],
) -> None:
    run_a, run_b = f"gc-a-{uuid.uuid4().hex[:8]}", f"gc-b-{uuid.uuid4().hex[:8]}"
    a1, a2, b1 = harness(run_a, "a1"), harness(run_a, "a2"), harness(run_b, "b1")

    status, out = gc_cli("--run-id", run_a, "--dry-run")
    assert status == 0, out
    assert f"would stop task {a1.handle.task_arn}" in out
    assert f"would deregister task definition {a2.definition}" in out
    assert "dry run: would release 2 task(s), 2 task definition(s), 2 object(s)" in out
    for left in (a1, a2, b1):
        assert_alive(local_aws, cfg, left)

    status, out = gc_cli("--run-id", run_a)
    assert status == 0, out
    assert "released 2 task(s), 2 task definition(s), 2 object(s)" in out
    for left in (a1, a2):
        assert_reaped(local_aws, cfg, left)
    assert_alive(local_aws, cfg, b1)
    assert_foreign_untouched(local_aws, cfg, foreign)

    # A second sweep finds nothing left.
    status, out = gc_cli("--run-id", run_a)
    assert (status, out.strip()) == (0, "released 0 task(s), 0 task definition(s), 0 object(s)")


def test_gc_older_than_reaps_only_old_resources(
    local_aws: LocalAws,
    cfg: EcsFargateConfig,
    harness: Callable[..., Left],
    foreign: dict[str, Any],
    gc_cli: Callable[..., tuple[int, str]],
) -> None:
    run = f"gc-age-{uuid.uuid4().hex[:8]}"
    old = harness(run, "old", created_at=time.time() - 3 * HOUR)
    young = harness(run, "young")

    status, out = gc_cli("--older-than", "2h")
    assert status == 0, out
    assert f"stopped task {old.handle.task_arn} (run {run})" in out
    assert task_status(local_aws, cfg, old.handle.task_arn) == "STOPPED"
    assert wait_stopped(local_aws, old.handle.task_arn)
    assert definition_status(local_aws, old.definition) == "INACTIVE"
    # Objects carry their real LastModified (now), so the staged object is young too.
    assert set(old.keys) <= keys_present(local_aws, cfg)
    assert_alive(local_aws, cfg, young)
    assert_foreign_untouched(local_aws, cfg, foreign)


def test_gc_refuses_without_criteria(gc_cli: Callable[..., tuple[int, str]]) -> None:
    # Usage errors are ecs-sandbox's own failures: 125, as docker run (see cli's EXIT_CODES).
    status, out = gc_cli()
    assert status == 125
    assert "gc needs --run-id or --older-than" in out
    status, out = gc_cli("--older-than", "soon")
    assert status == 125
    assert "is not a duration" in out


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from ecs_sandbox_core import EcsFargateConfig
    from ecs_sandbox_core._transfer_flow import stage_object_flow, staging_key
    from ecs_sandbox_drivers import SyncDriver
    from ecs_sandbox_drivers._common import start

    cfg = EcsFargateConfig(**json.loads(sys.argv[1]))
    run_id = sys.argv[2]
    driver = SyncDriver(cfg)  # the AWS CLI transport, as on AWS
    handle = driver.run(start(driver, task_id="k1", trial_name="kill", run_id=run_id))
    key = staging_key(cfg, run_id=run_id, task_id="k1", token="ab" * 8, suffix="exec.sh")
    driver.run(stage_object_flow(bucket=cfg.s3_bucket, key=key, body=b"echo staged"))
    print(json.dumps({"task": handle.task_arn, "definition": handle.task_definition_arn,
                      "key": key}), flush=True)
    time.sleep(600)
    """
)


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    return lines[0] if lines else ""


def test_gc_after_sigkill_reaps_the_killed_run(
    local_aws: LocalAws,
    cfg: EcsFargateConfig,
    foreign: dict[str, Any],
    gc_cli: Callable[..., tuple[int, str]],
) -> None:
    run = f"gc-kill-{uuid.uuid4().hex[:8]}"
    child_cfg = {
        "region": cfg.region,
        "cluster": cfg.cluster,
        "task_definition": cfg.task_definition,
        "container_name": cfg.container_name,
        "subnets": list(cfg.subnets),
        "security_groups": list(cfg.security_groups),
        "s3_bucket": cfg.s3_bucket,
        "endpoint_url": cfg.endpoint_url,
        "image_template": cfg.image_template,
        "exec_transport": "aws-cli",
    }
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(child_cfg), run],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **local_aws.aws_env()},
    ) as proc:
        try:
            line = _read_line(proc, timeout_s=30)
            assert line, f"the child never got ready (exit status {proc.poll()})"
            made = json.loads(line)
            assert container_running(local_aws, made["task"])
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # The harness is gone; everything it made is still there.
    assert task_status(local_aws, cfg, made["task"]) == "RUNNING"
    assert definition_status(local_aws, made["definition"]) == "ACTIVE"
    assert made["key"] in keys_present(local_aws, cfg)

    status, out = gc_cli("--run-id", run)
    assert status == 0, out
    assert "released 1 task(s), 1 task definition(s), 1 object(s)" in out
    assert task_status(local_aws, cfg, made["task"]) == "STOPPED"
    assert wait_stopped(local_aws, made["task"])
    assert definition_status(local_aws, made["definition"]) == "INACTIVE"
    assert made["key"] not in keys_present(local_aws, cfg)
    assert_foreign_untouched(local_aws, cfg, foreign)
