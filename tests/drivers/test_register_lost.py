"""A RegisterTaskDefinition whose answer is lost registers one revision, and leaks none."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from _modes import mode_fixtures, spin_up

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import SyncDriver, aio
from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._middleware import InterceptedRequest, Reply


class LoseFirstRegistration:
    """A reply hook: the first RegisterTaskDefinition is carried out, then answered 500."""

    def __init__(self) -> None:
        self.hit = 0
        self._lock = threading.Lock()

    def __call__(self, request: InterceptedRequest, reply: Reply) -> Reply | None:
        if request.operation != "RegisterTaskDefinition":
            return None
        with self._lock:
            self.hit += 1
            first = self.hit == 1
        return Reply.json_error("ServerException", "Service unavailable", 500) if first else None


mode, anyio_backend = mode_fixtures()


def _family_revisions(ecs: Any, family: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for status in ("ACTIVE", "INACTIVE"):
        for arn in ecs.list_task_definitions(familyPrefix=family, status=status)[
            "taskDefinitionArns"
        ]:
            found[arn] = status
    return found


@pytest.mark.anyio
async def test_a_lost_registration_answer_leaves_one_revision_and_it_is_deregistered(
    mode: str, local_aws: LocalAws
) -> None:
    # An image of its own, so that the family is new to this test.
    cfg: EcsFargateConfig = local_aws.config(
        image_template=f"ecs-sandbox/lost-register:{mode}-{time.monotonic_ns()}"
    )
    driver: Any = SyncDriver(cfg) if mode == "sync" else aio.AsyncDriver(cfg, poll_tick_s=0.2)
    hook = LoseFirstRegistration()
    local_aws.add_reply_hook(hook)
    try:
        async with spin_up(mode, cfg, f"lost-register-{mode}", driver=driver) as sandbox:
            assert (await sandbox.exec("echo up")).output == b"up\n"
            arn = sandbox._flows.handle.task_definition_arn
    finally:
        local_aws.remove_reply_hook(hook)
        if mode == "sync":
            driver.close()
        else:
            await driver.aclose()
    assert hook.hit == 1  # found, not registered again
    ecs = local_aws.client("ecs", max_attempts=1)
    family = arn.rpartition("/")[2].rpartition(":")[0]
    assert _family_revisions(ecs, family) == {arn: "INACTIVE"}
