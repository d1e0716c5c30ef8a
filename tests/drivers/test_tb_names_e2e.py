"""Terminal-Bench's ``TmuxSession`` names on the local ECS, through sync, asyncio and trio:
``copy_to_container``, ``clear_history``, ``logging_path`` (with ``start_logging``) and
``container.name``, with Terminal-Bench's meanings."""

from __future__ import annotations

import inspect
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from _modes import mode_fixtures, spin_up

from ecs_sandbox_drivers.local import LocalAws

mode, anyio_backend = mode_fixtures()


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@pytest.mark.anyio
async def test_terminal_bench_names(local_aws: LocalAws, mode: str, tmp_path: Path) -> None:
    cfg = local_aws.config()
    async with spin_up(mode, cfg, f"tbnames-{mode}") as sandbox:
        session = await sandbox.create_session("agent")

        # container.name: unique per sandbox, the task's id.
        name = session.container.name
        assert name and name == sandbox.task_arn.rsplit("/", 1)[-1]

        # copy_to_container: the same as copy_to_sandbox (OracleAgent's call).
        (tmp_path / "solution.sh").write_text("echo solved\n")
        await session.copy_to_container(paths=[tmp_path / "solution.sh"], container_dir="/oracle")
        assert (await sandbox.exec("cat /oracle/solution.sh")).output == b"echo solved\n"

        # The session log: the pane's output from start_logging on.
        assert session.logging_path == PurePosixPath("/logs/agent.log")
        assert await session.start_logging() == session.logging_path
        await session.send_keys(["echo logged-$((6 * 7))", "Enter"], block=True)
        log = await sandbox.exec(f"cat {session.logging_path}")
        assert log.exit_code == 0 and b"logged-42" in log.output

        # clear_history: the scrollback is gone and the next read shows the screen.
        await session.send_keys(["seq 1 300", "Enter"], block=True)
        assert "\n150\n" in await session.capture_pane(capture_entire=True)
        await session.send_keys(["clear", "Enter"], block=True)
        await session.clear_history()
        assert "\n150\n" not in await session.capture_pane(capture_entire=True)
        assert (await session.get_incremental_output()).startswith("Current Terminal Screen:")

        # The agents' docker-style exec on the session's container.
        result = await _maybe(session.container.exec_run(["sh", "-c", "echo hi; exit 2"]))
        assert (result.exit_code, result.output) == (2, b"hi\n")
