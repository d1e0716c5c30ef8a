"""The sync data-channel pump: a :class:`ChannelPump` over a blocking socket."""

from __future__ import annotations

import math
import os
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
from ecs_sandbox_core._cmdloop import KEEPALIVE_INTERVAL_S, FrameWatch

from ._ssm_io import CLOSE_GRACE_S, ChannelPump, not_sent, request_result

_CONNECT_TIMEOUT_S = 10.0
_MAX_WAIT_S = 3600.0  # a socket timeout must be finite; the loop waits again after it


def _no_delay(sock: socket.socket) -> None:
    # Frames are small and each waits for the peer's answer: without TCP_NODELAY, Nagle's
    # algorithm holds a frame until the previous one is acknowledged, and delayed ACKs make
    # that about 40 ms (measured: exec(true) 48 ms instead of 7 ms, one time in two).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _limit(timeout_s: float | None) -> float:
    return math.inf if timeout_s is None else timeout_s


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
    deadline = time.monotonic() + _limit(effect.timeout_s)
    target = pump.target
    try:
        sock = socket.create_connection(
            (target.host, target.port), timeout=min(_CONNECT_TIMEOUT_S, _limit(effect.timeout_s))
        )
        _no_delay(sock)
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
        sock.settimeout(min(max(pump.wait_s(remaining), 0.001), _MAX_WAIT_S))
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


class SyncLoopSession:
    """A command-loop session kept open between commands (blocking socket)."""

    keepalive_s: float = KEEPALIVE_INTERVAL_S
    """Longest time without input while a request runs (see KEEPALIVE_INTERVAL_S)."""

    def __init__(self, effect: OpenChannel) -> None:
        self.pump = ChannelPump(url=effect.stream_url, token=effect.token, id_seed=os.urandom(16))
        self.sock: socket.socket | None = None
        self.session_id = effect.session_id

    def open(self, effect: OpenChannel, headers: list[tuple[str, str]]) -> SessionResult | None:
        """Connect and wait for the loop's ready marker; None when ready, else the failure."""
        pump, target = self.pump, self.pump.target
        deadline = time.monotonic() + _limit(effect.timeout_s)
        try:
            sock = socket.create_connection(
                (target.host, target.port),
                timeout=min(_CONNECT_TIMEOUT_S, _limit(effect.timeout_s)),
            )
            _no_delay(sock)
            if target.tls:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            self.sock = sock
            sock.sendall(pump.upgrade_request(headers))
            if _pump_until(sock, pump, deadline, lambda: effect.ready in pump.output):
                pump.reset_output()
                return None
        except OSError as exc:
            if not pump.opened:
                pump.connect_failed(f"{target.host}:{target.port}: {exc}")
            elif not pump.done:
                pump.receive(None)
        self.close()
        if pump.failure is None and not pump.done:
            return SessionResult(
                output=bytes(pump.output), ended="timeout", kind="timeout", reason="not ready"
            )
        return pump.result()

    def alive(self) -> bool:
        """Take in whatever already arrived (without waiting); False once the session ended."""
        if self.sock is None or self.pump.done:
            return False
        try:
            self.sock.setblocking(False)
            try:
                while True:
                    data = self.sock.recv(_READ)
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
            if not self.pump.done:
                self.pump.receive(None)
        return not self.pump.done

    def request(
        self, effect: ChannelRequest, on_output: Callable[[bytes], None] | None
    ) -> TransportResult:
        """Send one request and read until its frame is whole (see ChannelRequest)."""
        if not self.alive():
            return not_sent(self.pump)
        assert self.sock is not None
        pump = self.pump
        # Past the output limit, stop reading but keep the session: the flow stops the
        # command over another session first (ending this one would orphan the command).
        pump.reset_output(
            max_output_bytes=effect.max_output_bytes, on_output=on_output, end_on_cap=False
        )
        pump.channel.send(effect.request)
        deadline = time.monotonic() + _limit(effect.timeout_s)

        watch = FrameWatch(nonce=effect.nonce, binary=effect.binary)

        def whole() -> bool:
            return pump.output_limit_hit or watch.complete(pump.output)

        try:
            sent = pump.flush()
            if sent:
                self.sock.sendall(sent)
            complete = _pump_until(self.sock, pump, deadline, whole, keepalive_s=self.keepalive_s)
        except OSError:
            if not pump.done:
                pump.receive(None)
            complete = False
        capped = pump.output_limit_hit
        complete = complete and not capped
        return request_result(
            pump, complete, timed_out=not complete and not pump.done and not capped
        )

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
    typed = time.monotonic()
    while not done():
        if pump.done:
            return False
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return False
        wait, typed = pump.wait_and_keep_alive(now, remaining, keepalive_s, typed)
        sock.settimeout(min(max(wait, 0.001), _MAX_WAIT_S))
        try:
            data: bytes | None = sock.recv(_READ) or None
        except TimeoutError:
            out = pump.flush()
        else:
            out = pump.receive(data)
        if out:
            sock.sendall(out)
    return True


__all__ = ["SyncLoopSession", "run_session_sync"]
