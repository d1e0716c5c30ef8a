"""SsmChannel against a simulated agent over a lossy, duplicating, reordering network.

The agent below is written from docs (/work/shared/SSM_PROTOCOL.md), not from the class under
test, and frames are built and parsed here with ``struct`` from the spec's table, so that the
codec and the channel are not their own oracle. A harness keeps its own model of what the client
owes (acks, by the spec's reassembly rules) and of when input may flow, and checks every frame
the client emits against it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._ssm_channel import KMS_REMEDY, Closed, ExitCode, Output, SsmChannel

T0 = 1_700_000_000.0
SEED = bytes(range(16))
HEADER = struct.Struct(">I32sIQqQ16s32sII")
SYN, ACK_FLAGS = 1, 3
OUTPUT, SIZE, HS_REQUEST, HS_RESPONSE, HS_COMPLETE = 1, 3, 5, 6, 7
ENC_REQUEST, FLAG, EXIT = 8, 10, 12


# --- the wire, from the spec's table ----------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    kind: str
    seq: int
    flags: int
    msg_id: uuid.UUID
    payload_type: int
    payload: bytes


class Corrupt(Exception):
    pass


def build(kind: str, seq: int, payload_type: int, payload: bytes, *, flags: int = 0) -> bytes:
    name = b"%s/%d/%s" % (kind.encode(), seq, payload)
    msg_id = uuid.UUID(bytes=hashlib.sha256(name).digest()[:16])
    raw_id = msg_id.bytes[8:] + msg_id.bytes[:8]
    digest = hashlib.sha256(payload).digest()
    type_field = kind.encode().ljust(32, b" ")
    fields = (116, type_field, 1, 1, seq, flags, raw_id, digest, payload_type, len(payload))
    return HEADER.pack(*fields) + payload


def parse(raw: bytes) -> Frame:
    assert len(raw) >= 120
    hl, kind, _v, created, seq, flags, raw_id, digest, ptype, length = HEADER.unpack_from(raw)
    assert hl == 116
    assert created > 0
    payload = raw[120:]
    assert length == len(payload)
    if payload and hashlib.sha256(payload).digest() != digest:
        raise Corrupt
    msg_id = uuid.UUID(bytes=raw_id[8:] + raw_id[:8])
    return Frame(kind.decode().strip(" \0"), seq, flags, msg_id, ptype, payload)


def corrupt(raw: bytes, where: int) -> bytes:
    """Flip one byte of the digest or of the (always non-empty) payload."""
    spots = [*range(80, 112), *range(120, len(raw))]
    spot = spots[where % len(spots)]
    return raw[:spot] + bytes([raw[spot] ^ 0x5A]) + raw[spot + 1 :]


def output_frame(seq: int, payload_type: int, payload: bytes) -> bytes:
    return build("output_stream_data", seq, payload_type, payload, flags=SYN if seq == 0 else 0)


def gateway(kind: str) -> bytes:
    return build(kind, 0, 0, b"")


def ack_for(frame: bytes) -> bytes:
    """The agent's acknowledgement of one client input frame."""
    acked = parse(frame)
    content = {
        "AcknowledgedMessageType": acked.kind,
        "AcknowledgedMessageId": str(acked.msg_id),
        "AcknowledgedMessageSequenceNumber": acked.seq,
        "IsSequentialMessage": True,
    }
    return build("acknowledge", 0, 0, json.dumps(content).encode(), flags=ACK_FLAGS)


SESSION_TYPE = {
    "ActionType": "SessionType",
    "ActionParameters": {"SessionType": "InteractiveCommands", "Properties": None},
}
KMS_ACTION = {"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": "arn:aws:kms:k"}}


def handshake_request(*actions: object) -> bytes:
    body = {"AgentVersion": "3.3.0.0", "RequestedClientActions": list(actions)}
    return json.dumps(body).encode()


# --- the agent ----------------------------------------------------------------------------


