"""A minimal blocking SSM data-channel client for tests: wsproto + a socket + SsmChannel.

It signs the upgrade with botocore (service ``ssmmessages``) as a real client must, sends the
open message, then pumps: BINARY frames go to the core's :class:`SsmChannel` (which acks,
reorders and retransmits), and what the channel wants sent is sent. Every frame received is
also kept raw (``frames``), so tests can look at what the agent put on the wire.

With ``channel=False`` nothing is automatic: the test sends and inspects frames itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from ecs_sandbox_core._ssm_channel import Closed, Output, SsmChannel
from ecs_sandbox_core._ssm_codec import (
    ACKNOWLEDGE,
    INPUT_STREAM,
    AgentMessage,
    SsmProtocolError,
    acked_sequence,
    decode_message,
    encode_message,
    open_message,
)

DUMMY = ("testing", "testing", "testing")
OpenSession = Callable[..., "SsmTestClient"]
"""The ``open_session`` fixture: ExecuteCommand on a task, then a connected client."""


def sign(
    url: str,
    region: str,
    *,
    service: str = "ssmmessages",
    credentials: tuple[str, str, str] = DUMMY,
) -> list[tuple[str, str]]:
    """SigV4 headers for a GET of ``url`` (by default with LocalAws's dummy credentials)."""
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*credentials), service, region).add_auth(request)
    return [(name, value) for name, value in request.headers.items()]


@dataclass
class Rejected:
    status: int
    body: bytes


