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

AwsService = Literal["ecs", "s3", "sts", "logs"]


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
    error with code ``MISSING``.
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

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not (
            self.timeout_s > 0 and math.isfinite(self.timeout_s)
        ):
            raise ValueError("timeout_s must be positive and finite, or None for no limit")


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


Effect: TypeAlias = AwsCall | DescribeTask | Presign | ExecRun | Sleep | Now | Random | Token | Log
Flow: TypeAlias = Generator[Effect, Any, Any]

__all__ = [
    "NO_LIMIT_ABOVE_S",
    "AwsCall",
    "AwsError",
    "AwsResult",
    "AwsService",
    "DescribeTask",
    "Effect",
    "ExecRun",
    "Flow",
    "Log",
    "Now",
    "Presign",
    "Random",
    "Sleep",
    "Token",
    "TransportResult",
    "time_limit",
]
