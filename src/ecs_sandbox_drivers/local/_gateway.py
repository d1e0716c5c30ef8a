"""The local SSM gateway: ECS Exec data channels as WebSocket endpoints on 127.0.0.1.

One event-loop thread (asyncio's selector loop, driven only through callbacks: readers,
writers, timers) serves every connection and every session's PTY, so hundreds of long-lived
sessions cost a few descriptors each and no threads; a small worker pool only starts
commands (fork, exec and nsenter's set-up block for milliseconds).

A connection goes through three steps: the HTTP upgrade and the open message, which admit it
(:mod:`._gateway_admit`: signature, session and single-use token), then the session
(:class:`._agent.AgentSession`), to which every later BINARY message is one frame.

The gateway keeps the registrations ExecuteCommand made (an unconnected one expires after
ten minutes), the connections, and the commands' processes: each is started on the pool,
then watched from the loop through a pidfd so that it is reaped as soon as it exits, and
killed when the gateway closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from . import _agent_pty
from ._agent import AgentSession
from ._agent_faults import ChannelFaults
from ._agent_pty import PtyChild
from ._agent_wire import AgentCounters, AgentSettings, SessionSpec
from ._gateway_admit import PATH_PREFIX, Admission, Registration
from ._gateway_conn import Connection

logger = logging.getLogger(__name__)

_UNCONNECTED_TTL_S = 600.0
_SPAWN_WORKERS = 4


@dataclass(frozen=True, slots=True)
class GatewayStats:
    """A snapshot of the gateway's counters (see :class:`._agent_wire.AgentCounters`)."""

    sessions_opened: int
    live_sessions: int
    frames_sent: int
    frames_resent: int
    frames_dropped: int
    acks_sent: int
    acks_dropped: int
    bad_frames: int
    pty_writes_blocked: int
    upgrades_refused: int
    tokens_refused: int