@dataclass
class Agent:
    """The agent's data channel: output resent until acked; input in order, acked when handled."""

    handshake: bool
    handshake_done: bool = False
    pty_up: bool = False
    out_seq: int = 0
    unacked: dict[int, bytes] = field(default_factory=dict)
    ids: dict[int, uuid.UUID] = field(default_factory=dict)
    in_expected: int = 0
    in_buffer: dict[int, Frame] = field(default_factory=dict)
    received: bytearray = field(default_factory=bytearray)
    sizes: list[dict[str, int]] = field(default_factory=list)
    flags: list[bytes] = field(default_factory=list)
    thrown_away: list[Frame] = field(default_factory=list)
    written: bytearray = field(default_factory=bytearray)
    outbox: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Without a handshake the PTY is up before the first output; with one, the agent
        # opens with a HandshakeRequest (seq 0, SYN).
        self.handshake_done = self.pty_up = not self.handshake
        if self.handshake:
            self._emit(HS_REQUEST, handshake_request(SESSION_TYPE))

    def _emit(self, payload_type: int, payload: bytes) -> None:
        raw = output_frame(self.out_seq, payload_type, payload)
        self.unacked[self.out_seq] = raw
        self.ids[self.out_seq] = parse(raw).msg_id
        self.out_seq += 1
        self.outbox.append(raw)

    def write(self, data: bytes) -> None:
        if not (self.handshake_done and self.pty_up):
            return  # no PTY, no output
        self.written += data
        for start in range(0, len(data), 1024):
            self._emit(OUTPUT, data[start : start + 1024])

    def resend(self) -> None:
        self.outbox.extend(self.unacked[s] for s in sorted(self.unacked))

    def receive(self, raw: bytes) -> None:
        try:
            frame = parse(raw)
        except Corrupt:
            return  # dropped unacked: the client resends
        if frame.kind == "acknowledge":
            content = json.loads(frame.payload)
            assert frame.flags == ACK_FLAGS
            assert frame.seq == 0
            seq = content["AcknowledgedMessageSequenceNumber"]
            assert content["AcknowledgedMessageType"] == "output_stream_data"
            assert content["AcknowledgedMessageId"] == str(self.ids[seq])
            assert content["IsSequentialMessage"] is True
            self.unacked.pop(seq, None)
        elif frame.kind == "input_stream_data":
            self._on_input(frame, raw)

    def _on_input(self, frame: Frame, raw: bytes) -> None:
        assert frame.flags == 0
        if frame.seq > self.in_expected:
            self.in_buffer.setdefault(frame.seq, frame)
        elif frame.seq == self.in_expected:
            if not self._handle(frame):
                return  # the handler failed (no PTY yet): no ack, the client resends
            self.in_expected += 1
            while self.in_expected in self.in_buffer:
                assert self._handle(self.in_buffer.pop(self.in_expected))
                self.in_expected += 1
        self.outbox.append(ack_for(raw))

    def _handle(self, frame: Frame) -> bool:
        if not self.handshake_done:
            if frame.payload_type == HS_RESPONSE:
                response = json.loads(frame.payload)
                assert response["ProcessedClientActions"] == [
                    {"ActionType": "SessionType", "ActionStatus": 1}
                ]
                assert response["Errors"] == []
                self.handshake_done = True
                self._emit(HS_COMPLETE, b'{"HandshakeTimeToComplete":1,"CustomerMessage":""}')
            else:
                self.thrown_away.append(frame)  # acked and thrown away
            return True
        if not self.pty_up:
            return False
        if frame.payload_type == OUTPUT:
            self.received += frame.payload
        elif frame.payload_type == SIZE:
            self.sizes.append(json.loads(frame.payload))
        elif frame.payload_type == FLAG:
            self.flags.append(frame.payload)
        return True


# --- the harness --------------------------------------------------------------------------


