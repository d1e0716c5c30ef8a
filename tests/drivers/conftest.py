"""Fixtures for driver tests: one embedded local AWS per session, tasks and exec sessions on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _ssm_client import DUMMY, OpenSession, SsmTestClient

from ecs_sandbox_drivers.local import ChannelFaults, LocalAws

StartTask = Callable[..., str]
TEST_FIRST_READ_DELAY_S = 0.05


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    """A started LocalAws (moto + bubblewrap containers) shared by the whole session."""
    # The agent's first-read delay is AWS's 1 s by default; the suites use a short one so
    # that hundreds of execs stay fast. test_local_agent and the benchmark keep the real one.
    with LocalAws(first_read_delay_s=TEST_FIRST_READ_DELAY_S) as aws:
        # The raw data-channel test client (_ssm_client) signs upgrades with fixed dummy keys;
        # the gateway accepts them too. The API endpoint does not: only aws.credentials.
        aws.ssm_gateway.accept_credentials(*DUMMY[:2])
        yield aws


@pytest.fixture
def ecs(local_aws: LocalAws) -> Any:
    """A boto3 ECS client for the local AWS that does not retry (errors show at once)."""
    return local_aws.client("ecs", max_attempts=1)


@pytest.fixture
def start_task(local_aws: LocalAws, ecs: Any) -> Iterator[StartTask]:
    """Run a task (keep-alive ``command``, extra ``env``); stopped again after the test."""
    started: list[str] = []
    cfg = local_aws.config()

    def start(command: Sequence[str] = ("sleep", "600"), env: dict[str, str] | None = None) -> str:
        override: dict[str, Any] = {"name": cfg.container_name, "command": list(command)}
        if env:
            override["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        response = ecs.run_task(
            cluster=cfg.cluster,
            taskDefinition=cfg.task_definition,
            launchType="FARGATE",
            enableExecuteCommand=True,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(cfg.subnets),
                    "securityGroups": list(cfg.security_groups),
                }
            },
            overrides={"containerOverrides": [override]},
        )
        arn: str = response["tasks"][0]["taskArn"]
        started.append(arn)
        return arn

    yield start
    for arn in started:
        with contextlib.suppress(Exception):
            ecs.stop_task(cluster=cfg.cluster, task=arn, reason="test over")


def _pid_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        # ESRCH when the process is reaped between the open and the read.
        return True
    # A zombie has been killed and only waits for its reaper (pid 1 for orphans).
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


@pytest.fixture
def wait_gone() -> Callable[[int], bool]:
    """``wait_gone(pid)``: True once ``pid`` has ended (polls for up to 3 s)."""

    def wait(pid: int, timeout_s: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not _pid_gone(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    return wait


@pytest.fixture
def agent(local_aws: LocalAws) -> Iterator[LocalAws]:
    """The shared LocalAws with a quick first read; settings and faults restored after."""
    settings, faults = local_aws.agent_settings, local_aws.channel_faults
    local_aws.agent_settings = replace(settings, first_read_delay_s=0.02)
    yield local_aws
    local_aws.agent_settings, local_aws.channel_faults = settings, faults


@pytest.fixture
def open_session(
    agent: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> Iterator[OpenSession]:
    """``open_session(command, faults=..., connect=True, channel=True, env=...)``."""
    clients: list[SsmTestClient] = []
    tasks: dict[tuple[tuple[str, str], ...], str] = {}

    def open_(
        command: str,
        *,
        faults: ChannelFaults | None = None,
        connect: bool = True,
        env: dict[str, str] | None = None,
        **client_args: Any,
    ) -> SsmTestClient:
        key = tuple(sorted((env or {}).items()))
        if key not in tasks:
            tasks[key] = start_task(env=env)
        session = ecs.execute_command(
            cluster=agent.cluster,
            task=tasks[key],
            container="main",
            command=command,
            interactive=True,
        )["session"]
        if faults is not None:
            agent.ssm_gateway.set_faults(faults, session["sessionId"])
        client = SsmTestClient(session, region=agent.region, **client_args)
        clients.append(client)
        return client.connect() if connect else client

    yield open_
    for client in clients:
        client.drop()
