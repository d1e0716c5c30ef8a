"""Terminal-Bench's names for what a session and its container already do.

Terminal-Bench's agents drive a ``TmuxSession`` (``copy_to_container``, ``clear_history``,
``logging_path``, ``container.name``, ``container.exec_run``, and the names the public
classes already share with it). These mixins give the public session and container classes
those names, with Terminal-Bench's meanings, as thin calls of what they already do; the sync
and async flavours differ only in ``await``.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ecs_sandbox_core import Effect
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._sandbox import command_flow
from ecs_sandbox_core._tmux import check_session_name

from ._common import SessionFlows

logger = logging.getLogger("ecs_sandbox_drivers")

SESSION_LOGS_DIR = "/logs"
"""Where Terminal-Bench keeps session logs in the container (its
``CONTAINER_SESSION_LOGS_PATH``)."""
_OP_TIMEOUT_S = 30.0


def _target(name: str) -> str:
    return shlex.quote(f"={check_session_name(name)}:")


def clear_history_flow(flows: SessionFlows) -> Generator[Effect, Any, ExecResult]:
    """``tmux clear-history`` for the session; its incremental reads start afresh."""
    flows.tracker = PaneTracker()  # the next read shows the screen, as a first read does
    script = f"tmux clear-history -t {_target(flows.spec.name)}"
    return command_flow(flows.sandbox.ctx, script, timeout_s=_OP_TIMEOUT_S)


def log_flow(flows: SessionFlows, path: PurePosixPath) -> Generator[Effect, Any, ExecResult]:
    """Append everything the session's pane prints from now on to ``path`` (``pipe-pane -o``:
    a session already logging keeps its one pipe)."""
    pipe = f"cat >> {shlex.quote(str(path))}"
    script = (
        f"mkdir -p {shlex.quote(str(path.parent))} && "
        f"tmux pipe-pane -o -t {_target(flows.spec.name)} {shlex.quote(pipe)}"
    )
    return command_flow(flows.sandbox.ctx, script, timeout_s=_OP_TIMEOUT_S)


def _warn_failed(result: ExecResult, what: str, name: str) -> None:
    if result.exit_code != 0:
        logger.warning(
            "%s failed for tmux session %s (exit code %d): %s",
            what,
            name,
            result.exit_code,
            result.output.decode("utf-8", errors="replace").strip(),
        )


class _SessionNamesBase:
    _flows: SessionFlows
    _sandbox: Any  # the public sandbox: ``_run(flow)`` runs a flow on its driver

    if TYPE_CHECKING:  # the session class's property

        @property
        def name(self) -> str: ...

    @property
    def logging_path(self) -> PurePosixPath:
        """The session's log file in the container (``/logs/<session>.log``); it holds the
        pane's raw output from the call of :meth:`start_logging` on."""
        return PurePosixPath(SESSION_LOGS_DIR) / f"{self.name}.log"


class SessionNames(_SessionNamesBase):
    """Terminal-Bench's ``TmuxSession`` names for the sync session."""

    if TYPE_CHECKING:  # defined by the session class

        def copy_to_sandbox(
            self,
            paths: list[Path] | Path,
            container_dir: str | None = None,
            container_filename: str | None = None,
        ) -> None: ...

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
        _warn_failed(result, "clear-history", self.name)

    def start_logging(self) -> PurePosixPath:
        """Start appending the pane's output to :attr:`logging_path`; returns that path."""
        path = self.logging_path
        result = self._sandbox._run(log_flow(self._flows, path))
        _warn_failed(result, "pipe-pane", self.name)
        return path


class AsyncSessionNames(_SessionNamesBase):
    """Terminal-Bench's ``TmuxSession`` names for the async session (coroutines)."""

    if TYPE_CHECKING:  # defined by the session class

        async def copy_to_sandbox(
            self,
            paths: list[Path] | Path,
            container_dir: str | None = None,
            container_filename: str | None = None,
        ) -> None: ...

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
        """As the sync :meth:`SessionNames.clear_history`."""
        result = await self._sandbox._run(clear_history_flow(self._flows))
        _warn_failed(result, "clear-history", self.name)

    async def start_logging(self) -> PurePosixPath:
        """As the sync :meth:`SessionNames.start_logging`."""
        path = self.logging_path
        result = await self._sandbox._run(log_flow(self._flows, path))
        _warn_failed(result, "pipe-pane", self.name)
        return path


class ContainerNames:
    """docker's ``Container.name`` for the container shim."""

    _sandbox: Any

    @property
    def name(self) -> str:
        """The sandbox's ECS task id (unique per sandbox, as a docker container's name is)."""
        return str(self._sandbox.task_arn).rsplit("/", 1)[-1]


__all__ = ["SESSION_LOGS_DIR", "AsyncSessionNames", "ContainerNames", "SessionNames"]
