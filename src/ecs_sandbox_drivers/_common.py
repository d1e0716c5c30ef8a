"""Flow construction shared by the sync and the async public classes.

The public classes differ only in how they run a flow (``driver.run(flow)`` or
``await driver.run(flow)``); everything else about a call is decided here, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecs_sandbox_core import EcsFargateConfig, Effect, UsageError
from ecs_sandbox_core._doctor_image import (
    DOWNLOAD_TOOLS,
    SESSION_TOOLS,
    UPLOAD_TOOLS,
    ImageReport,
    image_label,
    name_missing_tools_flow,
    probe_on_start_flow,
)
from ecs_sandbox_core._effects import time_limit
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._lifecycle import TaskHandle, start_flow
from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._sandbox import SandboxContext, caller_command_flow, script_runner
from ecs_sandbox_core._session import (
    SessionSpec,
    StepResult,
    alive_flow,
    capture_flow,
    read_flow,
    recording_flow,
    resize_flow,
    send_keys_flow,
    start_session_flow,
    status_flow,
)
from ecs_sandbox_core._terminal import TerminalStatus
from ecs_sandbox_core._transfer_flow import download_flow, upload_flow

from ._runtime import DriverBase

Flow = Generator[Effect, Any, Any]

DEFAULT_ENVIRONMENT = {"TEST_DIR": "/tests"}


class UseConfigDefault:
    """The default of a ``timeout_sec``: the configuration's ``ecs_exec_timeout_sec``.

    A sentinel rather than None, because harnesses pass None (and ``float("inf")``) to
    mean "no limit" (httpx's ``USE_CLIENT_DEFAULT`` makes the same distinction).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "USE_CONFIG_DEFAULT"


USE_CONFIG_DEFAULT = UseConfigDefault()

Timeout = float | None | UseConfigDefault
"""A ``timeout_sec``: seconds, None or ``inf`` for no limit, or the configured default."""


def resolve_timeout(value: Timeout, cfg: EcsFargateConfig) -> float | None:
    """The limit ``value`` stands for: seconds, or None for no limit."""
    if isinstance(value, UseConfigDefault):
        return float(cfg.ecs_exec_timeout_sec)
    return time_limit(value, what="timeout_sec")


@dataclass(frozen=True)
class SandboxCommand:
    """A command for a tmux session (the reference harness's command shape)."""

    command: str
    append_enter: bool = True
    block: bool = False
    min_timeout_sec: float = 0.0
    max_timeout_sec: float | None = 180.0  # None or inf: no limit

    def keys(self) -> list[str]:
        return [self.command, "Enter"] if self.append_enter else [self.command]


class ExecRunResult:
    """What ``container.exec_run`` returns, shaped like docker's ``ExecResult``.

    ``output`` is bytes, or with ``demux=True`` a ``(stdout, stderr)`` tuple (an element is
    None when that stream was not asked for, as in docker).
    """

    __slots__ = ("exit_code", "output")

    def __init__(self, exit_code: int, output: Any) -> None:
        self.exit_code = exit_code
        self.output = output

    def __iter__(self) -> Any:
        return iter((self.exit_code, self.output))

    def __repr__(self) -> str:
        return f"ExecRunResult(exit_code={self.exit_code}, output={self.output[:60]!r}...)"


_EXEC_RUN_UNSUPPORTED = ("detach", "stream", "socket")


def exec_run_options(
    *,
    user: str,
    workdir: str | None,
    environment: Mapping[str, str] | Sequence[str] | None,
    demux: bool,
    stdout: bool,
    stderr: bool,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """``Sandbox.exec`` keywords for docker's ``exec_run`` arguments; refuses what cannot
    be honoured (``detach``, ``stream``, ``socket``, an unknown keyword) with UsageError.

    ``tty``, ``stdin`` and ``privileged`` are accepted and change nothing: the command
    never has a terminal or an open stdin here, and runs with the container's privileges.
    """
    for name in _EXEC_RUN_UNSUPPORTED:
        if extra.get(name):
            raise UsageError(f"exec_run({name}=True) is not supported by ecs-sandbox")
    unknown = set(extra) - {*_EXEC_RUN_UNSUPPORTED, "tty", "stdin", "privileged"}
    if unknown:
        raise UsageError(f"exec_run got unexpected keyword arguments: {sorted(unknown)}")
    env: dict[str, str] | None = None
    if isinstance(environment, Mapping):
        env = {str(key): str(value) for key, value in environment.items()}
    elif environment is not None:
        env = {}
        for item in environment:
            name, sep, value = str(item).partition("=")
            if not sep:
                raise UsageError(f"exec_run environment entry {item!r} is not NAME=VALUE")
            env[name] = value
    return {
        "env": env,
        "cwd": workdir or None,
        "user": user or None,
        "binary": True,
        "separate_stderr": demux or not (stdout and stderr),
        # docker exec leaves what the command started running.
        "keep_background": True,
    }


def exec_run_result(
    result: ExecResult, *, demux: bool, stdout: bool, stderr: bool
) -> ExecRunResult:
    """docker's shape of ``result`` for ``exec_run``'s ``demux``, ``stdout`` and ``stderr``."""
    out = result.stdout if stdout else None
    err = result.stderr if stderr else None
    if demux:
        return ExecRunResult(result.exit_code, (out, err))
    if result.separated:
        return ExecRunResult(result.exit_code, (out or b"") + (err or b""))
    return ExecRunResult(result.exit_code, result.output)


def start(driver: DriverBase, *, task_id: str, trial_name: str, run_id: str) -> Flow:
    """The spin-up flow for one sandbox of ``driver``."""
    if not task_id or not run_id:
        raise UsageError("task_id and run_id are required (they tag every resource)")
    driver.check_open()

    def probe(handle: TaskHandle) -> Flow:
        return probe_on_start_flow(_context(driver, handle, trial_name), driver.image_probes)

    return start_flow(
        driver.cfg,
        task_id=task_id,
        trial_name=trial_name,
        run_id=run_id,
        owner=driver.owner,
        registry=driver.registry,
        environment=DEFAULT_ENVIRONMENT,
        # Wall-clock creation time for the tags that `ecs-sandbox gc --older-than` reads.
        created_at=int(time.time()),
        after_running=probe,
    )


def _context(driver: DriverBase, handle: TaskHandle, trial_name: str) -> SandboxContext:
    return SandboxContext(
        cfg=driver.cfg,
        handle=handle,
        trial_name=trial_name,
        pty=getattr(driver.transport, "pty", False),
    )


def stop(driver: DriverBase, handle: TaskHandle) -> Flow:
    """The tear-down flow (idempotent): StopTask first, then the sandbox's exec sessions."""
    return driver.sandbox_teardown(handle)


class SandboxFlows:
    """Builds every per-sandbox flow; the public classes only run them."""

    def __init__(self, driver: DriverBase, handle: TaskHandle, trial_name: str) -> None:
        self.driver = driver
        self.handle = handle
        self.ctx = _context(driver, handle, trial_name)
        self.lock = threading.Lock()
        self.sessions: dict[str, Any] = {}
        self.tmux_warned = False

    @property
    def cfg(self) -> EcsFargateConfig:
        return self.driver.cfg

    @property
    def image(self) -> str:
        """How errors name the sandbox's image (its reference, or its task definition's)."""
        return image_label(self.cfg, self.handle)

    @property
    def image_report(self) -> ImageReport | None:
        """What the image probe found for this sandbox's image on its driver (None: not run)."""
        return self.driver.image_probes.report(self.image)

    def naming_missing(self, flow: Flow, needs: tuple[str, ...]) -> Flow:
        """``flow``, whose failure names the tools of ``needs`` the image probe found missing."""
        return name_missing_tools_flow(flow, self.image_report, self.image, needs)

    def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout_sec: Timeout,
        env: Mapping[str, str] | None,
        cwd: str | None,
        binary: bool,
        stream: bool = False,
        user: str | None = None,
        input: bytes | str | None = None,
        separate_stderr: bool = False,
        keep_background: bool = False,
    ) -> Flow:
        return caller_command_flow(
            self.ctx,
            command,
            timeout_s=resolve_timeout(timeout_sec, self.cfg),
            env=env,
            cwd=cwd,
            binary=binary,
            stream=stream,
            user=user,
            stdin=input.encode("utf-8") if isinstance(input, str) else input,
            separate=separate_stderr,
            keep_background=keep_background,
        )

    def upload(self, archive: bytes, container_dir: str) -> Flow:
        if not container_dir or not container_dir.startswith("/"):
            raise UsageError(f"container_dir must be an absolute path, not {container_dir!r}")
        flow = upload_flow(
            self.cfg,
            task_arn=self.handle.task_arn,
            run_id=self.handle.run_id,
            task_id=self.handle.task_id,
            archive=archive,
            dest_dir=container_dir,
            pty=self.ctx.pty,
        )
        return self.naming_missing(flow, UPLOAD_TOOLS)

    def download(self, container_path: str, timeout_sec: Timeout) -> Flow:
        if not container_path.startswith("/"):
            raise UsageError(f"container_path must be absolute, not {container_path!r}")
        flow = download_flow(
            task_arn=self.handle.task_arn,
            container=self.cfg.container_name,
            cluster=self.handle.cluster,
            path=container_path,
            timeout_s=resolve_timeout(timeout_sec, self.cfg),
            connect_timeout_s=self.cfg.exec_connect_timeout_sec,
            pty=self.ctx.pty,
            native=self.ctx.native,
            loop_sessions=self.cfg.loop_sessions,
            max_bytes=self.cfg.max_download_bytes,
            max_members=self.cfg.max_download_members,
        )
        return self.naming_missing(flow, DOWNLOAD_TOOLS)

    def download_limits(self) -> dict[str, int]:
        """The limits ``write_download`` checks an archive against (from the configuration)."""
        return {
            "max_bytes": self.cfg.max_download_bytes,
            "max_members": self.cfg.max_download_members,
        }


class SessionFlows:
    """Builds a tmux session's flows; one pane tracker per session object."""

    def __init__(self, sandbox: SandboxFlows, spec: SessionSpec) -> None:
        self.sandbox = sandbox
        self.spec = spec
        self.tracker = PaneTracker()
        self.run = script_runner(sandbox.ctx)
        self.last_status: TerminalStatus | None = None

    def start(self) -> Flow:
        warn = not self.sandbox.tmux_warned
        self.sandbox.tmux_warned = True  # warn once per sandbox, as the reference does
        flow = start_session_flow(self.spec, self.run, warn_version=warn)
        return self.sandbox.naming_missing(flow, SESSION_TOOLS)

    def send(
        self,
        keys: str | Sequence[str],
        *,
        block: bool,
        min_timeout_sec: float,
        max_timeout_sec: float | None,
        read: bool = False,
    ) -> Generator[Effect, Any, StepResult]:
        result = yield from send_keys_flow(
            self.spec,
            keys,
            self.run,
            block=block,
            min_timeout_s=min_timeout_sec,
            max_timeout_s=max_timeout_sec,
            tracker=self.tracker if read else None,
            raise_on_timeout=not read,
        )
        self.last_status = result.status
        return result

    def status(self) -> Generator[Effect, Any, TerminalStatus]:
        status = yield from status_flow(self.spec, self.run)
        self.last_status = status
        return status

    def read(self) -> Flow:
        return read_flow(self.spec, self.tracker, self.run)

    def recording(self) -> Generator[Effect, Any, str]:
        return recording_flow(
            self.spec, self.run, lambda path: self.sandbox.download(path, USE_CONFIG_DEFAULT)
        )

    def resize(self, width: int, height: int) -> Flow:
        return resize_flow(self.spec, self.tracker, self.run, width, height)

    def capture(self, entire: bool) -> Flow:
        return capture_flow(self.spec, self.run, entire=entire)

    def alive(self) -> Flow:
        return alive_flow(self.spec, self.run)


def output_text(result: ExecResult) -> str:
    return result.output.decode("utf-8", errors="replace")


__all__ = [
    "DEFAULT_ENVIRONMENT",
    "USE_CONFIG_DEFAULT",
    "ExecRunResult",
    "SandboxCommand",
    "SandboxFlows",
    "SessionFlows",
    "Timeout",
    "UseConfigDefault",
    "exec_run_options",
    "exec_run_result",
    "output_text",
    "resolve_timeout",
    "start",
    "stop",
]