@dataclass
class World:
    """A client, an agent, two in-flight queues, and the harness's model of the client."""

    handshake: bool
    max_reorder: int = 4096
    give_up_s: float = 1e6
    now: float = T0
    paused: bool = False
    log: list[bytes] = field(default_factory=list)  # everything the client sent, in order

    def __post_init__(self) -> None:
        self.client = SsmChannel(
            token="tok", id_seed=SEED, max_reorder=self.max_reorder, give_up_s=self.give_up_s
        )
        self.log.append(self.client.open_message().encode())
        self.agent = Agent(handshake=self.handshake)
        self.to_client: list[bytes] = []
        self.to_agent: list[bytes] = []
        self.output = bytearray()
        self.sent = bytearray()
        # The model: the spec's reassembly of agent frames, acks owed, readiness.
        self.expected = 0
        self.buffered: dict[int, int] = {}  # seq -> payload type
        self.owed: Counter[int] = Counter()
        self.ready = False
        self.first_sends: dict[int, bytes] = {}
        self.acks_delivered: set[int] = set()
        self._pump_agent()

    def _pump_agent(self) -> None:
        self.to_client += self.agent.outbox
        self.agent.outbox.clear()

    # The client's side of the wire.

    def deliver_to_client(self, raw: bytes) -> None:
        events = self.client.receive(raw, self.now)
        try:
            frame = parse(raw)
        except Corrupt:
            frame = None
        if frame is not None and frame.kind == "output_stream_data":
            self._model_output(frame)
        if frame is not None and frame.kind == "acknowledge":
            self.acks_delivered.add(json.loads(frame.payload)["AcknowledgedMessageSequenceNumber"])
        for happened in events:
            assert isinstance(happened, Output), happened
            self.output += happened.data
        self.flush()

    def _model_output(self, frame: Frame) -> None:
        # The spec's reassembly: ack what is behind or within the window, deliver in order.
        if frame.seq - self.expected > self.max_reorder:
            return  # too far ahead: dropped unacked
        self.owed[frame.seq] += 1
        if frame.seq < self.expected:
            return
        self.buffered.setdefault(frame.seq, frame.payload_type)
        while self.expected in self.buffered:
            # Ready at HandshakeComplete, or at the first Output without a handshake.
            if self.buffered.pop(self.expected) == (HS_COMPLETE if self.handshake else OUTPUT):
                self.ready = True
            self.expected += 1

    def flush(self) -> None:
        frames = self.client.frames_to_send(self.now)
        acks: Counter[int] = Counter()
        retransmitted = 0
        for raw in frames:
            self.log.append(raw)
            frame = parse(raw)
            if frame.kind == "acknowledge":
                content = json.loads(frame.payload)
                seq = content["AcknowledgedMessageSequenceNumber"]
                assert (frame.seq, frame.flags) == (0, ACK_FLAGS)
                assert content["AcknowledgedMessageType"] == "output_stream_data"
                assert content["AcknowledgedMessageId"] == str(self.agent.ids[seq])
                assert content["IsSequentialMessage"] is True
                acks[seq] += 1
                continue
            assert frame.kind == "input_stream_data"
            assert frame.flags == 0
            assert not self.paused, "nothing is sent while paused"
            if frame.seq in self.first_sends:
                assert self.first_sends[frame.seq] == raw, "a retransmission is the same frame"
                unacked = set(self.first_sends) - self.acks_delivered
                assert frame.seq == min(unacked), "only the oldest unacked is retransmitted"
                retransmitted += 1
            else:
                assert frame.seq == len(self.first_sends), "input sequence numbers are 0, 1, ..."
                if frame.payload_type != HS_RESPONSE:
                    assert self.ready, (
                        f"input {frame.payload_type} sent before the session is ready"
                    )
                assert 0 < len(frame.payload) <= 1024
                self.first_sends[frame.seq] = raw
        assert retransmitted <= 1
        assert acks == self.owed, "every intact frame within the window is acked, once per copy"
        self.owed.clear()
        assert len(set(self.first_sends) - self.acks_delivered) <= 256
        self.to_agent += frames

    # Actions.

    def step(self, action: tuple[object, ...]) -> None:
        name = action[0]
        if name == "write":
            assert isinstance(action[1], bytes)
            self.agent.write(action[1])
            self._pump_agent()
        elif name in ("to_client", "to_agent"):
            self._network(str(name), int(action[1]), str(action[2]))  # type: ignore[call-overload]
        elif name == "timer":
            self.agent.resend()
            self._pump_agent()
        elif name == "tick":
            self.now += float(action[1])  # type: ignore[arg-type]
            self.flush()
        elif name == "send":
            assert isinstance(action[1], bytes)
            self.client.send(action[1])
            self.sent += action[1]
            self.flush()
        elif name in ("pause", "start"):
            self.paused = name == "pause"
            assert not self.client.receive(gateway(f"{name}_publication"), self.now)
            self.flush()
        elif name == "pty_up":
            self.agent.pty_up = True
        elif name == "flow":
            self.exchange()

    def _network(self, queue_name: str, index: int, fate: str) -> None:
        queue = self.to_client if queue_name == "to_client" else self.to_agent
        if not queue:
            return
        raw = queue.pop(index % len(queue))
        if fate == "drop":
            return
        if fate == "dup":
            queue.append(raw)
        if fate == "corrupt":
            raw = corrupt(raw, index)
        if queue_name == "to_client":
            self.deliver_to_client(raw)
        else:
            self.agent.receive(raw)
            self._pump_agent()

    def exchange(self) -> None:
        """Deliver what is in flight, both ways, in order."""
        while self.to_client:
            self.deliver_to_client(self.to_client.pop(0))
        while self.to_agent:
            self.agent.receive(self.to_agent.pop(0))
            self._pump_agent()

    def settle(self) -> None:
        """A good network from now on: everything gets through and the agent keeps resending."""
        for _ in range(40):
            if self.paused:
                self.step(("start",))
            self.agent.pty_up = True
            if not self.agent.written:
                self.agent.write(b"$ ")
                self._pump_agent()
            self.agent.resend()
            self._pump_agent()
            for _ in range(3):
                self.exchange()
            quiet = not self.agent.unacked and self.client.input_pending == 0
            if quiet and not self.to_client and not self.to_agent:
                return
            self.now += 1.0
            self.flush()
        raise AssertionError("the conversation did not settle")


