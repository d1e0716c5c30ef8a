"""A stand-in ``session-manager-plugin`` for the embedded local ECS (standard library only).

LocalAws copies this file, behind a ``#!`` line naming its Python, into a bin directory that
goes first on ``PATH`` for the AWS CLI. It behaves as the AWS CLI sees the real plugin:

* no arguments: print the "installed successfully" line and exit 0 (the CLI's presence check,
  run before every session);
* ``SESSION_JSON REGION StartSession PROFILE TARGET_JSON ENDPOINT``: print the "Starting
  session" line, run the command recorded for the session by LocalAws's ExecuteCommand inside
  the task's container, with stdout and stderr merged and ``\\n`` turned into ``\\r\\n`` as a
  PTY would, print the "Exiting session" line and exit 0 whatever the command's status (the
  real plugin's ``Stop()`` calls ``os.Exit(0)``).

The session record is a JSON file ``<state dir>/sessions/<sessionId>.json`` written by
LocalAws; the state dir comes from ``ECS_SANDBOX_LOCAL_STATE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

STATE_ENV = "ECS_SANDBOX_LOCAL_STATE"
INSTALLED = (
    "\nThe Session Manager plugin was installed successfully. "
    "Use the AWS CLI to start a session.\n\n"
)


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _fail(session_id: str, message: str) -> int:
    # The real plugin reports a failed start this way, then exits non-zero.
    sys.stderr.write(f"\nSessionId: {session_id} : {message}\n\n")
    return 1


def _session(session_id: str) -> dict[str, Any] | None:
    state = os.environ.get(STATE_ENV)
    if not state:
        return None
    path = Path(state) / "sessions" / f"{session_id}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)  # a session is used once, as a real stream token is
    return record


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.Popen(  # the argv LocalAws recorded for the session
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    with proc.stdout:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            # A PTY's onlcr turns every \n into \r\n, even one already after a \r.
            _write(chunk.replace(b"\n", b"\r\n"))
    proc.wait()


def main(args: list[str]) -> int:
    """Run as the plugin with ``args`` (``sys.argv[1:]``); return the exit status."""
    if not args:
        _write(INSTALLED.encode())
        return 0
    if len(args) < 3 or args[2] != "StartSession":
        sys.stderr.write(f"unsupported plugin invocation: {args[2:3]}\n")
        return 1
    try:
        session_id = str(json.loads(args[0])["sessionId"])
    except (ValueError, KeyError, TypeError):
        sys.stderr.write("the session argument is not a session JSON object\n")
        return 1
    record = _session(session_id)
    if record is None:
        return _fail(session_id, "no such session (was it already used, or is LocalAws gone?)")
    argv = [str(a) for a in record["argv"]]
    env = {str(k): str(v) for k, v in record["env"].items()}
    _write(f"\nStarting session with SessionId: {session_id}\n".encode())
    try:
        _run(argv, env)
    except OSError as exc:
        _write(f"{exc}\r\n".encode())
    _write(f"\n\nExiting session with sessionId: {session_id}.\n\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
