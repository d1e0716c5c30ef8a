"""One WebSocket connection of the local SSM gateway: upgrade, open message, frames.

Runs on the gateway's loop. The HTTP upgrade and the open message are checked by the gateway
(:class:`Gateway`); this class does the WebSocket mechanics (wsproto, server side) over a
non-blocking socket: it answers pings and close frames, reassembles fragmented messages,
queues what it cannot send at once (the session stops reading its PTY while that queue is
long), refuses a data channel with a 1008 close, and half-closes after a close frame so the
peer sees everything before the connection goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Protocol

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from ._agent import AgentSession
from ._agent_wire import AgentCounters, AgentSettings

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
_CLOSE_GRACE_S = 1.0


class Gateway(Protocol):
    """What a connection needs from the gateway."""

    @property
    def settings(self) -> AgentSettings: ...

    @property
    def counters(self) -> AgentCounters: ...

    def check_upgrade(self, request: Request) -> tuple[int, str, object | None]:
        """HTTP status, reason and the session's record (None: refuse with the status)."""
        ...

    def open_session(self, connection: Connection, text: str) -> str | None:
        """Check the open message and start the session; the refusal reason otherwise."""
        ...

    def connection_closed(self, connection: Connection) -> None: ...


class Connection:
    """One client connection; it is the session's :class:`._agent_wire.Link`."""

    def __init__(
        self, gateway: Gateway, *, loop: asyncio.AbstractEventLoop, sock: socket.socket
    ) -> None:
        self._gateway = gateway
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._ws = WSConnection(ConnectionType.SERVER)
        self._out = bytearray()
        self._writing = False
        self._closing = False
        self._closed = False
        self._text: list[str] = []
        self._binary = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.registration: object | None = None  # the gateway's record, once upgraded
        self.session: AgentSession | None = None
        self._loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    # --- Link -----------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._out)

    def send_frame(self, frame: bytes) -> None:
        if self._ws.state == ConnectionState.OPEN and not self._closed:
            self._write(self._ws.send(BytesMessage(data=frame)))

    def send_ping(self) -> None:
        if self._ws.state == ConnectionState.OPEN and not self._closed:
            self._write(self._ws.send(Ping(payload=b"ecs-sandbox")))

    def close(self) -> None:
        self._close_ws(1000, "")

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def abort(self) -> None:
        if not self._closed:
            # No close frame, no FIN: a reset, as when the connection is cut.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_socket()

    # --- socket events --------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._gone("connection dropped")
            return
        if self._closing:
            return  # waiting for the peer's EOF after our close frame
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._on_event(event)
                if self._closed:
                    return
        except RemoteProtocolError as exc:
            if self._ws.state == ConnectionState.CONNECTING and exc.event_hint is not None:
                self._gateway.counters.upgrades_refused += 1
                self._write(self._ws.send(exc.event_hint))
                self._closing = True
                self._flush()
            else:
                self._gone(f"protocol error: {exc}")

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Request):
            self._on_request(event)
        elif isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                text, self._text = "".join(self._text), []
                self._on_text(text)
        elif isinstance(event, BytesMessage):
            self._binary += event.data
            if event.message_finished:
                data, self._binary = bytes(self._binary), bytearray()
                if self.session is not None:
                    self.session.receive(data)
                elif self.registration is not None:
                    self._refuse("the first message must be the TEXT open message")
        elif isinstance(event, Ping):
            self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self._ws.state == ConnectionState.REMOTE_CLOSING:
                self._write(self._ws.send(event.response()))
            self._gone(f"close frame {event.code}")

    def _on_request(self, request: Request) -> None:
        status, reason, registration = self._gateway.check_upgrade(request)
        if registration is None:
            self._gateway.counters.upgrades_refused += 1
            body = reason.encode()
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
            self._write(
                self._ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
            )
            self._write(self._ws.send(RejectData(data=body)))
            self._closing = True
            self._flush()
            return
        self.registration = registration
        self._write(self._ws.send(AcceptConnection()))
        timeout = self._gateway.settings.open_timeout_s
        self._timer = self._loop.call_later(timeout, self._refuse, "no open message was sent")

    def _on_text(self, text: str) -> None:
        if self.session is not None or self.registration is None:
            return  # TEXT after the open message: the gateway ignores it
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reason = self._gateway.open_session(self, text)
        if reason is not None:
            self._refuse(reason)

    def _refuse(self, reason: str) -> None:
        self._gateway.counters.tokens_refused += 1
        logger.debug("refused a data channel: %s", reason)
        self._close_ws(POLICY_VIOLATION, reason)

    def _gone(self, why: str) -> None:
        if self.session is not None and not self.session.ended:
            self.session.client_gone(why)
        self.close_socket()

    # --- writing and closing --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._closed:
            return
        self._out += data
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._out.clear()
                self._gone("send failed")
                return
            del self._out[:sent]
        if self._out:
            if not self._writing:
                self._loop.add_writer(self._fd, self._flush)
                self._writing = True
            return
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
            if self.session is not None and not self.session.ended:
                self.session.link_drained()
        if self._closing:
            # Everything (close frame or HTTP refusal included) is out: half-close and wait
            # a moment for the peer to close its side.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(_CLOSE_GRACE_S, self.close_socket)

    def _close_ws(self, code: int, reason: str) -> None:
        if self._closed or self._closing:
            return
        if self._ws.state == ConnectionState.OPEN:
            self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._closing = True
        if not self._writing:
            self._flush()

    def close_socket(self) -> None:
        """Close the TCP connection now (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._reading:
            self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._sock.close()
        self._gateway.connection_closed(self)


__all__ = ["POLICY_VIOLATION", "Connection", "Gateway"]
