"""The anyio data-channel pump: a :class:`ChannelPump` over an anyio byte stream."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

import anyio
import anyio.abc

from ecs_sandbox_core import ExecSession, SessionResult

from ._ssm_io import CLOSE_GRACE_S, ChannelPump

_CONNECT_TIMEOUT_S = 10.0
_READ = 65536


async def run_session_async(
    effect: ExecSession,
    *,
    headers: list[tuple[str, str]],
    on_output: Callable[[bytes], None] | None = None,
    tls_context: ssl.SSLContext | None = None,
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
    deadline = anyio.current_time() + effect.timeout_s
    try:
        with anyio.fail_after(min(_CONNECT_TIMEOUT_S, effect.timeout_s)):
            stream: anyio.abc.ByteStream
            if target.tls:
                stream = await anyio.connect_tcp(
                    target.host,
                    target.port,
                    ssl_context=tls_context or ssl.create_default_context(),
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(target.host, target.port)
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


__all__ = ["run_session_async"]
