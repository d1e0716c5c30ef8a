"""The anyio public API (asyncio and trio): the sync API's names, as coroutines.

Hundreds of sandboxes share one :class:`AsyncDriver`, and with it the ECS token budget, the
task-definition registry and the DescribeTasks poller. Pass your own (``driver=``, owned
with ``async with AsyncDriver(cfg)``), or let ``spin_up`` use the current event loop's
default driver for the configuration: default drivers belong to their event loop and go
with it, so asyncio and then trio (or several loops at once) in one process each get
their own. Tear-down runs shielded from cancellation, bounded in time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from ecs_sandbox_core import EcsFargateConfig, SessionError, UsageError
from ecs_sandbox_core._doctor_image import ImageReport
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._lifecycle import TaskHandle
from ecs_sandbox_core._session import SessionSpec
from ecs_sandbox_core._terminal import TerminalStatus

from ._async import AsyncDriver
from ._common import (
    USE_CONFIG_DEFAULT,
    ExecRunResult,
    SandboxCommand,
    SandboxFlows,
    SessionFlows,
    Timeout,
    exec_run_options,
    exec_run_result,
    output_text,
    start,
)
from ._files import build_upload, write_download
from ._tb_names import SESSION_LOGS_DIR, clear_history_flow, log_flow, warn_failed


class _Container:
    """A docker-like ``container.exec_run`` for agents written against docker."""

    def __init__(self, sandbox: EcsFargateSandbox) -> None:
        self._sandbox = sandbox
        self.attrs: dict[str, Any] = {"Config": {"User": ""}}

    @property
    def name(self) -> str:
        """The sandbox's ECS task id (unique per sandbox, as a docker container's name is)."""
        return self._sandbox.task_arn.rsplit("/", 1)[-1]

    async def exec_run(
        self,
        cmd: str | Sequence[str],
        stdout: bool = True,
        stderr: bool = True,
        *,
        user: str = "",
        environment: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        demux: bool = False,
        **kwargs: Any,
    ) -> ExecRunResult:
        """Run ``cmd`` as docker's ``exec_run`` does: ``exit_code`` is the command's real
        exit code, ``output`` its bytes (a ``(stdout, stderr)`` tuple with ``demux``);
        ``user``, ``environment`` and ``workdir`` are honoured, ``detach``, ``stream`` and
        ``socket`` refused (UsageError)."""
        options = exec_run_options(
            user=user,
            workdir=workdir,
            environment=environment,
            demux=demux,
            stdout=stdout,
            stderr=stderr,
            extra=kwargs,
        )
        result = await self._sandbox.exec(cmd, **options)
        return exec_run_result(result, demux=demux, stdout=stdout, stderr=stderr)


class EcsFargateTmuxSession:
    """A tmux session in the sandbox that an agent drives; each call is one exec round trip."""

    def __init__(self, *, session_name: str, sandbox: EcsFargateSandbox) -> None:
        self._sandbox = sandbox
        self._flows = SessionFlows(sandbox._flows, SessionSpec(name=session_name))
        self._started_at: float | None = None
        self.container = sandbox.container

    @property
    def name(self) -> str:
        return self._flows.spec.name

    async def start(self) -> None:
        """Create the session (history-limit set before it exists) unless it is running."""
        await self._sandbox._run(self._flows.start())
        self._started_at = time.monotonic()

    async def stop(self) -> None:
        """Nothing to release: the session ends with the task."""

    async def send_keys(
        self,
        keys: str | list[str],
        block: bool = False,
        min_timeout_sec: float = 0.0,
        max_timeout_sec: float | None = 180.0,
    ) -> None:
        """Type ``keys``; with ``block`` wait until the submitted command finishes.

        Raises :class:`~ecs_sandbox_core.PhaseTimeoutError` when it does not finish within
        ``max_timeout_sec``; None or ``float("inf")`` waits without limit.
        """
        await self._sandbox._run(
            self._flows.send(
                keys, block=block, min_timeout_sec=min_timeout_sec, max_timeout_sec=max_timeout_sec
            )
        )

    async def send_command(self, command: SandboxCommand) -> None:
        """Send a :class:`SandboxCommand`."""
        await self.send_keys(
            command.keys(),
            block=command.block,
            min_timeout_sec=command.min_timeout_sec,
            max_timeout_sec=command.max_timeout_sec,
        )

    async def step(
        self,
        keys: str | list[str],
        block: bool = True,
        min_timeout_sec: float = 0.0,
        max_timeout_sec: float | None = 180.0,
        *,
        footer: bool = False,
    ) -> str:
        """Type keys, wait, and return the incremental output, in one round trip.

        A wait that times out does not raise here: the output so far is returned, so an
        agent sees what its long-running command printed. With ``footer``, a last line
        tells the terminal's status (see :attr:`last_status`).
        """
        result = await self._sandbox._run(
            self._flows.send(
                keys,
                block=block,
                min_timeout_sec=min_timeout_sec,
                max_timeout_sec=max_timeout_sec,
                read=True,
            )
        )
        return str(result.render(footer=footer))

    async def status(self) -> TerminalStatus:
        """The terminal's status in one round trip: last exit code, whether a command is
        running and which program is in front, the alternate screen, the working directory."""
        status: TerminalStatus = await self._sandbox._run(self._flows.status())
        return status

    @property
    def last_status(self) -> TerminalStatus | None:
        """The status seen by the last send, step or :meth:`status` (None before one)."""
        return self._flows.last_status

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the terminal to ``cols`` x ``rows`` in one round trip; incremental output
        stays exact (what was new before the resize comes first in the next read)."""
        await self._sandbox._run(self._flows.resize(cols, rows))

    async def capture_pane(self, capture_entire: bool = False) -> str:
        """The visible screen, or with ``capture_entire`` the whole scrollback."""
        return str(await self._sandbox._run(self._flows.capture(capture_entire)))

    async def get_incremental_output(self) -> str:
        """New output since the last read, prefixed "New Terminal Output:", or the screen
        prefixed "Current Terminal Screen:" on the first read and when the screen was
        cleared or rewritten."""
        increment = await self._sandbox._run(self._flows.read())
        return str(increment.render())

    async def is_session_alive(self) -> bool:
        """Whether the session exists (False when the sandbox cannot be reached)."""
        try:
            return bool(await self._sandbox._run(self._flows.alive()))
        except Exception:
            return False

    async def download_recording(self, local_path: Path | str) -> Path:
        """Write the session's terminal recording so far to ``local_path`` as asciicast v2
        (what ``asciinema play`` replays); recording starts when the session is created."""
        text: str = await self._sandbox._run(self._flows.recording())
        path = Path(local_path)
        await self._sandbox.driver.in_thread(lambda: path.write_text(text, encoding="utf-8"))
        return path

    def get_asciinema_timestamp(self) -> float:
        """The recording's current time: seconds since the session was started by this
        object (the recording starts with the session)."""
        if self._started_at is None:
            return 0.0
        return time.monotonic() - self._started_at

    async def copy_to_sandbox(
        self,
        paths: list[Path] | Path,
        container_dir: str | None = None,
        container_filename: str | None = None,
    ) -> None:
        """Same as :meth:`EcsFargateSandbox.copy_to_sandbox`."""
        await self._sandbox.copy_to_sandbox(
            paths=paths, container_dir=container_dir, container_filename=container_filename
        )

    # --- Terminal-Bench's TmuxSession names, with its meanings ---------------------------

    async def copy_to_container(
        self,
        paths: list[Path] | Path,
        container_dir: str | None = None,
        container_filename: str | None = None,
    ) -> None:
        """Terminal-Bench's name for :meth:`copy_to_sandbox`."""
        await self.copy_to_sandbox(
            paths=paths, container_dir=container_dir, container_filename=container_filename
        )

    async def clear_history(self) -> None:
        """Clear the session's scrollback (``tmux clear-history``); a failure is logged as a
        warning, as Terminal-Bench does. The next incremental read shows the screen."""
        result = await self._sandbox._run(clear_history_flow(self._flows))
        warn_failed(result, "clear-history", self.name)

    @property
    def logging_path(self) -> PurePosixPath:
        """The session's log file in the container (``/logs/<session>.log``); it holds the
        pane's raw output from the call of :meth:`start_logging` on."""
        return PurePosixPath(SESSION_LOGS_DIR) / f"{self.name}.log"

    async def start_logging(self) -> PurePosixPath:
        """Start appending the pane's output to :attr:`logging_path`; returns that path."""
        path = self.logging_path
        result = await self._sandbox._run(log_flow(self._flows, path))
        warn_failed(result, "pipe-pane", self.name)
        return path


