"""Issue 14 end to end on the embedded local ECS: blocking sends over every command shape,
the terminal status, the footer and the recording, through the public APIs.

The local task's tmux runs the task's /bin/sh, so the shapes meet a real shell in a real
sandbox the way an agent's keys do.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from _modes import mode_fixtures
from test_e2e import Api

from _shapes import SENT, SHAPES, TIMEOUT
from ecs_sandbox_core import EcsFargateConfig, PhaseTimeoutError
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver
from ecs_sandbox_drivers.local import LocalAws

mode, anyio_backend = mode_fixtures()


@pytest.fixture
def cfg(local_aws: LocalAws) -> EcsFargateConfig:
    return local_aws.config(image_template="ecs-sandbox/e2e:{task_id}")


def test_every_shape_through_the_sync_api(cfg: EcsFargateConfig) -> None:
    problems: list[str] = []
    with (
        SyncDriver(cfg) as driver,
        EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="shapes", trial_name="t", run_id="e2e", driver=driver
        ) as sandbox,
    ):
        session = sandbox.create_session("agent")
        shell = session.status().foreground  # the task's login shell
        shell = shell if shell in ("bash", "busybox") else "dash"
        count = 0
        for n, shape in enumerate(SHAPES):
            if shell not in shape.shells:
                continue
            count += 1
            for item in shape.sends:
                try:
                    session.send_keys(
                        item.keys, block=item.expect != SENT, max_timeout_sec=item.limit_s
                    )
                    outcome = "done" if item.expect != SENT else SENT
                except PhaseTimeoutError:
                    outcome = TIMEOUT
                if outcome != item.expect:
                    problems.append(f"{shape.name}: {str(item.keys)[:50]!r} {outcome}")
            out = session.step(f"echo ok-$(({n}+0))\n", footer=True, max_timeout_sec=20)
            if f"ok-{n}" not in out or "idle in" not in out.rsplit("\n", 1)[-1]:
                problems.append(f"probe after {shape.name}: {out[-300:]!r}")
        screen = session.capture_pane(capture_entire=True)
    assert count >= 30
    assert problems == []
    for junk in ("__ecs", "@ecs_", "ecs-sbx", "tmux wait"):
        assert junk not in screen


@pytest.mark.anyio
async def test_status_footer_and_recording(api: Api, tmp_path: Path) -> None:
    async with api.spin_up(f"term-{api.mode}") as sandbox:
        session = await sandbox.create_session("agent")
        await session.send_keys("cd / && false\n", block=True, max_timeout_sec=20)
        status = await session.status()
        assert (status.exit_code, status.running, status.cwd) == (1, False, "/")
        assert session.last_status == status

        out = await session.step("cat > /tmp/hd <<EOF\nbody-$((6*7))\nEOF\n", max_timeout_sec=20)
        assert out.startswith("Current Terminal Screen:\n")  # the first read
        step = await session.step("cat /tmp/hd\n", footer=True, max_timeout_sec=20)
        assert step.startswith("New Terminal Output:\n")
        assert "\nbody-42\n" in step
        assert step.rsplit("\n", 1)[-1].startswith("[terminal: last exit 0; idle in ")
        assert session.last_status is not None and session.last_status.exit_code == 0

        await session.step("sleep 30\n", max_timeout_sec=1)  # times out, does not raise
        busy = await session.status()
        assert busy.running and busy.foreground == "sleep"
        await session.send_keys("C-c", block=False)

        # Output not yet read, then a resize: the next read still has all of it, once.
        await session.send_keys("seq 1 30\n", block=True, max_timeout_sec=20)
        await session.resize(100, 20)
        after = await session.get_incremental_output()
        assert after.startswith("New Terminal Output:\n")
        numbers = [line for line in after.split("\n") if line.isdigit()]
        assert numbers == [str(i) for i in range(1, 31)]
        assert (await session.status()).running is False

        before = await _maybe_await(session.get_asciinema_timestamp())
        assert before > 0
        path = await session.download_recording(tmp_path / "agent.cast")
        assert await _maybe_await(session.get_asciinema_timestamp()) >= before
    header, *lines = path.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    meta = json.loads(header)
    assert (meta["version"], meta["width"], meta["height"]) == (2, 160, 40)
    events = [json.loads(line) for line in lines]
    times = [e[0] for e in events]
    assert times == sorted(times) and times[0] >= 0
    assert {e[1] for e in events} <= {"o", "r"}
    assert [e[2] for e in events if e[1] == "r"] == ["100x20"]
    output = "".join(e[2] for e in events if e[1] == "o")
    assert "cat /tmp/hd" in output
    assert "body-42\r\n" in output


async def _maybe_await(value: Any) -> Any:
    # The sync API runs behind an awaitable facade; the async API's timestamp is a plain call.
    return await value if inspect.isawaitable(value) else value


@pytest.fixture
def api(mode: str, cfg: EcsFargateConfig) -> Api:
    return Api(mode, cfg)
