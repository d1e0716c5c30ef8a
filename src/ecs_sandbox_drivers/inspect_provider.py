"""An inspect_ai sandbox provider: ``sandbox="ecs"`` runs each sample in an ECS Fargate task.

Installed with the ``inspect`` extra, it is registered through the ``inspect_ai`` entry
point, so ``sandbox="ecs"`` or ``sandbox=("ecs", "ecs-sandbox.toml")`` works with no import.
The configuration file is the command line's (``[ecs_sandbox]`` table or top level, then
``ECS_SANDBOX_*`` variables); ``local = true`` in it selects the embedded local ECS.

One driver per configuration serves the whole eval (task_init .. task_cleanup); each sample
gets its own task (sample_init) that sample_cleanup tears down (the driver's tear-down is
shielded from cancellation and bounded in time). Everything the provider decides lives in
:mod:`._inspect_ops`; this module only adapts it to inspect_ai's classes.
"""

from __future__ import annotations

import re
import shlex
import sys
import uuid
from typing import Any, Literal, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxConnection,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    sandboxenv,
)

from ecs_sandbox_core import (
    ExecOutputTooLargeError,
    NoSuchUserError,
)
from ecs_sandbox_core._exec_io import check_user
from ecs_sandbox_core._lifecycle import TaskHandle

from . import _inspect_ops as ops
from ._common import start
from ._harness import Harness, Harnesses, open_harness
from .aio import EcsFargateSandbox

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - inspect_ai needs Python 3.11
    pass

DEFAULT_MAX_SANDBOXES = 100
"""inspect's ``max_sandboxes`` default: ECS's RunTask/ExecuteCommand burst (one shared
token bucket) and Fargate's launch burst are both 100 per account and region."""

_TASK_ID = re.compile(r"[^A-Za-z0-9_-]+")


# One harness (driver, and local ECS if asked for) per configuration file, shared by the
# eval's tasks; the last task_cleanup closes it. Each gets a run id of its own.
_HARNESSES = Harnesses()
_RUN_IDS: dict[int, str] = {}


def _config_path(config: SandboxEnvironmentConfigType | None) -> str | None:
    if config is None:
        return None
    if isinstance(config, str):
        return config
    raise ValueError(f"the ecs sandbox takes a configuration file name, not {config!r}")


def _run_id(harness: Harness) -> str:
    return _RUN_IDS.setdefault(id(harness), f"inspect-{uuid.uuid4().hex[:12]}")