class EcsFargateSandbox:
    """A running ECS Fargate task to run commands in; create with :meth:`spin_up`."""

    def __init__(self, *, driver: AsyncDriver, handle: TaskHandle, trial_name: str) -> None:
        self._driver = driver
        self._flows = SandboxFlows(driver, handle, trial_name)
        self._sessions: dict[str, EcsFargateTmuxSession] = {}
        self.container = _Container(self)

    @property
    def task_arn(self) -> str:
        return self._flows.handle.task_arn

    @property
    def driver(self) -> AsyncDriver:
        return self._driver

    @property
    def image_report(self) -> ImageReport | None:
        """What the image probe found: ``missing`` lists the tools ecs-sandbox uses that the
        sandbox's image lacks (empty when it has them all), each with ``needed_for``.

        The probe runs once per image and driver, at the end of the first spin-up (one exec
        round trip; the ``probe_image`` setting turns it off). None when it has not run:
        turned off, could not run, or still running for another sandbox of the image.
        """
        return self._flows.image_report

    @classmethod
    def driver_for(cls, cfg: EcsFargateConfig) -> AsyncDriver:
        """The default driver for ``cfg`` (see :meth:`AsyncDriver.shared`)."""
        return AsyncDriver.shared(cfg)

    @classmethod
    @asynccontextmanager
    async def spin_up(
        cls,
        *,
        cfg: EcsFargateConfig,
        task_id: str,
        trial_name: str,
        run_id: str,
        pre_upload_paths: Iterable[Path] | None = None,
        upload_dest_dir: str | None = None,
        driver: AsyncDriver | None = None,
    ) -> AsyncIterator[EcsFargateSandbox]:
        """Start a sandbox task, yield it, and tear it down on every exit path.

        Credentials and the exec tools are checked before anything is created. A failed
        start releases what it created. Tear-down runs whatever ends the block: see the
        driver's ``tear_down`` for how it withstands interruption.
        """
        driver = driver if driver is not None else cls.driver_for(cfg)
        await driver.preflight()
        handle = await driver.run(
            start(driver, task_id=task_id, trial_name=trial_name, run_id=run_id)
        )
        try:
            sandbox = cls(driver=driver, handle=handle, trial_name=trial_name)
            if pre_upload_paths and upload_dest_dir:
                await sandbox.copy_to_sandbox(
                    paths=list(pre_upload_paths), container_dir=upload_dest_dir
                )
            yield sandbox
        finally:
            await driver.tear_down(handle)

    async def _run(self, flow: Any) -> Any:
        return await self._driver.run(flow)

    async def exec(
        self,
        command: str | Sequence[str],
        timeout_sec: Timeout = USE_CONFIG_DEFAULT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        *,
        binary: bool = False,
        on_output: Callable[[bytes], None] | None = None,
        input: bytes | str | None = None,
        user: str | None = None,
        separate_stderr: bool = False,
        keep_background: bool = False,
    ) -> ExecResult:
        """Run ``command`` (shell text, or an argv list) and return its real exit code and
        output (stdout and stderr merged, as ECS Exec delivers them). With ``binary`` the
        output bytes are exact (trailing newlines, NUL, non-UTF-8). ``on_output`` (text
        mode) is called with the output while it arrives.
        ``timeout_sec`` defaults to the configuration's ``ecs_exec_timeout_sec``; None or
        ``float("inf")`` means no limit. ``input`` (bytes, or text sent as UTF-8) is the
        command's stdin, exactly (else ``/dev/null``). ``user`` runs it as that user
        (:class:`~ecs_sandbox_core.NoSuchUserError` when the container has none).
        ``separate_stderr`` returns ``stdout`` and ``stderr`` apart, exact (no
        ``on_output`` then). Output past ``max_exec_output_bytes`` raises
        :class:`~ecs_sandbox_core.ExecOutputTooLargeError`. When the command ends, what it
        left running in its process group is hung up, as a terminal would (``nohup``-ed
        and ``setsid`` processes survive); ``keep_background`` lets it all run on, as
        ``docker exec`` does (a timeout still stops the group)."""
        flow = self._flows.exec(
            command,
            timeout_sec=timeout_sec,
            env=env,
            cwd=cwd,
            binary=binary,
            stream=on_output is not None,
            user=user,
            input=input,
            separate_stderr=separate_stderr,
            keep_background=keep_background,
        )
        result: ExecResult = await self._driver.run(flow, output=on_output)
        return result

    async def exec_text(self, command: str | Sequence[str], **kwargs: Any) -> str:
        """The output of :meth:`exec` as text (UTF-8, invalid bytes replaced)."""
        return output_text(await self.exec(command, **kwargs))

    async def create_session(
        self, session_name: str, is_active_stream: bool = False, as_configured_user: bool = True
    ) -> EcsFargateTmuxSession:
        """Create and start a tmux session."""
        if session_name in self._sessions:
            raise SessionError(f"Session {session_name} already exists")
        session = EcsFargateTmuxSession(session_name=session_name, sandbox=self)
        await session.start()
        self._sessions[session_name] = session
        return session

    async def copy_to_sandbox(
        self,
        *,
        paths: list[Path] | Path,
        container_dir: str | None = None,
        container_filename: str | None = None,
    ) -> None:
        """Copy local files and directories into ``container_dir`` (staged through S3).

        Regular files, directories and symbolic links are copied; a FIFO, socket or device
        among ``paths`` is refused (:class:`UsageError`) before anything is read or staged.
        """
        if container_dir is None:
            raise UsageError("container_dir is required")
        archive = await self._driver.in_thread(
            lambda: build_upload(paths, rename=container_filename)
        )
        await self._run(self._flows.upload(archive, container_dir))

    async def copy_from_sandbox(
        self,
        container_path: str,
        local_dir: Path | str,
        *,
        timeout_sec: Timeout = USE_CONFIG_DEFAULT,
    ) -> list[Path]:
        """Copy a file or directory out of the sandbox into ``local_dir``, bytes exact.

        FIFOs, sockets and devices in the tree are left out. A tree that unpacks to more
        than ``max_download_bytes`` or holds more than ``max_download_members`` members
        raises :class:`~ecs_sandbox_core.DownloadTooLargeError` before anything is written.
        """
        archive: bytes = await self._run(self._flows.download(container_path, timeout_sec))
        limits = self._flows.download_limits()
        written: list[Path] = await self._driver.in_thread(
            lambda: write_download(archive, local_dir, **limits)
        )
        return written

    async def stop(self) -> None:
        """Forget the sessions (the task itself is stopped when ``spin_up`` exits)."""
        self._sessions.clear()


__all__ = ["AsyncDriver", "EcsFargateSandbox", "EcsFargateTmuxSession", "SandboxCommand"]