FATES = st.sampled_from(["ok", "ok", "ok", "drop", "dup", "corrupt"])
DELIVERIES = st.tuples(st.sampled_from(["to_client", "to_agent"]), st.integers(0, 7), FATES)
ACTIONS = st.lists(
    st.one_of(
        DELIVERIES,
        DELIVERIES,
        DELIVERIES,
        st.tuples(st.just("write"), st.binary(min_size=1, max_size=2100)),
        st.tuples(st.just("send"), st.binary(min_size=1, max_size=1500)),
        st.tuples(st.just("tick"), st.sampled_from([0.01, 0.1, 0.2, 0.25, 0.5, 1.0, 3.0])),
        st.tuples(st.sampled_from(["timer", "pause", "start", "pty_up", "flow"])),
    ),
    min_size=10,
    max_size=80,
)


def check_deadline(world: World) -> None:
    """next_deadline() predicts frames_to_send(): nothing before it, something at it."""
    client, now = world.client, world.now
    deadline = client.next_deadline()
    if deadline is None:
        later = copy.deepcopy(client)
        assert later.frames_to_send(now + world.give_up_s / 2) == []
        assert later.closed is None
        return
    assert deadline > now, "the driver just flushed: nothing is due yet"
    if deadline - 1e-3 > now:
        early = copy.deepcopy(client)
        assert early.frames_to_send(deadline - 1e-3) == []
        assert early.closed is None
    due = copy.deepcopy(client)
    assert due.frames_to_send(deadline) or due.closed is not None
    after = due.next_deadline()
    assert after is None or after > deadline, "no busy loop"


# A prologue that gets the session going (ready, PTY up), so more of the budget goes there.
WARM_UP: list[tuple[object, ...]] = [("flow",), ("flow",), ("pty_up",), ("write", b"$ "), ("flow",)]


@settings(max_examples=250)
@given(
    handshake=st.booleans(),
    max_reorder=st.sampled_from([1, 2, 3, 4096]),
    warm=st.booleans(),
    actions=ACTIONS,
)
def test_every_byte_once_in_order_both_ways(
    handshake: bool, max_reorder: int, warm: bool, actions: list[tuple[object, ...]]
) -> None:
    world = World(handshake=handshake, max_reorder=max_reorder)
    world.flush()
    for action in [*WARM_UP, *actions] if warm else actions:
        world.step(action)
        check_deadline(world)
        assert world.client.closed is None
    client = world.client
    event(f"input retransmitted before settling: {client.retransmissions > 0}")
    event(f"output frames refused: {client.dropped_frames > 0}")
    event(f"duplicate output frames: {client.duplicate_frames > 0}")
    event(f"input sent before settling: {len(world.first_sends) > 2}")
    event(f"paused at the end: {world.paused}")
    world.settle()
    assert bytes(world.output) == bytes(world.agent.written)
    assert bytes(world.agent.received) == bytes(world.sent)
    assert world.agent.thrown_away == []
    assert world.agent.sizes[:1] == [{"cols": 300, "rows": 100}]
    assert not world.agent.unacked, "every frame the agent sent was acked"
    assert world.client.next_deadline() is None


@settings(max_examples=30)
@given(handshake=st.booleans(), actions=ACTIONS)
def test_same_inputs_same_bytes(handshake: bool, actions: list[tuple[object, ...]]) -> None:
    logs = []
    for _ in range(2):
        world = World(handshake=handshake)
        world.flush()
        for action in actions:
            world.step(action)
        world.settle()
        logs.append(world.log)
    assert logs[0] == logs[1]


# --- retransmission timing ------------------------------------------------------------------


