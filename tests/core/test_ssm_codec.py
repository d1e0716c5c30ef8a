"""The AgentMessage codec against the Go plugin's golden vectors, and its properties.

Vectors come from aws/session-manager-plugin ``src/message/messageparser_test.go`` (the same
message id, date, sequence, flags and payload, and the integers its putLong/putInteger tests
use), restated in our terms. Expected bytes are written out by hand, field by field, so that
these tests do not merely re-run the encoder.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._ssm_codec import (
    ACKNOWLEDGE,
    CHANNEL_CLOSED,
    INPUT_STREAM,
    OUTPUT_STREAM,
    PAUSE_PUBLICATION,
    START_PUBLICATION,
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

# messageparser_test.go: messageId, createdDate, payload.
GO_ID = uuid.UUID("dd01e56b-ff48-483e-a508-b5f073f31b16")
GO_CREATED = 1503434274948
GO_PAYLOAD = b"payload"

# TestSerializeAndDeserializeClientMessage: input_stream_data, schema 1, seq 1, flags 2,
# PayloadType left at zero.
GO_FRAME = bytes.fromhex(
    "00000074"  # 0: HeaderLength 116
    "696e7075745f73747265616d5f64617461"  # 4: "input_stream_data" (17 bytes) ...
    "202020202020202020202020202020"  # ... padded with 15 spaces to 32 bytes
    "00000001"  # 36: SchemaVersion 1
    "0000015e0baa7884"  # 40: CreatedDate 1503434274948
    "0000000000000001"  # 48: SequenceNumber 1
    "0000000000000002"  # 56: Flags 2 (FIN)
    "a508b5f073f31b16"  # 64: MessageId, its second half first (putUuid) ...
    "dd01e56bff48483e"  # 72: ... then its first half
    "239f59ed55e737c77147cf55ad0c1b03"  # 80: SHA-256("payload") ...
    "0b6d7ee748a7426952f9b852d5a935e5"  # ... 32 bytes
    "00000000"  # 112: PayloadType 0
    "00000007"  # 116: PayloadLength 7
    "7061796c6f6164"  # 120: "payload"
)

GO_MESSAGE = AgentMessage(
    message_type=INPUT_STREAM,
    sequence=1,
    flags=2,
    message_id=GO_ID,
    payload_type=0,
    payload=GO_PAYLOAD,
    created_ms=GO_CREATED,
)


def test_go_serialize_vector_encodes_byte_for_byte() -> None:
    assert encode_message(GO_MESSAGE) == GO_FRAME


def test_go_serialize_vector_fields_sit_at_their_offsets() -> None:
    frame = encode_message(GO_MESSAGE)
    assert len(frame) == 127
    assert frame[0:4] == b"\x00\x00\x00\x74"
    assert frame[4:36].rstrip(b" ") == b"input_stream_data"
    assert frame[36:40] == b"\x00\x00\x00\x01"
    assert frame[40:48] == b"\x00\x00\x01\x5e\x0b\xaa\x78\x84"
    assert frame[48:56] == b"\x00" * 7 + b"\x01"
    assert frame[56:64] == b"\x00" * 7 + b"\x02"
    assert frame[64:72] == bytes.fromhex("a508b5f073f31b16")
    assert frame[72:80] == bytes.fromhex("dd01e56bff48483e")
    assert frame[80:112] == hashlib.sha256(b"payload").digest()
    assert frame[112:116] == b"\x00" * 4
    assert frame[116:120] == b"\x00\x00\x00\x07"
    assert frame[120:] == b"payload"


def test_go_serialize_vector_decodes_to_every_field() -> None:
    message = decode_message(GO_FRAME)
    assert message == GO_MESSAGE
    assert str(message.message_id) == "dd01e56b-ff48-483e-a508-b5f073f31b16"
    assert message.schema_version == 1


# TestLongToBytes / TestPutLong / TestGetLong / TestPutGetLong (8-byte fields) and
# TestPutInteger / TestPutGetInteger (4-byte fields), placed in our header's fields.
@pytest.mark.parametrize(
    ("field", "offset", "value", "raw"),
    [
        ("sequence", 48, 5747283, "000000000057b253"),
        ("sequence", 48, 4294967296, "0000000100000000"),
        ("sequence", 48, 50, "0000000000000032"),
        ("created_ms", 40, 92837273, "0000000005889599"),
        ("created_ms", 40, 5899622, "00000000005a0566"),
        ("flags", 56, 5899626, "00000000005a056a"),
        ("payload_type", 112, 520392, "0007f0c8"),
        ("payload_type", 112, 324, "00000144"),
        ("schema_version", 36, 256, "00000100"),
        ("schema_version", 36, 65536, "00010000"),
    ],
)
def test_go_integer_vectors(field: str, offset: int, value: int, raw: str) -> None:
    fields = {
        "message_type": OUTPUT_STREAM,
        "sequence": 0,
        "flags": 0,
        "message_id": GO_ID,
        "payload_type": 1,
        "payload": b"",
        "created_ms": GO_CREATED,
        field: value,
    }
    message = AgentMessage(**fields)  # type: ignore[arg-type]
    frame = encode_message(message)
    expected = bytes.fromhex(raw)
    assert frame[offset : offset + len(expected)] == expected
    assert decode_message(frame) == message


def test_negative_sequence_is_twos_complement() -> None:
    message = AgentMessage(
        message_type=OUTPUT_STREAM,
        sequence=-2,
        flags=0,
        message_id=GO_ID,
        payload_type=1,
        payload=b"",
        created_ms=1,
    )
    frame = encode_message(message)
    assert frame[48:56] == bytes.fromhex("fffffffffffffffe")
    assert decode_message(frame).sequence == -2


def test_message_id_halves_are_swapped_both_ways() -> None:
    # TestPutUuid: the bytes 8..15 of the UUID go first.
    message_id = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    frame = encode_message(
        AgentMessage(
            message_type=ACKNOWLEDGE,
            sequence=0,
            flags=3,
            message_id=message_id,
            payload_type=0,
            payload=b"",
            created_ms=GO_CREATED,
        )
    )
    assert frame[64:80] == bytes.fromhex("8899aabbccddeeff0011223344556677")
    assert decode_message(frame).message_id == message_id


def test_message_type_reader_strips_nuls_and_spaces() -> None:
    # getString trims NULs then spaces: a peer padding with NULs is read the same.
    frame = bytearray(GO_FRAME)
    frame[4 + 17 : 36] = b"\x00" * 15
    assert decode_message(bytes(frame)) == GO_MESSAGE


# TestClientMessage_Validate: a missing CreatedDate, then a wrong digest, are refused.
def test_go_validate_missing_created_date() -> None:
    frame = bytearray(GO_FRAME)
    frame[40:48] = bytes(8)
    with pytest.raises(SsmProtocolError, match="created date"):
        decode_message(bytes(frame))


def test_go_validate_bad_digest() -> None:
    frame = bytearray(GO_FRAME)
    frame[80:112] = bytes(32)
    with pytest.raises(SsmProtocolError, match="digest"):
        decode_message(bytes(frame))


def test_empty_payload_digest_is_not_checked() -> None:
    # Validate checks the digest only when PayloadLength is non-zero.
    frame = bytearray(GO_FRAME[:116]) + b"\x00\x00\x00\x00"
    frame[80:112] = bytes(32)
    assert decode_message(bytes(frame)).payload == b""


@pytest.mark.parametrize("kind", [START_PUBLICATION, PAUSE_PUBLICATION])
def test_go_validate_skips_publication_messages(kind: str) -> None:
    # TestClientMessage_ValidateStartPublicationMessage: no CreatedDate, no digest, yet valid.
    frame = bytearray(GO_FRAME)
    frame[4:36] = kind.encode().ljust(32, b" ")
    frame[40:48] = bytes(8)
    frame[80:112] = bytes(32)
    message = decode_message(bytes(frame))
    assert message.message_type == kind
    assert message.created_ms == 0
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize("header_length", [0, 115, 117, 120, 2**32 - 1])
def test_other_header_lengths_are_refused(header_length: int) -> None:
    frame = header_length.to_bytes(4, "big") + GO_FRAME[4:]
    with pytest.raises(SsmProtocolError, match="header length"):
        decode_message(frame)


def test_header_length_corruption_cannot_forge_an_empty_payload() -> None:
    # One flipped bit made HeaderLength 120: the length was then read from the payload's
    # four zero bytes, nothing followed, and an empty (so undigested) payload was accepted.
    good = encode_message(
        AgentMessage(
            message_type=OUTPUT_STREAM,
            sequence=0,
            flags=0,
            message_id=GO_ID,
            payload_type=1,
            payload=b"\x00\x00\x00\x00",
            created_ms=GO_CREATED,
        )
    )
    assert good[:4] == b"\x00\x00\x00\x74"
    with pytest.raises(SsmProtocolError):
        decode_message(b"\x00\x00\x00\x78" + good[4:])


# --- JSON payloads ------------------------------------------------------------------------


def test_go_acknowledge_content_vector() -> None:
    # TestSerializeAndDeserializeClientMessageWithAcknowledgeContent: json.Marshal of
    # AcknowledgeContent{input_stream_data, messageId, 2, true}.
    acked = AgentMessage(
        message_type=INPUT_STREAM,
        sequence=2,
        flags=0,
        message_id=GO_ID,
        payload_type=1,
        payload=b"x",
        created_ms=GO_CREATED,
    )
    assert ack_payload(acked) == (
        b'{"AcknowledgedMessageType":"input_stream_data",'
        b'"AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16",'
        b'"AcknowledgedMessageSequenceNumber":2,"IsSequentialMessage":true}'
    )


def _ack_frame(payload: bytes) -> AgentMessage:
    return AgentMessage(
        message_type=ACKNOWLEDGE,
        sequence=0,
        flags=3,
        message_id=GO_ID,
        payload_type=0,
        payload=payload,
        created_ms=GO_CREATED,
    )


def test_acked_sequence_reads_the_agents_ack() -> None:
    payload = (
        b'{"AcknowledgedMessageType": "input_stream_data", "AcknowledgedMessageId": '
        b'"dd01e56b-ff48-483e-a508-b5f073f31b16", '
        b'"AcknowledgedMessageSequenceNumber": 5747283, "IsSequentialMessage": true}'
    )
    assert acked_sequence(_ack_frame(payload)) == 5747283


@pytest.mark.parametrize(
    "payload",
    [
        # messageparser_test.go's ackMessagePayload has no sequence number.
        b'{"AcknowledgedMessageType": "acknowledge", '
        b'"AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16"}',
        b"payload",  # "improperly formatted json data"
        b'{"AcknowledgedMessageSequenceNumber": true}',
        b'{"AcknowledgedMessageSequenceNumber": "3"}',
        b"[3]",
        b"\xff",
    ],
)
def test_acked_sequence_refuses_malformed_acks(payload: bytes) -> None:
    with pytest.raises(SsmProtocolError):
        acked_sequence(_ack_frame(payload))


def test_parse_json_payload_reads_go_channel_closed_payload() -> None:
    payload = (
        b'{"MessageType": "channel_closed", "MessageId": "dd01e56b-ff48-483e-a508-b5f073f31b16",'
        b' "CreatedDate": "1503434274948", "SessionId": "sessionId_01234567890abcedf",'
        b' "SchemaVersion": 1, "Output": "payload"}'
    )
    message = AgentMessage(
        message_type=CHANNEL_CLOSED,
        sequence=1,
        flags=2,
        message_id=GO_ID,
        payload_type=0,
        payload=payload,
        created_ms=GO_CREATED,
    )
    data = parse_json_payload(decode_message(encode_message(message)))
    assert data["Output"] == "payload"
    assert data["CreatedDate"] == "1503434274948"
    assert data["SessionId"] == "sessionId_01234567890abcedf"


def test_size_payload_uses_the_plugins_field_names() -> None:
    assert size_payload(300, 100) == b'{"cols":300,"rows":100}'
    for cols, rows in [(0, 1), (1, 0), (2**32, 1), (-1, 5)]:
        with pytest.raises(ValueError, match="size"):
            size_payload(cols, rows)


def test_open_message_fields() -> None:
    request, client = uuid.UUID(int=1), uuid.UUID(int=2)
    text = open_message(token="tok", request_id=request, client_id=client, client_version="1.2")
    assert json.loads(text) == {
        "MessageSchemaVersion": "1.0",
        "RequestId": str(request),
        "TokenValue": "tok",
        "ClientId": str(client),
        "ClientVersion": "1.2",
    }


def test_payload_type_numbers() -> None:
    assert [int(p) for p in PayloadType] == list(range(1, 13))
    assert int(PayloadType.HANDSHAKE_RESPONSE) == 6
    assert int(PayloadType.EXIT_CODE) == 12


# --- properties ---------------------------------------------------------------------------

KNOWN_TYPES = [INPUT_STREAM, OUTPUT_STREAM, ACKNOWLEDGE, CHANNEL_CLOSED]
message_types = st.one_of(
    st.sampled_from([*KNOWN_TYPES, START_PUBLICATION, PAUSE_PUBLICATION]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32),
)


@st.composite
def messages(draw: st.DrawFn, kinds: st.SearchStrategy[str] = message_types) -> AgentMessage:
    kind = draw(kinds)
    low = 0 if kind in (START_PUBLICATION, PAUSE_PUBLICATION) else 1
    return AgentMessage(
        message_type=kind,
        sequence=draw(st.integers(-(2**63), 2**63 - 1)),
        flags=draw(st.integers(0, 2**64 - 1)),
        message_id=draw(st.uuids(allow_nil=True)),
        payload_type=draw(st.integers(0, 2**32 - 1)),
        payload=draw(st.binary(max_size=300)),
        created_ms=draw(st.integers(low, 2**64 - 1)),
        schema_version=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=200)
@given(messages())
def test_decode_inverts_encode(message: AgentMessage) -> None:
    frame = encode_message(message)
    assert len(frame) == 120 + len(message.payload)
    assert decode_message(frame) == message


@settings(max_examples=200)
@given(
    message=messages(st.sampled_from(KNOWN_TYPES)),
    where=st.integers(0, 10_000),
    flip=st.integers(1, 255),
)
def test_any_corrupted_payload_or_digest_byte_is_refused(
    message: AgentMessage, where: int, flip: int
) -> None:
    frame = bytearray(encode_message(message))
    # The digest (80..112), the payload length (116..120) and the payload itself.
    spots = [*range(80, 112), *range(116, 120)]
    if message.payload:
        spots += range(120, len(frame))
    else:
        spots = list(range(116, 120))  # an empty payload's digest is not checked
    frame[spots[where % len(spots)]] ^= flip
    with pytest.raises(SsmProtocolError):
        decode_message(bytes(frame))


@settings(max_examples=200)
@given(message=messages(), cut=st.integers(0, 10_000), extra=st.binary(min_size=1, max_size=9))
def test_truncated_or_padded_frames_are_refused(
    message: AgentMessage, cut: int, extra: bytes
) -> None:
    frame = encode_message(message)
    with pytest.raises(SsmProtocolError):
        decode_message(frame[: cut % len(frame)])
    with pytest.raises(SsmProtocolError):
        decode_message(frame + extra)


@settings(max_examples=300)
@given(
    message=messages(),
    edits=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 255)), max_size=6),
)
def test_any_edited_header_decodes_or_raises_protocol_error(
    message: AgentMessage, edits: list[tuple[int, int]]
) -> None:
    # Whatever a header holds, decoding raises nothing but SsmProtocolError, and what it
    # accepts carries the header's integers unchanged and survives a round trip.
    frame = bytearray(encode_message(message))
    for where, byte in edits:
        frame[where] = byte
    try:
        decoded = decode_message(bytes(frame))
    except SsmProtocolError:
        return
    again = encode_message(decoded)
    assert again[:4] == frame[:4]
    assert again[36:80] == frame[36:80]
    assert again[112:] == frame[112:]
    assert decode_message(again) == decoded


BASE = {
    "message_type": OUTPUT_STREAM,
    "sequence": 0,
    "flags": 0,
    "message_id": GO_ID,
    "payload_type": 1,
    "payload": b"",
    "created_ms": 1,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_type", ""),
        ("message_type", "x" * 33),
        ("message_type", "ack "),
        (" message_type", None),
        ("message_type", "tab\there"),
        ("message_type", "caf\u00e9"),
        ("created_ms", 0),
        ("created_ms", -1),
        ("created_ms", 2**64),
        ("sequence", 2**63),
        ("sequence", -(2**63) - 1),
        ("flags", -1),
        ("flags", 2**64),
        ("payload_type", -1),
        ("payload_type", 2**32),
        ("schema_version", -1),
        ("schema_version", 2**32),
    ],
)
def test_out_of_range_fields_are_refused(field: str, value: object) -> None:
    if field.startswith(" "):  # a leading space in the type
        field, value = "message_type", " acknowledge"
    with pytest.raises(ValueError, match=r"message type|range|created_ms|int64"):
        AgentMessage(**{**BASE, field: value})  # type: ignore[arg-type]


def test_only_publication_messages_may_be_undated() -> None:
    for kind in (START_PUBLICATION, PAUSE_PUBLICATION):
        AgentMessage(**{**BASE, "message_type": kind, "created_ms": 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="created_ms"):
        AgentMessage(**{**BASE, "message_type": ACKNOWLEDGE, "created_ms": 0})  # type: ignore[arg-type]
