"""The sync data-channel pump: a :class:`ChannelPump` over a blocking socket."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable

from ecs_sandbox_core import ExecSession, SessionResult

from ._ssm_io import CLOSE_GRACE_S, ChannelPump

_CONNECT_TIMEOUT_S = 10.0
_READ = 65536


def run_session_sync(
    effect: ExecSession,
    *,
    headers: list[tuple[str, str]],
    on_output: Callable[[bytes], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> SessionResult:
    """Run ``effect``'s session to its end in the calling thread."""
    pump = ChannelPump(
        url=effect.stream_url,
        token=effect.token,
        id_seed=os.urandom(16),
        input_bytes=effect.input,
        on_output=on_output,
        max_output_bytes=effect.max_output_bytes,
    )
    deadline = time.monotonic() + effect.timeout_s
    target = pump.target
    try:
        sock = socket.create_connection(
            (target.host, target.port), timeout=min(_CONNECT_TIMEOUT_S, effect.timeout_s)
        )
    except OSError as exc:
        pump.connect_failed(f"cannot connect to {target.host}:{target.port}: {exc}")
        return pump.result()
    try:
        if target.tls:
            context = tls_context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=target.host)
        sock.sendall(pump.upgrade_request(headers))
        timed_out = _pump(sock, pump, deadline)
        if timed_out or pump.done:
            _linger(sock, pump, timed_out)
        return pump.result(timed_out=timed_out)
    except OSError as exc:
        if not pump.opened:
            pump.connect_failed(f"{target.host}:{target.port}: {exc}")
        elif not pump.done:
            pump.receive(None)  # the connection broke mid-session
        return pump.result()
    finally:
        sock.close()


def _pump(sock: socket.socket, pump: ChannelPump, deadline: float) -> bool:
    """Pump until the session is done; True when ``deadline`` passed first."""
    while not pump.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        sock.settimeout(max(pump.wait_s(remaining), 0.001))
        try:
            data: bytes | None = sock.recv(_READ) or None
        except TimeoutError:
            out = pump.flush()
        else:
            out = pump.receive(data)
        if out:
            sock.sendall(out)
    return False


def _linger(sock: socket.socket, pump: ChannelPump, timed_out: bool) -> None:
    # Ask the agent to end a timed-out session, then give the peer a moment to answer the
    # WebSocket close so that it sees a clean end rather than a dropped connection.
    if pump.finished:
        return
    try:
        out = pump.terminate() if timed_out else b""
        if out:
            sock.sendall(out)
        sock.settimeout(CLOSE_GRACE_S)
        while sock.recv(_READ):
            pass
    except OSError:
        pass


__all__ = ["run_session_sync"]