def ready_client(**options: object) -> SsmChannel:
    """A client past readiness (no handshake: one Output frame), with nothing in flight."""
    client = SsmChannel(token="tok", id_seed=SEED, size=None, **options)  # type: ignore[arg-type]
    assert client.receive(output_frame(0, OUTPUT, b"$ "), T0) == [Output(b"$ ")]
    assert [parse(f).kind for f in client.frames_to_send(T0)] == ["acknowledge"]
    return client


def reference_rto(samples: list[float]) -> float:
    """RFC 6298 with the spec's constants: 200 ms first, alpha 1/8, beta 1/4, G 10 ms, cap 1 s."""
    rto, srtt, rttvar = 0.2, None, 0.0
    for sample in samples:
        if srtt is None:
            srtt, rttvar = sample, sample / 2
        else:
            rttvar = 0.75 * rttvar + 0.25 * abs(srtt - sample)
            srtt = 0.875 * srtt + 0.125 * sample
        rto = min(srtt + max(0.01, 4 * rttvar), 1.0)
    return rto


@settings(max_examples=80)
@given(
    rtts=st.lists(st.floats(0, 3, allow_nan=False), max_size=8),
    resends=st.integers(1, 4),
)
def test_the_oldest_unacked_frame_is_resent_after_the_rto(rtts: list[float], resends: int) -> None:
    client = ready_client()
    now = T0
    for rtt in rtts:
        client.send(b"a")
        [raw] = client.frames_to_send(now)
        now += rtt
        client.receive(ack_for(raw), now)
        assert client.frames_to_send(now) == []
    rto = reference_rto(rtts)
    client.send(b"b" * 1500)  # two frames: 1024 + 476 bytes
    oldest, newer = client.frames_to_send(now)
    assert [len(parse(f).payload) for f in (oldest, newer)] == [1024, 476]
    sent = now
    for _ in range(resends):
        deadline = client.next_deadline()
        assert deadline is not None
        assert deadline == pytest.approx(sent + rto, abs=1e-6)
        assert client.frames_to_send(deadline - 5e-3) == []
        assert client.frames_to_send(deadline) == [oldest]
        sent = deadline
    # The ack of a retransmitted frame is not a round-trip sample (Karn): the RTO stays.
    client.receive(ack_for(oldest), sent + 0.001)
    assert client.frames_to_send(sent + 0.001) == [newer]  # long overdue
    assert client.next_deadline() == pytest.approx(sent + 0.001 + rto, abs=1e-6)


def test_initial_rto_is_200_ms_and_the_cap_is_1_s() -> None:
    assert reference_rto([]) == 0.2
    assert reference_rto([3.0]) == 1.0
    client = ready_client()
    client.send(b"x")
    client.frames_to_send(T0)
    assert client.next_deadline() == T0 + 0.2


def test_the_deadline_itself_yields_the_retransmission() -> None:
    # With a 10 ms RTO at an epoch-sized clock, now - sent >= rto was false at sent + rto.
    client = ready_client()
    client.send(b"a")
    [raw] = client.frames_to_send(T0)
    client.receive(ack_for(raw), T0)  # a zero round trip: RTO = 10 ms
    client.send(b"b")
    [raw] = client.frames_to_send(T0)
    deadline = client.next_deadline()
    assert deadline is not None
    assert client.frames_to_send(deadline) == [raw]


def test_no_retransmission_deadline_while_paused() -> None:
    # The deadline once stayed at sent + RTO while paused: a driver waiting for it spun.
    client = ready_client(give_up_s=60.0)
    client.send(b"a")
    [raw] = client.frames_to_send(T0)
    assert client.receive(gateway("pause_publication"), T0 + 0.1) == []
    assert client.next_deadline() == T0 + 60.0
    assert client.frames_to_send(T0 + 5) == []
    client.send(b"b")
    assert client.frames_to_send(T0 + 6) == []  # queued, not sent, while paused
    client.receive(gateway("start_publication"), T0 + 7)
    assert client.next_deadline() == T0 + 7  # due now
    first, second = client.frames_to_send(T0 + 7)
    assert parse(first).payload == b"b" and parse(second) == parse(raw)


