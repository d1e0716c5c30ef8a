"""None and ``float("inf")`` mean "no limit" through the public API, on the local ECS.

Terminal-Bench's oracle agent calls ``send_keys(..., max_timeout_sec=float("inf"))``;
Harbor and inspect pass ``timeout=None`` for no limit. Each call here waits for a command
that takes a moment and must come back with its result, in every mode.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _modes import mode_fixtures, spin_up

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import SandboxCommand
from ecs_sandbox_drivers._process import run_sync
from ecs_sandbox_drivers._transport import PreparedRun
from ecs_sandbox_drivers.local import LocalAws

mode, anyio_backend = mode_fixtures()


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config()


@pytest.mark.anyio
async def test_no_limit_everywhere_a_harness_passes_one(
    mode: str, cfg: EcsFargateConfig, tmp_path: Path
) -> None:
    async with spin_up(mode, cfg, f"nolimit-{mode}") as sandbox:
        session = await sandbox.create_session("agent")
        for limit in (None, math.inf):
            ran = await sandbox.exec("sleep 0.2; echo ran; exit 3", timeout_sec=limit)
            assert (ran.exit_code, ran.output) == (3, b"ran\n")

            await session.send_keys(
                ["sleep 0.5; echo sent-$((40 + 2))", "Enter"], block=True, max_timeout_sec=limit
            )
            await session.send_command(
                SandboxCommand("echo cmd-$((1 + 1))", block=True, max_timeout_sec=limit)
            )
            step = await session.step(
                ["sleep 0.2; echo step-$((2 + 3))", "Enter"], block=True, max_timeout_sec=limit
            )
            assert "step-5" in step
            screen = await session.capture_pane(capture_entire=True)
            assert "sent-42" in screen and "cmd-2" in screen

            await sandbox.exec("printf data > /tmp/f")
            (copied,) = await sandbox.copy_from_sandbox(
                "/tmp/f", tmp_path / str(limit), timeout_sec=limit
            )
            assert Path(copied).read_bytes() == b"data"


@pytest.mark.parametrize("limit", [None, math.inf, 1e12])
def test_the_sync_process_runner_waits_without_limit(limit: float | None) -> None:
    # poll() takes at most 2**31 - 1 ms: a limit beyond that must still wait, not overflow.
    prepared = PreparedRun(argv=["sh", "-c", "sleep 0.2; echo done"], env=None, pty=False)
    returncode, stdout, _, timed_out = run_sync(prepared, limit)
    assert (returncode, stdout, timed_out) == (0, b"done\n", False)


def test_the_sync_process_runner_still_times_out() -> None:
    prepared = PreparedRun(argv=["sh", "-c", "sleep 30"], env=None, pty=False)
    returncode, _, _, timed_out = run_sync(prepared, 0.3)
    assert (returncode, timed_out) == (None, True)
