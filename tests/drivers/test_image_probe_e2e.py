"""The image probe at spin-up, end to end on the local ECS, with the sync API, asyncio and trio.

The local ECS has no container images: every task runs on this host's /usr (it says so in a
warning). An image that lacks a tool is stood for by masking that tool's file in the task's
mount namespace: the test wraps the local ECS's ``bwrap_argv`` so that a task whose image
is named below gets ``/dev/null`` bound over the tool (not executable: ``command -v``
misses it, as in an image that never had it). PATH in the task definition's environment
cannot do this: the exec wrapper runs a login shell, whose /etc/profile resets PATH.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _modes import mode_fixtures, spin_up
from test_budget_config import REQUIRED

from ecs_sandbox_core import ConfigError, EcsFargateConfig, EcsSandboxError, SessionError
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, _cliconfig, aio
from ecs_sandbox_drivers.local import LocalAws, _containers

TEMPLATE = "ecs-sandbox/{task_id}:probe"
"""Each sandbox's image is named after its task id; the image masks go by its prefix."""
NO_TMUX = "ecs-sandbox/no-tmux"
NO_PYTHON = "ecs-sandbox/no-python"


def _real(name: str) -> str:
    found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        pytest.skip(f"{name} is not installed here")
    return os.path.realpath(found)


