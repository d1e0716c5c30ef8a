"""The AWS CLI transport with the real ``aws`` and the stand-in plugin, and the process runner."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from ecs_sandbox_core._effects import TransportResult
from ecs_sandbox_core._errors import AwsCliMissingError
from ecs_sandbox_drivers._process import run_async, run_sync
from ecs_sandbox_drivers._transport import AwsCliTransport, ExecTransport, PreparedRun
from ecs_sandbox_drivers.local import LocalAws, LocalTransport

AWS = str(Path(sys.executable).with_name("aws"))
INSTALLED = (
    b"\nThe Session Manager plugin was installed successfully. "
    b"Use the AWS CLI to start a session.\n\n"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def cli(local_aws: LocalAws) -> AwsCliTransport:
    return local_aws.cli_transport(aws_executable=AWS)


def run_cli(transport: AwsCliTransport, arn: str, command: str) -> TransportResult:
    prepared = transport.prepare(task_arn=arn, container="main", command=command)
    code, out, err, timed_out = run_sync(prepared, 60)
    return transport.finish(prepared, returncode=code, stdout=out, stderr=err, timed_out=timed_out)


def shell(script: str) -> PreparedRun:
    return PreparedRun(argv=["sh", "-c", script], env=None, pty=False)


# --- AwsCliTransport --------------------------------------------------------------------------


def test_prepare_builds_the_execute_command_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    transport = AwsCliTransport(
        cluster="c1",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_executable=AWS,
        env={"EXTRA": "1"},
    )
    prepared = transport.prepare(task_arn="arn:task/c1/abc", container="main", command="echo 'a b'")
    assert prepared.argv == [
        AWS,
        "--region",
        "eu-west-1",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "ecs",
        "execute-command",
        "--cluster",
        "c1",
        "--task",
        "arn:task/c1/abc",
        "--container",
        "main",
        "--interactive",
        "--command",
        "echo 'a b'",
    ]
    assert prepared.pty is True
    assert prepared.env is not None
    assert prepared.env["AWS_RETRY_MODE"] == "standard"
    assert prepared.env["AWS_MAX_ATTEMPTS"] == "3"  # the caller's own setting wins
    assert prepared.env["EXTRA"] == "1"
    assert "EXTRA" not in os.environ
    assert isinstance(transport, ExecTransport)


def test_check_available_names_what_is_missing(local_aws: LocalAws) -> None:
    cli(local_aws).check_available()
    no_aws = AwsCliTransport(cluster="c", aws_executable="no-such-aws-cli", env=local_aws.aws_env())
    with pytest.raises(AwsCliMissingError, match="AWS CLI") as caught:
        no_aws.check_available()
    assert "aws" in caught.value.remedy.lower()
    no_plugin = AwsCliTransport(cluster="c", aws_executable=AWS, env={"PATH": "/nonexistent"})
    with pytest.raises(AwsCliMissingError, match="session-manager-plugin") as caught:
        no_plugin.check_available()
    assert "Session Manager plugin" in caught.value.remedy


def test_real_cli_runs_the_command_through_the_stand_in_plugin(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    result = run_cli(cli(local_aws), arn, "sh -c 'echo hi; echo err >&2; exit 7'")
    assert result.returncode == 0  # the plugin exits 0 whatever the command did
    assert result.stderr == b""
    assert result.pty is True
    assert result.stdout.startswith(INSTALLED + b"\nStarting session with SessionId: ecs-execute")
    _, _, rest = result.stdout.partition(b"\nStarting session with SessionId: ")
    session_id, _, body = rest.partition(b"\n")
    assert body == b"hi\r\nerr\r\n\n\nExiting session with sessionId: " + session_id + b".\n\n"
    assert local_aws.calls["ExecuteCommand"] >= 1


def test_real_cli_reports_an_unknown_task_in_its_error_form(local_aws: LocalAws) -> None:
    result = run_cli(cli(local_aws), "no-such-task", "true")
    assert result.returncode == 255
    assert result.stdout == INSTALLED  # the presence check runs before the API call
    assert result.stderr == (
        b"\nAn error occurred (InvalidParameterException) when calling the ExecuteCommand "
        b"operation: The specified task was not found.\n"
    )


def test_real_cli_without_the_plugin_fails_before_any_call(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    env = local_aws.aws_env()
    env["PATH"] = str(Path(AWS).parent) + os.pathsep + "/usr/bin:/bin"
    transport = AwsCliTransport(
        cluster=local_aws.cluster, endpoint_url=local_aws.endpoint_url, aws_executable=AWS, env=env
    )
    before = local_aws.calls["ExecuteCommand"]
    result = run_cli(transport, arn, "true")
    assert result.returncode == 255
    assert b"SessionManagerPlugin is not found" in result.stderr
    assert local_aws.calls["ExecuteCommand"] == before


def test_cli_and_local_transport_run_the_same_command_alike(
    local_aws: LocalAws, start_task: Callable[..., str]
) -> None:
    arn = start_task()
    run_cli(cli(local_aws), arn, "sh -c 'echo from-cli > /tmp/shared'")
    local = LocalTransport(local_aws)
    prepared = local.prepare(task_arn=arn, container="main", command="cat /tmp/shared")
    assert isinstance(prepared, PreparedRun)
    assert run_sync(prepared, 10)[:2] == (0, b"from-cli\n")


@pytest.mark.anyio
async def test_real_cli_under_anyio(
    local_aws: LocalAws, start_task: Callable[..., str], anyio_backend: str
) -> None:
    arn = start_task()
    transport = cli(local_aws)
    prepared = transport.prepare(task_arn=arn, container="main", command=f"echo {anyio_backend}")
    code, out, err, timed_out = await run_async(prepared, 60)
    assert (code, err, timed_out) == (0, b"", False)
    assert f"\n{anyio_backend}\r\n".encode() in out


# --- the process runner ------------------------------------------------------------------------

SPAWN_AND_HANG = "sleep 300 & echo $!; sleep 300"


def _child_pid(stdout: bytes) -> int:
    return int(stdout.split()[0])


def test_run_sync_returns_status_and_both_streams() -> None:
    assert run_sync(shell("echo out; echo err >&2; exit 4"), 10) == (4, b"out\n", b"err\n", False)


def test_run_sync_timeout_kills_the_whole_group(wait_gone: Callable[[int], bool]) -> None:
    started = time.monotonic()
    code, out, _err, timed_out = run_sync(shell(SPAWN_AND_HANG), 0.5)
    assert time.monotonic() - started < 3
    assert (code, timed_out) == (None, True)
    assert wait_gone(_child_pid(out))


def test_run_sync_large_output_on_both_pipes_does_not_deadlock() -> None:
    script = "head -c 12000000 /dev/zero; head -c 11000000 /dev/zero >&2"
    code, out, err, timed_out = run_sync(shell(script), 30)
    assert (code, len(out), len(err), timed_out) == (0, 12_000_000, 11_000_000, False)


def test_run_sync_does_not_wait_for_a_straggler_holding_the_pipe(
    wait_gone: Callable[[int], bool],
) -> None:
    started = time.monotonic()
    code, out, _err, timed_out = run_sync(shell("sleep 300 & echo $!"), 30)
    assert time.monotonic() - started < 3
    assert (code, timed_out) == (0, False)
    assert wait_gone(_child_pid(out))


def test_run_sync_kills_the_group_when_interrupted(
    tmp_path: Path, wait_gone: Callable[[int], bool]
) -> None:
    pid_file = tmp_path / "pid"
    prepared = shell(f"echo $$ > {pid_file}; exec sleep 300")

    def interrupt_soon() -> None:
        time.sleep(0.3)
        # A real SIGINT, as Ctrl-C sends: _thread.interrupt_main() only sets a flag, which a
        # blocking poll() would not see until its 30 s timeout.
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_sync(prepared, 30)
    assert wait_gone(int(pid_file.read_text()))


@pytest.mark.anyio
async def test_run_async_returns_status_and_both_streams(anyio_backend: str) -> None:
    outcome = await run_async(shell("echo out; echo err >&2; exit 4"), 10)
    assert outcome == (4, b"out\n", b"err\n", False)


@pytest.mark.anyio
async def test_run_async_timeout_kills_the_whole_group(
    anyio_backend: str, wait_gone: Callable[[int], bool]
) -> None:
    started = time.monotonic()
    code, out, _err, timed_out = await run_async(shell(SPAWN_AND_HANG), 0.5)
    assert time.monotonic() - started < 3
    assert (code, timed_out) == (None, True)
    assert wait_gone(_child_pid(out))


@pytest.mark.anyio
async def test_run_async_cancellation_kills_the_group_and_propagates(
    anyio_backend: str, tmp_path: Path, wait_gone: Callable[[int], bool]
) -> None:
    pid_file = tmp_path / "pids"
    prepared = shell(f"sleep 300 & echo $! > {pid_file}; echo $$ >> {pid_file}; wait")
    reached_end = False
    with anyio.move_on_after(0.5) as scope:
        await run_async(prepared, 30)
        reached_end = True
    assert scope.cancelled_caught and not reached_end
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2
    assert all(wait_gone(pid) for pid in pids)


@pytest.mark.anyio
async def test_run_async_large_output_does_not_deadlock(anyio_backend: str) -> None:
    script = "head -c 12000000 /dev/zero; head -c 11000000 /dev/zero >&2"
    code, out, err, timed_out = await run_async(shell(script), 30)
    assert (code, len(out), len(err), timed_out) == (0, 12_000_000, 11_000_000, False)


@pytest.mark.anyio
async def test_run_async_local_transport(
    local_aws: LocalAws, start_task: Callable[..., str], anyio_backend: str
) -> None:
    arn = start_task()
    transport = LocalTransport(local_aws)
    prepared = transport.prepare(task_arn=arn, container="main", command="sh -c 'hostname; exit 2'")
    assert isinstance(prepared, PreparedRun)
    code, out, err, timed_out = await run_async(prepared, 10)
    result = transport.finish(
        prepared, returncode=code, stdout=out, stderr=err, timed_out=timed_out
    )
    assert result == TransportResult(stdout=b"sandbox\n", returncode=2)
