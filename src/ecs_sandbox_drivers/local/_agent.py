"""The local SSM agent: one session's side of the data channel, as amazon-ssm-agent plays it.

Theory of operation
-------------------
An :class:`AgentSession` lives on the gateway's event loop (all its methods run there) and
talks to its client through a :class:`~._agent_wire.Link` (one WebSocket). It follows the Go
agent's InteractiveCommands plugin and data channel rule by rule (SSM_PROTOCOL.md):

* Start-up. Without a handshake (ECS Exec without a KMS key) the command is started at once.
  With one, a HandshakeRequest goes out as output frame 0; once the HandshakeResponse is in,
  HandshakeComplete is sent and only then the command started. Input that arrives before
  HandshakeComplete is acknowledged and thrown away; input that arrives before the PTY is up
  is *not* acknowledged (the agent's handler is "not ready"), so the client must resend it.
* Input (:class:`._agent_input.InputReceiver`: order, acknowledgements). Output payloads
  are written to the PTY, Size sets its window, a Flag TerminateSession ends the session.
  While a PTY write is blocked (the command does not read), frames are held and the socket
  is not read: the client sees backpressure, not loss (:mod:`._agent_command`).
* Output. The PTY is read (:mod:`._agent_command`: after ``first_read_delay_s``, 1024 bytes
  at a time, not while publication is paused or the socket's send buffer is full); the
  frames are kept and resent by :class:`._agent_output.OutputSender`.
* End. On PTY EOF the session waits up to ``close_wait_s`` for its output to be acknowledged,
  then sends ``channel_closed`` and closes. Termination (TerminateSession, idle timeout, a
  failed handshake, a fault, gateway shutdown) SIGKILLs the direct child first; a client that
  goes away gets the same, without a ``channel_closed``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable

from ecs_sandbox_core._ssm_codec import (
    ACKNOWLEDGE,
    INPUT_STREAM,
    PAUSE_PUBLICATION,
    START_PUBLICATION,
    TERMINATE_SESSION_FLAG,
    AgentMessage,
    PayloadType,
    SsmProtocolError,
    acked_sequence,
    decode_message,
)

from ._agent_command import CommandIO, Spawner
from ._agent_faults import FaultPlan
from ._agent_input import FAILED, NOT_READY, OK, InputReceiver
from ._agent_output import OutputSender
from ._agent_pty import PtyChild
from ._agent_wire import (
    IDLE_MESSAGE,
    AgentCounters,
    AgentSettings,
    Link,
    SessionSpec,
    ack_frame,
    channel_closed_frame,
    handshake_errors,
    handshake_request,
    parse_size,
    stream_frame,
)

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_MESSAGE = (
    "Handshake timed out. Please ensure that you have the latest version of the session "
    "manager plugin."
)


class AgentSession(CommandIO):
    """One session's agent (see the module docstring); every method runs on ``loop``."""

    def __init__(
        self,
        spec: SessionSpec,
        *,
        client_id: str,
        settings: AgentSettings,
        plan: FaultPlan,
        link: Link,
        loop: asyncio.AbstractEventLoop,
        spawner: Spawner,
        counters: AgentCounters,
        on_end: Callable[[AgentSession], None],
    ) -> None:
        self.spec = spec
        self.client_id = client_id
        self.settings = settings
        self.plan = plan
        self._link = link
        self._loop = loop
        self._spawner = spawner
        self._counters = counters
        self._on_end = on_end
        self._out = OutputSender(link=link, loop=loop, plan=plan, counters=counters)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.ended = False
        self.pty: PtyChild | None = None
        self._handshake = "skipped" if settings.handshake == "none" else "waiting"
        self._handshake_started = 0.0
        self._last_input = 0.0
        self._in = InputReceiver(
            process=self._process, ack=self._ack, reack_duplicates=settings.reack_duplicates
        )
        self._write_buf = b""
        self._queued: deque[bytes] | None = None  # frames held while a PTY write blocks
        self._carry = b""
        self._sent_bytes = 0
        self._may_read = False  # the first-read delay has passed
        self._reading = False
        self._eof = False

    # --- what the gateway calls -----------------------------------------------------------------

    def start(self) -> None:
        """The token was accepted: begin the handshake or start the command."""
        self._counters.sessions_opened += 1
        self._counters.live_sessions += 1
        self._last_input = self._loop.time()
        self._timer("idle", self.settings.idle_timeout_s, self._idle_check)
        if self.settings.ping_interval_s:
            self._timer("ping", self.settings.ping_interval_s, self._ping)
        if self._handshake == "skipped":
            self._spawn()
            return
        self._handshake_started = self._loop.time()
        kms = self.settings.handshake == "kms"
        self._send(PayloadType.HANDSHAKE_REQUEST, handshake_request(self.spec.region, kms=kms))
        timeout = self.settings.handshake_timeout_s
        self._timer("handshake", timeout, self._end, HANDSHAKE_TIMEOUT_MESSAGE, True)

    def receive(self, data: bytes) -> None:
        """One BINARY WebSocket message from the client."""
        if self._queued is not None:
            self._queued.append(data)  # read while blocked in a PTY write: kept for later
        elif not self.ended:
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except SsmProtocolError as exc:
            self._counters.bad_frames += 1
            logger.debug("session %s: invalid frame: %s", self.spec.session_id, exc)
            return
        if message.message_type == INPUT_STREAM:
            self._on_input(message)
        elif message.message_type == ACKNOWLEDGE:
            try:
                self._out.acknowledged(acked_sequence(message))
            except SsmProtocolError:
                return
            if self._eof and not self._out.unacked:
                self._end("", kill=False)
        else:
            logger.debug("session %s: ignored %s", self.spec.session_id, message.message_type)

    def client_gone(self, why: str) -> None:
        """The client closed the WebSocket or dropped the connection."""
        logger.debug("session %s: client gone (%s)", self.spec.session_id, why)
        self._end(None, kill=True)

    def shutdown(self) -> None:
        """The gateway is closing."""
        self._end("The local ECS is shutting down.", kill=True)

    def pause(self, seconds: float) -> None:
        """Pause publication both ways for ``seconds`` (as the gateway does under load)."""
        if self.ended:
            return
        if not self._out.paused:
            self._out.paused = True
            self._link.send_frame(stream_frame(PAUSE_PUBLICATION, 0, 0, 0, b""))
            self._stop_reading()
        self._timer("pause", seconds, self._unpause)

    def link_drained(self) -> None:
        """The socket's send buffer emptied: reading the PTY may resume."""
        self._resume_reading()

    # --- input ----------------------------------------------------------------------------------

    def _on_input(self, message: AgentMessage) -> None:
        self._last_input = self._loop.time()
        self._in.receive(message)

    def _process(self, message: AgentMessage) -> str:
        kind = message.payload_type
        if kind == PayloadType.HANDSHAKE_RESPONSE:
            return self._on_handshake_response(message.payload)
        if kind == PayloadType.ENC_CHALLENGE_RESPONSE:
            return FAILED  # no KMS exchange here
        if self._handshake == "waiting":
            return OK  # acknowledged and thrown away before HandshakeComplete
        if self.pty is None:
            return NOT_READY
        if self._eof:
            return FAILED
        if kind == PayloadType.OUTPUT:
            return self._write_pty(message.payload)
        if kind == PayloadType.SIZE:
            size = parse_size(message.payload)
            if size is None:
                return FAILED
            self.pty.set_size(*size)
        elif kind == PayloadType.FLAG and self.settings.honour_terminate_flag:
            payload = message.payload
            flag = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else 0
            if flag == TERMINATE_SESSION_FLAG:
                self._loop.call_soon(self._end, "", True)  # after this frame's ack
        return OK

    def _on_handshake_response(self, payload: bytes) -> str:
        if self._handshake != "waiting":
            return OK
        errors = handshake_errors(payload, kms=self.settings.handshake == "kms")
        if errors is None:
            return FAILED
        self._handshake = "complete"
        self._cancel("handshake")
        if errors:
            self._loop.call_soon(self._end, "; ".join(errors), True)
            return OK
        took_ns = int((self._loop.time() - self._handshake_started) * 1e9)
        complete = f'{{"HandshakeTimeToComplete":{took_ns},"CustomerMessage":""}}'
        self._send(PayloadType.HANDSHAKE_COMPLETE, complete.encode())
        self._spawn()
        return OK

    def _ack(self, message: AgentMessage) -> None:
        if self.plan.drop_ack():
            self._counters.acks_dropped += 1
            return
        self._link.send_frame(ack_frame(message))
        self._counters.acks_sent += 1

    # --- ending -----------------------------------------------------------------------------------

    def _fire(self, fault: str) -> None:
        if fault == "close":
            sent = self.plan.faults.close_after_bytes
            self._end(f"The local ECS closed this session after {sent} output bytes (fault).", True)
        elif fault == "drop_tcp":
            self._end(None, kill=True, abort=True)
        elif fault == "pause":
            self.pause(self.plan.faults.pause_for_s)

    def _idle_check(self) -> None:
        idle_for = self._loop.time() - self._last_input
        if idle_for >= self.settings.idle_timeout_s:
            self._end(IDLE_MESSAGE, kill=True)
        else:
            self._timer("idle", self.settings.idle_timeout_s - idle_for, self._idle_check)

    def _ping(self) -> None:
        self._link.send_ping()
        assert self.settings.ping_interval_s
        self._timer("ping", self.settings.ping_interval_s, self._ping)

    def _unpause(self) -> None:
        if self._out.paused and not self.ended:
            self._out.paused = False
            self._link.send_frame(stream_frame(START_PUBLICATION, 0, 0, 0, b""))
            self._resume_reading()

    def _end(self, output: str | None, kill: bool, abort: bool = False) -> None:
        """End the session; ``output`` is the ``channel_closed`` text (None: send none)."""
        if self.ended:
            return
        self.ended = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._out.stop()
        if self.pty is not None:
            self._stop_reading()
            if self._write_buf:
                self._loop.remove_writer(self.pty.master)
            if kill:
                self.pty.kill_direct()
            self.pty.close_master()
        if abort:
            self._link.abort()
        else:
            if output is not None:
                frame = channel_closed_frame(
                    session_id=self.spec.session_id, client_id=self.client_id, output=output
                )
                self._link.send_frame(frame)
            self._link.close()
        self._counters.live_sessions -= 1
        self._on_end(self)

    def _timer(self, name: str, delay: float, callback: Callable[..., None], *args: object) -> None:
        self._cancel(name)

        def fire() -> None:
            self._timers.pop(name, None)
            callback(*args)

        self._timers[name] = self._loop.call_later(delay, fire)

    def _cancel(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()


__all__ = ["HANDSHAKE_TIMEOUT_MESSAGE", "AgentSession", "Spawner"]