@pytest.fixture
def masked_images(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tasks of images named NO_TMUX... run without tmux, NO_PYTHON... without python3."""
    masks = {NO_TMUX: [_real("tmux")], NO_PYTHON: [_real("python3")]}
    original = _containers.bwrap_argv

    def bwrap_argv(spec: _containers.ContainerSpec, **kwargs: Any) -> list[str]:
        argv = original(spec, **kwargs)
        at = argv.index("--proc")  # after the read-only binds of /usr and the rest
        for prefix, paths in masks.items():
            for path in paths if spec.image.startswith(prefix) else ():
                argv[at:at] = ["--ro-bind", "/dev/null", path]
        return argv

    monkeypatch.setattr(_containers, "bwrap_argv", bwrap_argv)
    yield


mode, anyio_backend = mode_fixtures()


def _driver(mode: str, cfg: EcsFargateConfig) -> Any:
    return SyncDriver(cfg) if mode == "sync" else aio.AsyncDriver(cfg)


async def _close(mode: str, driver: Any) -> None:
    if mode == "sync":
        driver.close()
    else:
        await driver.aclose()


def _lacks(records: Sequence[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if "lacks" in r.getMessage()]


def _cfg(local_aws: LocalAws, **overrides: Any) -> EcsFargateConfig:
    return local_aws.config(image_template=TEMPLATE, **overrides)


def _image(task_id: str) -> str:
    return TEMPLATE.replace("{task_id}", task_id)


def _round_trips(driver: Any) -> int:
    return int(driver.stats.exec_round_trips)


@pytest.mark.anyio
@pytest.mark.usefixtures("masked_images")
async def test_an_image_without_tmux_is_named_once_and_its_sessions_say_why(
    mode: str, local_aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ecs_sandbox")
    cfg = _cfg(local_aws)
    driver = _driver(mode, cfg)
    task_id = f"no-tmux-{mode}"
    image = _image(task_id)
    try:
        async with spin_up(mode, cfg, task_id, driver=driver) as sandbox:
            assert _round_trips(driver) == 1  # the probe, and nothing else yet
            (warning,) = [r for r in caplog.records if "lacks" in r.getMessage()]
            assert warning.getMessage() == (
                f"image {image} lacks tmux (needed for tmux sessions (create_session, send_keys))"
            )
            assert warning.levelno == logging.WARNING and warning.name == "ecs_sandbox"
            report = sandbox.image_report
            assert report is not None
            assert [t.name for t in report.missing] == ["tmux"]
            # Only tmux is missing: commands run as ever.
            assert (await sandbox.exec("echo still-fine")).output == b"still-fine\n"
            with pytest.raises(SessionError) as info:
                await sandbox.create_session("agent")
            text = str(info.value)
            assert text.startswith(f"image {image} lacks tmux (the image probe found it missing")
            assert text.endswith(
                f"How to fix: Install tmux in image {image} (e.g. apt-get "
                "install -y / apk add in its Dockerfile), or do not use what "
                "needs it."
            )

        caplog.clear()
        before = _round_trips(driver)
        async with spin_up(mode, cfg, task_id, driver=driver) as again:
            # The same image on the same driver: no second probe, the same report.
            assert _round_trips(driver) == before
            assert again.image_report is report
        assert _lacks(caplog.records) == []

        async with spin_up(mode, cfg, f"full-{mode}", driver=driver) as other:
            assert _round_trips(driver) == before + 1  # a new image: probed again
            assert other.image_report is not None and other.image_report.ok
            session = await other.create_session("agent")
            assert "via-tmux" in await session.step(["echo via-tmux", "Enter"], block=True)
        assert _lacks(caplog.records) == []
    finally:
        await _close(mode, driver)


@pytest.mark.anyio
@pytest.mark.usefixtures("masked_images")
async def test_a_copy_into_an_image_without_python_names_python(
    mode: str, local_aws: LocalAws, tmp_path: Path
) -> None:
    cfg = _cfg(local_aws)
    driver = _driver(mode, cfg)
    task_id = f"no-python-{mode}"
    (tmp_path / "f.txt").write_text("payload")
    try:
        async with spin_up(mode, cfg, task_id, driver=driver) as sandbox:
            report = sandbox.image_report
            assert report is not None
            assert [t.name for t in report.missing] == ["python3>=3.8"]
            with pytest.raises(EcsSandboxError) as info:
                await sandbox.copy_to_sandbox(paths=[tmp_path / "f.txt"], container_dir="/app")
            assert str(info.value).startswith(
                f"image {_image(task_id)} lacks python3>=3.8 (the image probe found it missing"
            )
    finally:
        await _close(mode, driver)


@pytest.mark.anyio
@pytest.mark.usefixtures("masked_images")
async def test_probe_image_off_spends_no_round_trip(
    mode: str, local_aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(local_aws, probe_image=False)
    driver = _driver(mode, cfg)
    try:
        async with spin_up(mode, cfg, f"no-tmux-off-{mode}", driver=driver) as sandbox:
            assert _round_trips(driver) == 0
            assert sandbox.image_report is None
            # Without a report, the session start's own check still says what is wrong.
            with pytest.raises(SessionError, match=r"^tmux is not installed"):
                await sandbox.create_session("agent")
        assert _lacks(caplog.records) == []
    finally:
        await _close(mode, driver)


def test_the_image_of_a_base_definition_is_the_one_describe_tasks_reports(
    local_aws: LocalAws,
) -> None:
    # No image_template: the sandbox runs the base definition, whose image the handle
    # learns from the RUNNING task's description.
    cfg = local_aws.config()
    with (
        SyncDriver(cfg) as driver,
        EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="base-image", trial_name="t", run_id="probe", driver=driver
        ) as sandbox,
    ):
        assert sandbox._flows.handle.image == _containers.HOST_IMAGE
        assert sandbox.image_report is not None and sandbox.image_report.ok
        assert _round_trips(driver) == 1


def test_probe_image_is_a_setting_like_the_others(tmp_path: Path) -> None:
    assert _cliconfig.resolve(config_file=None, assignments=[], environ=REQUIRED).probe_image
    environ = {**REQUIRED, "ECS_SANDBOX_PROBE_IMAGE": "no"}
    assert not _cliconfig.resolve(config_file=None, assignments=[], environ=environ).probe_image
    path = tmp_path / "ecs-sandbox.toml"
    path.write_text("[ecs_sandbox]\nprobe_image = false\n")
    assert not _cliconfig.resolve(
        config_file=str(path), assignments=[], environ=REQUIRED
    ).probe_image
    flags = ["probe_image=0"]
    assert not _cliconfig.resolve(config_file=None, assignments=flags, environ=REQUIRED).probe_image
    with pytest.raises(ConfigError, match="probe_image"):
        _cliconfig.resolve(
            config_file=None,
            assignments=[],
            environ={**REQUIRED, "ECS_SANDBOX_PROBE_IMAGE": "maybe"},
        )
    with pytest.raises(ConfigError, match="probe_image must be true or false"):
        EcsFargateConfig.from_mapping(
            {**{k[12:].lower(): v for k, v in REQUIRED.items()}, "probe_image": "no"}
        )
