"""inspect_ai's own conformance checks (``self_check``) against ``sandbox="ecs"`` on the
local ECS. Skipped when inspect_ai is not installed (``pip install ecs-sandbox[inspect]``).

The checks are pulled into this module as inspect documents for providers; the fixture
marks the ones that cannot pass here as expected failures, each with its reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.util._sandbox.self_check import *  # noqa: F403

from ecs_sandbox_drivers.inspect_provider import EcsSandboxEnvironment

pytestmark = pytest.mark.anyio

KNOWN_FAILURES = {
    # Local tasks run as root: root reads and writes files whatever their mode bits say.
    "test_read_file_not_allowed": "root may read a file without read permission",
    "test_write_text_file_without_permissions": "root may write a read-only file",
    "test_write_binary_file_without_permissions": "root may write a read-only file",
    # The local ECS binds the host's /etc read-only, so adduser cannot add a user there.
    "test_exec_as_user": "the local ECS's /etc is read-only (no adduser)",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    config = tmp_path_factory.mktemp("inspect") / "ecs-sandbox.toml"
    config.write_text("local = true\n")
    await EcsSandboxEnvironment.task_init("self-check", str(config))
    environments = await EcsSandboxEnvironment.sample_init("self-check", str(config), {})
    try:
        yield environments["default"]
    finally:
        await EcsSandboxEnvironment.sample_cleanup("self-check", str(config), environments, False)
        await EcsSandboxEnvironment.task_cleanup("self-check", str(config), True)


@pytest.fixture
def sandbox_env(shared_env: Any, request: pytest.FixtureRequest) -> Any:
    reason = KNOWN_FAILURES.get(request.node.originalname)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    return shared_env


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
