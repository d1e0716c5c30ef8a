"""The flows behind Terminal-Bench's names for a session.

Terminal-Bench's agents drive a ``TmuxSession`` (``copy_to_container``, ``clear_history``,
``logging_path``, ``container.name``, ``container.exec_run``, and the names the public
classes already share with it). The public session and container classes (``aio.py``, and
the sync ones generated from it) carry those names with Terminal-Bench's meanings; what
they run is here.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Generator
from pathlib import PurePosixPath
from typing import Any

from ecs_sandbox_core import Effect
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._recording import recording_dir
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
    """Append everything the session's pane prints from now on to ``path``.

    A pane has one ``pipe-pane`` and the session's recording (see ``_recording``) holds it
    from the start, so the log follows the recording's raw output from its present end
    (``tail -f``, started with ``nohup`` so that it outlives this exec's hang-up). A
    session without a recording gets a ``pipe-pane -o`` of its own.
    """
    name = flows.spec.name
    log = shlex.quote(str(path))
    raw = f'"{recording_dir(name)}/raw"'
    pipe = f"cat >> {log}"
    script = (
        f"mkdir -p {shlex.quote(str(path.parent))} && : >> {log} && "
        f"if [ -f {raw} ]; then n=$(wc -c < {raw}) && "
        f"nohup tail -c +$((n + 1)) -f {raw} >> {log} 2>/dev/null </dev/null & "
        f"else tmux pipe-pane -o -t {_target(name)} {shlex.quote(pipe)}; fi"
    )
    return command_flow(flows.sandbox.ctx, script, timeout_s=_OP_TIMEOUT_S)


def warn_failed(result: ExecResult, what: str, name: str) -> None:
    """Log a tmux operation that failed as a warning (Terminal-Bench does not raise)."""
    if result.exit_code != 0:
        logger.warning(
            "%s failed for tmux session %s (exit code %d): %s",
            what,
            name,
            result.exit_code,
            result.output.decode("utf-8", errors="replace").strip(),
        )


__all__ = ["SESSION_LOGS_DIR", "clear_history_flow", "log_flow", "warn_failed"]