@settings(max_examples=40)
@given(give_up=st.floats(0.05, 20), paused=st.booleans())
def test_unacknowledged_input_gives_up_on_the_deadline(give_up: float, paused: bool) -> None:
    client = ready_client(give_up_s=give_up)
    client.send(b"x")
    [raw] = client.frames_to_send(T0)
    if paused:
        client.receive(gateway("pause_publication"), T0)
    deadline = None
    while client.closed is None:
        deadline = client.next_deadline()
        assert deadline is not None
        early = copy.deepcopy(client)
        assert early.frames_to_send(deadline - 1e-3) == []
        assert early.closed is None
        out = client.frames_to_send(deadline)
        assert out == ([raw] if client.closed is None else [])
        assert not (paused and out)
    assert deadline == T0 + give_up
    assert client.closed == Closed(
        reason=f"the agent acknowledged no input for {give_up:g} s",
        by_agent=False,
        kind="unacknowledged",
    )
    assert client.next_deadline() is None
    assert client.frames_to_send(T0 + 1e4) == []
    with pytest.raises(RuntimeError, match="closed"):
        client.send(b"y")


def test_deadline_is_now_when_acks_or_input_wait() -> None:
    client = ready_client()
    assert client.next_deadline() is None
    client.receive(output_frame(1, OUTPUT, b"x"), T0 + 1)
    assert client.next_deadline() == T0 + 1  # an ack to send
    [ack] = client.frames_to_send(T0 + 1)
    assert parse(ack).kind == "acknowledge"
    assert client.next_deadline() is None
    client.send(b"y")
    assert client.next_deadline() == T0 + 1  # input to send
    [data] = client.frames_to_send(T0 + 2)
    assert parse(data).payload == b"y"
    assert client.next_deadline() == T0 + 2.2


def test_at_most_256_frames_in_flight() -> None:
    client = ready_client()
    client.send(b"x" * 1024 * 300)
    frames = client.frames_to_send(T0)
    assert [parse(f).seq for f in frames] == list(range(256))
    assert client.next_deadline() == T0 + 0.2
    client.receive(ack_for(frames[0]), T0 + 0.05)
    assert client.next_deadline() == T0 + 0.05
    assert [parse(f).seq for f in client.frames_to_send(T0 + 0.05)] == [256]
    assert client.input_pending == 300 - 1


# --- handshake, KMS, channel_closed ---------------------------------------------------------

# messageparser_test.go: handshakeReqPayload, handshakeCompletePayload, channelClosedPayload.
GO_HANDSHAKE_REQUEST = b"""{
    "AgentVersion": "3.0",
    "RequestedClientActions": [
        {"ActionType": "start", "ActionParameters": {"name": "richard"}}
    ]
}"""
GO_HANDSHAKE_COMPLETE = b"""{
    "HandshakeTimeToComplete": 1000000,
    "CustomerMessage": "Handshake Complete"
}"""
GO_CHANNEL_CLOSED = b"""{
    "MessageType": "channel_closed",
    "MessageId": "dd01e56b-ff48-483e-a508-b5f073f31b16",
    "CreatedDate": "1503434274948",
    "SessionId": "sessionId_01234567890abcedf",
    "SchemaVersion": 1,
    "Output": "payload"
}"""


def kinds(frames: list[bytes]) -> list[tuple[str, int, int]]:
    return [(f.kind, f.seq, f.payload_type) for f in map(parse, frames)]


def test_handshake_response_goes_out_at_once_and_input_waits_for_complete() -> None:
    client = SsmChannel(token="tok", id_seed=SEED)
    request = output_frame(0, HS_REQUEST, handshake_request(SESSION_TYPE))
    assert client.receive(request, T0) == []
    client.send(b"ls\n")
    ack, response = client.frames_to_send(T0)
    assert kinds([ack]) == [("acknowledge", 0, 0)]
    assert json.loads(parse(ack).payload)["AcknowledgedMessageSequenceNumber"] == 0
    frame = parse(response)
    assert (frame.kind, frame.seq, frame.flags, frame.payload_type) == (
        "input_stream_data",
        0,
        0,
        HS_RESPONSE,
    )
    assert json.loads(frame.payload) == {
        "ClientVersion": "1.2.764.0",
        "ProcessedClientActions": [{"ActionType": "SessionType", "ActionStatus": 1}],
        "Errors": [],
    }
    assert client.agent_version == "3.3.0.0"
    assert not client.ready
    client.receive(ack_for(response), T0 + 0.05)
    # Output before HandshakeComplete does not make the session ready: input would be lost.
    assert client.receive(output_frame(1, OUTPUT, b"motd\r\n"), T0 + 1) == [Output(b"motd\r\n")]
    assert kinds(client.frames_to_send(T0 + 1)) == [("acknowledge", 0, 0)]
    assert client.receive(output_frame(2, HS_COMPLETE, GO_HANDSHAKE_COMPLETE), T0 + 2) == []
    assert client.ready
    frames = client.frames_to_send(T0 + 2)
    assert kinds(frames) == [
        ("acknowledge", 0, 0),
        ("input_stream_data", 1, SIZE),
        ("input_stream_data", 2, OUTPUT),
    ]
    assert parse(frames[1]).payload == b'{"cols":300,"rows":100}'
    assert parse(frames[2]).payload == b"ls\n"