@sandboxenv(name="ecs")
class EcsSandboxEnvironment(SandboxEnvironment):  # type: ignore[misc]  # Any without stubs
    """One sample's ECS task, driven through the async public API."""

    def __init__(self, sandbox: EcsFargateSandbox, handle: TaskHandle, state: Harness) -> None:
        super().__init__()
        self._sandbox = sandbox
        self._handle = handle
        self._state = state
        self._workdir = "/"

    # --- the eval's lifecycle ---------------------------------------------------------

    @classmethod
    def default_concurrency(cls) -> int | None:
        return DEFAULT_MAX_SANDBOXES

    @classmethod
    def config_files(cls) -> list[str]:
        return ["ecs-sandbox.toml"]

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        await _HARNESSES.acquire(_config_path(config))

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        state = _HARNESSES.current(_config_path(config))
        if state is None:  # inspect calls task_init first; a caller that did not gets one
            state = await _HARNESSES.acquire(_config_path(config))
        task_id = metadata.get("ecs_task_id") or _TASK_ID.sub("-", task_name).strip("-") or "task"
        driver = state.driver
        handle = await driver.run(
            start(driver, task_id=task_id, trial_name=task_name, run_id=_run_id(state))
        )
        try:
            sandbox = EcsFargateSandbox(driver=driver, handle=handle, trial_name=task_name)
            env = cls(sandbox, handle, state)
            # Relative paths resolve against the directory commands start in.
            where = await sandbox.exec(["pwd"], separate_stderr=True)
            env._workdir = where.stdout.decode().strip() or "/"
        except BaseException:
            await driver.tear_down(handle)
            raise
        return {"default": env}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            env = environment.as_type(EcsSandboxEnvironment)
            await env._state.driver.tear_down(env._handle)

    @classmethod
    async def task_cleanup(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, cleanup: bool
    ) -> None:
        state = _HARNESSES.current(_config_path(config))
        if state is not None:
            await _HARNESSES.release(state)

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        """``inspect sandbox cleanup ecs [ID]``: ``ecs-sandbox gc`` for that run id, or
        without one for whatever outlived ``max_task_lifetime_sec``."""
        from ._gc import collect_garbage, report_lines  # noqa: PLC0415

        state = await open_harness(None)
        try:
            older = None if id else float(state.cfg.max_task_lifetime_sec)
            report = await anyio.to_thread.run_sync(
                lambda: collect_garbage(state.cfg, run_id=id, older_than_s=older)
            )
        finally:
            await state.aclose()
        for line in report_lines(report):
            print(line)

    # --- one sample -------------------------------------------------------------------

    async def exec(  # noqa: PLR0917 - inspect's signature
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        try:
            result = await self._sandbox.exec(
                cmd,
                timeout_sec=timeout,
                env=env,
                cwd=ops.resolve_path(cwd or self._workdir, self._workdir),
                input=input,
                user=user,
                separate_stderr=True,
                # As inspect's docker provider: what a command starts runs on (inspect's
                # own sandbox tools start a server that later calls talk to).
                keep_background=True,
            )
        except NoSuchUserError:
            return ExecResult(**vars_of(ops.no_such_user_result(user or "")))
        except ExecOutputTooLargeError:
            raise OutputLimitExceededError(
                SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR, None
            ) from None
        error = ops.exec_error(result)
        if error is not None:
            raise error
        cut = ops.stream_over(result, limit)
        if cut is not None:
            raise OutputLimitExceededError(
                SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR,
                cut.decode("utf-8", errors="replace"),
            )
        return ExecResult(**vars_of(ops.text_result(result)))

    async def write_file(self, file: str, contents: str | bytes) -> None:
        path = ops.resolve_path(file, self._workdir)
        data = contents.encode("utf-8") if isinstance(contents, str) else contents
        result = await self._sandbox.exec(
            ["sh", "-c", ops.WRITE_SCRIPT, "sh", path], input=data, separate_stderr=True
        )
        error = ops.file_error(result, file)
        if error is not None:
            raise error

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        path = ops.resolve_path(file, self._workdir)
        limit = SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
        result = await self._sandbox.exec(
            ["sh", "-c", ops.READ_SCRIPT, "sh", path, str(limit)], separate_stderr=True
        )
        if result.exit_code == ops.TOO_LARGE:
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, None)
        error = ops.file_error(result, file)
        if error is not None:
            raise error
        # newline="" semantics: bytes decoded as they are, CRLF kept.
        return result.stdout.decode("utf-8") if text else result.stdout

    async def connection(self, *, user: str | None = None) -> SandboxConnection:
        """A command a person can paste to get a shell in the sample's container."""
        cfg = self._state.cfg
        argv = ["aws", "ecs", "execute-command"]
        if cfg.region:
            argv += ["--region", cfg.region]
        if cfg.endpoint_url:
            argv += ["--endpoint-url", cfg.endpoint_url]
        argv += ["--cluster", self._handle.cluster, "--task", self._handle.task_arn]
        argv += ["--container", cfg.container_name, "--interactive", "--command"]
        user = user or cfg.exec_user  # the configured default user, as exec has
        argv.append(f"su -s /bin/sh {check_user(user)}" if user and user != "root" else "sh")
        return SandboxConnection(type="ecs", command=shlex.join(argv), container=cfg.container_name)


def vars_of(result: ops.TextResult) -> dict[str, Any]:
    return {
        "success": result.success,
        "returncode": result.returncode,
        "stdout": result.stdout,
        "stderr": result.stderr,
    }


__all__ = ["DEFAULT_MAX_SANDBOXES", "EcsSandboxEnvironment"]
