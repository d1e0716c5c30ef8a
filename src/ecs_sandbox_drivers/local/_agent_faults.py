"""Fault switches for the local SSM data channel, and their seeded per-session plan.

The local gateway applies them to what the agent sends: its output frames (each
transmission, first or repeated, may be dropped, duplicated, held back behind the next one,
or delayed; a first transmission may carry a bad digest and go out correctly when resent),
its acknowledgements of client input, the start of the command (late, as from a slow agent:
input must be resent until the PTY is up), and the session as a whole (closed with
``channel_closed``, or its TCP connection dropped without a close frame, once some output has
gone out; publication paused for a while; the token refused).

Every random decision comes from one ``random.Random(seed)`` per session, drawn in the order
frames are sent, so a test that sends the same frames gets the same faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFaults:
    """What the local gateway does wrong on purpose (all off by default).

    Probabilities apply per transmission and must stay below 1, so that resending recovers.
    ``delay_output_s`` is how long a delayed frame waits; ``*_after_bytes`` count output
    payload bytes sent for the first time.
    """

    seed: int = 0
    drop_output: float = 0.0
    duplicate_output: float = 0.0
    reorder_output: float = 0.0
    delay_output: float = 0.0
    delay_output_s: float = 0.2
    corrupt_digest: float = 0.0
    drop_acks: float = 0.0
    close_after_bytes: int | None = None
    drop_tcp_after_bytes: int | None = None
    pause_after_bytes: int | None = None
    pause_for_s: float = 1.0
    refuse_token: bool = False
    start_delay_s: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "drop_output",
            "duplicate_output",
            "reorder_output",
            "delay_output",
            "corrupt_digest",
            "drop_acks",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), not {value!r}")
        if min(self.delay_output_s, self.pause_for_s, self.start_delay_s) < 0:
            raise ValueError("delays must not be negative")
        for name in ("close_after_bytes", "drop_tcp_after_bytes", "pause_after_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def active(self) -> bool:
        """True when any switch differs from its default."""
        default = ChannelFaults()
        return any(
            getattr(self, f.name) != getattr(default, f.name)
            for f in fields(self)
            if f.name != "seed"
        )


@dataclass(frozen=True, slots=True)
class Transmission:
    """How to send one output frame: ``copies`` times (0: dropped), maybe later or held."""

    copies: int
    corrupt: bool = False
    delay_s: float = 0.0
    hold: bool = False


class FaultPlan:
    """One session's faults: seeded decisions, and the byte-count triggers fired once."""

    def __init__(self, faults: ChannelFaults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)  # noqa: S311 - reproducible on purpose
        self._fired: set[str] = set()

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def transmission(self, *, first: bool) -> Transmission:
        """The fate of one transmission of an output frame."""
        f = self.faults
        if self._roll(f.drop_output):
            return Transmission(copies=0)
        corrupt = first and self._roll(f.corrupt_digest)
        copies = 2 if self._roll(f.duplicate_output) else 1
        delay = f.delay_output_s if self._roll(f.delay_output) else 0.0
        hold = not delay and self._roll(f.reorder_output)
        return Transmission(copies=copies, corrupt=corrupt, delay_s=delay, hold=hold)

    def drop_ack(self) -> bool:
        return self._roll(self.faults.drop_acks)

    def triggered(self, sent_bytes: int) -> list[str]:
        """Byte-count faults due now (``close``, ``drop_tcp``, ``pause``), each only once."""
        due = []
        for name, limit in (
            ("close", self.faults.close_after_bytes),
            ("drop_tcp", self.faults.drop_tcp_after_bytes),
            ("pause", self.faults.pause_after_bytes),
        ):
            if limit is not None and sent_bytes >= limit and name not in self._fired:
                self._fired.add(name)
                due.append(name)
        return due


def corrupt_digest(frame: bytes) -> bytes:
    """``frame`` with one bit of its payload digest flipped (header bytes 80..111)."""
    return frame[:80] + bytes([frame[80] ^ 0x01]) + frame[81:]


__all__ = ["ChannelFaults", "FaultPlan", "Transmission", "corrupt_digest"]