def test_go_handshake_request_with_an_unknown_action() -> None:
    client = SsmChannel(token="tok", id_seed=SEED, size=None)
    assert client.receive(output_frame(0, HS_REQUEST, GO_HANDSHAKE_REQUEST), T0) == []
    assert client.agent_version == "3.0"
    _ack, response = client.frames_to_send(T0)
    error = "Unsupported action start"
    assert json.loads(parse(response).payload) == {
        "ClientVersion": "1.2.764.0",
        "ProcessedClientActions": [{"ActionType": "start", "ActionStatus": 3, "Error": error}],
        "Errors": [error],
    }


def test_a_resent_handshake_request_is_acked_not_answered_again() -> None:
    client = SsmChannel(token="tok", id_seed=SEED, size=None)
    request = output_frame(0, HS_REQUEST, handshake_request(SESSION_TYPE))
    client.receive(request, T0)
    _ack, response = client.frames_to_send(T0)
    client.receive(ack_for(response), T0 + 0.05)
    client.receive(request, T0 + 1)  # our ack was lost
    assert kinds(client.frames_to_send(T0 + 1)) == [("acknowledge", 0, 0)]
    assert client.duplicate_frames == 1


@pytest.mark.parametrize(
    "actions",
    [[KMS_ACTION], [SESSION_TYPE, KMS_ACTION], [KMS_ACTION, SESSION_TYPE]],
)
def test_kms_encryption_is_refused_naming_the_cluster_setting(actions: list[object]) -> None:
    client = SsmChannel(token="tok", id_seed=SEED)
    client.send(b"secret")
    events = client.receive(output_frame(0, HS_REQUEST, handshake_request(*actions)), T0)
    assert events == [Closed(reason=KMS_REMEDY, by_agent=False, kind="kms")]
    assert "executeCommandConfiguration.kmsKeyId" in KMS_REMEDY
    assert client.closed == events[0]
    assert all(parse(f).kind == "acknowledge" for f in client.frames_to_send(T0))
    assert client.next_deadline() is None
    with pytest.raises(RuntimeError, match="KMS"):
        client.send(b"more")


def test_an_encryption_challenge_is_refused() -> None:
    client = ready_client()
    events = client.receive(output_frame(1, ENC_REQUEST, b'{"Challenge":"AAAA"}'), T0)
    assert [(e.kind, e.by_agent) for e in events if isinstance(e, Closed)] == [("kms", False)]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"RequestedClientActions": 5}',
        b'{"RequestedClientActions": "SessionType"}',
        b'{"RequestedClientActions": {"ActionType": "SessionType"}}',
        b"[1, 2]",
        b"not json",
        b"\xff\xfe",
    ],
)
def test_a_malformed_handshake_request_closes_with_a_protocol_error(payload: bytes) -> None:
    client = SsmChannel(token="tok", id_seed=SEED)
    [closed] = client.receive(output_frame(0, HS_REQUEST, payload), T0)
    assert isinstance(closed, Closed)
    assert (closed.kind, closed.by_agent) == ("protocol", False)
    assert kinds(client.frames_to_send(T0)) == [("acknowledge", 0, 0)]


def test_go_channel_closed_payload() -> None:
    client = ready_client()
    client.send(b"x")
    client.frames_to_send(T0)
    closed = build("channel_closed", 1, 0, GO_CHANNEL_CLOSED, flags=2)
    assert client.receive(closed, T0 + 1) == [
        Closed(reason="payload", by_agent=True, kind="channel_closed")
    ]
    assert client.receive(output_frame(1, OUTPUT, b"late"), T0 + 2) == []
    assert client.frames_to_send(T0 + 10) == []
    assert client.next_deadline() is None


@pytest.mark.parametrize("payload", [b'{"Output": ""}', b"{}", b"oops", b""])
def test_channel_closed_without_output(payload: bytes) -> None:
    client = ready_client()
    [closed] = client.receive(build("channel_closed", 0, 0, payload), T0)
    assert closed == Closed(
        reason="the service closed the channel", by_agent=True, kind="channel_closed"
    )


