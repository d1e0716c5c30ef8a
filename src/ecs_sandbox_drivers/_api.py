"""The sync public API: ``EcsFargateSandbox.spin_up(...)`` and its tmux sessions.

Names and semantics follow the reference module, so a harness written for it switches by
changing an import. Every method builds one core flow and runs it on the sandbox's driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ecs_sandbox_core import EcsFargateConfig, SessionError, UsageError
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._lifecycle import TaskHandle, abandoned_teardown_log
from ecs_sandbox_core._session import SessionSpec
from ecs_sandbox_core._terminal import TerminalStatus

from ._common import (
    USE_CONFIG_DEFAULT,
    ExecRunResult,
    SandboxCommand,
    SandboxFlows,
    SessionFlows,
    Timeout,
    output_text,
    start,
    stop,
)
from ._files import build_upload, write_download
from ._sync import SyncDriver


class _Container:
    """A docker-like ``container.exec_run`` for agents written against docker."""

    def __init__(self, sandbox: EcsFargateSandbox) -> None:
        self._sandbox = sandbox
        self.attrs: dict[str, Any] = {"Config": {"User": ""}}

    def exec_run(self, cmd: str | Sequence[str], user: str = "", **_: Any) -> ExecRunResult:
        """Run ``cmd``; ``exit_code`` is the command's real exit code, output is bytes."""
        result = self._sandbox.exec(cmd, binary=True)
        return ExecRunResult(result.exit_code, result.output)


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

    def start(self) -> None:
        """Create the session (history-limit set before it exists) unless it is running."""
        self._sandbox._run(self._flows.start())
        self._started_at = time.monotonic()

    def stop(self) -> None:
        """Nothing to release: the session ends with the task."""

    def send_keys(
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
        self._sandbox._run(
            self._flows.send(
                keys, block=block, min_timeout_sec=min_timeout_sec, max_timeout_sec=max_timeout_sec
            )
        )

    def send_command(self, command: SandboxCommand) -> None:
        """Send a :class:`SandboxCommand`."""
        self.send_keys(
            command.keys(),
            block=command.block,
            min_timeout_sec=command.min_timeout_sec,
            max_timeout_sec=command.max_timeout_sec,
        )

    def step(
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
        agent sees what its long-running command printed. With ``footer`` a last line
        tells the terminal's status (exit code, what runs, the directory); the status
        itself is :attr:`last_status`.
        """
        result = self._sandbox._run(
            self._flows.send(
                keys,
                block=block,
                min_timeout_sec=min_timeout_sec,
                max_timeout_sec=max_timeout_sec,
                read=True,
            )
        )
        return str(result.render(footer=footer))

    def status(self) -> TerminalStatus:
        """The terminal's status in one round trip: last exit code, whether a command is
        running and which program is in front, the alternate screen, the working directory."""
        status: TerminalStatus = self._sandbox._run(self._flows.status())
        return status

    @property
    def last_status(self) -> TerminalStatus | None:
        """The status seen by the last send, step or :meth:`status` (None before one)."""
        return self._flows.last_status

    def resize(self, cols: int, rows: int) -> None:
        """Resize the terminal to ``cols`` x ``rows`` in one round trip; incremental output
        stays exact (what was new before the resize comes first in the next read)."""
        self._sandbox._run(self._flows.resize(cols, rows))

    def capture_pane(self, capture_entire: bool = False) -> str:
        """The visible screen, or with ``capture_entire`` the whole scrollback."""
        return str(self._sandbox._run(self._flows.capture(capture_entire)))

    def get_incremental_output(self) -> str:
        """New output since the last read, prefixed "New Terminal Output:", or the screen
        prefixed "Current Terminal Screen:" on the first read and when the screen was
        cleared or rewritten."""
        return str(self._sandbox._run(self._flows.read()).render())

    def is_session_alive(self) -> bool:
        """Whether the session exists (False when the sandbox cannot be reached)."""
        try:
            return bool(self._sandbox._run(self._flows.alive()))
        except Exception:
            return False

    def download_recording(self, local_path: Path | str) -> Path:
        """Write the session's terminal recording so far to ``local_path`` as asciicast v2
        (what ``asciinema play`` replays); recording starts when the session is created."""
        text: str = self._sandbox._run(self._flows.recording())
        path = Path(local_path)
        path.write_text(text, encoding="utf-8")
        return path

    def get_asciinema_timestamp(self) -> float:
        """The recording's current time: seconds since the session was started by this
        object (the recording starts with the session)."""
        if self._started_at is None:
            return 0.0
        return time.monotonic() - self._started_at

    def copy_to_sandbox(
        self,
        paths: list[Path] | Path,
        container_dir: str | None = None,
        container_filename: str | None = None,
    ) -> None:
        """Same as :meth:`EcsFargateSandbox.copy_to_sandbox`."""
        self._sandbox.copy_to_sandbox(
            paths=paths, container_dir=container_dir, container_filename=container_filename
        )


def _tear_down(driver: SyncDriver, handle: TaskHandle) -> None:
    """Stop the task and release its definition, even across one Ctrl-C.

    A ``KeyboardInterrupt`` that lands during tear-down would leave the task running (and
    billing) until its keep-alive ends, so tear-down goes on (it is idempotent: only what
    is left is done) and the interrupt is re-raised afterwards. A second Ctrl-C ends it at
    once; what it leaves is logged at ERROR with the ``ecs-sandbox gc`` command.
    """
    try:
        driver.run(stop(driver, handle))
    except KeyboardInterrupt:
        try:
            driver.run(stop(driver, handle))
        except KeyboardInterrupt:
            record = abandoned_teardown_log(
                handle, f"tear-down of sandbox {handle.task_id} was interrupted twice"
            )
            if record is not None:
                driver.log(record)
        raise


class EcsFargateSandbox:
    """A running ECS Fargate task to run commands in; create with :meth:`spin_up`."""

    _drivers: ClassVar[dict[EcsFargateConfig, SyncDriver]] = {}
    _drivers_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, driver: SyncDriver, handle: TaskHandle, trial_name: str) -> None:
        self._driver = driver
        self._flows = SandboxFlows(driver, handle, trial_name)
        self._sessions: dict[str, EcsFargateTmuxSession] = {}
        self.container = _Container(self)

    @property
    def task_arn(self) -> str:
        return self._flows.handle.task_arn

    @property
    def driver(self) -> SyncDriver:
        return self._driver

    @classmethod
    def driver_for(cls, cfg: EcsFargateConfig) -> SyncDriver:
        """The driver shared by every sandbox of ``cfg`` in this process, from any thread
        (a closed one is replaced)."""
        with cls._drivers_lock:
            driver = cls._drivers.get(cfg)
            if driver is None or driver.closed:
                driver = cls._drivers[cfg] = SyncDriver(cfg)
            return driver

    @classmethod
    @contextmanager
    def spin_up(
        cls,
        *,
        cfg: EcsFargateConfig,
        task_id: str,
        trial_name: str,
        run_id: str,
        pre_upload_paths: Iterable[Path] | None = None,
        upload_dest_dir: str | None = None,
        driver: SyncDriver | None = None,
    ) -> Iterator[EcsFargateSandbox]:
        """Start a sandbox task, yield it, and tear it down on every exit path.

        Credentials and (for ECS Exec) the AWS CLI and session-manager-plugin are checked
        before anything is created. A failed start releases what it created.
        """
        driver = driver if driver is not None else cls.driver_for(cfg)
        driver.preflight()
        handle = driver.run(start(driver, task_id=task_id, trial_name=trial_name, run_id=run_id))
        try:
            sandbox = cls(driver=driver, handle=handle, trial_name=trial_name)
            if pre_upload_paths and upload_dest_dir:
                sandbox.copy_to_sandbox(paths=list(pre_upload_paths), container_dir=upload_dest_dir)
            yield sandbox
        finally:
            _tear_down(driver, handle)

    def _run(self, flow: Any) -> Any:
        return self._driver.run(flow)

    def exec(
        self,
        command: str | Sequence[str],
        timeout_sec: Timeout = USE_CONFIG_DEFAULT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        *,
        binary: bool = False,
        on_output: Callable[[bytes], None] | None = None,
    ) -> ExecResult:
        """Run ``command`` (shell text, or an argv list) and return its real exit code and
        output (stdout and stderr merged, as ECS Exec delivers them). With ``binary`` the
        output bytes are exact (trailing newlines, NUL, non-UTF-8). ``on_output`` (text
        mode) is called with the output while it arrives, from a reader thread.
        ``timeout_sec`` defaults to the configuration's ``ecs_exec_timeout_sec``; None or
        ``float("inf")`` means no limit."""
        flow = self._flows.exec(
            command,
            timeout_sec=timeout_sec,
            env=env,
            cwd=cwd,
            binary=binary,
            stream=on_output is not None,
        )
        result: ExecResult = self._driver.run(flow, output=on_output)
        return result

    def exec_text(self, command: str | Sequence[str], **kwargs: Any) -> str:
        """The output of :meth:`exec` as text (UTF-8, invalid bytes replaced)."""
        return output_text(self.exec(command, **kwargs))

    def create_session(
        self, session_name: str, is_active_stream: bool = False, as_configured_user: bool = True
    ) -> EcsFargateTmuxSession:
        """Create and start a tmux session."""
        if session_name in self._sessions:
            raise SessionError(f"Session {session_name} already exists")
        session = EcsFargateTmuxSession(session_name=session_name, sandbox=self)
        session.start()
        self._sessions[session_name] = session
        return session

    def copy_to_sandbox(
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
        archive = build_upload(paths, rename=container_filename)
        self._run(self._flows.upload(archive, container_dir))

    def copy_from_sandbox(
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
        archive: bytes = self._run(self._flows.download(container_path, timeout_sec))
        return write_download(archive, local_dir, **self._flows.download_limits())

    def stop(self) -> None:
        """Forget the sessions (the task itself is stopped when ``spin_up`` exits)."""
        self._sessions.clear()


__all__ = ["EcsFargateSandbox", "EcsFargateTmuxSession", "SandboxCommand"]
