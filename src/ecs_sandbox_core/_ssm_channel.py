"""The client side of an SSM data channel, as a sans-IO state machine.

Theory of operation
-------------------
A driver owns the WebSocket; this class owns every decision. The driver sends
:meth:`SsmChannel.open_message` as the first (TEXT) frame, then loops:

* hand every BINARY frame it receives to :meth:`SsmChannel.receive` (with the current time)
  and act on the events that come back (:class:`Output` bytes, :class:`Closed`);
* send whatever :meth:`SsmChannel.frames_to_send` returns, and call it again no later than
  :meth:`SsmChannel.next_deadline`. That deadline covers everything: it is the last time the
  channel saw (so: now) when acks or input are waiting to go out, the retransmission or give-up
  time otherwise, and None when nothing waits. Calling earlier yields nothing; calling at it
  yields frames (or closes the channel), after which the deadline has moved on, so a driver
  that sleeps until the deadline never spins;
* queue keyboard input with :meth:`SsmChannel.send` and stop when :attr:`SsmChannel.closed`.

Output (agent to client) and readiness are :mod:`._ssm_channel_output`'s: every output frame
is acknowledged and its bytes delivered exactly once, in order; input waits for the session
to be ready (its handshake complete, or its first output without one).

Input (client to agent). Input frames carry their own sequence numbers from 0. Each is kept
until the agent acknowledges its sequence number; the *oldest* unacknowledged frame is resent
once it has waited a retransmission timeout (200 ms at first, then smoothed from measured
round trips, 10 ms granularity, at most 1 s), as the Go plugin does. Input is held, never
dropped, until the session is ready (the agent throws away input that arrives before its
handshake completes, and does not acknowledge input before its PTY is up). While the gateway
has paused publication (the agent's side of the channel is away) nothing is sent, neither new
frames (the handshake response included) nor retransmissions; start_publication resumes both,
the overdue retransmission first. A frame left unacknowledged for ``give_up_s`` after its first
send closes the channel, paused or not: the library documents that deadline instead of
retrying for an hour as the plugin does. The timeout itself is :mod:`._ssm_rto`'s.

Everything else (message ids, creation dates) is computed from values the driver passes in:
message ids are derived from ``id_seed`` and a counter, so the class uses no randomness.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from dataclasses import dataclass
from uuid import UUID

from ._ssm_channel_output import ChannelOutput
from ._ssm_codec import (
    ACKNOWLEDGE,
    CHANNEL_CLOSED,
    FLAG_ACK,
    INPUT_STREAM,
    OUTPUT_STREAM,
    PAUSE_PUBLICATION,
    START_PUBLICATION,
    TERMINATE_SESSION_FLAG,
    AgentMessage,
    PayloadType,
    SsmProtocolError,
    ack_payload,
    acked_sequence,
    decode_message,
    encode_message,
    open_message,
    parse_json_payload,
    size_payload,
)
from ._ssm_events import KMS_REMEDY, ChannelEvent, Closed, ExitCode, Output
from ._ssm_rto import RetransmissionTimeout

CLIENT_VERSION = "1.2.764.0"
"""The plugin version this client speaks as (AWS's minimum supported plugin)."""

INPUT_CHUNK = 1024
"""Largest input payload per frame (the plugin reads its stdin 1024 bytes at a time)."""

_MAX_IN_FLIGHT = 256


@dataclass(slots=True)
class _Pending:
    frame: bytes
    sequence: int
    first_sent: float | None = None
    last_sent: float | None = None
    sends: int = 0


class SsmChannel(ChannelOutput):
    """One data channel's protocol state (see the module docstring).

    ``now`` arguments are seconds on any steady clock (drivers pass ``time.monotonic()``);
    frames are dated ``now + wall_offset_s`` as epoch seconds, so pass the difference
    between the wall clock and that clock (0 when ``now`` is already epoch time).
    ``id_seed`` is at least 16 random bytes from the driver, used to derive message ids.
    ``size`` is announced to the agent once the session is ready (None: never).
    """

    def __init__(
        self,
        *,
        token: str,
        id_seed: bytes,
        client_version: str = CLIENT_VERSION,
        size: tuple[int, int] | None = (300, 100),
        give_up_s: float = 60.0,
        max_reorder: int = 4096,
        wall_offset_s: float = 0.0,
    ) -> None:
        if len(id_seed) < 16:
            raise ValueError("id_seed must be at least 16 random bytes")
        if give_up_s <= 0 or max_reorder < 1:
            raise ValueError("give_up_s and max_reorder must be positive")
        self._token = token
        self._seed = bytes(id_seed)
        self._ids = 0
        self.client_version = client_version
        self.give_up_s = give_up_s
        self.max_reorder = max_reorder
        self.ready = False
        self._handshake = False  # a HandshakeRequest came: only HandshakeComplete makes ready
        self.paused = False
        self.closed: Closed | None = None
        self.agent_version = ""
        # Output side.
        self._expected = 0
        self._reorder: dict[int, AgentMessage] = {}
        self._acks: list[bytes] = []
        self.dropped_frames = 0  # frames refused (corrupt, or too far ahead)
        self.duplicate_frames = 0
        # Input side.
        self._next_seq = 0
        self._control: deque[tuple[int, bytes]] = deque()  # sent even before ready
        self._held: deque[tuple[int, bytes]] = deque()  # (payload type, payload) until ready
        self._unacked: dict[int, _Pending] = {}
        self._rto = RetransmissionTimeout()
        self.retransmissions = 0
        self._now = 0.0
        # Frames are dated in epoch milliseconds; ``now`` may be a monotonic clock (so that
        # a wall-clock jump cannot fire or stall timers), shifted by this offset for dates.
        self._wall_offset_s = wall_offset_s
        if size is not None:
            self._held.append((PayloadType.SIZE, size_payload(*size)))

    # --- what the driver calls --------------------------------------------------------------

    def open_message(self) -> str:
        """The TEXT frame to send first: the token, with ids derived from the seed."""
        return open_message(
            token=self._token,
            request_id=self._new_id(),
            client_id=self._new_id(),
            client_version=self.client_version,
        )

    def send(self, data: bytes) -> None:
        """Queue keyboard input; it is sent in order once the session is ready."""
        if self.closed is not None:
            raise RuntimeError(f"the channel is closed: {self.closed.reason}")
        for start in range(0, len(data), INPUT_CHUNK):
            self._held.append((PayloadType.OUTPUT, data[start : start + INPUT_CHUNK]))

    def resize(self, cols: int, rows: int) -> None:
        """Announce a new terminal size (queued like input)."""
        self._held.append((PayloadType.SIZE, size_payload(cols, rows)))

    def terminate(self) -> None:
        """Ask the agent to end the session (it kills the command's direct child)."""
        flag = struct.pack(">I", TERMINATE_SESSION_FLAG)
        self._held.append((PayloadType.FLAG, flag))

    @property
    def input_pending(self) -> int:
        """Input frames queued or sent but not yet acknowledged."""
        return len(self._held) + len(self._control) + len(self._unacked)

    def receive(self, frame: bytes, now: float) -> list[ChannelEvent]:
        """Take one BINARY frame from the WebSocket; return what it means for the caller."""
        self._now = now
        if self.closed is not None:
            return []
        try:
            message = decode_message(frame)
        except SsmProtocolError:
            self.dropped_frames += 1  # unacknowledged, so the agent sends it again
            return []
        kind = message.message_type
        if kind == OUTPUT_STREAM:
            return self._on_output(message)
        if kind == ACKNOWLEDGE:
            self._on_ack(message, now)
            return []
        if kind == CHANNEL_CLOSED:
            return [self._close(_closed_reason(message), by_agent=True, kind="channel_closed")]
        if kind == PAUSE_PUBLICATION:
            self.paused = True
        elif kind == START_PUBLICATION:
            self.paused = False
        return []

    def frames_to_send(self, now: float) -> list[bytes]:
        """Frames due now: acks, new input, and a retransmission of the oldest unacked."""
        self._now = now
        frames, self._acks = self._acks, []
        if self.closed is not None:
            return frames
        if not self.paused:
            while self._control:
                frames.append(self._first_send(*self._control.popleft(), now))
        while self._can_send_held():
            frames.append(self._first_send(*self._held.popleft(), now))
        oldest = self._oldest()
        # Compare with the very sums next_deadline() returns: now - sent >= rto can be false
        # at sent + rto in floating point, and a driver waking at the deadline would spin.
        if oldest is not None and oldest.first_sent is not None:
            if now >= oldest.first_sent + self.give_up_s:
                self._close(
                    f"the agent acknowledged no input for {self.give_up_s:g} s",
                    by_agent=False,
                    kind="unacknowledged",
                )
                return frames
            assert oldest.last_sent is not None
            if not self.paused and now >= oldest.last_sent + self._rto.seconds:
                oldest.last_sent = now
                oldest.sends += 1
                self.retransmissions += 1
                frames.append(oldest.frame)
        return frames

    def next_deadline(self) -> float | None:
        """When :meth:`frames_to_send` must be called again, or None if nothing waits.

        A time at or before the last ``now`` seen means: call it now.
        """
        if self.closed is not None:
            return None
        if self._acks or (self._control and not self.paused) or self._can_send_held():
            return self._now
        oldest = self._oldest()
        if oldest is None or oldest.last_sent is None or oldest.first_sent is None:
            return None
        give_up = oldest.first_sent + self.give_up_s
        if self.paused:
            return give_up  # no retransmission while paused
        return min(oldest.last_sent + self._rto.seconds, give_up)

    def _can_send_held(self) -> bool:
        ready = self.ready and not self.paused
        return ready and bool(self._held) and len(self._unacked) < _MAX_IN_FLIGHT

    # --- input ----------------------------------------------------------------------------

    def _first_send(self, payload_type: int, payload: bytes, now: float) -> bytes:
        seq = self._next_seq
        self._next_seq += 1
        frame = encode_message(
            AgentMessage(
                message_type=INPUT_STREAM,
                sequence=seq,
                flags=0,
                message_id=self._new_id(),
                payload_type=payload_type,
                payload=payload,
                created_ms=_millis(now + self._wall_offset_s),
            )
        )
        self._unacked[seq] = _Pending(frame, seq, first_sent=now, last_sent=now, sends=1)
        return frame

    def _on_ack(self, message: AgentMessage, now: float) -> None:
        try:
            seq = acked_sequence(message)
        except SsmProtocolError:
            return
        pending = self._unacked.pop(seq, None)
        if pending is None or pending.sends != 1 or pending.first_sent is None:
            return  # unknown, or retransmitted: its round trip is ambiguous (Karn)
        self._rto.sample(max(0.0, now - pending.first_sent))

    def _oldest(self) -> _Pending | None:
        return self._unacked[min(self._unacked)] if self._unacked else None

    # --- helpers ----------------------------------------------------------------------------

    def _ack(self, acked: AgentMessage) -> bytes:
        return encode_message(
            AgentMessage(
                message_type=ACKNOWLEDGE,
                sequence=0,
                flags=FLAG_ACK,
                message_id=self._new_id(),
                payload_type=0,
                payload=ack_payload(acked),
                created_ms=_millis(self._now + self._wall_offset_s),
            )
        )

    def _new_id(self) -> UUID:
        self._ids += 1
        digest = hashlib.sha256(self._seed + self._ids.to_bytes(8, "big")).digest()
        return UUID(bytes=digest[:16], version=4)


def _millis(now: float) -> int:
    return max(1, int(now * 1000))


def _closed_reason(message: AgentMessage) -> str:
    try:
        data = parse_json_payload(message)
    except SsmProtocolError:
        return "the service closed the channel"
    output = data.get("Output")
    return str(output) if output else "the service closed the channel"


__all__ = [
    "CLIENT_VERSION",
    "INPUT_CHUNK",
    "KMS_REMEDY",
    "ChannelEvent",
    "Closed",
    "ExitCode",
    "Output",
    "SsmChannel",
]
