"""A Harbor environment: each trial runs in its own ECS Fargate task.

Installed with the ``harbor`` extra (Harbor needs Python 3.12), it is named by import path::

    harbor run -p TASK -a oracle -e ecs_sandbox_drivers.harbor_env:EcsSandboxEnvironment \\
        --ek config=ecs-sandbox.toml

(Harbor has no plugin registry for environments; ``-e module:Class`` is its way.) The
configuration file is the command line's (``[ecs_sandbox]`` table or top level, then
``ECS_SANDBOX_*`` variables; without ``config=`` it is ``$ECS_SANDBOX_CONFIG`` or
``./ecs-sandbox.toml``); ``local = true`` in it selects the embedded local ECS.

The task's image is the configuration's task definition: a task's ``environment/Dockerfile``
is not built (build your image and name it in the task definition). Every trial of a run
shares one driver per configuration file, and so one ECS token budget; ``stop`` tears the
trial's task down (shielded, bounded) and the last trial to stop closes the driver. Path
semantics and result mapping live in :mod:`._harbor_ops`; this module only adapts them to
Harbor's classes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from harbor.environments.base import BaseEnvironment, ExecResult
from harbor.environments.capabilities import EnvironmentCapabilities

from ecs_sandbox_core import NoSuchUserError, UsageError

from . import _harbor_ops as ops
from ._harness import Harness, Harnesses
from .aio import EcsFargateSandbox

log = logging.getLogger(__name__)

ENVIRONMENT_TYPE = "ecs-sandbox"
_TASK_ID = re.compile(r"[^A-Za-z0-9_-]+")
_HARNESSES = Harnesses()
_TOLD: set[str] = set()
# One run id per process: every task a Harbor run starts carries it (``ecs-sandbox gc
# --run-id`` finds them after a crash).
RUN_ID = f"harbor-{uuid.uuid4().hex[:12]}"


class EcsSandboxEnvironment(BaseEnvironment):  # type: ignore[misc]  # Any without Harbor stubs
    """One Harbor trial's ECS task, driven through ecs-sandbox's async public API.

    Environment kwargs (``--ek``): ``config``, the ecs-sandbox configuration file.
    """

    def __init__(self, *args: Any, config: str | None = None, **kwargs: Any) -> None:
        self._config = config
        self._harness: Harness | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._sandbox: EcsFargateSandbox | None = None
        self._workdir = "/"
        super().__init__(*args, **kwargs)

    @staticmethod
    def type() -> str:
        return ENVIRONMENT_TYPE

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        # No host mounts, GPUs or network policies: Fargate tasks get the task
        # definition's network, and files travel by copy.
        return EnvironmentCapabilities()

    def _validate_definition(self) -> None:
        # The image comes from the configuration's task definition, not from the task
        # (said once per task directory, not once per trial).
        dockerfile = Path(self.environment_dir) / "Dockerfile"
        told = str(self.environment_dir)
        if (dockerfile.exists() or self.task_env_config.docker_image) and told not in _TOLD:
            _TOLD.add(told)
            self.logger.info(
                "ecs-sandbox runs the configured task definition's image; "
                "the task's Dockerfile or docker_image is not used"
            )

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, force_build: bool) -> None:
        """Start the trial's task, learn the directory commands start in, and make
        Harbor's output directories; a failure on the way tears the task down."""
        harness = await _HARNESSES.acquire(self._config)
        stack = contextlib.AsyncExitStack()
        self._harness, self._stack = harness, stack
        try:
            stack.push_async_callback(_HARNESSES.release, harness)
            task_id = _TASK_ID.sub("-", self.environment_name).strip("-") or "task"
            self._sandbox = await stack.enter_async_context(
                EcsFargateSandbox.spin_up(
                    cfg=harness.cfg,
                    task_id=task_id,
                    trial_name=self.session_id,
                    run_id=RUN_ID,
                    driver=harness.driver,
                )
            )
            where = await self._sandbox.exec(["pwd"], timeout_sec=None, separate_stderr=True)
            self._workdir = where.stdout.decode().strip() or "/"
            # Harbor's output directories (/logs/agent, /logs/verifier, /logs/artifacts),
            # writable for every user, as Harbor's other unmounted environments make them.
            await self.ensure_dirs(self._mount_targets(writable_only=True))
            await self._upload_environment_dir_after_start()
        except BaseException:
            await self.stop(delete=True)
            raise

    async def stop(self, delete: bool) -> None:
        """Tear the task down (whatever ``delete`` says: a stopped Fargate task is gone)."""
        stack, self._stack, self._sandbox, self._harness = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    def _running(self) -> EcsFargateSandbox:
        if self._sandbox is None:
            raise UsageError("the ecs-sandbox environment is not started")
        return self._sandbox

    # --- commands -----------------------------------------------------------------------

    async def exec(
        self,
        command: str,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout_sec: int | None = None,
        user: str | int | None = None,
    ) -> ExecResult:
        """Run ``command`` with bash, as Harbor's docker environment does; ``timeout_sec``
        None means no limit. What it starts in the background runs on (as ``docker exec``)."""
        name = ops.user_name(self._resolve_user(user))
        workdir = cwd or self.task_env_config.workdir
        try:
            result = await self._running().exec(
                ops.shell_argv(command),
                timeout_sec=timeout_sec,
                env=self._merge_env(env),
                cwd=ops.sandbox_path(workdir, self._workdir) if workdir else None,
                user=name,
                separate_stderr=True,
                keep_background=True,
            )
        except NoSuchUserError:
            return ExecResult(**vars_of(ops.no_such_user_result(name or "")))
        return ExecResult(**vars_of(ops.harbor_result(result)))

    # --- files --------------------------------------------------------------------------

    async def upload_file(self, source_path: Path | str, target_path: str) -> None:
        """Write the local file as ``target_path`` in the sandbox (parents made)."""
        place = ops.upload_file_placement(target_path, self._workdir)
        await self._running().copy_to_sandbox(
            paths=Path(source_path),
            container_dir=place.container_dir,
            container_filename=place.filename,
        )

    async def upload_dir(self, source_dir: Path | str, target_dir: str) -> None:
        """Merge the local directory's contents into ``target_dir`` (made when missing)."""
        source = Path(source_dir)
        if not source.is_dir():
            raise NotADirectoryError(f"{source} is not a directory")
        await self._running().copy_to_sandbox(
            paths=source, container_dir=ops.upload_dir_target(target_dir, self._workdir)
        )

    async def download_file(self, source_path: str, target_path: Path | str) -> None:
        """Write the sandbox's file as the local ``target_path`` (parents made)."""
        path, name = ops.download_source(source_path, self._workdir)
        target = Path(target_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Staged beside the target: the final move is a rename on the same file system.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ecs-sandbox-") as staging:
            await self._running().copy_from_sandbox(path, staging, timeout_sec=None)
            ops.place_file(Path(staging) / name, target)

    async def download_dir(self, source_dir: str, target_dir: Path | str) -> None:
        """Merge the sandbox directory's contents into the local ``target_dir``."""
        path, name = ops.download_source(source_dir, self._workdir)
        target = Path(target_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ecs-sandbox-") as staging:
            await self._running().copy_from_sandbox(path, staging, timeout_sec=None)
            ops.merge_tree(Path(staging) / name, target)


def vars_of(result: ops.HarborResult) -> dict[str, Any]:
    return {"stdout": result.stdout, "stderr": result.stderr, "return_code": result.return_code}


__all__ = ["ENVIRONMENT_TYPE", "RUN_ID", "EcsSandboxEnvironment"]
