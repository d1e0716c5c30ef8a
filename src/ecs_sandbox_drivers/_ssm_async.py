"""The anyio data-channel pump: a :class:`ChannelPump` over an anyio byte stream."""

from __future__ import annotations

import math
import os
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
from ecs_sandbox_core._cmdloop import KEEPALIVE_INTERVAL_S, FrameWatch

from ._ssm_io import CLOSE_GRACE_S, ChannelPump, not_sent, request_result

_CONNECT_TIMEOUT_S = 10.0


def _limit(timeout_s: float | None) -> float:
    return math.inf if timeout_s is None else timeout_s


_READ = 65536


async def run_session_async(
    effect: ExecSession,
    *,
    headers: list[tuple[str, str]],
    on_output: Callable[[bytes], None] | None = None,
) -> SessionResult:
    """Run ``effect``'s session to its end; on cancellation the session is terminated."""
    pump = ChannelPump(
        url=effect.stream_url,
        token=effect.token,
        id_seed=os.urandom(16),
        input_bytes=effect.input,
        on_output=on_output,
        max_output_bytes=effect.max_output_bytes,
    )
    target = pump.target
    deadline = anyio.current_time() + _limit(effect.timeout_s)
    try:
        with anyio.fail_after(min(_CONNECT_TIMEOUT_S, _limit(effect.timeout_s))):
            stream = await _connect(target.host, target.port, target.tls)
    except (OSError, TimeoutError) as exc:
        pump.connect_failed(f"cannot connect to {target.host}:{target.port}: {exc!r}")
        return pump.result()
    timed_out = False
    try:
        await stream.send(pump.upgrade_request(headers))
        timed_out = await _pump(stream, pump, deadline)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        if not pump.done:
            pump.receive(None)
    finally:
        # Runs on cancellation too: the agent is asked to end the session, shielded and
        # briefly, so that a cancelled command does not keep running in the container.
        with anyio.CancelScope(shield=True):
            await _linger(stream, pump, terminate=not pump.done)
    return pump.result(timed_out=timed_out)


async def _pump(stream: anyio.abc.ByteStream, pump: ChannelPump, deadline: float) -> bool:
    while not pump.done:
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            return True
        data: bytes | None = b""
        with anyio.move_on_after(max(pump.wait_s(remaining), 0.001)):
            try:
                data = await stream.receive(_READ)
            except anyio.EndOfStream:
                data = None
        out = pump.flush() if data == b"" else pump.receive(data)
        if out:
            await stream.send(out)
    return False


async def _linger(stream: anyio.abc.ByteStream, pump: ChannelPump, *, terminate: bool) -> None:
    try:
        with anyio.move_on_after(CLOSE_GRACE_S):
            out = pump.terminate() if terminate else b""
            if out:
                await stream.send(out)
            while not pump.finished:
                pump.receive(await stream.receive(_READ))
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await stream.aclose()


class AsyncLoopSession:
    """A command-loop session kept open between commands (anyio byte stream)."""

    keepalive_s: float = KEEPALIVE_INTERVAL_S
    """Longest time without input while a request runs (see KEEPALIVE_INTERVAL_S)."""

    def __init__(self, effect: OpenChannel) -> None:
        self.pump = ChannelPump(url=effect.stream_url, token=effect.token, id_seed=os.urandom(16))
        self.stream: anyio.abc.ByteStream | None = None
        self._raw: socket.socket | None = None
        self.session_id = effect.session_id

    async def open(
        self, effect: OpenChannel, headers: list[tuple[str, str]]
    ) -> SessionResult | None:
        """Connect and wait for the loop's ready marker; None when ready, else the failure."""
        pump, target = self.pump, self.pump.target
        deadline = anyio.current_time() + _limit(effect.timeout_s)
        try:
            with anyio.fail_after(min(_CONNECT_TIMEOUT_S, _limit(effect.timeout_s))):
                self.stream = await _connect(target.host, target.port, target.tls)
            self._raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
            await self.stream.send(pump.upgrade_request(headers))
            if await _pump_until(self.stream, pump, deadline, lambda: effect.ready in pump.output):
                pump.reset_output()
                return None
        except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            if not pump.opened:
                pump.connect_failed(f"{target.host}:{target.port}: {exc!r}")
            elif not pump.done:
                pump.receive(None)
        await self.aclose()
        if pump.failure is None and not pump.done:
            return SessionResult(
                output=bytes(pump.output), ended="timeout", kind="timeout", reason="not ready"
            )
        return pump.result()

    async def alive(self) -> bool:
        """Take in whatever already arrived (without waiting); False once the session ended."""
        stream, raw, pump = self.stream, self._raw, self.pump
        if stream is None or pump.done:
            return False
        try:
            # Peek at the socket: only read when something is there, so this never waits.
            while raw is not None and _pending(raw):
                out = pump.receive(await stream.receive(_READ))
                if out:
                    await stream.send(out)
                if pump.done:
                    break
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            if not pump.done:
                pump.receive(None)
        return not pump.done

    async def request(
        self, effect: ChannelRequest, on_output: Callable[[bytes], None] | None
    ) -> TransportResult:
        """Send one request and read until its frame is whole (see ChannelRequest)."""
        if not await self.alive():
            return not_sent(self.pump)
        stream, pump = self.stream, self.pump
        assert stream is not None
        # Past the output limit, stop reading but keep the session: the flow stops the
        # command over another session first (ending this one would orphan the command).
        pump.reset_output(
            max_output_bytes=effect.max_output_bytes, on_output=on_output, end_on_cap=False
        )
        pump.channel.send(effect.request)
        deadline = anyio.current_time() + _limit(effect.timeout_s)

        watch = FrameWatch(nonce=effect.nonce, binary=effect.binary)

        def whole() -> bool:
            return pump.output_limit_hit or watch.complete(pump.output)

        complete = False
        try:
            sent = pump.flush()
            if sent:
                await stream.send(sent)
            complete = await _pump_until(
                stream, pump, deadline, whole, keepalive_s=self.keepalive_s
            )
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            if not pump.done:
                pump.receive(None)
        capped = pump.output_limit_hit
        complete = complete and not capped
        return request_result(
            pump, complete, timed_out=not complete and not pump.done and not capped
        )

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
    # Small frames that each wait for an answer: no Nagle (see _ssm_sync._no_delay).
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    # As the sync _pump_until: with keepalive_s, type the keep-alive line after that long
    # without input (the agent's idle timer counts input only).
    typed = anyio.current_time()
    while not done():
        if pump.done:
            return False
        now = anyio.current_time()
        remaining = deadline - now
        if remaining <= 0:
            return False
        wait, typed = pump.wait_and_keep_alive(now, remaining, keepalive_s, typed)
        data: bytes | None = b""
        with anyio.move_on_after(max(wait, 0.001)):
            try:
                data = await stream.receive(_READ)
            except anyio.EndOfStream:
                data = None
        out = pump.flush() if data == b"" else pump.receive(data)
        if out:
            await stream.send(out)
    return True


__all__ = ["AsyncLoopSession", "run_session_async"]
