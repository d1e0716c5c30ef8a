"""The SSM data channel's wire format: AgentMessage frames and their JSON payloads.

ECS Exec carries a session over one WebSocket. The first client message is a TEXT frame with
the session token (:func:`open_message`); every later message, both ways, is one BINARY frame
holding one AgentMessage: a 116-byte header (big-endian integers), a 4-byte payload length and
the payload. The header's message id is a UUID stored with its two 8-byte halves swapped, and
its digest is the SHA-256 of the payload, checked on decode.

What the decoder refuses, and why:

* a HeaderLength other than 116. Both Go peers read every field, the payload length included,
  at fixed offsets and only use HeaderLength to find the payload, so a frame with another value
  would be read differently by them; and accepting it let a single corrupted byte there turn
  a payload of four zero bytes into an empty, undigested one.
* a payload length that disagrees with the bytes that follow (truncated or padded frames);
* a non-empty payload whose digest does not match (as both Go peers do), so a frame corrupted
  on the way is refused rather than delivered;
* a message type that is not 1 to 32 visible ASCII characters once its padding (spaces,
  NULs) is stripped, or a zero CreatedDate.

``start_publication`` and ``pause_publication`` come from the gateway, and the plugin skips
its validation for them (``ClientMessage.Validate``): their CreatedDate may be zero and their
digest is not checked, so that a pause or resume is never lost to a missing field.

JSON payloads are written compactly (no spaces), as Go's ``json.Marshal`` writes them.

This module only encodes and decodes; the rules of the conversation (acks, ordering,
retransmission, handshake) live in :mod:`._ssm_channel`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ._errors import RemoteError

HEADER_LENGTH = 116
"""The value of the HeaderLength field: the offset of the PayloadLength field."""
PAYLOAD_OFFSET = HEADER_LENGTH + 4
_TYPE_FIELD = 32
# HeaderLength, MessageType, SchemaVersion, CreatedDate, SequenceNumber, Flags, MessageId,
# PayloadDigest, PayloadType, PayloadLength.
_HEADER = struct.Struct(">I32sIQqQ16s32sII")
assert _HEADER.size == PAYLOAD_OFFSET

INPUT_STREAM = "input_stream_data"
OUTPUT_STREAM = "output_stream_data"
ACKNOWLEDGE = "acknowledge"
CHANNEL_CLOSED = "channel_closed"
START_PUBLICATION = "start_publication"
PAUSE_PUBLICATION = "pause_publication"
# Gateway messages the plugin does not validate (no CreatedDate needed, digest not checked).
_UNDATED_TYPES = frozenset({START_PUBLICATION, PAUSE_PUBLICATION})

FLAG_SYN = 1
FLAG_FIN = 2
FLAG_ACK = 3  # what acknowledge frames carry

_COMPACT = (",", ":")  # json.dumps separators: no spaces, as Go's json.Marshal writes


class PayloadType(enum.IntEnum):
    """What the payload of a stream frame holds."""

    OUTPUT = 1
    ERROR = 2
    SIZE = 3
    PARAMETER = 4
    HANDSHAKE_REQUEST = 5
    HANDSHAKE_RESPONSE = 6
    HANDSHAKE_COMPLETE = 7
    ENC_CHALLENGE_REQUEST = 8
    ENC_CHALLENGE_RESPONSE = 9
    FLAG = 10
    STDERR = 11
    EXIT_CODE = 12


TERMINATE_SESSION_FLAG = 2
"""The Flag payload (a big-endian uint32) that asks the agent to end the session."""


class SsmProtocolError(RemoteError):
    """A frame or payload from the data channel does not follow the protocol."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMessage:
    """One AgentMessage frame, as both sides of the data channel send it.

    The constructor refuses what the frame cannot carry or a peer would refuse: a type that is
    not 1 to 32 visible ASCII characters, integers outside their fields, a zero ``created_ms``
    (allowed only for start/pause_publication), a payload of 4 GiB or more.
    """

    message_type: str
    sequence: int
    flags: int
    message_id: UUID
    payload_type: int
    payload: bytes
    created_ms: int
    schema_version: int = 1

    def __post_init__(self) -> None:
        # Visible ASCII only: readers strip spaces and NULs, so a type with them at either end
        # would not survive a round trip.
        kind = self.message_type
        if not 0 < len(kind) <= _TYPE_FIELD or not all("!" <= c <= "~" for c in kind):
            raise ValueError(f"message type {kind!r} is not 1 to 32 visible ASCII characters")
        low = 0 if kind in _UNDATED_TYPES else 1
        if not low <= self.created_ms < 2**64:
            raise ValueError("created_ms must be a positive epoch time in milliseconds")
        if not -(2**63) <= self.sequence < 2**63:
            raise ValueError("sequence does not fit an int64")
        if not 0 <= self.flags < 2**64 or not 0 <= self.payload_type < 2**32:
            raise ValueError("flags or payload_type out of range")
        if not 0 <= self.schema_version < 2**32 or len(self.payload) >= 2**32:
            raise ValueError("schema_version or payload length out of range")


