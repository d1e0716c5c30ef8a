"""What the sync and the anyio pump loops share besides :class:`ChannelPump`.

The two pumps (``_ssm_sync`` over a blocking socket, ``_ssm_async`` over an anyio byte
stream) differ only in how they connect, read and write. Everything else is here, once:
the limits they connect and read with, the pump of each kind of session, the pacing of
their read loops (:class:`ReadPacer`: how long a read may block, when to type the command
loop's keep-alive line, when to stop) and the results a command loop's session gives.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ecs_sandbox_core import (
    ChannelRequest,
    ExecSession,
    OpenChannel,
    SessionResult,
    TransportResult,
)
from ecs_sandbox_core._cmdloop import FrameWatch

from ._ssm_io import ChannelPump

_CONNECT_TIMEOUT_S = 10.0

READ_SIZE = 65536
"""How many bytes a pump asks its socket for at a time."""


def time_limit(timeout_s: float | None) -> float:
    """A session's time limit in seconds: ``timeout_s``, or infinity for none."""
    return math.inf if timeout_s is None else timeout_s


def connect_timeout(timeout_s: float | None) -> float:
    """How long a pump may take to connect, for a session limited to ``timeout_s``."""
    return min(_CONNECT_TIMEOUT_S, time_limit(timeout_s))


def no_delay(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off on ``sock``."""
    # Frames are small and each waits for the peer's answer: without TCP_NODELAY, Nagle's
    # algorithm holds a frame until the previous one is acknowledged, and delayed ACKs make
    # that about 40 ms (measured: exec(true) 48 ms instead of 7 ms, one time in two).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def session_pump(effect: ExecSession, on_output: Callable[[bytes], None] | None) -> ChannelPump:
    """The pump of a one-off session, which types ``effect.input`` once it is open."""
    return ChannelPump(
        url=effect.stream_url,
        token=effect.token,
        id_seed=os.urandom(16),
        input_bytes=effect.input,
        on_output=on_output,
        max_output_bytes=effect.max_output_bytes,
    )


def loop_pump(effect: OpenChannel) -> ChannelPump:
    """The pump of a command-loop session (its requests come later)."""
    return ChannelPump(url=effect.stream_url, token=effect.token, id_seed=os.urandom(16))


@dataclass(slots=True)
class ReadPacer:
    """How long each read of a pump's loop may block, and when the loop must stop.

    ``typed`` is when input was last typed: with ``keepalive_s``, the pacer types the
    command loop's keep-alive line after that long without input (see
    :meth:`ChannelPump.wait_and_keep_alive`).
    """

    pump: ChannelPump
    deadline: float
    keepalive_s: float | None
    typed: float

    def wait(self, now: float) -> float | None:
        """How long the next read may block (at least 1 ms); None once the session
        ended or the deadline passed."""
        if self.pump.done:
            return None
        remaining = self.deadline - now
        if remaining <= 0:
            return None
        wait, self.typed = self.pump.wait_and_keep_alive(
            now, remaining, self.keepalive_s, self.typed
        )
        return max(wait, 0.001)


def start_request(
    pump: ChannelPump, effect: ChannelRequest, on_output: Callable[[bytes], None] | None
) -> Callable[[], bool]:
    """Queue a command loop's request on ``pump``; return the test "its answer is whole"."""
    # Past the output limit, stop reading but keep the session: the flow stops the
    # command over another session first (ending this one would orphan the command).
    pump.reset_output(
        max_output_bytes=effect.max_output_bytes, on_output=on_output, end_on_cap=False
    )
    pump.channel.send(effect.request)
    watch = FrameWatch(nonce=effect.nonce, binary=effect.binary)
    return lambda: pump.output_limit_hit or watch.complete(pump.output)


def not_ready(pump: ChannelPump) -> SessionResult:
    """Why a command loop's session did not become ready."""
    if pump.failure is None and not pump.done:
        return SessionResult(
            output=bytes(pump.output), ended="timeout", kind="timeout", reason="not ready"
        )
    return pump.result()


def not_sent(pump: ChannelPump) -> TransportResult:
    """A request that found its session ended before anything was sent (safe to retry)."""
    why = pump.failure[1] if pump.failure else "the session had ended"
    return TransportResult(
        stderr=f"\nECS Exec session ended before the request was sent: {why}\n".encode(),
        returncode=255,
        may_have_started=False,
    )


def request_result(pump: ChannelPump, whole: bool) -> TransportResult:
    """What a request produced (``whole``: its answer came whole), as the exec flow
    classifies it: output past the limit is neither complete nor a timeout."""
    capped = pump.output_limit_hit
    complete = whole and not capped
    timed_out = not complete and not pump.done and not capped
    stderr = b""
    if not complete and pump.failure is not None:
        kind, reason = pump.failure
        stderr = f"\nECS Exec data channel failed ({kind}): {reason}\n".encode()
    elif not complete and pump.channel.closed is not None:
        stderr = f"\nECS Exec session ended: {pump.channel.closed.reason}\n".encode()
    return TransportResult(
        stdout=bytes(pump.output),
        stderr=stderr,
        returncode=0 if complete else (None if timed_out else 255),
        timed_out=timed_out,
        may_have_started=True,
    )


__all__ = [
    "READ_SIZE",
    "ReadPacer",
    "connect_timeout",
    "loop_pump",
    "no_delay",
    "not_ready",
    "not_sent",
    "request_result",
    "session_pump",
    "start_request",
    "time_limit",
]
