"""SIGTERM and SIGHUP tear the sandbox down like Ctrl-C; -vv never prints credentials."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _cli_proc import cli_env, console_script, popen_cli, processes_with, run_cli

from ecs_sandbox_drivers.local import LocalAws


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_tears_the_sandbox_down_then_exits_128_plus_it(
    tmp_path: Path, signum: int
) -> None:
    marker = str(4000 + signum)  # a sleep whose argument finds its process
    with popen_cli(
        ["--local", "-v", "exec", "--", f"sh -c 'echo started; exec sleep {marker}'"]
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        # The one-shot local ECS logs its root (every task's files) as it starts (-v).
        root = None
        while root is None:
            line = proc.stderr.readline()
            assert line, "the CLI ended early"
            if "local AWS serving" in line:
                root = Path(line.rsplit("(root ", 1)[1].rstrip(")\n"))
        # The last newline of streamed output is held back while the command runs.
        assert proc.stdout.read(len("started")) == "started"
        assert root.is_dir()
        assert processes_with(f"sleep {marker}")
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum
        assert "interrupted" in proc.stderr.read()
    # Torn down: the container and its command are gone, and so is the local state.
    assert not root.exists()
    deadline = time.monotonic() + 10
    while processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(f"sleep {marker}")


def test_the_run_id_is_printed_before_a_sandbox_starts_on_aws(local_aws: LocalAws) -> None:
    # A non-local configuration (a local endpoint stands in for AWS): gc --run-id can then
    # find what a killed run leaves.
    done = run_cli(["exec", "--", "true"], env=_aws_env(local_aws, "testing", "testing", "testing"))
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("ecs-sandbox: run id cli-")
    assert "ecs-sandbox gc --run-id cli-" in first


FAKE_KEY = "AKIAFAKEE3B0C44298FC"
FAKE_SECRET = "fakeSecret/e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
FAKE_TOKEN = "FakeSessionToken/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"


def _aws_env(
    local: LocalAws, key: str = FAKE_KEY, secret: str = FAKE_SECRET, token: str = FAKE_TOKEN
) -> dict[str, str]:
    cfg = local.config()
    local.accept_credentials(key, secret)  # the endpoint checks signatures, as AWS does
    return cli_env(
        ECS_SANDBOX_REGION=cfg.region,
        ECS_SANDBOX_CLUSTER=cfg.cluster,
        ECS_SANDBOX_TASK_DEFINITION=cfg.task_definition,
        ECS_SANDBOX_CONTAINER_NAME=cfg.container_name,
        ECS_SANDBOX_SUBNETS=",".join(cfg.subnets),
        ECS_SANDBOX_SECURITY_GROUPS=",".join(cfg.security_groups),
        ECS_SANDBOX_S3_BUCKET=cfg.s3_bucket,
        ECS_SANDBOX_ENDPOINT_URL=local.endpoint_url,
        ECS_SANDBOX_EXEC_TRANSPORT="ssm",
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_SESSION_TOKEN=token,
        AWS_DEFAULT_REGION=cfg.region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


def test_credentials_never_appear_at_the_highest_verbosity(local_aws: LocalAws) -> None:
    # gc signs a dozen ECS and S3 requests (the local endpoint takes any credentials);
    # botocore's DEBUG records would dump them, headers and session token included.
    done = run_cli(["-vv", "gc", "--run-id", "r1", "--dry-run"], env=_aws_env(local_aws))
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "INFO botocore" in output  # botocore records are shown, capped at INFO
    for secret in (FAKE_KEY, FAKE_SECRET, FAKE_TOKEN, FAKE_TOKEN[:40]):
        assert secret not in output


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other side was closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_progress_shows_phases_with_elapsed_time_on_a_terminal_only() -> None:
    main, other = pty.openpty()
    with subprocess.Popen(
        [console_script(), "--local", "exec", "--", "echo", "hi"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=other,
    ) as proc:
        os.close(other)
        shown = _read_all(main).decode()
        assert proc.stdout is not None
        assert proc.stdout.read() == b"hi\n"
    os.close(main)
    assert proc.returncode == 0
    phases = re.findall(r"\[\s*\d+\.\d+s\] (.*)", shown)
    assert "starting the embedded local ECS" in phases[0]
    assert any("starting a sandbox" in p for p in phases)
    assert any("tearing the sandbox down" in p for p in phases)
    # Not a terminal: quiet.
    done = run_cli(["--local", "exec", "--", "echo", "hi"])
    assert done.stderr == ""


def test_a_session_token_never_appears_while_sandboxes_run_and_copy_at_vv(
    local_aws: LocalAws, tmp_path: Path
) -> None:
    # The local SSM gateway checks the key pair only, so a unique session token goes
    # through spin-up, ECS Exec, staging and presigned transfers, and tear-down.
    env = _aws_env(local_aws, "testing", "testing", FAKE_TOKEN)
    source = tmp_path / "data.txt"
    source.write_text("payload\n")
    done = run_cli(
        ["-vv", "cp", str(source), "sandbox:/app", "--then", "cat /app/data.txt"], env=env
    )
    assert done.returncode == 0, done.stderr
    assert "payload" in done.stdout
    assert " DEBUG " in done.stderr  # our own debug records are on
    for secret in (FAKE_TOKEN, FAKE_TOKEN[:40], FAKE_TOKEN.replace("/", "%2F")[:60]):
        assert secret not in done.stdout + done.stderr
