"""The embedded local ECS against real parts: boto3 over HTTP, bubblewrap, nsenter, tmux."""

from __future__ import annotations

import os
import secrets
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from ecs_sandbox_core._effects import TransportResult
from ecs_sandbox_drivers._process import run_sync
from ecs_sandbox_drivers._transport import PreparedRun
from ecs_sandbox_drivers.local import InterceptedRequest, LocalAws, LocalTransport, Reply

CLI_ERROR = b"\nAn error occurred (%s) when calling the ExecuteCommand operation: "


def describe(local_aws: LocalAws, ecs: Any, arn: str) -> dict[str, Any]:
    tasks = ecs.describe_tasks(cluster=local_aws.cluster, tasks=[arn])["tasks"]
    assert len(tasks) == 1
    task: dict[str, Any] = tasks[0]
    return task


def run(local_aws: LocalAws, arn: str, command: str, timeout_s: float = 10) -> TransportResult:
    transport = LocalTransport(local_aws)
    prepared = transport.prepare(task_arn=arn, container="main", command=command)
    if isinstance(prepared, TransportResult):
        return prepared
    code, out, err, timed_out = run_sync(prepared, timeout_s)
    return transport.finish(prepared, returncode=code, stdout=out, stderr=err, timed_out=timed_out)


# --- task lifecycle over the API -------------------------------------------------------------


def test_run_task_starts_a_container_that_describe_tasks_reports(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    container = local_aws.container(arn)
    assert container is not None and container.running
    assert container.init_pid is not None and Path(f"/proc/{container.init_pid}").exists()
    task = describe(local_aws, ecs, arn)
    assert task["lastStatus"] == "RUNNING"
    (main,) = task["containers"]
    assert main["name"] == "main"
    assert main["runtimeId"] == container.runtime_id
    assert main["runtimeId"].startswith(arn.rsplit("/", 1)[-1])
    assert main["managedAgents"] == [{"name": "ExecuteCommandAgent", "lastStatus": "RUNNING"}]
    assert "exitCode" not in main


def test_run_task_answers_provisioning_like_ecs(local_aws: LocalAws, ecs: Any) -> None:
    cfg = local_aws.config()
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
    )
    (task,) = response["tasks"]
    try:
        assert task["lastStatus"] == "PROVISIONING"
        # No override: the task definition's own command keeps the container alive.
        container = local_aws.container(task["taskArn"])
        assert container is not None and container.spec.command == ("sleep", "infinity")
        assert container.running
    finally:
        ecs.stop_task(cluster=cfg.cluster, task=task["taskArn"])


def test_stop_task_kills_the_container_and_reports_stopped(
    local_aws: LocalAws,
    ecs: Any,
    start_task: Callable[..., str],
    wait_gone: Callable[[int], bool],
) -> None:
    arn = start_task()
    started = run(local_aws, arn, "sh -c 'sleep 300 >/dev/null 2>&1 & echo $$'")
    assert started.returncode == 0
    container = local_aws.container(arn)
    assert container is not None and container.init_pid is not None
    init_pid = container.init_pid

    ecs.stop_task(cluster=local_aws.cluster, task=arn, reason="enough")

    assert wait_gone(init_pid)
    assert not container.running
    task = describe(local_aws, ecs, arn)
    assert task["lastStatus"] == "STOPPED"
    assert task["desiredStatus"] == "STOPPED"
    assert task["stopCode"] == "UserInitiated"
    assert task["stoppedReason"] == "enough"
    assert task["containers"][0]["exitCode"] == 137  # killed by SIGKILL