class SsmTestClient:
    """One data-channel connection (see the module docstring)."""

    def __init__(
        self,
        session: dict[str, Any],
        *,
        region: str = "us-east-1",
        channel: bool = True,
        size: tuple[int, int] | None = (300, 100),
        give_up_s: float = 30.0,
    ) -> None:
        self.session_id: str = session["sessionId"]
        self.url: str = session["streamUrl"]
        self.token: str = session["tokenValue"]
        self.region = region
        self.channel = (
            SsmChannel(token=self.token, id_seed=os.urandom(16), size=size, give_up_s=give_up_s)
            if channel
            else None
        )
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock: socket.socket | None = None
        self.output = bytearray()
        self.frames: list[AgentMessage | None] = []  # None: a frame that failed to decode
        self.closed: Closed | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.dropped = False
        self.rejected: Rejected | None = None
        self.pings = 0
        self._binary = bytearray()
        self._reject_body = bytearray()
        self._reject_status = 0

    def __enter__(self) -> SsmTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop()

    # --- connecting -----------------------------------------------------------------------------

    def connect(
        self,
        *,
        headers: Sequence[tuple[str, str]] | None = None,
        open_text: str | None = None,
        send_open: bool = True,
        timeout: float = 10.0,
    ) -> SsmTestClient:
        """Upgrade (signed unless ``headers`` are given) and send the open message."""
        parts = urlsplit(self.url)
        assert parts.hostname is not None and parts.port is not None
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.setblocking(False)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = list(sign(self.url, self.region) if headers is None else headers)
        self._send(self.ws.send(Request(host=parts.netloc, target=target, extra_headers=extra)))
        self.pump(lambda: self.ws.state == ConnectionState.OPEN or self.finished, timeout)
        if self.ws.state == ConnectionState.OPEN and send_open:
            self.send_text(open_text if open_text is not None else self.open_text())
        return self

    def open_text(self, token: str | None = None) -> str:
        if self.channel is not None and token is None:
            return self.channel.open_message()
        return open_message(
            token=self.token if token is None else token,
            request_id=uuid.uuid4(),
            client_id=uuid.uuid4(),
            client_version="1.2.764.0",
        )

    # --- sending --------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._send(self.ws.send(TextMessage(data=text)))

    def send_frame(self, frame: bytes) -> None:
        self._send(self.ws.send(BytesMessage(data=frame)))

    def send_input(self, seq: int, payload: bytes, payload_type: int = 1) -> AgentMessage:
        """Send a hand-made input frame (``channel=False`` clients)."""
        message = AgentMessage(
            message_type=INPUT_STREAM,
            sequence=seq,
            flags=0,
            message_id=uuid.uuid4(),
            payload_type=payload_type,
            payload=payload,
            created_ms=int(time.time() * 1000),
        )
        self.send_frame(encode_message(message))
        return message

    def type(self, data: bytes) -> None:
        """Queue keyboard input on the channel."""
        assert self.channel is not None
        self.channel.send(data)

    def close(self) -> None:
        """Close the WebSocket cleanly (close frame), then the socket."""
        if self.ws.state == ConnectionState.OPEN:
            self._send(self.ws.send(CloseConnection(code=1000)))
        self.drop()

    def drop(self) -> None:
        """Close the TCP connection without a close frame."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # --- receiving ------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return (
            self.closed is not None
            or self.close_code is not None
            or self.dropped
            or self.rejected is not None
        )

    def stream_frames(self, payload_type: int | None = None) -> list[AgentMessage]:
        """Output stream frames received so far, duplicates included, in arrival order."""
        return [
            f
            for f in self.frames
            if f is not None
            and f.message_type == "output_stream_data"
            and (payload_type is None or f.payload_type == payload_type)
        ]

    def raw_output(self) -> bytes:
        """Output payloads by sequence number, each once (for ``channel=False`` clients)."""
        by_seq = {f.sequence: f.payload for f in self.stream_frames(1)}
        return b"".join(by_seq[seq] for seq in sorted(by_seq))

    def text(self) -> bytes:
        """What the command wrote: the channel's output, or the raw frames' without one."""
        return bytes(self.output) if self.channel is not None else self.raw_output()

    def wait_for(self, text: bytes, timeout: float = 10.0) -> None:
        """Pump until ``text`` is in the output."""
        self.pump(lambda: text in self.text(), timeout)

    def acks(self) -> list[int]:
        """Sequence numbers acknowledged by the agent so far, in arrival order."""
        return [acked_sequence(f) for f in self.frames if f and f.message_type == ACKNOWLEDGE]

    def send_until_acked(
        self, seq: int, payload: bytes, kind: int = 1, timeout: float = 10.0
    ) -> None:
        """Send a hand-made input frame, again every 0.3 s, until it is acknowledged."""
        deadline = time.monotonic() + timeout
        while seq not in self.acks():
            assert time.monotonic() < deadline, f"input {seq} never acknowledged"
            self.send_input(seq, payload, kind)
            with contextlib.suppress(TimeoutError):
                self.pump(lambda: seq in self.acks(), timeout=0.3)

    def nothing_for(self, seconds: float, what: Callable[[], bool]) -> bool:
        """Pump for ``seconds``; True if ``what()`` stayed false all along."""
        try:
            self.pump(what, timeout=seconds)
        except TimeoutError:
            return True
        return False

    def kinds(self) -> list[str]:
        return [f.message_type if f is not None else "undecodable" for f in self.frames]

    def pump(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Exchange frames until ``until()`` holds; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.channel is not None and self.ws.state == ConnectionState.OPEN:
                for frame in self.channel.frames_to_send(time.time()):
                    self.send_frame(frame)
            if until():
                return
            if self.sock is None or self.close_code is not None or self.rejected is not None:
                raise AssertionError(f"the connection ended first: {self.describe()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing came in {timeout} s: {self.describe()}")
            poller = select.poll()  # select() cannot take descriptors past 1023
            poller.register(self.sock, select.POLLIN)
            if poller.poll(min(left, 0.02) * 1000):
                self._receive()

    def run_to_end(self, timeout: float = 10.0) -> None:
        """Pump until the channel ends (closed, close frame, dropped)."""
        self.pump(lambda: self.finished, timeout)

    def run_to_disconnect(self, timeout: float = 10.0) -> None:
        """Pump until the WebSocket is closed or the connection dropped."""
        self.pump(lambda: self.close_code is not None or self.dropped, timeout)

    def describe(self) -> str:
        frames = [
            (f.message_type[:6], f.sequence, f.payload_type, f.payload[:30]) if f else None
            for f in self.frames[-12:]
        ]
        return (
            f"closed={self.closed} close=({self.close_code}, {self.close_reason!r}) "
            f"dropped={self.dropped} rejected={self.rejected} output={self.text()[-200:]!r} "
            f"acks={self.acks()[-10:]} last frames={frames}"
        )

    # --- internals ------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        except OSError:
            self.dropped = True
        finally:
            if self.sock is not None:
                self.sock.setblocking(False)

    def _receive(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if not self.finished:
                self.dropped = True
            self.drop()
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                pass
            elif isinstance(event, RejectConnection):
                self._reject_status = event.status_code
                if not event.has_body:
                    self.rejected = Rejected(event.status_code, b"")
            elif isinstance(event, RejectData):
                self._reject_body += event.data
                if event.body_finished:
                    self.rejected = Rejected(self._reject_status, bytes(self._reject_body))
            elif isinstance(event, BytesMessage):
                self._binary += event.data
                if event.message_finished:
                    frame, self._binary = bytes(self._binary), bytearray()
                    self._on_frame(frame)
            elif isinstance(event, Ping):
                self.pings += 1
                self._send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_code, self.close_reason = event.code, event.reason or ""
                if self.ws.state == ConnectionState.REMOTE_CLOSING:
                    self._send(self.ws.send(event.response()))

    def _on_frame(self, frame: bytes) -> None:
        try:
            self.frames.append(decode_message(frame))
        except SsmProtocolError:
            self.frames.append(None)
        if self.channel is None:
            return
        for event in self.channel.receive(frame, time.time()):
            if isinstance(event, Output):
                self.output += event.data
            elif isinstance(event, Closed):
                self.closed = event


__all__ = ["DUMMY", "OpenSession", "Rejected", "SsmTestClient", "sign"]
