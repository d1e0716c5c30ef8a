"""A stand-in ``session-manager-plugin`` for the embedded local ECS: a real data-channel client.

LocalAws copies this file, behind a ``#!`` line naming its Python, into a bin directory that
goes first on ``PATH`` for the AWS CLI. It behaves as the AWS CLI sees the real plugin, and
as strictly:

* no arguments: print the "installed successfully" line and exit 0 (the CLI's presence check,
  run before every session);
* ``SESSION_JSON REGION StartSession PROFILE TARGET_JSON ENDPOINT``: print the "Starting
  session" line, open the session's WebSocket (SigV4-signed, with the credentials in the
  environment) and speak the data channel to the local agent: output to stdout as it
  arrives, **stdin read as keyboard input**. When stdin reaches end of file the session ends
  at once with ``Cannot perform start session: EOF``, exactly as the real plugin does, so a
  caller that gives the CLI ``/dev/null`` fails here as it would on AWS. On ``channel_closed``
  it prints the "Exiting session" line and exits 0 (the real ``Stop()`` calls ``os.Exit(0)``).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys

import botocore.session

from ecs_sandbox_drivers._ssm_io import ChannelPump, signed_upgrade_headers

STATE_ENV = "ECS_SANDBOX_LOCAL_STATE"
"""Set by LocalAws for the processes it starts: the root of its state (not read here)."""
INSTALLED = (
    "\nThe Session Manager plugin was installed successfully. "
    "Use the AWS CLI to start a session.\n\n"
)
_READ = 65536


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _start_failed(error: str) -> int:
    # The real plugin prints this on stdout and returns from main with status 0.
    _write(f"Cannot perform start session: {error}\n".encode())
    return 0


def _session(session: dict[str, str], region: str) -> int:
    session_id = session["SessionId"]
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        return _start_failed("NoCredentialProviders: no valid providers in chain")
    pump = ChannelPump(
        url=session["StreamUrl"],
        token=session["TokenValue"],
        id_seed=os.urandom(16),
        on_output=_write,
    )
    _write(f"\nStarting session with SessionId: {session_id}\n".encode())
    target = pump.target
    headers = signed_upgrade_headers(
        session["StreamUrl"], credentials=credentials.get_frozen_credentials(), region=region
    )
    try:
        sock = socket.create_connection((target.host, target.port), timeout=10)
    except OSError as exc:
        return _start_failed(f"failed to open data channel with error: {exc}")
    # select(), not epoll: stdin may be /dev/null or a file, which epoll refuses (EPERM).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the real plugin's Go does
    with sock, selectors.SelectSelector() as selector:
        sock.setblocking(False)
        sock.sendall(pump.upgrade_request(headers))
        selector.register(sock, selectors.EVENT_READ)
        stdin = sys.stdin.buffer.fileno()
        stdin_open = False
        while not pump.done:
            if pump.opened and not stdin_open:
                selector.register(stdin, selectors.EVENT_READ)  # keyboard input from now on
                stdin_open = True
            out = b""
            for key, _ in selector.select(pump.wait_s(1.0)):
                if key.fd == stdin:
                    typed = os.read(stdin, 1024)
                    if not typed:
                        return _start_failed("EOF")
                    pump.channel.send(typed)
                else:
                    try:
                        data = sock.recv(_READ)
                    except BlockingIOError:
                        continue
                    out += pump.receive(data or None)
            out += pump.flush()
            if out:
                sock.setblocking(True)
                sock.sendall(out)
                sock.setblocking(False)
    result = pump.result()
    if result.ended == "failed":
        return _start_failed(result.reason)
    _write(f"\n\nExiting session with sessionId: {session_id}.\n\n".encode())
    return 0


def main(args: list[str]) -> int:
    """Run as the plugin with ``args`` (``sys.argv[1:]``); return the exit status."""
    if not args:
        _write(INSTALLED.encode())
        return 0
    if len(args) < 3 or args[2] != "StartSession":
        _write(b"Invalid Operation")
        return 0
    try:
        raw = json.loads(args[0])
        session = {
            "SessionId": str(raw["sessionId"]),
            "StreamUrl": str(raw["streamUrl"]),
            "TokenValue": str(raw["tokenValue"]),
        }
    except (ValueError, KeyError, TypeError) as exc:
        return _start_failed(str(exc))
    return _session(session, args[1] or "us-east-1")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
