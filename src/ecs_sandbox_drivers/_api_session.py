# Generated from _aio_session.py by scripts/gen_sync.py: do not edit.
# Change _aio_session.py and run `make generate`; tests/test_generated.py fails while this is stale.
"""The sync tmux session class: an agent's terminal in the sandbox.

:class:`EcsFargateTmuxSession` is created by ``EcsFargateSandbox.create_session``; every
call is one exec round trip, and it carries Terminal-Bench's ``TmuxSession`` names with
its meanings. Generated from ``_aio_session.py``, the same class as coroutines.
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
    from ._api import EcsFargateSandbox


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
        agent sees what its long-running command printed. With ``footer``, a last line
        tells the terminal's status (see :attr:`last_status`).
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
        increment = self._sandbox._run(self._flows.read())
        return str(increment.render())

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
        self._sandbox.driver.in_thread(lambda: path.write_text(text, encoding="utf-8"))
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

    # --- Terminal-Bench's TmuxSession names, with its meanings ---------------------------

    def copy_to_container(
        self,
        paths: list[Path] | Path,
        container_dir: str | None = None,
        container_filename: str | None = None,
    ) -> None:
        """Terminal-Bench's name for :meth:`copy_to_sandbox`."""
        self.copy_to_sandbox(
            paths=paths, container_dir=container_dir, container_filename=container_filename
        )

    def clear_history(self) -> None:
        """Clear the session's scrollback (``tmux clear-history``); a failure is logged as a
        warning, as Terminal-Bench does. The next incremental read shows the screen."""
        result = self._sandbox._run(clear_history_flow(self._flows))
        warn_failed(result, "clear-history", self.name)

    @property
    def logging_path(self) -> PurePosixPath:
        """The session's log file in the container (``/logs/<session>.log``); it holds the
        pane's raw output from the call of :meth:`start_logging` on."""
        return PurePosixPath(SESSION_LOGS_DIR) / f"{self.name}.log"

    def start_logging(self) -> PurePosixPath:
        """Start appending the pane's output to :attr:`logging_path`; returns that path."""
        path = self.logging_path
        result = self._sandbox._run(log_flow(self._flows, path))
        warn_failed(result, "pipe-pane", self.name)
        return path


__all__ = ["EcsFargateTmuxSession"]