def test_container_whose_keepalive_exits_shows_stopped_with_its_exit_code(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    arn = start_task(command=["sh", "-c", "sleep 0.2; exit 5"])
    deadline = time.monotonic() + 5
    while (task := describe(local_aws, ecs, arn))["lastStatus"] != "STOPPED":
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["containers"][0]["exitCode"] == 5
    result = run(local_aws, arn, "true")
    assert result.returncode == 255
    assert result.stderr.startswith(CLI_ERROR % b"TargetNotConnectedException")


def test_describe_tasks_lists_unknown_tasks_as_missing(local_aws: LocalAws, ecs: Any) -> None:
    response = ecs.describe_tasks(cluster=local_aws.cluster, tasks=["no-such-task"])
    assert response["tasks"] == []
    assert response["failures"] == [{"arn": "no-such-task", "reason": "MISSING"}]


def test_start_delay_keeps_the_task_pending_and_unreachable(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    local_aws.start_delay_s = 0.6
    try:
        arn = start_task()
        task = describe(local_aws, ecs, arn)
        assert task["lastStatus"] == "PENDING"
        assert "runtimeId" not in task["containers"][0]
        early = run(local_aws, arn, "true")
        assert early.stderr.startswith(CLI_ERROR % b"TargetNotConnectedException")
        time.sleep(0.7)
        assert describe(local_aws, ecs, arn)["lastStatus"] == "RUNNING"
        assert run(local_aws, arn, "echo up").stdout == b"up\n"
    finally:
        local_aws.start_delay_s = 0.0


# --- ExecuteCommand over the API ---------------------------------------------------------------


def test_execute_command_answers_with_a_session(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    response = ecs.execute_command(
        cluster=local_aws.cluster, task=arn, container="main", interactive=True, command="true"
    )
    assert response["taskArn"] == arn
    assert response["containerName"] == "main"
    assert response["clusterArn"].endswith(f"cluster/{local_aws.cluster}")
    assert response["interactive"] is True
    session = response["session"]
    assert session["sessionId"].startswith("ecs-execute-command-")
    # The local SSM gateway's data channel (see test_local_agent.py), and still the record
    # the stand-in plugin reads.
    assert session["streamUrl"] == local_aws.ssm_gateway.stream_url(session["sessionId"])
    assert session["streamUrl"].startswith("ws://127.0.0.1:")
    assert session["tokenValue"]
    assert (local_aws.root / "sessions" / f"{session['sessionId']}.json").is_file()


def test_execute_command_refuses_a_command_it_cannot_split(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ecs.execute_command(
            cluster=local_aws.cluster,
            task=start_task(),
            container="main",
            interactive=True,
            command="echo 'unterminated",
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


@pytest.mark.parametrize(
    ("task", "interactive", "container"),
    [("no-such-task", True, "main"), (None, False, "main"), (None, True, "sidecar")],
)
def test_execute_command_refusals_are_ecs_json_errors(
    local_aws: LocalAws,
    ecs: Any,
    start_task: Callable[..., str],
    task: str | None,
    interactive: bool,
    container: str,
) -> None:
    target = task or start_task()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ecs.execute_command(
            cluster=local_aws.cluster,
            task=target,
            container=container,
            interactive=interactive,
            command="true",
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# --- LocalTransport ------------------------------------------------------------------------------


def test_local_transport_merges_stderr_and_reports_the_status(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    result = run(local_aws, arn, "sh -lc 'echo hi; echo oops >&2; exit 3'")
    assert result == TransportResult(stdout=b"hi\noops\n", stderr=b"", returncode=3)


def test_local_transport_splits_like_ecs_without_a_shell(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    result = run(local_aws, arn, "printf '%s|' a 'b c' '$HOME' ';'")
    assert result.stdout == b"a|b c|$HOME|;|"
    assert result.returncode == 0


def test_local_transport_sees_the_container_environment(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task(env={"TEST_DIR": "/tests/here"})
    result = run(local_aws, arn, "sh -c 'echo $HOME $TEST_DIR; hostname; pwd; id -u'")
    assert result.stdout == b"/root /tests/here\nsandbox\n/\n0\n", result


def test_local_transport_refuses_unknown_tasks_in_cli_form(local_aws: LocalAws) -> None:
    result = LocalTransport(local_aws).prepare(task_arn="nope", container="main", command="true")
    assert isinstance(result, TransportResult)
    assert result.returncode == 255
    assert result.stdout == b""
    assert result.stderr.startswith(CLI_ERROR % b"InvalidParameterException")


def test_local_transport_makes_no_api_call(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    before = sum(local_aws.calls.values())
    assert run(local_aws, arn, "true").returncode == 0
    assert sum(local_aws.calls.values()) == before


def test_nsenter_failure_after_the_container_died_is_not_connected(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    transport = LocalTransport(local_aws)
    prepared = transport.prepare(task_arn=arn, container="main", command="echo never")
    assert isinstance(prepared, PreparedRun)
    ecs.stop_task(cluster=local_aws.cluster, task=arn)
    code, out, err, _ = run_sync(prepared, 10)
    assert code != 0 and err.startswith(b"nsenter:")
    result = transport.finish(prepared, returncode=code, stdout=out, stderr=err, timed_out=False)
    assert result.returncode == 255
    assert result.stderr.startswith(CLI_ERROR % b"TargetNotConnectedException")


def test_a_timed_out_exec_leaves_nothing_running_in_the_container(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    result = run(local_aws, arn, "sh -c 'sleep 301 & sleep 302'", timeout_s=0.5)
    assert result.timed_out and result.returncode is None
    deadline = time.monotonic() + 3
    while b"sleep 30" in (listing := run(local_aws, arn, "ps -eo args").stdout):
        assert time.monotonic() < deadline, listing
        time.sleep(0.05)


def test_large_output_arrives_whole(local_aws: LocalAws, start_task: Callable[..., str]) -> None:
    arn = start_task()
    result = run(local_aws, arn, "sh -c 'head -c 12000000 /dev/urandom | base64 -w 0'")
    assert result.returncode == 0
    assert len(result.stdout) == 16_000_000


# --- isolation ---------------------------------------------------------------------------


def test_tasks_cannot_see_each_others_files_and_the_host_is_untouched(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    a, b = start_task(), start_task()
    name = f"secret-{secrets.token_hex(6)}"
    for directory in ("/tmp", "/root", "/app", "/tests", "/logs", "/var/tmp"):
        written = run(
            local_aws, a, f"sh -c 'echo a > {directory}/{name} && cat {directory}/{name}'"
        )
        assert written.stdout == b"a\n", directory
        assert run(local_aws, b, f"test -e {directory}/{name}").returncode == 1, directory
        assert not Path(directory, name).exists(), directory
    inside = local_aws.root / "tasks" / a.rsplit("/", 1)[-1] / "fs" / "tmp" / name
    assert inside.read_text() == "a\n"


def test_the_host_system_is_read_only_inside(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    result = run(local_aws, arn, "sh -c 'touch /usr/ecs-sandbox-probe; echo rc=$?'")
    assert b"Read-only file system" in result.stdout
    assert result.stdout.endswith(b"rc=1\n")
    assert not Path("/usr/ecs-sandbox-probe").exists()


def test_processes_of_other_tasks_are_invisible(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    a, b = start_task(["sleep", "601"]), start_task(["sleep", "602"])
    listing = run(local_aws, a, "ps -eo args").stdout
    assert b"sleep 601" in listing
    assert b"sleep 602" not in listing
    assert b"pytest" not in listing
    # pid 1 is bwrap's init (its argv ends in the command), pid 2 the keep-alive itself.
    assert run(local_aws, b, "ps -eo args").stdout.splitlines().count(b"sleep 602") == 1


def test_tmux_server_survives_between_execs_in_its_task_only(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    a, b = start_task(), start_task()
    started = run(local_aws, a, "tmux new-session -d -s work -x 80 -y 24 'sleep 1000'")
    assert started.returncode == 0, started
    later = run(local_aws, a, "tmux list-sessions -F '#{session_name}'")
    assert later.stdout == b"work\n"
    assert run(local_aws, b, "tmux has-session -t work").returncode != 0


def test_the_sandbox_reaches_the_local_aws_over_the_network(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    s3 = local_aws.client("s3")
    s3.put_object(Bucket=local_aws.bucket, Key="probe.txt", Body=b"from s3\n")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": local_aws.bucket, "Key": "probe.txt"}, ExpiresIn=60
    )
    script = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode(), end='')"
    )
    result = run(local_aws, arn, f"python3 -c {shlex.quote(script)}")
    assert result.stdout == b"from s3\n", result


# --- the middleware ----------------------------------------------------------------------


def test_hooks_answer_or_alter_requests_and_calls_are_counted(
    local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    seen: list[str] = []

    def throttle_describe(request: InterceptedRequest) -> Reply | None:
        seen.append(request.operation)
        if request.operation == "DescribeTasks":
            return Reply.json_error("ThrottlingException", "Rate exceeded")
        if request.operation == "StopTask" and request.params is not None:
            request.params["reason"] = "changed by a hook"
        return None

    before = local_aws.calls.copy()
    local_aws.add_hook(throttle_describe)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            ecs.describe_tasks(cluster=local_aws.cluster, tasks=[arn])
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        assert caught.value.response["Error"]["Message"] == "Rate exceeded"
        ecs.stop_task(cluster=local_aws.cluster, task=arn, reason="original")
    finally:
        local_aws.remove_hook(throttle_describe)
    assert seen == ["DescribeTasks", "StopTask"]
    assert describe(local_aws, ecs, arn)["stoppedReason"] == "changed by a hook"
    delta = local_aws.calls - before
    assert delta == {"DescribeTasks": 2, "StopTask": 1}


def test_config_uses_the_local_resources(local_aws: LocalAws) -> None:
    cfg = local_aws.config(cpu="256", memory="512")
    assert cfg.endpoint_url == local_aws.endpoint_url
    assert cfg.region == "us-east-1"
    assert cfg.cluster == local_aws.cluster
    assert cfg.container_name == "main"
    assert cfg.cpu == "256"
    ec2 = local_aws.client("ec2")
    assert ec2.describe_subnets(SubnetIds=list(cfg.subnets))["Subnets"]
    assert ec2.describe_security_groups(GroupIds=list(cfg.security_groups))["SecurityGroups"]
    s3 = local_aws.client("s3")
    assert s3.head_bucket(Bucket=cfg.s3_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    definition = local_aws.client("ecs").describe_task_definition(
        taskDefinition=cfg.task_definition
    )["taskDefinition"]
    assert definition["containerDefinitions"][0]["name"] == "main"


def test_aws_env_is_self_contained(local_aws: LocalAws) -> None:
    env = local_aws.aws_env()
    assert env["AWS_ACCESS_KEY_ID"] == local_aws.credentials[0] != "testing"
    assert env["AWS_ENDPOINT_URL"] == local_aws.endpoint_url
    assert env["PATH"].split(os.pathsep)[0] == str(local_aws.plugin_bin_dir)
    assert (local_aws.plugin_bin_dir / "session-manager-plugin").stat().st_mode & 0o111


def test_close_kills_containers_and_removes_the_root(
    tmp_path: Path, wait_gone: Callable[[int], bool]
) -> None:
    aws = LocalAws(root_dir=tmp_path).start()
    try:
        ecs = aws.client("ecs", max_attempts=1)
        cfg = aws.config()
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
        )
        container = aws.container(response["tasks"][0]["taskArn"])
        assert container is not None and container.init_pid is not None
        root = aws.root
        assert root.parent == tmp_path
    finally:
        aws.close()
    assert wait_gone(container.init_pid)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []
