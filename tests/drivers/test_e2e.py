"""End to end on the embedded local ECS: one suite, run with the sync API, asyncio and trio.

The sync API runs in worker threads behind a small async facade, so the same scenario
code drives all three; what is checked is what a harness sees, plus what is left in the
local AWS and on the local sandboxes afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from _modes import mode_fixtures

from ecs_sandbox_core import (
    DownloadTooLargeError,
    EcsFargateConfig,
    ExecOutputTooLargeError,
    UsageError,
)
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers.local import LocalAws


class _Threaded:
    """Makes a sync object's methods awaitable by running them in a worker thread."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            value = await anyio.to_thread.run_sync(functools.partial(attr, *args, **kwargs))
            if isinstance(value, (aio.EcsFargateTmuxSession, EcsFargateSandbox)) or type(
                value
            ).__name__ in {"EcsFargateTmuxSession", "_Container"}:
                return _Threaded(value)
            return value

        return call


class Api:
    """Spins up sandboxes through the API under test."""

    def __init__(self, mode: str, cfg: EcsFargateConfig) -> None:
        self.mode = mode
        self.cfg = cfg
        self.driver: Any = SyncDriver(cfg) if mode == "sync" else aio.AsyncDriver(cfg)

    @asynccontextmanager
    async def spin_up(self, task_id: str, **kwargs: Any) -> AsyncIterator[Any]:
        args = {"cfg": self.cfg, "task_id": task_id, "trial_name": "t", "run_id": "e2e"}
        args.update(kwargs)
        if self.mode != "sync":
            async with aio.EcsFargateSandbox.spin_up(driver=self.driver, **args) as sandbox:
                yield sandbox
            return
        cm = EcsFargateSandbox.spin_up(driver=self.driver, **args)
        sandbox = await anyio.to_thread.run_sync(cm.__enter__)
        try:
            yield _Threaded(sandbox)
        except BaseException as exc:
            await anyio.to_thread.run_sync(cm.__exit__, type(exc), exc, exc.__traceback__)
            raise
        else:
            await anyio.to_thread.run_sync(cm.__exit__, None, None, None)


mode, anyio_backend = mode_fixtures()


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config(image_template="ecs-sandbox/e2e:{task_id}")


@pytest.fixture
def api(mode: str, cfg: EcsFargateConfig) -> Api:
    return Api(mode, cfg)


def _task_status(local_aws: LocalAws, cfg: EcsFargateConfig, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_tasks(cluster=cfg.cluster, tasks=[arn])["tasks"][0]["lastStatus"])


def _staged_objects(local_aws: LocalAws, cfg: EcsFargateConfig) -> int:
    s3 = local_aws.client("s3", max_attempts=1)
    listed = s3.list_objects_v2(Bucket=cfg.s3_bucket, Prefix=cfg.s3_prefix + "/")
    return int(listed.get("KeyCount", 0))


def _register_calls(local_aws: LocalAws) -> int:
    return sum(n for op, n in local_aws.calls.items() if "RegisterTaskDefinition" in op)