def test_a_corrupted_channel_closed_is_ignored() -> None:
    client = ready_client()
    raw = corrupt(build("channel_closed", 0, 0, GO_CHANNEL_CLOSED), 0)
    assert client.receive(raw, T0) == []
    assert client.closed is None


# --- output reassembly ----------------------------------------------------------------------


@settings(max_examples=80)
@given(
    max_reorder=st.integers(1, 6),
    order=st.permutations(range(8)),
    chunks=st.lists(st.binary(min_size=1, max_size=5), min_size=8, max_size=8),
)
def test_frames_beyond_the_window_are_dropped_unacked_then_recovered(
    max_reorder: int, order: list[int], chunks: list[bytes]
) -> None:
    client = SsmChannel(token="tok", id_seed=SEED, size=None, max_reorder=max_reorder)
    frames = [output_frame(seq, OUTPUT, chunk) for seq, chunk in enumerate(chunks)]
    output = bytearray()
    expected, buffered, drops = 0, set(), 0
    pending = list(order)
    while pending:
        for seq in list(pending):
            for happened in client.receive(frames[seq], T0):
                assert isinstance(happened, Output)
                output += happened.data
            acks = [json.loads(parse(f).payload) for f in client.frames_to_send(T0)]
            acked = [a["AcknowledgedMessageSequenceNumber"] for a in acks]
            if seq - expected > max_reorder:
                assert acked == []  # dropped: the agent will resend it
                drops += 1
                continue
            assert acked == [seq]
            pending.remove(seq)
            buffered.add(seq)
            while expected in buffered:
                expected += 1
    assert bytes(output) == b"".join(chunks)
    assert client.dropped_frames == drops


def test_duplicates_are_acked_again_but_delivered_once() -> None:
    client = SsmChannel(token="tok", id_seed=SEED, size=None)
    first, second = output_frame(0, OUTPUT, b"a"), output_frame(1, OUTPUT, b"b")
    assert client.receive(second, T0) == []
    assert client.receive(second, T0) == []
    assert client.receive(first, T0) == [Output(b"a"), Output(b"b")]
    assert client.receive(first, T0) == []
    assert client.receive(second, T0) == []
    acked = [json.loads(parse(f).payload) for f in client.frames_to_send(T0)]
    assert [a["AcknowledgedMessageSequenceNumber"] for a in acked] == [1, 1, 0, 0, 1]
    assert client.duplicate_frames == 3


def test_stderr_and_exit_code_payloads() -> None:
    client = ready_client()
    assert client.receive(output_frame(1, 11, b"err"), T0) == [Output(b"err")]
    assert client.receive(output_frame(2, EXIT, b"3"), T0) == [ExitCode(3)]
    assert client.receive(output_frame(3, EXIT, b"three"), T0) == []
    assert client.receive(output_frame(4, 4, b"{}"), T0) == []  # Parameter: ignored, acked
    assert len(client.frames_to_send(T0)) == 4


# --- the rest of the input side -------------------------------------------------------------


def test_resize_and_terminate_are_queued_like_input() -> None:
    client = SsmChannel(token="tok", id_seed=SEED, size=(80, 24))
    client.resize(120, 40)
    client.terminate()
    assert client.frames_to_send(T0) == []
    client.receive(output_frame(0, OUTPUT, b"$ "), T0)
    frames = client.frames_to_send(T0)[1:]
    assert [(parse(f).payload_type, parse(f).payload) for f in frames] == [
        (SIZE, b'{"cols":80,"rows":24}'),
        (SIZE, b'{"cols":120,"rows":40}'),
        (FLAG, b"\x00\x00\x00\x02"),
    ]


def test_open_message_and_ids_come_from_the_seed() -> None:
    one = SsmChannel(token="tok", id_seed=SEED)
    two = SsmChannel(token="tok", id_seed=SEED)
    other = SsmChannel(token="tok", id_seed=bytes(16))
    assert one.open_message() == two.open_message() != other.open_message()
    opened = json.loads(SsmChannel(token="tok", id_seed=SEED).open_message())
    assert opened["TokenValue"] == "tok"
    assert opened["ClientVersion"] == "1.2.764.0"
    assert opened["RequestId"] != opened["ClientId"]


@pytest.mark.parametrize(
    "options",
    [{"id_seed": b"short"}, {"give_up_s": 0}, {"max_reorder": 0}, {"size": (0, 10)}],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"id_seed|give_up_s|size"):
        SsmChannel(**{"token": "tok", "id_seed": SEED, **options})  # type: ignore[arg-type]
