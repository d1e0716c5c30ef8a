"""The faults the suite injects from outside the local agent: answers to AWS API calls (a
LocalAws hook), and a damaging wrapper around an exec transport (the AWS CLI path).

Faults of ECS Exec's data channel are the local gateway's own (``ChannelFaults``, set through
:meth:`_faults_harness.Case.channel_faults`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ecs_sandbox_core import TransportResult
from ecs_sandbox_drivers._transport import AwsCliTransport, PreparedRun, cli_error
from ecs_sandbox_drivers.local._middleware import InterceptedRequest, Reply
from ecs_sandbox_drivers.local._transport import LocalTransport

CAPACITY_REASON = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)


# --- faults at the AWS API layer ------------------------------------------------------------


class FailCalls:
    """A LocalAws hook that answers the first ``times`` calls of ``operation`` itself.

    ``reply`` builds the answer (an error, or a fabricated response); ``times=None`` fails
    every call. ``seen`` counts matching calls, ``failed`` the ones answered here.
    """

    def __init__(
        self,
        operation: str,
        reply: Callable[[InterceptedRequest], Reply],
        *,
        times: int | None = 1,
        only: Callable[[InterceptedRequest], bool] | None = None,
    ) -> None:
        self.operation = operation
        self.reply = reply
        self.times = times
        self.only = only
        self.seen = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, request: InterceptedRequest) -> Reply | None:
        if request.operation != self.operation:
            return None
        if self.only is not None and not self.only(request):
            return None
        with self._lock:
            self.seen += 1
            if self.times is not None and self.failed >= self.times:
                return None
            self.failed += 1
        return self.reply(request)


def json_error(code: str, message: str, status: int = 400) -> Callable[[InterceptedRequest], Reply]:
    return lambda _request: Reply.json_error(code, message, status)


def capacity_failure(_request: InterceptedRequest) -> Reply:
    return Reply.json(
        {"tasks": [], "failures": [{"arn": "", "reason": CAPACITY_REASON, "detail": "faults"}]}
    )


def s3_error(code: str, message: str, status: int) -> Callable[[InterceptedRequest], Reply]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>faults</RequestId></Error>"
    ).encode()
    return lambda _request: Reply(status, body, (("Content-Type", "application/xml"),))


# --- faults in the exec transport -----------------------------------------------------------


class FaultyTransport:
    """An ExecTransport that wraps another one (the AWS CLI path) and damages runs of matching
    commands.

    ``before(attempt)`` may answer a matching run without starting it (attempt counts
    matching runs from 1); ``after(result)`` may rewrite what a matching run produced.
    """

    name = "faulty"

    def __init__(
        self,
        inner: AwsCliTransport | LocalTransport,
        *,
        match: str = "",
        before: Callable[[int], TransportResult | None] | None = None,
        after: Callable[[TransportResult], TransportResult] | None = None,
    ) -> None:
        self.inner = inner
        self.match = match
        self.before = before
        self.after = after
        self.attempts = 0
        self.started = 0
        self._damaged: set[int] = set()

    @property
    def api_calls(self) -> tuple[str, ...]:
        """The ECS calls each run makes (the driver spends budget on them)."""
        return tuple(getattr(self.inner, "api_calls", ()))

    def check_available(self) -> None:
        self.inner.check_available()

    def prepare(
        self, *, task_arn: str, container: str, command: str
    ) -> PreparedRun | TransportResult:
        matched = bool(self.match) and self.match in command
        if matched:
            self.attempts += 1
            if self.before is not None:
                fake = self.before(self.attempts)
                if fake is not None:
                    return fake
        prepared = self.inner.prepare(task_arn=task_arn, container=container, command=command)
        if matched and isinstance(prepared, PreparedRun):
            self.started += 1
            self._damaged.add(id(prepared))
        return prepared

    def finish(
        self,
        prepared: PreparedRun,
        *,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool,
    ) -> TransportResult:
        result = self.inner.finish(
            prepared, returncode=returncode, stdout=stdout, stderr=stderr, timed_out=timed_out
        )
        if id(prepared) in self._damaged:
            self._damaged.discard(id(prepared))
            if self.after is not None:
                result = self.after(result)
        return result


def not_connected(attempts: int) -> Callable[[int], TransportResult | None]:
    """Refuse the first ``attempts`` runs as ECS does while the exec agent starts."""

    def before(attempt: int) -> TransportResult | None:
        if attempt > attempts:
            return None
        message = "The execute command failed due to an internal error. Try again later."
        return TransportResult(
            stderr=cli_error("TargetNotConnectedException", message), returncode=255
        )

    return before


def cut_after_begin(result: TransportResult) -> TransportResult:
    """The session stream ends right after the begin marker and a little output."""
    stdout = result.stdout
    at = stdout.find(b":begin:")
    assert at >= 0, stdout[:200]
    end = stdout.index(b"\n", at) + 1
    return TransportResult(
        stdout=stdout[:end] + b"partial out", stderr=b"", returncode=0, pty=result.pty
    )