def _definition_status(local_aws: LocalAws, arn: str) -> str:
    ecs = local_aws.client("ecs", max_attempts=1)
    return str(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"])


@pytest.mark.anyio
async def test_lifecycle_and_exec(api: Api, local_aws: LocalAws, cfg: EcsFargateConfig) -> None:
    async with api.spin_up(f"life-{api.mode}") as sandbox:
        arn = sandbox.task_arn
        definition = sandbox._flows.handle.task_definition_arn
        assert _task_status(local_aws, cfg, arn) == "RUNNING"
        assert definition is not None and _definition_status(local_aws, definition) == "ACTIVE"

        ok = await sandbox.exec("echo out; echo err >&2; exit 7")
        assert ok.exit_code == 7
        assert ok.output == b"out\nerr\n"

        env = await sandbox.exec(
            'printf %s "$GREETING"; pwd', env={"GREETING": "a 'b' $(c) `d` é"}, cwd="/tmp"
        )
        assert env.exit_code == 0
        assert env.output == "a 'b' $(c) `d` é/tmp\n".encode()

        argv = await sandbox.exec(["printf", "%s|", "two words", "$HOME", ";ls"])
        assert argv.output == b"two words|$HOME|;ls|"

        blob = bytes(range(256)) * 3 + b"\n\n"
        binary = await sandbox.exec(
            ["python3", "-c", f"import sys; sys.stdout.buffer.write({blob!r})"], binary=True
        )
        assert binary.exit_code == 0
        assert binary.output == blob

        assert os.environ.get("TEST_DIR") is None  # the harness's environment is untouched
        test_dir = await sandbox.exec('printf %s "$TEST_DIR"')
        assert test_dir.output == b"/tests"

    assert _task_status(local_aws, cfg, arn) == "STOPPED"
    assert _definition_status(local_aws, definition) == "INACTIVE"
    container = local_aws.container(arn)
    assert container is None or not container.alive()


@pytest.mark.anyio
async def test_tmux_session(api: Api) -> None:
    async with api.spin_up(f"tmux-{api.mode}") as sandbox:
        session = await sandbox.create_session("agent")
        assert await session.is_session_alive()
        first = await session.get_incremental_output()
        assert first.startswith("Current Terminal Screen:\n")

        await session.send_keys(["echo first-$((40 + 2))", "Enter"], block=True, max_timeout_sec=20)
        out = await session.get_incremental_output()
        assert out.startswith("New Terminal Output:\n")
        assert "first-42" in out
        again = await session.get_incremental_output()
        assert "first-42" not in again  # nothing is delivered twice

        step = await session.step(["seq 1 300\n"], block=True, max_timeout_sec=20)
        numbers = [line for line in step.splitlines() if line.strip().isdigit()]
        assert numbers == [str(i) for i in range(1, 301)]

        # Large input: pasted whole and in order, even between other keys.
        lines = [f"{i:05d} {'x' * 60}" for i in range(2000)]
        text = "\n".join(lines) + "\n"
        await session.send_keys(["cat > /tmp/pasted.txt", "Enter"], block=False)
        await session.send_keys([text, "C-d"], block=False, min_timeout_sec=0.5)
        await session.send_keys(["sync", "Enter"], block=True, max_timeout_sec=20)
        pasted = await sandbox.exec(["cat", "/tmp/pasted.txt"], binary=True)
        assert pasted.output.decode() == text

        screen = await session.capture_pane()
        assert "sync" in screen


@pytest.mark.anyio
async def test_copy_in_and_out(
    api: Api, tmp_path: Path, local_aws: LocalAws, cfg: EcsFargateConfig
) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    files = {
        "top.bin": rng.randbytes(70_000),
        "a/mid.txt": b"no trailing newline",
        "a/b/deep.bin": b"\x00\xff\r\n" * 1000,
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    (src / "a" / "b" / "deep.bin").chmod(0o751)

    async with api.spin_up(f"copy-{api.mode}") as sandbox:
        await sandbox.copy_to_sandbox(paths=[src], container_dir="/app/in")
        listing = await sandbox.exec(
            "cd /app/in && find . -type f | sort && sha256sum a/b/deep.bin"
        )
        assert "./a/b/deep.bin" in listing.output.decode()
        assert hashlib.sha256(files["a/b/deep.bin"]).hexdigest() in listing.output.decode()

        await sandbox.copy_to_sandbox(
            paths=src / "a" / "mid.txt", container_dir="/app", container_filename="renamed.txt"
        )
        renamed = await sandbox.exec(["cat", "/app/renamed.txt"], binary=True)
        assert renamed.output == files["a/mid.txt"]

        out = tmp_path / "out"
        await sandbox.copy_from_sandbox("/app/in", out)
        for name, data in files.items():
            assert (out / "in" / name).read_bytes() == data
        assert (out / "in" / "a" / "b" / "deep.bin").stat().st_mode & 0o777 == 0o751
    assert _staged_objects(local_aws, cfg) == 0


def _puts(local_aws: LocalAws) -> int:
    return sum(n for op, n in local_aws.calls.items() if "PutObject" in op)


@pytest.mark.anyio
async def test_limits_and_special_files(mode: str, local_aws: LocalAws, tmp_path: Path) -> None:
    """Output past max_exec_output_bytes stops the command; a download past
    max_download_bytes writes nothing; a FIFO or device in an upload is refused before
    anything is read or staged. The sandbox stays usable after each."""
    cfg = local_aws.config(
        image_template="ecs-sandbox/e2e:{task_id}",
        max_exec_output_bytes=1 << 20,
        max_download_bytes=2 << 20,
    )
    api = Api(mode, cfg)
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_bytes(b"fine")
    os.mkfifo(src / "pipe")
    os.mknod(src / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    async with api.spin_up(f"limits-{mode}") as sandbox:
        for binary in (False, True):
            with pytest.raises(ExecOutputTooLargeError, match="max_exec_output_bytes"):
                await sandbox.exec("echo started > /tmp/ran; yes", binary=binary)
        assert (await sandbox.exec("cat /tmp/ran; echo ok")).output == b"started\nok\n"

        puts = _puts(local_aws)
        with pytest.raises(UsageError, match="not a regular file") as refused:
            await sandbox.copy_to_sandbox(paths=[src], container_dir="/app/in")
        assert "(a FIFO)" in str(refused.value) and "(a character device)" in str(refused.value)
        assert _puts(local_aws) == puts  # nothing was staged
        assert (await sandbox.exec("test -e /app/in || echo absent")).output == b"absent\n"

        await sandbox.exec("mkdir -p /app/big && head -c 5000000 /dev/zero > /app/big/zeros")
        with pytest.raises(DownloadTooLargeError, match="max_download_bytes"):
            await sandbox.copy_from_sandbox("/app/big", tmp_path / "out")
        assert not (tmp_path / "out").exists()
        await sandbox.exec("truncate -s 1000000 /app/big/zeros")
        written = await sandbox.copy_from_sandbox("/app/big", tmp_path / "out")
        assert written == [tmp_path / "out" / "big"]
        assert (tmp_path / "out" / "big" / "zeros").read_bytes() == b"\0" * 1_000_000
    assert _staged_objects(local_aws, cfg) == 0


@pytest.mark.anyio
async def test_teardown_after_exception(
    api: Api, local_aws: LocalAws, cfg: EcsFargateConfig
) -> None:
    seen: dict[str, str] = {}
    with pytest.raises(RuntimeError, match="boom"):
        async with api.spin_up(f"boom-{api.mode}") as sandbox:
            seen["arn"] = sandbox.task_arn
            seen["def"] = sandbox._flows.handle.task_definition_arn
            raise RuntimeError("boom")
    assert _task_status(local_aws, cfg, seen["arn"]) == "STOPPED"
    assert _definition_status(local_aws, seen["def"]) == "INACTIVE"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["asyncio", "trio"])
async def test_twenty_sandboxes_at_once(mode: str, local_aws: LocalAws) -> None:
    # One image for all: the twenty share one task definition, registered once. They must
    # overlap for that: the registry deregisters a definition when its last user is gone
    # (see _registry), so a sandbox that started only after all the others had finished
    # would register again (as it did once on a loaded CI machine). All twenty wait for
    # each other before tearing down.
    cfg = local_aws.config(image_template="ecs-sandbox/e2e:shared")
    api = Api(mode, cfg)
    registered_before = _register_calls(local_aws)
    results: dict[int, tuple[str, int, bytes]] = {}
    up: list[int] = []
    all_up = anyio.Event()

    async def one(i: int) -> None:
        async with api.spin_up(f"many-{api.mode}-{i}") as sandbox:
            # Each sandbox writes its own file and must not see the others'.
            await sandbox.exec(f"echo {i} > /tmp/mine")
            seen = await sandbox.exec("cat /tmp/mine; ls /tmp")
            results[i] = (sandbox.task_arn, seen.exit_code, seen.output)
            up.append(i)
            if len(up) == 20:
                all_up.set()
            await all_up.wait()

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)

    assert sorted(results) == list(range(20))
    for i, (arn, code, output) in results.items():
        assert code == 0 and output.startswith(f"{i}\n".encode())
        assert _task_status(local_aws, cfg, arn) == "STOPPED"
    assert _register_calls(local_aws) - registered_before == 1
    assert api.driver.registry.outstanding() == []
    # Twenty first spin-ups at once on a fresh driver: one credentials check among them.
    assert api.driver.api_calls["sts:get_caller_identity"] == 1


@pytest.mark.anyio
async def test_output_streams_while_the_command_runs(api: Api) -> None:
    chunks: list[bytes] = []
    async with api.spin_up(f"stream-{api.mode}") as sandbox:
        result = await sandbox.exec(
            "for i in 1 2 3; do echo tick $i; sleep 0.2; done; exit 4", on_output=chunks.append
        )
    assert result.exit_code == 4
    assert b"".join(chunks) == result.output == b"tick 1\ntick 2\ntick 3\n"
    assert len(chunks) >= 3  # shown as it came, not at the end


AWS_CLI = str(Path(sys.executable).with_name("aws"))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["sync", "trio"])
async def test_a_whole_sandbox_through_the_real_aws_cli(mode: str, local_aws: LocalAws) -> None:
    """The real `aws ecs execute-command` and a stand-in plugin that always exits 0: the
    exit codes and outputs below can only come from the markers."""
    cfg = local_aws.config(exec_transport="aws-cli", image_template="ecs-sandbox/cli:{task_id}")
    transport = local_aws.cli_transport(aws_executable=AWS_CLI)
    api = Api(mode, cfg)
    api.driver = (
        SyncDriver(cfg, transport=transport, session=local_aws.boto3_session())
        if mode == "sync"
        else aio.AsyncDriver(cfg, transport=transport, session=local_aws.boto3_session())
    )
    async with api.spin_up(f"cli-{mode}") as sandbox:
        failing = await sandbox.exec("echo 'on the way out'; exit 9")
        assert failing.exit_code == 9
        assert failing.output == b"on the way out\n"  # no chatter, no CRLF
        blob = bytes(range(256))
        exact = await sandbox.exec(
            ["python3", "-c", f"import sys; sys.stdout.buffer.write({blob!r})"], binary=True
        )
        assert exact.output == blob
        session = await sandbox.create_session("agent")
        out = await session.step(["echo via-cli-$((6 * 7))", "Enter"], block=True)
        assert "via-cli-42" in out
    # The image probe at spin-up (the driver's first sandbox of this image), then exec,
    # exec, session start, step.
    assert api.driver.stats.exec_round_trips == 5
