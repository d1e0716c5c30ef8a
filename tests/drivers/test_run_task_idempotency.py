"""RunTask on the local ECS: clientToken as ECS honours it, and spin-ups that survive a
RunTask whose answer is lost after the task was started.

The local ECS must be at least as strict as ECS: a repeated token returns the original
task, a token reused with other parameters is a ConflictException, malformed tokens are
refused, and ListTasks lists desired-RUNNING tasks by default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import botocore.config
import pytest
from _modes import mode_fixtures, spin_up
from botocore.exceptions import ClientError

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._middleware import InterceptedRequest, Reply


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config()


def _request(cfg: EcsFargateConfig, **extra: Any) -> dict[str, Any]:
    return {
        "cluster": cfg.cluster,
        "taskDefinition": cfg.task_definition,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(cfg.subnets),
                "securityGroups": list(cfg.security_groups),
            }
        },
        "overrides": {"containerOverrides": [{"name": "main", "command": ["sleep", "600"]}]},
        **extra,
    }


@pytest.fixture
def ecs(local_aws: LocalAws) -> Iterator[Any]:
    client = local_aws.client("ecs", max_attempts=1)
    yield client


def _stop_all(ecs: Any, cfg: EcsFargateConfig, arns: set[str]) -> None:
    for arn in arns:
        ecs.stop_task(cluster=cfg.cluster, task=arn, reason="test over")


def _token(tag: str) -> str:
    return f"test-{tag}-{time.monotonic_ns()}"


# --- the local ECS honours clientToken ----------------------------------------------------


def test_a_repeated_token_returns_the_original_task(
    ecs: Any, cfg: EcsFargateConfig, local_aws: LocalAws
) -> None:
    token = _token("repeat")
    first = ecs.run_task(**_request(cfg, clientToken=token))["tasks"][0]["taskArn"]
    containers = len(local_aws.containers())
    again = ecs.run_task(**_request(cfg, clientToken=token))["tasks"][0]["taskArn"]
    try:
        assert again == first
        assert len(local_aws.containers()) == containers  # nothing else started
    finally:
        _stop_all(ecs, cfg, {first})


def test_a_token_reused_with_other_parameters_is_a_conflict(
    ecs: Any, cfg: EcsFargateConfig
) -> None:
    token = _token("conflict")
    arn = ecs.run_task(**_request(cfg, clientToken=token))["tasks"][0]["taskArn"]
    try:
        with pytest.raises(ClientError) as info:
            ecs.run_task(**_request(cfg, clientToken=token, startedBy="someone-else"))
        assert info.value.response["Error"]["Code"] == "ConflictException"
        assert info.value.response["resourceIds"] == [arn]
    finally:
        _stop_all(ecs, cfg, {arn})


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        ({"clientToken": "x" * 65}, "clientToken"),
        ({"clientToken": "with space"}, "clientToken"),
        ({"clientToken": "caf\u00e9"}, "clientToken"),
        ({"startedBy": "no spaces please"}, "startedBy"),
        ({"startedBy": "x" * 129}, "startedBy"),
    ],
)
def test_malformed_tokens_are_refused(
    ecs: Any, cfg: EcsFargateConfig, local_aws: LocalAws, extra: dict[str, str], what: str
) -> None:
    containers = len(local_aws.containers())
    with pytest.raises(ClientError) as info:
        ecs.run_task(**_request(cfg, **extra))
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    assert what in info.value.response["Error"]["Message"]
    assert len(local_aws.containers()) == containers


def test_concurrent_requests_with_one_token_start_one_task(
    local_aws: LocalAws, cfg: EcsFargateConfig, ecs: Any
) -> None:
    token = _token("concurrent")
    clients = [local_aws.client("ecs", max_attempts=1) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    arns: list[str] = []

    def run(client: Any) -> None:
        barrier.wait()
        arns.append(client.run_task(**_request(cfg, clientToken=token))["tasks"][0]["taskArn"])

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(arns) == len(clients) and len(set(arns)) == 1
    finally:
        _stop_all(ecs, cfg, set(arns))


def test_list_tasks_lists_desired_running_tasks_by_default(
    ecs: Any, cfg: EcsFargateConfig, local_aws: LocalAws
) -> None:
    by = f"lister-{time.monotonic_ns()}"
    exited = ecs.run_task(
        **_request(
            cfg,
            startedBy=by,
            overrides={"containerOverrides": [{"name": "main", "command": ["true"]}]},
        )
    )["tasks"][0]["taskArn"]
    running = ecs.run_task(**_request(cfg, startedBy=by))["tasks"][0]["taskArn"]
    stopped = ecs.run_task(**_request(cfg, startedBy=by))["tasks"][0]["taskArn"]
    ecs.stop_task(cluster=cfg.cluster, task=stopped, reason="test")
    container = local_aws.container(exited)
    assert container is not None
    deadline = time.monotonic() + 10
    while container.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        listed = ecs.list_tasks(cluster=cfg.cluster, startedBy=by)["taskArns"]
        assert listed == [running]
        gone = ecs.list_tasks(cluster=cfg.cluster, desiredStatus="STOPPED")
        assert stopped in gone["taskArns"] and running not in gone["taskArns"]
        with pytest.raises(ClientError, match="only filter"):
            ecs.list_tasks(cluster=cfg.cluster, startedBy=by, desiredStatus="STOPPED")
    finally:
        _stop_all(ecs, cfg, {running})


# --- spin-ups whose RunTask answer is lost ---------------------------------------------------


class LoseFirstRunTask:
    """A reply hook: the first RunTask starts its task, then its answer is replaced by a
    500 (``mode="5xx"``) or delayed past the client's read timeout (``mode="timeout"``)."""

    def __init__(self, mode: str, delay_s: float = 2.5) -> None:
        self.mode = mode
        self.delay_s = delay_s
        self.hit = 0
        self._lock = threading.Lock()

    def __call__(self, request: InterceptedRequest, reply: Reply) -> Reply | None:
        if request.operation != "RunTask":
            return None
        with self._lock:
            self.hit += 1
            first = self.hit == 1
        if not first:
            return None
        if self.mode == "5xx":
            return Reply.json_error("ServerException", "Service unavailable", 500)
        time.sleep(self.delay_s)  # the client has given up reading by now
        return reply


