"""The anyio tmux session class: an agent's terminal in the sandbox, as coroutines.

:class:`EcsFargateTmuxSession` is created by ``EcsFargateSandbox.create_session``
(:mod:`ecs_sandbox_drivers.aio`); each method builds one flow of :class:`SessionFlows` and
runs it on the sandbox's driver, so that every call is one exec round trip. It carries
Terminal-Bench's ``TmuxSession`` names with its meanings. The sync class
(``_api_session.py``) is generated from this module by ``scripts/gen_sync.py``.
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ecs_sandbox_core._session import SessionSpec
from ecs_sandbox_core._terminal import TerminalStatus

from ._common import SandboxCommand, SessionFlows
from ._tb_names import SESSION_LOGS_DIR, clear_history_flow, log_flow, warn_failed

if TYPE_CHECKING:
    from .aio import EcsFargateSandbox


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


__all__ = ["EcsFargateTmuxSession"]
