"""What the sync and the anyio data-channel pumps share: everything but the socket.

:class:`ChannelPump` joins two sans-IO machines, wsproto's WebSocket client and the core's
:class:`~ecs_sandbox_core._ssm_channel.SsmChannel`: the pumps hand it the bytes they read
and write the bytes it returns, and wait no longer than :meth:`ChannelPump.wait_s`. It
collects the session's output, shows it while it arrives (``on_output``) and says how the
session ended as a :class:`~ecs_sandbox_core.SessionResult`. The rest of what the two pumps
share (limits, read pacing, a command loop's results) is in ``_ssm_shared``.

The WebSocket upgrade is SigV4-signed (service ``ssmmessages``), as session-manager-plugin
does since 1.2.764.0; :func:`signed_upgrade_headers` signs with botocore's signer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
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
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ecs_sandbox_core import SessionResult
from ecs_sandbox_core._cmdloop import KEEPALIVE
from ecs_sandbox_core._limits import OutputCap
from ecs_sandbox_core._ssm_channel import Closed, Output, SsmChannel

logger = logging.getLogger("ecs_sandbox.ssm")

_MAX_MESSAGE = 1 << 20  # an AgentMessage carries at most a few KiB; refuse absurd ones
_CLOSE_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where a stream URL points: TLS or not, host, port and the request target."""

    tls: bool
    host: str
    port: int
    target: str


