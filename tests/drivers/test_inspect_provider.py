"""inspect_ai's own conformance checks (``self_check``) against ``sandbox="ecs"`` on the
local ECS. Skipped when inspect_ai is not installed (``pip install ecs-sandbox[inspect]``).

The checks are pulled into this module as inspect documents for providers, and run twice:
as root, and as "nobody" through the configuration's ``exec_user``/``exec_workdir`` (the
permission checks can only pass for a user whom mode bits bind). The fixture marks the
ones that cannot pass here as strict expected failures, each with its reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.util._sandbox.self_check import *  # noqa: F403

from ecs_sandbox_drivers.inspect_provider import EcsSandboxEnvironment

pytestmark = pytest.mark.anyio

# The checks run twice: as root (what ECS Exec runs commands as) and as an unprivileged
# user (exec_user = "nobody", exec_workdir = "/tmp", as an image's USER and WORKDIR would).
USERS = ["root", "nobody"]

KNOWN_FAILURES = {
    # Root reads and writes files whatever their mode bits say; as "nobody" these pass.
    ("root", "test_read_file_not_allowed"): "root may read a file without read permission",
    ("root", "test_write_text_file_without_permissions"): "root may write a read-only file",
    ("root", "test_write_binary_file_without_permissions"): "root may write a read-only file",
    # The local ECS binds the host's /etc read-only (a stand-in stricter than a container's
    # writable /etc), so adduser cannot add a user there, as root or not.
    ("root", "test_exec_as_user"): "the local ECS's /etc is read-only (no adduser)",
    ("nobody", "test_exec_as_user"): "the local ECS's /etc is read-only (no adduser)",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def _sample(config: Path) -> AsyncIterator[Any]:
    await EcsSandboxEnvironment.task_init("self-check", str(config))
    environments = await EcsSandboxEnvironment.sample_init("self-check", str(config), {})
    try:
        yield environments["default"]
    finally:
        await EcsSandboxEnvironment.sample_cleanup("self-check", str(config), environments, False)
        await EcsSandboxEnvironment.task_cleanup("self-check", str(config), True)


@pytest.fixture(scope="module")
async def shared_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    config = tmp_path_factory.mktemp("inspect") / "ecs-sandbox.toml"
    config.write_text("local = true\n")
    async with _sample(config) as env:
        yield env


@pytest.fixture(scope="module")
async def nonroot_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    config = tmp_path_factory.mktemp("inspect-nobody") / "ecs-sandbox.toml"
    config.write_text('local = true\nexec_user = "nobody"\nexec_workdir = "/tmp"\n')
    async with _sample(config) as env:
        yield env


@pytest.fixture(params=USERS)
def sandbox_env(request: pytest.FixtureRequest) -> Any:
    user = request.param
    reason = KNOWN_FAILURES.get((user, request.node.originalname))
    if reason is not None:
        # Strict: a check listed here that starts passing must be taken off the list.
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    return request.getfixturevalue("shared_env" if user == "root" else "nonroot_env")


def test_the_provider_is_registered_by_its_entry_point() -> None:
    names = {ep.value for ep in entry_points(group="inspect_ai")}
    if "ecs_sandbox_drivers.inspect_provider" not in names:
        pytest.skip("ecs-sandbox is not installed with this pyproject's entry points")
    from inspect_ai.util._sandbox.registry import registry_find_sandboxenv  # noqa: PLC0415

    assert registry_find_sandboxenv("ecs") is EcsSandboxEnvironment


async def test_connection_is_a_command_to_paste(shared_env: Any) -> None:
    connection = await shared_env.connection()
    assert connection.command.startswith("aws ecs execute-command ")
    assert "--interactive" in connection.command
    assert connection.command.endswith("--command sh")


async def test_connection_as_the_configured_user(nonroot_env: Any) -> None:
    # The shell a person gets is the configured exec_user's, as every exec is; an explicit
    # user wins, root included.
    assert (await nonroot_env.connection()).command.endswith("'su -s /bin/sh nobody'")
    assert (await nonroot_env.connection(user="root")).command.endswith("--command sh")
    assert (await nonroot_env.connection(user="games")).command.endswith("'su -s /bin/sh games'")
