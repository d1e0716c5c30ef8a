"""The anyio data-channel pump: a :class:`ChannelPump` over an anyio byte stream."""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Callable

import anyio
import anyio.abc

from ecs_sandbox_core import (
    ChannelRequest,
    ExecSession,
    OpenChannel,
    SessionResult,
    TransportResult,
)
from ecs_sandbox_core._cmdloop import KEEPALIVE_INTERVAL_S

from . import _ssm_shared as shared
from ._ssm_io import CLOSE_GRACE_S, ChannelPump


async def run_session_async(
    effect: ExecSession,
    *,
    headers: list[tuple[str, str]],
    on_output: Callable[[bytes], None] | None = None,
) -> SessionResult:
    """Run ``effect``'s session to its end; on cancellation the session is terminated."""
    pump = shared.session_pump(effect, on_output)
    target = pump.target
    deadline = anyio.current_time() + shared.time_limit(effect.timeout_s)
    try:
        with anyio.fail_after(shared.connect_timeout(effect.timeout_s)):
            stream = await _connect(target.host, target.port, target.tls)
    except (OSError, TimeoutError) as exc:
        pump.connect_failed(f"cannot connect to {target.host}:{target.port}: {exc!r}")
        return pump.result()
    timed_out = False
    try:
        await stream.send(pump.upgrade_request(headers))
        timed_out = not await _pump_until(stream, pump, deadline, lambda: pump.done)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pump.broke()
    finally:
        # Runs on cancellation too: the agent is asked to end the session, shielded and
        # briefly, so that a cancelled command does not keep running in the container.
        with anyio.CancelScope(shield=True):
            await _linger(stream, pump, terminate=not pump.done)
    return pump.result(timed_out=timed_out)


async def _linger(stream: anyio.abc.ByteStream, pump: ChannelPump, *, terminate: bool) -> None:
    try:
        with anyio.move_on_after(CLOSE_GRACE_S):
            out = pump.terminate() if terminate else b""
            if out:
                await stream.send(out)
            while not pump.finished:
                pump.receive(await stream.receive(shared.READ_SIZE))
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await stream.aclose()


class AsyncLoopSession:
    """A command-loop session kept open between commands (anyio byte stream)."""

    keepalive_s: float = KEEPALIVE_INTERVAL_S
    """Longest time without input while a request runs (see KEEPALIVE_INTERVAL_S)."""

    def __init__(self, effect: OpenChannel) -> None:
        self.pump = shared.loop_pump(effect)
        self.stream: anyio.abc.ByteStream | None = None
        self._raw: socket.socket | None = None
        self.session_id = effect.session_id

    async def open(
        self, effect: OpenChannel, headers: list[tuple[str, str]]
    ) -> SessionResult | None:
        """Connect and wait for the loop's ready marker; None when ready, else the failure."""
        pump, target = self.pump, self.pump.target
        deadline = anyio.current_time() + shared.time_limit(effect.timeout_s)
        try:
            with anyio.fail_after(shared.connect_timeout(effect.timeout_s)):
                self.stream = await _connect(target.host, target.port, target.tls)
            self._raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
            await self.stream.send(pump.upgrade_request(headers))
            if await _pump_until(self.stream, pump, deadline, lambda: effect.ready in pump.output):
                pump.reset_output()
                return None
        except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            pump.connection_lost(repr(exc))
        await self.aclose()
        return shared.not_ready(pump)

    async def alive(self) -> bool:
        """Take in whatever already arrived (without waiting); False once the session ended."""
        stream, raw, pump = self.stream, self._raw, self.pump
        if stream is None or pump.done:
            return False
        try:
            # Peek at the socket: only read when something is there, so this never waits.
            while raw is not None and _pending(raw):
                out = pump.receive(await stream.receive(shared.READ_SIZE))
                if out:
                    await stream.send(out)
                if pump.done:
                    break
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pump.broke()
        return not pump.done

    async def request(
        self, effect: ChannelRequest, on_output: Callable[[bytes], None] | None
    ) -> TransportResult:
        """Send one request and read until its frame is whole (see ChannelRequest)."""
        if not await self.alive():
            return shared.not_sent(self.pump)
        stream, pump = self.stream, self.pump
        assert stream is not None
        whole = shared.start_request(pump, effect, on_output)
        deadline = anyio.current_time() + shared.time_limit(effect.timeout_s)
        complete = False
        try:
            sent = pump.flush()
            if sent:
                await stream.send(sent)
            complete = await _pump_until(
                stream, pump, deadline, whole, keepalive_s=self.keepalive_s
            )
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pump.broke()
        return shared.request_result(pump, complete)

    async def aclose(self) -> None:
        """Close the WebSocket and the stream, briefly and shielded."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE_S):
            try:
                out = self.pump.terminate()
                if out:
                    await stream.send(out)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def _connect(host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
    stream: anyio.abc.ByteStream
    if tls:
        stream = await anyio.connect_tcp(
            host, port, ssl_context=ssl.create_default_context(), tls_standard_compatible=False
        )
    else:
        stream = await anyio.connect_tcp(host, port)
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
    if raw is not None:
        shared.no_delay(raw)
    return stream


def _pending(raw: socket.socket) -> bool:
    # select() with a zero timeout: asyncio hands out a wrapper without recv(), but every
    # backend's socket has a file descriptor. EOF and errors count as readable.
    try:
        return bool(select.select([raw.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # let the read report it


async def _pump_until(
    stream: anyio.abc.ByteStream,
    pump: ChannelPump,
    deadline: float,
    done: Callable[[], bool],
    *,
    keepalive_s: float | None = None,
) -> bool:
    # As the sync _pump_until: True once done(), False when the session ended or the
    # deadline passed first; the ReadPacer types the keep-alive line with keepalive_s.
    pacer = shared.ReadPacer(pump, deadline, keepalive_s, typed=anyio.current_time())
    while not done():
        wait = pacer.wait(anyio.current_time())
        if wait is None:
            return False
        data: bytes | None = b""
        with anyio.move_on_after(wait):
            try:
                data = await stream.receive(shared.READ_SIZE)
            except anyio.EndOfStream:
                data = None
        out = pump.flush() if data == b"" else pump.receive(data)
        if out:
            await stream.send(out)
    return True


__all__ = ["AsyncLoopSession", "run_session_async"]
