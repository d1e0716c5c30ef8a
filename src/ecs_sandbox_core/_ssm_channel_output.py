"""The receiving side of an SSM data channel: what the agent's frames mean to the client.

Theory of operation
-------------------
Output (agent to client). Every ``output_stream_data`` frame is acknowledged, whatever its
sequence number: the expected one is delivered, then any buffered successors; a later one is
buffered (at most ``max_reorder`` frames ahead, beyond which it is dropped unacknowledged so
that the agent sends it again); an earlier one is a duplicate whose first ack was lost, and is
acknowledged again but not delivered. So every byte is delivered exactly once, in order,
however the agent's frames are lost, duplicated or reordered, as long as it keeps resending
what was not acknowledged. A frame that fails to decode (a bad digest) is dropped without an
ack for the same reason.

Readiness. With a handshake (agent ``HandshakeRequest``), the client answers it and the
channel is ready at ``HandshakeComplete`` only, even if Output comes first; without one (ECS
Exec without a KMS key), it is ready at the first Output frame. A KMS encryption request is
refused with an error naming the cluster setting, since this client does not implement the KMS
exchange. A HandshakeRequest whose JSON is not an object with a list of actions closes the
channel with kind ``"protocol"``.

This is a mixin of :class:`._ssm_channel.SsmChannel`, which owns the state declared here, the
driver's calls and the sending side; it is kept apart so that each side reads on its own.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

from ._ssm_codec import AgentMessage, PayloadType, SsmProtocolError, parse_json_payload
from ._ssm_events import KMS_REMEDY, ChannelEvent, Closed, ExitCode, Output


class ChannelOutput:
    """Acknowledgement, reordering and delivery of the agent's output, and the handshake."""

    client_version: str
    max_reorder: int
    ready: bool
    _handshake: bool
    closed: Closed | None
    agent_version: str
    _expected: int
    _reorder: dict[int, AgentMessage]
    _acks: list[bytes]
    dropped_frames: int
    duplicate_frames: int
    _control: deque[tuple[int, bytes]]
    _ack: Callable[[AgentMessage], bytes]

    def _on_output(self, message: AgentMessage) -> list[ChannelEvent]:
        seq = message.sequence
        if seq < self._expected:
            self.duplicate_frames += 1
            self._acks.append(self._ack(message))
            return []
        if seq - self._expected > self.max_reorder:
            self.dropped_frames += 1
            return []
        self._acks.append(self._ack(message))
        if seq > self._expected:
            if seq in self._reorder:
                self.duplicate_frames += 1
            self._reorder.setdefault(seq, message)
            return []
        events: list[ChannelEvent] = []
        current: AgentMessage | None = message
        while current is not None:
            self._expected += 1
            events.extend(self._deliver(current))
            if self.closed is not None:
                break
            current = self._reorder.pop(self._expected, None)
        return events

    def _deliver(self, message: AgentMessage) -> list[ChannelEvent]:
        kind = message.payload_type
        if kind in (PayloadType.OUTPUT, PayloadType.STDERR):
            # Without a handshake, the first output says the PTY is up; with one, input sent
            # before HandshakeComplete would be thrown away, whatever came first.
            self.ready = self.ready or not self._handshake
            return [Output(message.payload)] if message.payload else []
        if kind == PayloadType.HANDSHAKE_REQUEST:
            self._handshake = True
            return self._on_handshake(message)
        if kind == PayloadType.HANDSHAKE_COMPLETE:
            self.ready = True
            return []
        if kind == PayloadType.EXIT_CODE:
            try:
                return [ExitCode(int(message.payload.decode("ascii").strip()))]
            except ValueError:
                return []
        if kind == PayloadType.ENC_CHALLENGE_REQUEST:
            return [self._close("the agent asked for a KMS challenge", False, "kms")]
        return []  # Parameter, Error, Flag: nothing this client acts on

    def _on_handshake(self, message: AgentMessage) -> list[ChannelEvent]:
        try:
            request = parse_json_payload(message)
        except SsmProtocolError as exc:
            return [self._close(str(exc), by_agent=False, kind="protocol")]
        self.agent_version = str(request.get("AgentVersion", ""))
        actions = request.get("RequestedClientActions") or []
        if not isinstance(actions, list):
            reason = "HandshakeRequest.RequestedClientActions is not a list"
            return [self._close(reason, by_agent=False, kind="protocol")]
        processed: list[dict[str, object]] = []
        errors: list[str] = []
        for action in actions:
            action_type = str(action.get("ActionType", "")) if isinstance(action, dict) else ""
            if action_type == "KMSEncryption":
                return [self._close(KMS_REMEDY, by_agent=False, kind="kms")]
            if action_type == "SessionType":
                processed.append({"ActionType": action_type, "ActionStatus": 1})
            else:
                error = f"Unsupported action {action_type}"
                processed.append({"ActionType": action_type, "ActionStatus": 3, "Error": error})
                errors.append(error)
        response = {
            "ClientVersion": self.client_version,
            "ProcessedClientActions": processed,
            "Errors": errors,
        }
        payload = json.dumps(response, separators=(",", ":")).encode()
        self._control.append((PayloadType.HANDSHAKE_RESPONSE, payload))
        return []

    def _close(self, reason: str, by_agent: bool, kind: str) -> Closed:
        if self.closed is None:
            self.closed = Closed(reason=reason, by_agent=by_agent, kind=kind)
        return self.closed


__all__ = ["ChannelOutput"]