def parse_stream_url(url: str) -> StreamTarget:
    """Split a ``ws://`` / ``wss://`` stream URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {parts.scheme}://{parts.hostname or ''}")
    tls = parts.scheme == "wss"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return StreamTarget(tls, parts.hostname, parts.port or (443 if tls else 80), target)


def signed_upgrade_headers(
    url: str, *, credentials: Any, region: str, service: str = "ssmmessages"
) -> list[tuple[str, str]]:
    """SigV4 headers for the WebSocket upgrade GET of ``url`` (``Authorization`` etc.)."""
    https = "https" + url[len("wss") :] if url.startswith("wss") else "http" + url[len("ws") :]
    request = AWSRequest(method="GET", url=https)
    SigV4Auth(credentials, service, region).add_auth(request)
    return [
        (name, value)
        for name, value in request.headers.items()
        if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
    ]


class ChannelPump:
    """One session's WebSocket + data channel, fed bytes by a driver (see module docstring).

    ``now`` is the steady clock the channel's timers run on (``time.monotonic``).
    """

    def __init__(
        self,
        *,
        url: str,
        token: str,
        id_seed: bytes,
        input_bytes: bytes = b"",
        on_output: Callable[[bytes], None] | None = None,
        now: Callable[[], float] = time.monotonic,
        max_output_bytes: int | None = None,
    ) -> None:
        self.target = parse_stream_url(url)
        self._url = url
        self._ws = WSConnection(ConnectionType.CLIENT)
        self.channel = SsmChannel(token=token, id_seed=id_seed, wall_offset_s=time.time() - now())
        self._input = input_bytes
        self._on_output = on_output
        self._now = now
        self._message = bytearray()
        self.output = bytearray()
        self._cap = OutputCap(max_output_bytes)
        self.end_on_cap = True  # end the session once the output passes the cap
        self.opened = False
        self.done = False
        self.failure: tuple[str, str] | None = None

    # --- the conversation ---------------------------------------------------------------

    def upgrade_request(self, headers: list[tuple[str, str]]) -> bytes:
        """The HTTP upgrade request (``headers`` from :func:`signed_upgrade_headers`)."""
        host = self.target.host
        default = 443 if self.target.tls else 80
        if self.target.port != default:
            host = f"{host}:{self.target.port}"
        extra = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
        return self._ws.send(Request(host=host, target=self.target.target, extra_headers=extra))

    def receive(self, data: bytes | None) -> bytes:
        """Feed bytes read from the socket (``None`` at end of stream); return bytes to write."""
        if data is None:
            self._fail("dropped", "the connection dropped without a WebSocket close")
            return b""
        try:
            self._ws.receive_data(data)
            out = bytearray()
            for event in self._ws.events():
                out += self._on_event(event)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self._fail("protocol", f"WebSocket protocol error: {exc}")
            return b""
        return bytes(out) + self.flush()

    def flush(self) -> bytes:
        """Frames the channel wants sent now (acks, input, retransmissions)."""
        if not self.opened or self._ws.state is not ConnectionState.OPEN:
            return b""
        out = bytearray()
        if self._cap.exceeded and self.end_on_cap and self.channel.closed is None and not self.done:
            # One byte past the limit tells "too much": end the session; the flow raises.
            self.channel.terminate()
            for frame in self.channel.frames_to_send(self._now()):
                out += self._ws.send(BytesMessage(data=frame))
            return bytes(out) + self._close()
        for frame in self.channel.frames_to_send(self._now()):
            out += self._ws.send(BytesMessage(data=frame))
        closed = self.channel.closed
        if closed is not None and not self.done:
            if closed.kind != "channel_closed":
                self._fail(closed.kind, closed.reason)
            out += self._close()
        return bytes(out)

    def terminate(self) -> bytes:
        """Ask the agent to end the session, then close the WebSocket (on a timeout)."""
        out = b""
        if self.opened and self.channel.closed is None:
            self.channel.terminate()
            out = self.flush()
        return out + self._close()

    def wait_and_keep_alive(
        self, now: float, remaining: float, keepalive_s: float | None, since: float
    ) -> tuple[float, float]:
        """How long to read next (at most ``remaining``), and when input was last typed.

        With ``keepalive_s``, type the command loop's no-op line once that long passed
        without input since ``since``: the agent's idle timer counts input only, so a
        command running longer than the idle timeout would otherwise lose its session.
        """
        wait = self.wait_s(remaining)
        if keepalive_s is None:
            return wait, since
        if now - since >= keepalive_s and self.channel.closed is None:
            self.channel.send(KEEPALIVE)
            since, wait = now, 0.0
        return min(wait, since + keepalive_s - now), since

    def wait_s(self, limit: float) -> float:
        """How long the driver may block reading, at most ``limit`` seconds."""
        deadline = self.channel.next_deadline()
        if deadline is None:
            return max(limit, 0.0)
        return max(0.0, min(limit, deadline - self._now()))

    def result(self, *, timed_out: bool = False) -> SessionResult:
        """How the session ended, with every output byte."""
        output = bytes(self.output)
        if timed_out:
            return SessionResult(output=output, ended="timeout", reason="timed out")
        if self.failure is not None:
            kind, reason = self.failure
            return SessionResult(output=output, ended="failed", kind=kind, reason=reason)
        closed = self.channel.closed
        reason = closed.reason if closed is not None else ""
        return SessionResult(output=output, ended="closed", kind="channel_closed", reason=reason)

    def reset_output(
        self,
        *,
        max_output_bytes: int | None = None,
        on_output: Callable[[bytes], None] | None = None,
        end_on_cap: bool = True,
    ) -> bytes:
        """Start collecting afresh (a command loop's next request); return what was kept.

        With ``end_on_cap`` false, output past ``max_output_bytes`` is dropped but the session
        stays open (the command loop stops the command before it closes the session).
        """
        kept = bytes(self.output)
        self.output = bytearray()
        self._cap = OutputCap(max_output_bytes)
        self._on_output = on_output
        self.end_on_cap = end_on_cap
        return kept

    @property
    def output_limit_hit(self) -> bool:
        """True once more output arrived than ``max_output_bytes`` allows."""
        return self._cap.exceeded

    @property
    def finished(self) -> bool:
        """True once the WebSocket closing handshake is complete (nothing more will come)."""
        return self._ws.state is ConnectionState.CLOSED

    def connect_failed(self, reason: str) -> None:
        """The TCP or TLS connection could not be made."""
        self._fail("connect", reason)

    def connection_lost(self, error: str) -> None:
        """The connection failed: before the upgrade, a failure to connect; after, a drop."""
        if not self.opened:
            self.connect_failed(f"{self.target.host}:{self.target.port}: {error}")
        else:
            self.broke()

    def broke(self) -> None:
        """The connection broke mid-session (nothing changes once the session is done)."""
        if not self.done:
            self.receive(None)

    # --- helpers --------------------------------------------------------------------------

    def _on_event(self, event: object) -> bytes:
        if isinstance(event, AcceptConnection):
            self.opened = True
            out = self._ws.send(TextMessage(data=self.channel.open_message()))
            if self._input:
                self.channel.send(self._input)
            return out
        if isinstance(event, RejectConnection):
            self._fail("refused", f"the WebSocket upgrade was refused (HTTP {event.status_code})")
            return b""
        if isinstance(event, RejectData):
            return b""
        if isinstance(event, BytesMessage):
            self._message += event.data
            if len(self._message) > _MAX_MESSAGE:
                self._fail("protocol", "a data-channel message exceeded 1 MiB")
                return self._close()
            if event.message_finished:
                frame, self._message = bytes(self._message), bytearray()
                self._on_frame(frame)
            return b""
        if isinstance(event, Ping):
            return self._ws.send(event.response())
        if isinstance(event, CloseConnection):
            if self.channel.closed is None:
                why = f"code {event.code}{': ' + event.reason if event.reason else ''}"
                self._fail("dropped", f"the service closed the WebSocket ({why})")
            self.done = True
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                return self._ws.send(event.response())
            return b""
        if isinstance(event, TextMessage):
            logger.debug("data channel text message ignored (%d chars)", len(event.data))
        return b""

    def _on_frame(self, frame: bytes) -> None:
        for item in self.channel.receive(frame, self._now()):
            if isinstance(item, Output):
                kept = self._cap.take(item.data)
                self.output += kept
                if self._on_output is not None and kept:
                    self._on_output(kept)

            elif isinstance(item, Closed):
                logger.debug("data channel closed: %s", item.kind)

    def _close(self) -> bytes:
        self.done = True
        if self._ws.state is ConnectionState.OPEN:
            return self._ws.send(CloseConnection(code=1000))
        return b""

    def _fail(self, kind: str, reason: str) -> None:
        if self.failure is None and self.channel.closed is None:
            self.failure = (kind, reason)
        self.done = True


CLOSE_GRACE_S = _CLOSE_GRACE_S
"""How long a pump waits for the peer after closing, before it drops the connection."""

__all__ = [
    "CLOSE_GRACE_S",
    "ChannelPump",
    "StreamTarget",
    "parse_stream_url",
    "signed_upgrade_headers",
]
