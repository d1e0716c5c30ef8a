# Generated from aio.py by scripts/gen_sync.py: do not edit.
# Change aio.py and run `make generate`; tests/test_generated.py fails while this is stale.
"""The sync public API: ``EcsFargateSandbox.spin_up(...)`` and tmux sessions.

Names and semantics follow the reference module, so a harness written for it switches by
changing an import. Every method builds one core flow and runs it on the sandbox's driver.
The same classes, as coroutines, are :mod:`ecs_sandbox_drivers.aio` (this module is
generated from that one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecs_sandbox_core import EcsFargateConfig, SessionError, UsageError
from ecs_sandbox_core._doctor_image import ImageReport
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._lifecycle import TaskHandle

from ._api_session import EcsFargateTmuxSession
from ._common import (
    USE_CONFIG_DEFAULT,
    ExecRunResult,
    SandboxCommand,
    SandboxFlows,
    Timeout,
    exec_run_options,
    exec_run_result,
    output_text,
    start,
)
from ._files import build_upload, write_download
from ._sync import SyncDriver


class _Container:
    """A docker-like ``container.exec_run`` for agents written against docker."""

    def __init__(self, sandbox: EcsFargateSandbox) -> None:
        self._sandbox = sandbox
        self.attrs: dict[str, Any] = {"Config": {"User": ""}}

    @property
    def name(self) -> str:
        """The sandbox's ECS task id (unique per sandbox, as a docker container's name is)."""
        return self._sandbox.task_arn.rsplit("/", 1)[-1]

    def exec_run(
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
        result = self._sandbox.exec(cmd, **options)
        return exec_run_result(result, demux=demux, stdout=stdout, stderr=stderr)


class EcsFargateSandbox:
    """A running ECS Fargate task to run commands in; create with :meth:`spin_up`."""

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
    def driver_for(cls, cfg: EcsFargateConfig) -> SyncDriver:
        """The default driver for ``cfg`` (see :meth:`SyncDriver.shared`)."""
        return SyncDriver.shared(cfg)

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

        Credentials and the exec tools are checked before anything is created. A failed
        start releases what it created. Tear-down runs whatever ends the block: see the
        driver's ``tear_down`` for how it withstands interruption.
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
            driver.tear_down(handle)

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
        archive = self._driver.in_thread(lambda: build_upload(paths, rename=container_filename))
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
        limits = self._flows.download_limits()
        written: list[Path] = self._driver.in_thread(
            lambda: write_download(archive, local_dir, **limits)
        )
        return written

    def stop(self) -> None:
        """Forget the sessions (the task itself is stopped when ``spin_up`` exits)."""
        self._sessions.clear()


__all__ = ["EcsFargateSandbox", "EcsFargateTmuxSession", "SandboxCommand", "SyncDriver"]
