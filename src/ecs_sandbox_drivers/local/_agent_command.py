"""The local agent's command: starting it, writing input into its PTY, reading its output.

Theory of operation
-------------------
Everything an :class:`~._agent.AgentSession` does with its command's PTY is here, on the
gateway's event loop, driven by readiness callbacks only:

* Start. The command is spawned on the gateway's worker pool (fork, exec and nsenter's set-up
  block for milliseconds), after the fault plan's start delay if any; the result comes back
  to the loop. A session that ended meanwhile kills what was started.
* Writing. Input goes straight to the PTY; when a write would block (the command does not
  read), the rest waits for the PTY to be writable, the frames that arrive meanwhile are held,
  and the socket is not read: the client sees backpressure, not loss. When the write is done
  the held frames are taken in order, unless the next one blocks again.
* Reading. The PTY is first read ``first_read_delay_s`` after it is up, then 1024 bytes at a
  time with UTF-8 tails carried (:func:`._agent_pty.split_output`). It is not read while
  publication is paused or while the socket's send buffer is above its high-water mark, and
  reading resumes when either clears. EOF (EIO once every slave descriptor is closed) ends
  the session once the output is acknowledged, or after ``close_wait_s``.

This is a mixin of :class:`._agent.AgentSession`, which owns the state declared here, the
protocol (frames, handshake, acknowledgements) and the session's end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections import deque
from collections.abc import Callable

from ecs_sandbox_core._ssm_codec import PayloadType

from ._agent_faults import FaultPlan
from ._agent_input import FAILED, OK, WRITING, InputReceiver
from ._agent_output import OutputSender
from ._agent_pty import READ_SIZE, PtyChild, split_output
from ._agent_wire import AgentCounters, AgentSettings, Link, SessionSpec

_HIGH_WATER = 256 * 1024
"""Bytes waiting in the socket's send buffer above which the PTY is not read."""

Spawner = Callable[[SessionSpec], "concurrent.futures.Future[PtyChild]"]


class CommandIO:
    """The command's PTY, on the session: spawning, writing, reading, EOF."""

    spec: SessionSpec
    settings: AgentSettings
    plan: FaultPlan
    pty: PtyChild | None
    ended: bool
    _link: Link
    _loop: asyncio.AbstractEventLoop
    _spawner: Spawner
    _counters: AgentCounters
    _out: OutputSender
    _in: InputReceiver
    _write_buf: bytes
    _queued: deque[bytes] | None
    _carry: bytes
    _sent_bytes: int
    _may_read: bool
    _reading: bool
    _eof: bool
    _handle: Callable[[bytes], None]
    _end: Callable[..., None]
    _timer: Callable[..., None]
    _fire: Callable[[str], None]

    @property
    def paused(self) -> bool:
        return self._out.paused

    def _write_pty(self, data: bytes) -> str:
        assert self.pty is not None
        try:
            written = os.write(self.pty.master, data) if data else 0
        except BlockingIOError:
            written = 0
        except OSError:
            return FAILED
        if written == len(data):
            return OK
        self._write_buf = data[written:]
        self._loop.add_writer(self.pty.master, self._on_pty_writable)
        # The agent's reader is stuck in this write: it reads no more frames meanwhile.
        self._queued = self._queued if self._queued is not None else deque()
        self._link.pause_reading()
        self._counters.pty_writes_blocked += 1
        return WRITING

    def _on_pty_writable(self) -> None:
        assert self.pty is not None
        failed = False
        try:
            written = os.write(self.pty.master, self._write_buf)
        except BlockingIOError:
            return
        except OSError:
            written, failed = len(self._write_buf), True  # the PTY is gone
        self._write_buf = self._write_buf[written:]
        if not self._write_buf:
            self._loop.remove_writer(self.pty.master)
            self._unblock(failed)

    def _unblock(self, failed: bool) -> None:
        """The blocked write ended: take in the frames held meanwhile, in order."""
        held, self._queued = self._queued or deque(), None
        self._in.write_done(ok=not failed)
        while held and self._queued is None and not self.ended:
            self._handle(held.popleft())
        if self._queued is not None:
            self._queued = held  # blocked again: the rest still comes first
        elif not self.ended:
            self._link.resume_reading()

    def _spawn(self) -> None:
        if self.plan.faults.start_delay_s:
            self._timer("start", self.plan.faults.start_delay_s, self._spawn_now)
        else:
            self._spawn_now()

    def _spawn_now(self) -> None:
        loop = self._loop

        def done(future: concurrent.futures.Future[PtyChild]) -> None:
            # A closed loop raises: the gateway is closing and reaps what was spawned.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_spawned, future)

        self._spawner(self.spec).add_done_callback(done)

    def _on_spawned(self, future: concurrent.futures.Future[PtyChild]) -> None:
        exc = future.exception()
        if exc is not None:
            self._end(f"Unable to start command: {exc}", kill=True)
            return
        child = future.result()
        if self.ended:
            child.kill_direct()
            child.close_master()
            return
        self.pty = child
        self._timer("first_read", self.settings.first_read_delay_s, self._first_read)

    def _first_read(self) -> None:
        self._may_read = True
        self._resume_reading()

    def _resume_reading(self) -> None:
        blocked = self.paused or self._eof or self.ended or self._link.backlog >= _HIGH_WATER
        if self._may_read and not self._reading and not blocked:
            assert self.pty is not None
            self._loop.add_reader(self.pty.master, self._on_pty_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading and self.pty is not None:
            self._loop.remove_reader(self.pty.master)
        self._reading = False

    def _on_pty_readable(self) -> None:
        assert self.pty is not None
        if self.paused or self._link.backlog >= _HIGH_WATER:
            self._stop_reading()
            return
        try:
            data = os.read(self.pty.master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: every slave descriptor is closed
        if not data:
            self._on_eof()
            return
        quirk = self.settings.replacement_quirk
        chunk, self._carry = split_output(self._carry + data, replacement_quirk=quirk)
        self._send(PayloadType.OUTPUT, chunk)

    def _on_eof(self) -> None:
        self._stop_reading()
        self._eof = True
        self._carry = b""  # an incomplete UTF-8 tail at EOF is dropped, as the agent does
        if not self._out.unacked:
            self._end("", kill=False)
        else:
            self._timer("drain", self.settings.close_wait_s, self._end, "", False)

    def _send(self, payload_type: int, payload: bytes) -> None:
        if self.ended or not payload:
            return
        self._out.send(payload_type, payload)
        if payload_type == PayloadType.OUTPUT:
            self._sent_bytes += len(payload)
            for fault in self.plan.triggered(self._sent_bytes):
                self._loop.call_soon(self._fire, fault)


__all__ = ["CommandIO", "Spawner"]
