"""Effects: what a flow asks its driver to do, and the values that come back.

A flow is a generator ``Generator[Effect, object, R]``. It yields one effect at a time and is
sent the effect's result (see each effect's docstring for the type). Expected failures (an AWS
error code, a transport that timed out) come back as values so that the core classifies them;
a handler raises only for the unexpected, and the driver throws that into the flow so that
its clean-up runs.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ._errors import UsageError

AwsService = Literal["ecs", "s3", "sts", "logs", "iam", "ec2"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsError:
    """An AWS error as the API reported it (``Error.Code`` and ``Error.Message``)."""

    code: str
    message: str
    http_status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsResult:
    """The result of an :class:`AwsCall`: the response, or the error the API returned."""

    data: Mapping[str, Any] = field(default_factory=dict)
    error: AwsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsCall:
    """Call ``operation`` (boto3's snake_case name) of ``service``; result: :class:`AwsResult`.

    ``api_group`` names the ECS token bucket the call spends from, so that a driver can
    budget calls per group (StopTask first) without knowing ECS's tables.
    """

    service: AwsService
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    api_group: str = ""
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.operation or not self.operation.replace("_", "").isalnum():
            raise ValueError(f"not a boto3 operation name: {self.operation!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeTask:
    """Poll one task's description; result: :class:`AwsResult` whose ``data`` is the task.

    Separate from :class:`AwsCall` so that a driver can batch the polls of many sandboxes
    into one DescribeTasks call (up to 100 tasks each); a missing task comes back as an
    error with code ``MISSING``. A driver answers it at its next poll tick, never at once:
    flows that wait for a status ask again as soon as they have an answer.
    """

    cluster: str
    task_arn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Presign:
    """Make a presigned GET URL for an S3 object; result: ``str``."""

    bucket: str
    key: str
    expires_s: int = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportResult:
    """What an exec transport run produced.

    ``stdout`` is the session stream (the command's output, merged with its stderr, as a
    PTY delivers it). ``stderr`` is the transport's *own* error channel (the AWS CLI's
    messages, a failed ``nsenter``), never the command's output. ``returncode`` is the
    transport process's status (the AWS CLI exits 0 whatever the command did), ``None`` when
    it was killed on timeout.
    """

    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = 0
    timed_out: bool = False
    pty: bool = False
    """True when ``stdout`` came through a PTY (``\\r\\n`` line ends), as with ECS Exec."""
    may_have_started: bool = False
    """True when ECS had accepted the command before the session failed: then a stream
    without a begin marker does not prove that the command never ran."""


NO_LIMIT_ABOVE_S = 1e9
"""Time limits beyond this (about 31 years) mean no limit (see :func:`time_limit`)."""


def time_limit(
    seconds: float | None, *, what: str, error: type[UsageError] = UsageError
) -> float | None:
    """``seconds`` as a time limit: None for "no limit", else a positive finite number.

    Harnesses say "no limit" both ways: ``None`` (Harbor, inspect) and ``float("inf")``
    (Terminal-Bench's oracle agent); both become None here, so that nothing downstream
    computes with an infinity. So does anything over :data:`NO_LIMIT_ABOVE_S`, which no
    sandbox outlives, and which shell tools such as busybox ``sleep`` cannot even parse.
    NaN, zero, negative numbers and non-numbers raise ``error``.
    """
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise error(f"{what} must be a number of seconds or None, not {seconds!r}")
    if seconds > NO_LIMIT_ABOVE_S:
        return None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise error(f"{what} must be positive (or None / inf for no limit), not {seconds!r}")
    return float(seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecRun:
    """Run ``command`` in the task's container through the exec transport.

    ``command`` is the string ECS Exec receives (``--command``): split shell-style and run
    without a shell. ``timeout_s`` bounds the round trip; None means no limit.
    Result: :class:`TransportResult`.
    """

    task_arn: str
    container: str
    command: str
    timeout_s: float | None
    stream_nonce: str | None = None
    """Set when the caller wants the output shown while it arrives: the driver passes each
    chunk through ``OutputStream(nonce=stream_nonce)`` to its output sink."""
    max_output_bytes: int | None = None
    """The most stdout bytes to accept (``None``: no limit). The driver keeps at most one
    byte more and ends the run as soon as it has it (see ``_limits.OutputCap``); the flow
    reads a longer ``stdout`` as "too much"."""

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not (
            self.timeout_s > 0 and math.isfinite(self.timeout_s)
        ):
            raise ValueError("timeout_s must be positive and finite, or None for no limit")
        limit = self.max_output_bytes
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"max_output_bytes must be an int or None, not {limit!r}")
        if limit is not None and limit <= 0:
            raise ValueError("max_output_bytes must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecSession:
    """Run one ECS Exec session over its data channel until it ends; result: SessionResult.

    ``stream_url``, ``token`` and ``session_id`` come from ExecuteCommand's ``session``. The
    driver opens the WebSocket (SigV4-signed upgrade), speaks the data channel through
    :class:`~ecs_sandbox_core._ssm_channel.SsmChannel`, types ``input`` once the session is
    ready, and returns when the service closes the channel, the connection fails, or
    ``timeout_s`` passes (then it asks the agent to terminate the session).
    """

    session_id: str
    stream_url: str
    token: str = field(repr=False)  # a bearer secret: never in logs or reprs
    timeout_s: float | None
    input: bytes = b""
    stream_nonce: str | None = None
    """As for :class:`ExecRun`: show text output while it arrives."""
    max_output_bytes: int | None = None
    """As for :class:`ExecRun`: keep at most one byte more, then end the session."""

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError("timeout_s must be positive, or None for no limit")
        if not self.stream_url.startswith(("wss://", "ws://")):
            raise ValueError("stream_url must be a ws:// or wss:// URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionResult:
    """How an :class:`ExecSession` ended.

    ``ended`` is ``"closed"`` (the service sent channel_closed: the command's terminal
    closed), ``"timeout"`` or ``"failed"``; ``kind`` refines a failure (``"connect"``,
    ``"refused"``, ``"dropped"``, ``"unacknowledged"``, ``"kms"``, ``"protocol"``) and
    ``reason`` explains it. ``output`` is every byte the terminal produced, in order.
    """

    output: bytes
    ended: Literal["closed", "timeout", "failed"]
    kind: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLease:
    """A place in a sandbox's pool of command-loop sessions (see :mod:`._cmdloop`).

    ``fresh`` leases have no session yet: the flow opens one (:class:`OpenChannel`).
    """

    lease_id: int
    fresh: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AcquireChannel:
    """Lease an idle command-loop session of ``task_arn``; result: :class:`ChannelLease`.

    The driver returns an idle session's lease, or a fresh lease while the sandbox has fewer
    than ``max_sessions``, or waits for one to be released. A session the driver finds ended
    while idle is dropped, never leased.
    """

    task_arn: str
    max_sessions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenChannel:
    """Connect a fresh lease to the session ExecuteCommand returned, and wait until the loop
    prints ``ready``; result: ``None`` when ready, else the :class:`SessionResult` failure."""

    lease_id: int
    session_id: str
    stream_url: str
    token: str = field(repr=False)
    ready: bytes
    timeout_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRequest:
    """Send ``request`` on a leased session and read until the frame of ``nonce`` is whole
    (:func:`~ecs_sandbox_core._cmdloop.frame_complete`); result: :class:`TransportResult`.

    ``may_have_started`` is False only when the session was found ended before the request
    was queued on it (then nothing was sent); ``timed_out`` when ``timeout_s`` passed.
    """

    lease_id: int
    request: bytes
    nonce: str
    binary: bool
    timeout_s: float | None
    stream_nonce: str | None = None
    max_output_bytes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseChannel:
    """Give a lease back: its session stays for the next command if ``reusable``, else it is
    closed; result: ``None``."""

    lease_id: int
    reusable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChannels:
    """Close every command-loop session of ``task_arn`` (tear-down); result: ``None``."""

    task_arn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep:
    """Wait ``seconds``; result: ``None``."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("cannot sleep a negative time")


@dataclass(frozen=True, slots=True, kw_only=True)
class Now:
    """Read a monotonic clock; result: ``float`` seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Random:
    """Draw a uniform random number; result: ``float`` in [0, 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """Draw ``nbytes`` random bytes; result: ``str`` of 2 * nbytes lowercase hex digits."""

    nbytes: int = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    """Emit a log record (``logging`` level); result: ``None``.

    ``message`` uses ``%`` formatting with ``args``; never put secrets in either.
    """

    level: int
    message: str
    args: tuple[object, ...] = ()
    phase: str = ""


Effect: TypeAlias = (
    AwsCall
    | DescribeTask
    | Presign
    | ExecRun
    | ExecSession
    | AcquireChannel
    | OpenChannel
    | ChannelRequest
    | ReleaseChannel
    | CloseChannels
    | Sleep
    | Now
    | Random
    | Token
    | Log
)
Flow: TypeAlias = Generator[Effect, Any, Any]

__all__ = [
    "NO_LIMIT_ABOVE_S",
    "AcquireChannel",
    "AwsCall",
    "AwsError",
    "AwsResult",
    "AwsService",
    "ChannelLease",
    "ChannelRequest",
    "CloseChannels",
    "DescribeTask",
    "Effect",
    "ExecRun",
    "ExecSession",
    "Flow",
    "Log",
    "Now",
    "OpenChannel",
    "Presign",
    "Random",
    "ReleaseChannel",
    "SessionResult",
    "Sleep",
    "Token",
    "TransportResult",
    "time_limit",
]
