"""The local SSM agent's settings, session records and the frames it builds.

Shared by the session (:mod:`._agent`), its output side (:mod:`._agent_output`) and the
gateway (:mod:`._gateway`). Frames are encoded with the core's codec.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ecs_sandbox_core._ssm_codec import (
    ACKNOWLEDGE,
    CHANNEL_CLOSED,
    FLAG_ACK,
    AgentMessage,
    ack_payload,
    encode_message,
)

Handshake = Literal["none", "session", "kms"]
IDLE_MESSAGE = "Your session timed out due to inactivity and has been terminated."
AGENT_VERSION = "3.3.0.0-local"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSettings:
    """How the local agent behaves; the defaults are AWS's (ECS Exec without a KMS key).

    ``handshake``: ``"none"`` (no KMS key), ``"session"`` (a handshake with the SessionType
    action only) or ``"kms"`` (it also asks for KMS encryption, which clients should refuse).
    The last three switches choose between the brief's rules (True) and the Go agent as read
    at aws/amazon-ssm-agent (False): re-acknowledging duplicate input, ending the session on a
    TerminateSession flag (the Go InteractiveCommands handler ignores Flag payloads), and
    sending only the first byte of a valid U+FFFD outside the tail (a Go agent defect, kept
    on by default because AWS does it).
    """

    first_read_delay_s: float = 1.0
    idle_timeout_s: float = 20 * 60.0
    handshake: Handshake = "none"
    handshake_timeout_s: float = 15.0
    close_wait_s: float = 2.0
    ping_interval_s: float | None = 54.0
    open_timeout_s: float = 30.0
    reack_duplicates: bool = True
    honour_terminate_flag: bool = True
    replacement_quirk: bool = True

    def __post_init__(self) -> None:
        if self.handshake not in ("none", "session", "kms"):
            raise ValueError(f"handshake must be 'none', 'session' or 'kms': {self.handshake!r}")
        if min(self.first_read_delay_s, self.close_wait_s) < 0:
            raise ValueError("delays must not be negative")
        if min(self.idle_timeout_s, self.handshake_timeout_s, self.open_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if self.ping_interval_s is not None and self.ping_interval_s <= 0:
            raise ValueError("ping_interval_s must be positive (or None for no pings)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSpec:
    """A session ExecuteCommand created: its token, region and the command line to run."""

    session_id: str
    token: str = field(repr=False)
    region: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    task_arn: str = ""
    dev_root: str | None = None  # the container's /dev, seen from the host


@dataclass(slots=True)
class AgentCounters:
    """What the gateway counts (updated on its loop thread)."""

    sessions_opened: int = 0
    live_sessions: int = 0
    frames_sent: int = 0
    frames_resent: int = 0
    frames_dropped: int = 0
    acks_sent: int = 0
    acks_dropped: int = 0
    bad_frames: int = 0
    pty_writes_blocked: int = 0
    upgrades_refused: int = 0
    tokens_refused: int = 0


class Link(Protocol):
    """The WebSocket a session talks through (one gateway connection)."""

    @property
    def backlog(self) -> int:
        """Bytes queued for the socket and not yet sent."""
        ...

    def send_frame(self, frame: bytes) -> None:
        """Send one BINARY message."""

    def send_ping(self) -> None:
        """Send a WebSocket ping."""

    def pause_reading(self) -> None:
        """Stop reading the socket (backpressure: the peer's frames wait in TCP buffers)."""

    def resume_reading(self) -> None:
        """Read the socket again."""

    def close(self) -> None:
        """Send a close frame (after what is queued) and close the connection."""

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame."""


def now_ms() -> int:
    """Wall-clock epoch milliseconds, as frames carry them."""
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


def stream_frame(kind: str, seq: int, flags: int, payload_type: int, payload: bytes) -> bytes:
    """An encoded frame with a fresh message id dated now."""
    message = AgentMessage(
        message_type=kind,
        sequence=seq,
        flags=flags,
        message_id=uuid.uuid4(),
        payload_type=payload_type,
        payload=payload,
        created_ms=now_ms(),
    )
    return encode_message(message)


def ack_frame(acked: AgentMessage) -> bytes:
    """The agent's acknowledgement of input frame ``acked`` (seq 0, flags 3)."""
    return stream_frame(ACKNOWLEDGE, 0, FLAG_ACK, 0, ack_payload(acked))


def channel_closed_frame(*, session_id: str, client_id: str, output: str) -> bytes:
    """The gateway's ``channel_closed`` message with its JSON payload."""
    now = datetime.datetime.now(datetime.timezone.utc)
    message_id = uuid.uuid4()
    payload = {
        "MessageId": str(message_id),
        "CreatedDate": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "DestinationId": client_id,
        "SessionId": session_id,
        "MessageType": CHANNEL_CLOSED,
        "SchemaVersion": 1,
        "Output": output,
    }
    message = AgentMessage(
        message_type=CHANNEL_CLOSED,
        sequence=0,
        flags=0,
        message_id=message_id,
        payload_type=0,
        payload=json.dumps(payload).encode(),
        created_ms=now_ms(),
    )
    return encode_message(message)


def handshake_request(region: str, *, kms: bool) -> bytes:
    """The HandshakeRequest payload: SessionType, and KMSEncryption in ``kms`` mode."""
    actions: list[dict[str, object]] = [
        {
            "ActionType": "SessionType",
            "ActionParameters": {"SessionType": "InteractiveCommands", "Properties": {}},
        }
    ]
    if kms:
        key = f"arn:aws:kms:{region}:000000000000:key/local-exec"
        actions.append({"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": key}})
    return json.dumps({"AgentVersion": AGENT_VERSION, "RequestedClientActions": actions}).encode()


def handshake_errors(payload: bytes, *, kms: bool) -> list[str] | None:
    """Why a HandshakeResponse fails the session ([] when it does not); None if unreadable."""
    try:
        response = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(response, dict):
        return None
    errors = []
    kms_accepted = False
    for action in response.get("ProcessedClientActions") or []:
        if not isinstance(action, dict):
            continue
        kind, status = action.get("ActionType"), action.get("ActionStatus")
        if status != 1:
            error = action.get("Error", "")
            errors.append(f"{kind} failed on client with status {status} error: {error}")
        kms_accepted = kms_accepted or kind == "KMSEncryption"
    if kms and not errors:
        # The agent would now send its encryption challenge; no KMS exchange exists here.
        errors.append(
            "KMS encryption is not emulated by the local ECS agent"
            if kms_accepted
            else "Timed out waiting for encryption challenge."
        )
    return errors


def parse_size(payload: bytes) -> tuple[int, int] | None:
    """Size JSON as the agent's ``json.Unmarshal`` into ``{cols, rows uint32}`` takes it.

    None when Go would fail (not JSON, not an object, a value that is not a uint32); keys
    match case-insensitively; missing or null ones stay 0.
    """
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if data is None:
        return 0, 0
    if not isinstance(data, dict):
        return None
    values = {"cols": 0, "rows": 0}
    for key, value in data.items():
        name = key.lower()
        if name not in values or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            return None
        values[name] = value
    return values["cols"], values["rows"]


__all__ = [
    "AGENT_VERSION",
    "IDLE_MESSAGE",
    "AgentCounters",
    "AgentSettings",
    "Handshake",
    "Link",
    "SessionSpec",
    "ack_frame",
    "channel_closed_frame",
    "handshake_errors",
    "handshake_request",
    "now_ms",
    "parse_size",
    "stream_frame",
]