class SsmGateway(Admission):
    """Serves ECS Exec data channels for sessions registered by ExecuteCommand.

    ``settings`` and ``faults`` apply to sessions opened after they are set; faults can also
    be set per session (:meth:`set_faults`). Start with :meth:`start`, stop with :meth:`close`
    (which ends every session and kills every command still running).
    """

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        settings: AgentSettings | None = None,
        faults: ChannelFaults | None = None,
    ) -> None:
        self.settings = settings or AgentSettings()
        self.faults = faults or ChannelFaults()
        self._keys = {access_key: secret_key}  # access key id -> secret key
        self._lock = threading.Lock()
        self._registrations: dict[str, Registration] = {}
        self._children: set[PtyChild] = set()
        self._watched: dict[PtyChild, int] = {}  # nsenter's pidfd, read when it exits
        self._connections: set[Connection] = set()
        self.counters = AgentCounters()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=_SPAWN_WORKERS, thread_name_prefix="ecs-sandbox-ssm-spawn"
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SsmGateway:
        """Listen on an ephemeral port of 127.0.0.1 and run the loop thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        loop = asyncio.new_event_loop()
        loop.add_reader(listener.fileno(), self._accept)
        self._listener, self._loop = listener, loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="ecs-sandbox-ssm-gateway", daemon=True
        )
        self._thread.start()
        logger.info("local SSM gateway on ws://127.0.0.1:%d", self.port)
        return self

    def close(self) -> None:
        """End every session (``channel_closed``), kill their commands, stop the loop."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            done = threading.Event()
            loop.call_soon_threadsafe(self._shutdown, done)
            done.wait(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        if self._listener is not None:  # the loop never ran its shutdown
            self._listener.close()
            self._listener = None
        self._pool.shutdown(wait=True)
        for pidfd in self._watched.values():
            os.close(pidfd)
        self._watched.clear()
        with self._lock:
            children, self._children = list(self._children), set()
        for child in children:
            child.close()

    def _shutdown(self, done: threading.Event) -> None:
        try:
            for connection in list(self._connections):
                if connection.session is not None:
                    connection.session.shutdown()
                connection.close_socket()
            if self._listener is not None and self._loop is not None:
                self._loop.remove_reader(self._listener.fileno())
                self._listener.close()
                self._listener = None
        finally:
            done.set()

    # --- what LocalAws calls --------------------------------------------------------------------

    def stream_url(self, session_id: str) -> str:
        """The ``streamUrl`` ExecuteCommand returns for ``session_id``."""
        return (
            f"ws://127.0.0.1:{self.port}{PATH_PREFIX}{session_id}"
            "?role=publish_subscribe&cell-number=local"
        )

    def register(self, spec: SessionSpec) -> None:
        """Accept connections for ``spec`` (a session ExecuteCommand just created)."""
        now = time.monotonic()
        with self._lock:
            stale = [
                sid
                for sid, reg in self._registrations.items()
                if not reg.spent and now - reg.registered_at > _UNCONNECTED_TTL_S
            ]
            for sid in stale:
                del self._registrations[sid]
            self._registrations[spec.session_id] = Registration(spec, now)

    def accept_credentials(self, access_key: str, secret_key: str) -> None:
        """Also accept upgrades signed with this key pair (see LocalAws.accept_credentials)."""
        with self._lock:
            self._keys[access_key] = secret_key

    def set_faults(self, faults: ChannelFaults, session_id: str | None = None) -> None:
        """Faults for sessions opened from now on, or for one session before it connects."""
        if session_id is None:
            self.faults = faults
            return
        with self._lock:
            self._registration(session_id).faults = faults

    def pause(self, session_id: str, seconds: float) -> None:
        """Pause publication of a connected session for ``seconds``."""
        with self._lock:
            session = self._registration(session_id).session
        if session is None:
            raise RuntimeError(f"session {session_id} has no connected client")
        assert self._loop is not None
        self._loop.call_soon_threadsafe(session.pause, seconds)

    def command_pid(self, session_id: str) -> int | None:
        """The host pid of a session's command (its direct child), once started."""
        with self._lock:
            session = self._registration(session_id).session
        pty = session.pty if session is not None else None
        return pty.command_pid if pty is not None else None

    def stats(self) -> GatewayStats:
        """The counters now."""
        return GatewayStats(**dataclasses.asdict(self.counters))

    def _registration(self, session_id: str) -> Registration:
        try:
            return self._registrations[session_id]
        except KeyError:
            raise KeyError(f"no open session {session_id!r} at the local gateway") from None

    # --- the loop thread ------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None and self._loop is not None
        while True:
            try:
                sock, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections.add(Connection(self, loop=self._loop, sock=sock))

    def _session_ended(self, session: AgentSession) -> None:
        with self._lock:
            self._registrations.pop(session.spec.session_id, None)

    def _spawn(self, spec: SessionSpec) -> concurrent.futures.Future[PtyChild]:
        loop = self._loop
        assert loop is not None

        def work() -> PtyChild:
            child = _agent_pty.spawn(spec.argv, spec.env, dev_root=spec.dev_root)
            with self._lock:
                self._children.add(child)
            loop.call_soon_threadsafe(self._watch, child)
            return child

        try:
            return self._pool.submit(work)
        except RuntimeError as exc:  # the pool is shut down: the gateway is closing
            failed: concurrent.futures.Future[PtyChild] = concurrent.futures.Future()
            failed.set_exception(exc)
            return failed

    def _watch(self, child: PtyChild) -> None:
        """Reap nsenter as soon as it exits (it does once the command has)."""
        assert self._loop is not None
        try:
            pidfd = os.pidfd_open(child.proc.pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is None:
            self._reap(child)
            return
        self._watched[child] = pidfd
        self._loop.add_reader(pidfd, self._reap, child)

    def _reap(self, child: PtyChild) -> None:
        pidfd = self._watched.pop(child, None)
        if pidfd is not None and self._loop is not None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
        child.reap()
        with self._lock:
            self._children.discard(child)

    def connection_closed(self, connection: Connection) -> None:
        self._connections.discard(connection)


__all__ = ["PATH_PREFIX", "GatewayStats", "SsmGateway"]
