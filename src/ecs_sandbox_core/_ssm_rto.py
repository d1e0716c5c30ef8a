"""The retransmission timeout of an SSM data channel's input frames (RFC 6298).

The oldest unacknowledged input frame is resent once it has waited this long: 200 ms
before any round trip was measured, as the Go plugin starts; then SRTT + max(G, 4 RTTVAR)
with a 10 ms clock granularity G, capped at 1 s. The first sample R sets SRTT = R and
RTTVAR = R/2; later ones are smoothed with alpha 1/8 and beta 1/4. The channel samples
only frames sent once (Karn's rule): the ack of a resent frame says nothing about which
send it answers.
"""

from __future__ import annotations

INITIAL_RTO_S = 0.2
MAX_RTO_S = 1.0
CLOCK_GRANULARITY_S = 0.01
RTT_ALPHA = 1 / 8
RTT_BETA = 1 / 4


class RetransmissionTimeout:
    """The current timeout (:attr:`seconds`), updated by each round-trip :meth:`sample`."""

    __slots__ = ("_rttvar", "_srtt", "seconds")

    def __init__(self) -> None:
        self.seconds = INITIAL_RTO_S
        self._srtt: float | None = None
        self._rttvar = 0.0

    def sample(self, rtt: float) -> None:
        """Take one measured round trip (seconds) into account."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = (1 - RTT_BETA) * self._rttvar + RTT_BETA * abs(self._srtt - rtt)
            self._srtt = (1 - RTT_ALPHA) * self._srtt + RTT_ALPHA * rtt
        rto = self._srtt + max(CLOCK_GRANULARITY_S, 4 * self._rttvar)
        self.seconds = min(rto, MAX_RTO_S)


__all__ = ["INITIAL_RTO_S", "MAX_RTO_S", "RetransmissionTimeout"]