def _tasks_tagged(ecs: Any, cfg: EcsFargateConfig, task_id: str) -> dict[str, str]:
    """Every task (running or stopped) whose ecs-sandbox:task-id tag is ``task_id``."""
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        arns += ecs.list_tasks(cluster=cfg.cluster, desiredStatus=desired)["taskArns"]
    found: dict[str, str] = {}
    for start in range(0, len(arns), 100):
        described = ecs.describe_tasks(
            cluster=cfg.cluster, tasks=arns[start : start + 100], include=["TAGS"]
        )
        for task in described["tasks"]:
            tags = {t["key"]: t["value"] for t in task.get("tags", [])}
            if tags.get("ecs-sandbox:task-id") == task_id:
                found[task["taskArn"]] = task["lastStatus"]
    return found


mode, anyio_backend = mode_fixtures()


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["5xx", "timeout"])
async def test_a_lost_run_task_answer_starts_one_task_and_leaks_none(
    mode: str, fault: str, cfg: EcsFargateConfig, local_aws: LocalAws, ecs: Any
) -> None:
    driver: Any = SyncDriver(cfg) if mode == "sync" else aio.AsyncDriver(cfg, poll_tick_s=0.2)
    # A short read timeout, so that a delayed answer is a lost one (60 s by default).
    driver.aws._botocore_config = driver.aws._botocore_config.merge(
        botocore.config.Config(read_timeout=1)
    )
    hook = LoseFirstRunTask(fault)
    local_aws.add_reply_hook(hook)
    task_id = f"lost-{fault}-{mode}-{time.monotonic_ns()}"
    try:
        async with spin_up(mode, cfg, task_id, driver=driver) as sandbox:
            assert (await sandbox.exec("echo up")).output == b"up\n"
            arn = sandbox.task_arn
    finally:
        local_aws.remove_reply_hook(hook)
    assert hook.hit >= 1
    tasks = _tasks_tagged(ecs, cfg, task_id)
    assert tasks == {arn: "STOPPED"}  # one task, the sandbox's own, and it is stopped


class SlowRunTask:
    """A reply hook: every RunTask answer comes ``delay_s`` late (the task has started);
    ``answering`` is set while the first one is held back."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.answering = threading.Event()

    def __call__(self, request: InterceptedRequest, reply: Reply) -> Reply | None:
        if request.operation == "RunTask":
            self.answering.set()
            time.sleep(self.delay_s)
        return None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_spin_up_cancelled_during_run_task_stops_the_task_it_started(
    backend: str, cfg: EcsFargateConfig, local_aws: LocalAws, ecs: Any
) -> None:
    task_id = f"cancel-run-{backend}-{time.monotonic_ns()}"
    hook = SlowRunTask(1.5)

    async def main() -> None:
        driver = aio.AsyncDriver(cfg, poll_tick_s=0.2)
        # Cancelled while ECS holds RunTask's answer (the task has started), not after a
        # fixed time, which a loaded machine can reach before RunTask is even sent.
        with anyio.CancelScope() as scope:

            async def cancel_once_run_task_is_held() -> None:
                await anyio.to_thread.run_sync(hook.answering.wait, 60.0)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_run_task_is_held)
                async with aio.EcsFargateSandbox.spin_up(
                    cfg=cfg, task_id=task_id, trial_name="t", run_id="cancel", driver=driver
                ):
                    raise AssertionError("the spin-up cannot have finished")
        assert scope.cancelled_caught and hook.answering.is_set()

    local_aws.add_reply_hook(hook)
    try:
        anyio.run(main, backend=backend)
    finally:
        local_aws.remove_reply_hook(hook)
    tasks = _tasks_tagged(ecs, cfg, task_id)
    assert len(tasks) == 1 and set(tasks.values()) == {"STOPPED"}


def test_ctrl_c_while_run_task_is_answered_stops_the_task_it_started(
    cfg: EcsFargateConfig, local_aws: LocalAws, ecs: Any
) -> None:
    """The sync driver: Ctrl-C lands after ECS started the task, before its answer reaches
    the flow, which never learns the task's ARN; the clean-up finds it by startedBy."""
    task_id = f"ki-run-{time.monotonic_ns()}"
    driver = SyncDriver(cfg)
    fired: list[str] = []

    def ctrl_c(**_: Any) -> None:
        if not fired:
            fired.append("RunTask")
            raise KeyboardInterrupt

    driver.aws.client("ecs").meta.events.register("after-call.ecs.RunTask", ctrl_c)
    with (
        pytest.raises(KeyboardInterrupt),
        EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=task_id, trial_name="t", run_id="ki", driver=driver
        ),
    ):
        raise AssertionError("the spin-up cannot have finished")
    assert fired == ["RunTask"]
    tasks = _tasks_tagged(ecs, cfg, task_id)
    assert len(tasks) == 1 and set(tasks.values()) == {"STOPPED"}
