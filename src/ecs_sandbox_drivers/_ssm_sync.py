"""The sync data-channel pump: a :class:`ChannelPump` over a blocking socket."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

from ecs_sandbox_core import (
    ChannelRequest,
    ExecSession,
    OpenChannel,
    SessionResult,
    TransportResult,
)
from ecs_sandbox_core._cmdloop import KEEPALIVE_INTERVAL_S

from . import _ssm_shared as shared
from ._ssm_io import CLOSE_GRACE_S, ChannelPump

_MAX_WAIT_S = 3600.0  # a socket timeout must be finite; the loop waits again after it


def run_session_sync(
    effect: ExecSession,
    *,
    headers: list[tuple[str, str]],
    on_output: Callable[[bytes], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> SessionResult:
    """Run ``effect``'s session to its end in the calling thread."""
    pump = shared.session_pump(effect, on_output)
    deadline = time.monotonic() + shared.time_limit(effect.timeout_s)
    target = pump.target
    try:
        sock = socket.create_connection(
            (target.host, target.port), timeout=shared.connect_timeout(effect.timeout_s)
        )
        shared.no_delay(sock)
    except OSError as exc:
        pump.connect_failed(f"cannot connect to {target.host}:{target.port}: {exc}")
        return pump.result()
    try:
        if target.tls:
            context = tls_context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=target.host)
        sock.sendall(pump.upgrade_request(headers))
        timed_out = not _pump_until(sock, pump, deadline, lambda: pump.done)
        if timed_out or pump.done:
            _linger(sock, pump, timed_out)
        return pump.result(timed_out=timed_out)
    except OSError as exc:
        pump.connection_lost(str(exc))
        return pump.result()
    finally:
        sock.close()


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
        while sock.recv(shared.READ_SIZE):
            pass
    except OSError:
        pass


class SyncLoopSession:
    """A command-loop session kept open between commands (blocking socket)."""

    keepalive_s: float = KEEPALIVE_INTERVAL_S
    """Longest time without input while a request runs (see KEEPALIVE_INTERVAL_S)."""

    def __init__(self, effect: OpenChannel) -> None:
        self.pump = shared.loop_pump(effect)
        self.sock: socket.socket | None = None
        self.session_id = effect.session_id

    def open(self, effect: OpenChannel, headers: list[tuple[str, str]]) -> SessionResult | None:
        """Connect and wait for the loop's ready marker; None when ready, else the failure."""
        pump, target = self.pump, self.pump.target
        deadline = time.monotonic() + shared.time_limit(effect.timeout_s)
        try:
            sock = socket.create_connection(
                (target.host, target.port), timeout=shared.connect_timeout(effect.timeout_s)
            )
            shared.no_delay(sock)
            if target.tls:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            self.sock = sock
            sock.sendall(pump.upgrade_request(headers))
            if _pump_until(sock, pump, deadline, lambda: effect.ready in pump.output):
                pump.reset_output()
                return None
        except OSError as exc:
            pump.connection_lost(str(exc))
        self.close()
        return shared.not_ready(pump)

    def alive(self) -> bool:
        """Take in whatever already arrived (without waiting); False once the session ended."""
        if self.sock is None or self.pump.done:
            return False
        try:
            self.sock.setblocking(False)
            try:
                while True:
                    data = self.sock.recv(shared.READ_SIZE)
                    out = self.pump.receive(data or None)
                    if out:
                        self.sock.setblocking(True)
                        self.sock.sendall(out)
                        self.sock.setblocking(False)
                    if not data:
                        break
            except BlockingIOError:
                pass
            finally:
                self.sock.setblocking(True)
        except OSError:
            self.pump.broke()
        return not self.pump.done

    def request(
        self, effect: ChannelRequest, on_output: Callable[[bytes], None] | None
    ) -> TransportResult:
        """Send one request and read until its frame is whole (see ChannelRequest)."""
        if not self.alive():
            return shared.not_sent(self.pump)
        assert self.sock is not None
        pump = self.pump
        whole = shared.start_request(pump, effect, on_output)
        deadline = time.monotonic() + shared.time_limit(effect.timeout_s)
        try:
            sent = pump.flush()
            if sent:
                self.sock.sendall(sent)
            complete = _pump_until(self.sock, pump, deadline, whole, keepalive_s=self.keepalive_s)
        except OSError:
            pump.broke()
            complete = False
        return shared.request_result(pump, complete)

    def close(self) -> None:
        """Close the WebSocket and the socket (the agent then ends the loop)."""
        if self.sock is None:
            return
        try:
            out = self.pump.terminate()
            if out:
                self.sock.sendall(out)
        except OSError:
            pass
        finally:
            self.sock.close()
            self.sock = None


def _pump_until(
    sock: socket.socket,
    pump: ChannelPump,
    deadline: float,
    done: Callable[[], bool],
    *,
    keepalive_s: float | None = None,
) -> bool:
    """Pump until ``done()``; False when the session ended or ``deadline`` passed first.

    With ``keepalive_s``, type the loop's keep-alive line whenever that long passed without
    input (the agent's idle timer counts input only).
    """
    pacer = shared.ReadPacer(pump, deadline, keepalive_s, typed=time.monotonic())
    while not done():
        wait = pacer.wait(time.monotonic())
        if wait is None:
            return False
        sock.settimeout(min(wait, _MAX_WAIT_S))
        try:
            data: bytes | None = sock.recv(shared.READ_SIZE) or None
        except TimeoutError:
            out = pump.flush()
        else:
            out = pump.receive(data)
        if out:
            sock.sendall(out)
    return True


__all__ = ["SyncLoopSession", "run_session_sync"]
