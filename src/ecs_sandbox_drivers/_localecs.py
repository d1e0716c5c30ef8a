"""The persistent local ECS: an embedded ``LocalAws`` in a background process.

``ecs-sandbox up --local`` needs a local ECS that outlives the call, so that ``exec ID``,
``cp``, ``shell`` and ``down`` in later calls reach the same sandbox. It runs as a detached
process (``python -m ecs_sandbox_drivers._localecs DIR``, its own session, so Ctrl-C in the
terminal that started it does not reach it) and publishes how to reach it in ``DIR/state.json``
(mode 0600: it holds the endpoint and the credentials the local ECS accepts). Later calls
read that file; a file whose process is gone is stale and ignored.

``DIR`` is ``$ECS_SANDBOX_LOCAL_DIR``, else ``$XDG_RUNTIME_DIR/ecs-sandbox/local``, else
``~/.cache/ecs-sandbox/local``. A lock file serialises starting, so two ``up`` calls at once
start one local ECS. The process stops on SIGTERM (``down`` sends it when the last sandbox is
down); stopping kills its sandboxes and deletes their files. Its log is ``DIR/server.log``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from ecs_sandbox_core import EcsSandboxError

STATE_FILE = "state.json"
LOG_FILE = "server.log"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LocalEcsState:
    """How to reach a running persistent local ECS (the contents of its state file)."""

    pid: int
    endpoint_url: str
    config: Mapping[str, Any]
    aws_env: Mapping[str, str]

    def boto3_session(self) -> boto3.session.Session:
        """A boto3 session with the credentials the local ECS accepts."""
        env = self.aws_env
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env["AWS_DEFAULT_REGION"],
        )


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The state directory (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if environ.get("ECS_SANDBOX_LOCAL_DIR"):
        return Path(environ["ECS_SANDBOX_LOCAL_DIR"])
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "ecs-sandbox" / "local"
    return Path.home() / ".cache" / "ecs-sandbox" / "local"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find(directory: Path) -> LocalEcsState | None:
    """The running local ECS published in ``directory``, or None."""
    try:
        data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        state = LocalEcsState(
            pid=int(data["pid"]),
            endpoint_url=str(data["endpoint_url"]),
            config=dict(data["config"]),
            aws_env={str(k): str(v) for k, v in data["aws_env"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _alive(state.pid) else None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_running(directory: Path, *, say: Callable[[str], None]) -> LocalEcsState:
    """The running local ECS in ``directory``; started (and waited for) when there is none."""
    with _locked(directory):
        state = find(directory)
        if state is not None:
            return state
        say("starting the persistent local ECS (a background process)")
        (directory / STATE_FILE).unlink(missing_ok=True)
        with open(directory / LOG_FILE, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "ecs_sandbox_drivers._localecs", str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                state = find(directory)
                if state is not None and state.pid == child.pid:
                    say(f"persistent local ECS running on {state.endpoint_url} (pid {state.pid})")
                    return state
                if child.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            # Interrupted or failed while it starts: it would serve no sandbox, forever.
            if (state is None or state.pid != child.pid) and child.poll() is None:
                child.terminate()
        raise EcsSandboxError(
            f"the persistent local ECS did not start; its log: {directory / LOG_FILE}",
            remedy=_log_tail(directory / LOG_FILE),
        )


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def stop(directory: Path) -> bool:
    """Stop the local ECS in ``directory`` (its sandboxes with it); False if none ran."""
    state = find(directory)
    if state is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(state.pid):
        time.sleep(0.05)
    return True


def _write_state(directory: Path, data: Mapping[str, Any]) -> None:
    # Written under another name and renamed: a reader sees no file or a whole one; created
    # 0600 from the start, since it holds credentials.
    temporary = directory / f".{STATE_FILE}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(temporary, directory / STATE_FILE)


def serve(directory: Path) -> None:
    """Run a LocalAws and publish it in ``directory`` until SIGTERM, SIGHUP or SIGINT."""
    from .local import LocalAws  # noqa: PLC0415 - only the background process starts moto

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with LocalAws() as local:
        cfg = local.config()
        values = {
            f.name: list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v
            for f in dataclasses.fields(cfg)
        }
        _write_state(
            directory,
            {
                "pid": os.getpid(),
                "endpoint_url": local.endpoint_url,
                "config": values,
                "aws_env": local.aws_env(),
            },
        )
        logging.getLogger(__name__).warning("serving on %s", local.endpoint_url)
        try:
            while not done.wait(1.0):
                pass
        finally:
            (directory / STATE_FILE).unlink(missing_ok=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    serve(Path(sys.argv[1]))
