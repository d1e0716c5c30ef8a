"""The local SSM agent's output side: sequenced frames, kept until acknowledged, resent.

As the Go agent's data channel does it: each output frame gets the next sequence number
(the first carries SYN) and is kept (up to 10,000) until its acknowledgement arrives; every
100 ms the *oldest* kept frame is sent again if it has waited longer than the retransmission
timeout. That timeout starts at 200 ms and follows the round trip measured on each
acknowledgement (smoothing 1/8, variation 1/4, at least 10 ms over the mean, at most 1 s;
measured from the last send, as the agent does). While publication is paused nothing is sent
or resent; a frame made then goes out when the resend timer finds it.

Faults act here, on each transmission (see :mod:`._agent_faults`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ecs_sandbox_core._ssm_codec import FLAG_SYN, OUTPUT_STREAM

from ._agent_faults import FaultPlan, corrupt_digest
from ._agent_wire import AgentCounters, Link, stream_frame

_RESEND_INTERVAL_S = 0.1
_DEFAULT_RTT_S = 0.1
_DEFAULT_RTO_S = 0.2
_MAX_RTO_S = 1.0
_CLOCK_GRANULARITY_S = 0.01
_RTT_ALPHA = 1 / 8
_RTTV_BETA = 1 / 4
_CAPACITY = 10000
_REORDER_FLUSH_S = 0.05


@dataclass(slots=True)
class _Kept:
    frame: bytes
    last_sent: float


class OutputSender:
    """One session's outgoing stream frames (runs on the gateway's loop)."""

    def __init__(
        self,
        *,
        link: Link,
        loop: asyncio.AbstractEventLoop,
        plan: FaultPlan,
        counters: AgentCounters,
    ) -> None:
        self._link = link
        self._loop = loop
        self._plan = plan
        self._counters = counters
        self._next_seq = 0
        self._kept: dict[int, _Kept] = {}
        self._rtt, self._rttvar, self.rto = _DEFAULT_RTT_S, 0.0, _DEFAULT_RTO_S
        self._held: list[bytes] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._resend: asyncio.TimerHandle | None = None
        self._reorder: asyncio.TimerHandle | None = None
        self.paused = False
        self.stopped = False

    @property
    def unacked(self) -> int:
        """Frames sent (or made while paused) and not acknowledged yet."""
        return len(self._kept)

    def send(self, payload_type: int, payload: bytes) -> None:
        """Make the next output frame, keep it and send it (unless paused)."""
        if not payload or self.stopped:
            return
        seq = self._next_seq
        self._next_seq += 1
        flags = FLAG_SYN if seq == 0 else 0
        frame = stream_frame(OUTPUT_STREAM, seq, flags, payload_type, payload)
        if len(self._kept) < _CAPACITY:
            self._kept[seq] = _Kept(frame, self._loop.time())
        if not self.paused:
            self._transmit(frame, first=True)
        self._arm_resend()

    def acknowledged(self, seq: int) -> None:
        """An acknowledgement for ``seq`` arrived: forget the frame, sample the round trip."""
        kept = self._kept.pop(seq, None)
        if kept is None:
            return
        sample = self._loop.time() - kept.last_sent
        self._rttvar = (1 - _RTTV_BETA) * self._rttvar + _RTTV_BETA * abs(self._rtt - sample)
        self._rtt = (1 - _RTT_ALPHA) * self._rtt + _RTT_ALPHA * sample
        self.rto = min(self._rtt + max(_CLOCK_GRANULARITY_S, 4 * self._rttvar), _MAX_RTO_S)

    def stop(self) -> None:
        """Send nothing more (the session ended); cancel every timer."""
        self.stopped = True
        for handle in (self._resend, self._reorder, *self._timers):
            if handle is not None:
                handle.cancel()
        self._timers.clear()
        self._held = None

    # --- transmission -------------------------------------------------------------------------

    def _transmit(self, frame: bytes, *, first: bool) -> None:
        fate = self._plan.transmission(first=first)
        if fate.copies == 0:
            self._counters.frames_dropped += 1
            return
        frames = [corrupt_digest(frame) if fate.corrupt else frame] * fate.copies
        if fate.delay_s:
            self._later(fate.delay_s, self._send_frames, frames)
        elif fate.hold and self._held is None:
            self._held = frames
            self._reorder = self._loop.call_later(_REORDER_FLUSH_S, self._flush_held)
        else:
            self._send_frames(frames)
            self._flush_held()

    def _send_frames(self, frames: list[bytes]) -> None:
        if self.stopped:
            return
        for frame in frames:
            self._link.send_frame(frame)
            self._counters.frames_sent += 1

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if self._reorder is not None:
            self._reorder.cancel()
            self._reorder = None
        if held:
            self._send_frames(held)

    def _later(
        self, delay: float, callback: Callable[[list[bytes]], None], arg: list[bytes]
    ) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            callback(arg)

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)

    # --- retransmission -------------------------------------------------------------------------

    def _arm_resend(self) -> None:
        if self._kept and self._resend is None and not self.stopped:
            self._resend = self._loop.call_later(_RESEND_INTERVAL_S, self._resend_oldest)

    def _resend_oldest(self) -> None:
        self._resend = None
        if self._kept and not self.paused:
            oldest = next(iter(self._kept.values()))
            now = self._loop.time()
            if now - oldest.last_sent > self.rto:
                oldest.last_sent = now
                self._counters.frames_resent += 1
                self._transmit(oldest.frame, first=False)
        self._arm_resend()


__all__ = ["OutputSender"]
