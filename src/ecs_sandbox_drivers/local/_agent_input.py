"""The local SSM agent's input side: client frames taken in sequence order, acknowledged.

As the Go agent's data channel does it. The expected frame is processed and, only if that
worked, acknowledged; then buffered successors are processed in turn. A later frame is
buffered (up to 10,000) and acknowledged at once. An earlier one is a duplicate whose ack
was lost: it is acknowledged again (``reack_duplicates``; the Go agent, as read, drops it
silently, which strands a client whose ack was lost). A frame whose processing is "not ready"
(no PTY yet) or fails (bad Size JSON) is not acknowledged and the sequence does not advance,
so the client resends it; a buffered successor that fails stays buffered, already
acknowledged, and blocks the session's input for good, as in the agent.

A frame whose bytes could not all be written to the PTY at once holds its ack until the
session reports the write complete; meanwhile the session holds back every frame it reads and
stops reading its socket, as the agent's reader, blocked in that write, does.
"""

from __future__ import annotations

from collections.abc import Callable

from ecs_sandbox_core._ssm_codec import AgentMessage

OK, NOT_READY, FAILED, WRITING = "ok", "not ready", "failed", "writing"
"""What processing one input frame came to."""

_CAPACITY = 10000


class InputReceiver:
    """Orders and acknowledges input; ``process`` applies one frame (returns a result above)."""

    def __init__(
        self,
        *,
        process: Callable[[AgentMessage], str],
        ack: Callable[[AgentMessage], None],
        reack_duplicates: bool,
    ) -> None:
        self._process = process
        self._ack = ack
        self._reack_duplicates = reack_duplicates
        self._expected = 0
        self._buffered: dict[int, AgentMessage] = {}
        self._writing = False
        self._write_ack: AgentMessage | None = None

    def receive(self, message: AgentMessage) -> None:
        """One ``input_stream_data`` frame from the client."""
        if self._writing:
            return
        seq = message.sequence
        if seq == self._expected:
            result = self._process(message)
            if result == WRITING:
                self._writing, self._write_ack = True, message
            elif result == OK:
                self._ack(message)
                self._expected += 1
                self._drain()
        elif seq > self._expected:
            if len(self._buffered) < _CAPACITY:
                self._ack(message)
                self._buffered[seq] = message
        elif self._reack_duplicates:
            self._ack(message)

    def write_done(self, *, ok: bool = True) -> None:
        """The PTY write that held input back has ended (``ok``: completed, not failed).

        A failed write is not acknowledged, like any frame whose handler failed.
        """
        self._writing = False
        if self._write_ack is not None and ok:
            self._ack(self._write_ack)
            self._expected += 1
        self._write_ack = None
        if ok:
            self._drain()

    def _drain(self) -> None:
        while (message := self._buffered.get(self._expected)) is not None:
            result = self._process(message)
            if result in (NOT_READY, FAILED):
                return
            del self._buffered[self._expected]
            self._expected += 1
            if result == WRITING:
                self._writing = True
                return


__all__ = ["FAILED", "NOT_READY", "OK", "WRITING", "InputReceiver"]