def _swap_halves(raw: bytes) -> bytes:
    return raw[8:16] + raw[0:8]


def encode_message(message: AgentMessage) -> bytes:
    """The frame's bytes: header, payload length and payload."""
    return (
        _HEADER.pack(
            HEADER_LENGTH,
            message.message_type.encode("ascii").ljust(_TYPE_FIELD, b" "),
            message.schema_version,
            message.created_ms,
            message.sequence,
            message.flags,
            _swap_halves(message.message_id.bytes),
            hashlib.sha256(message.payload).digest(),
            message.payload_type,
            len(message.payload),
        )
        + message.payload
    )


def decode_message(frame: bytes) -> AgentMessage:
    """Parse one frame; raise :class:`SsmProtocolError` when it is malformed.

    See the module docstring for what is refused.
    """
    if len(frame) < PAYLOAD_OFFSET:
        raise SsmProtocolError(f"frame of {len(frame)} bytes is shorter than a header")
    (
        header_length,
        raw_type,
        schema_version,
        created_ms,
        sequence,
        flags,
        raw_id,
        digest,
        payload_type,
        length,
    ) = _HEADER.unpack_from(frame)
    if header_length != HEADER_LENGTH:
        raise SsmProtocolError(f"frame header length {header_length} is not {HEADER_LENGTH}")
    payload = frame[PAYLOAD_OFFSET:]
    if length != len(payload):
        raise SsmProtocolError(f"payload length {length} but {len(payload)} bytes follow")
    try:
        message_type = raw_type.decode("ascii").strip(" \x00")
    except UnicodeDecodeError:
        raise SsmProtocolError("message type is not ASCII") from None
    undated = message_type in _UNDATED_TYPES
    if payload and not undated and hashlib.sha256(payload).digest() != digest:
        raise SsmProtocolError("payload digest mismatch")
    if not message_type or (created_ms == 0 and not undated):
        raise SsmProtocolError("message type or created date missing")
    try:
        return AgentMessage(
            message_type=message_type,
            schema_version=schema_version,
            created_ms=created_ms,
            sequence=sequence,
            flags=flags,
            message_id=UUID(bytes=_swap_halves(raw_id)),
            payload_type=payload_type,
            payload=bytes(payload),
        )
    except ValueError as exc:
        raise SsmProtocolError(f"malformed frame: {exc}") from None


def open_message(*, token: str, request_id: UUID, client_id: UUID, client_version: str) -> str:
    """The TEXT frame that opens the data channel with the session's token."""
    return json.dumps(
        {
            "MessageSchemaVersion": "1.0",
            "RequestId": str(request_id),
            "TokenValue": token,
            "ClientId": str(client_id),
            "ClientVersion": client_version,
        },
        separators=_COMPACT,
    )


def ack_payload(acked: AgentMessage) -> bytes:
    """The JSON payload acknowledging stream frame ``acked``."""
    return json.dumps(
        {
            "AcknowledgedMessageType": acked.message_type,
            "AcknowledgedMessageId": str(acked.message_id),
            "AcknowledgedMessageSequenceNumber": acked.sequence,
            "IsSequentialMessage": True,
        },
        separators=_COMPACT,
    ).encode()


def parse_json_payload(message: AgentMessage) -> dict[str, Any]:
    """The payload of ``message`` as a JSON object, or :class:`SsmProtocolError`."""
    try:
        data = json.loads(message.payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SsmProtocolError(f"{message.message_type} payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SsmProtocolError(f"{message.message_type} payload is not a JSON object")
    return data


def acked_sequence(message: AgentMessage) -> int:
    """The sequence number an ``acknowledge`` frame acknowledges."""
    data = parse_json_payload(message)
    seq = data.get("AcknowledgedMessageSequenceNumber")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise SsmProtocolError("acknowledge without a sequence number")
    return seq


def size_payload(cols: int, rows: int) -> bytes:
    """The Size payload announcing the terminal's dimensions."""
    if not (0 < cols < 2**32 and 0 < rows < 2**32):
        raise ValueError("terminal size must be positive")
    return json.dumps({"cols": cols, "rows": rows}, separators=_COMPACT).encode()


__all__ = [
    "ACKNOWLEDGE",
    "CHANNEL_CLOSED",
    "FLAG_ACK",
    "FLAG_FIN",
    "FLAG_SYN",
    "HEADER_LENGTH",
    "INPUT_STREAM",
    "OUTPUT_STREAM",
    "PAUSE_PUBLICATION",
    "PAYLOAD_OFFSET",
    "START_PUBLICATION",
    "TERMINATE_SESSION_FLAG",
    "AgentMessage",
    "PayloadType",
    "SsmProtocolError",
    "ack_payload",
    "acked_sequence",
    "decode_message",
    "encode_message",
    "open_message",
    "parse_json_payload",
    "size_payload",
]
