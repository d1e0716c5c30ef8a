"""Running a :class:`~ecs_sandbox_drivers._transport.PreparedRun` as a child process.

Each run gets its own session (and so its own process group) so that a timeout or a
cancellation kills the transport and everything it started (the AWS CLI, the plugin, nsenter
and the command's own children) with one ``killpg``; the leader is always reaped.

Both pipes are read to the end concurrently, so large outputs cannot deadlock. After the
leader exits the pipes get a short grace to drain; if a process it left behind still holds
them open, the group is killed then too (a PTY session would have hung that process up). A
daemon that left the group and kept the pipe (``setsid cmd &`` without redirection) cannot be
killed this way; the run returns what was read and leaves that reader behind.

Memory is bounded: stdout keeps at most ``max_stdout_bytes + 1`` bytes (an
:class:`~ecs_sandbox_core._limits.OutputCap`), and the moment it has more the group is
killed, so a caller sees a stdout longer than its limit exactly when the run went past it.
The transport's own stderr keeps as much at most (its start: the error comes first); the rest
is read and dropped, and is no reason to kill the run.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

import anyio
import anyio.abc

from ecs_sandbox_core._limits import OutputCap

from ._transport import PreparedRun

logger = logging.getLogger(__name__)

RunOutcome = tuple[int | None, bytes, bytes, bool]
"""``(returncode or None when timed out, stdout, stderr, timed_out)``."""

# How long the pipes may stay open after the leader exited before the group is killed, and
# how long to wait for them after that kill.
_DRAIN_GRACE_S = 0.5
_AFTER_KILL_S = 1.0
_CHUNK = 1 << 16


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:  # pragma: no cover - pgid reused by another user's process
        logger.warning("could not kill process group %d: permission denied", pgid)


OnChunk = Callable[[bytes], None]


def _drain(
    pipe: IO[bytes],
    sink: bytearray,
    cap: OutputCap,
    *,
    on_chunk: OnChunk | None = None,
    on_over: Callable[[], None] | None = None,
) -> None:
    with pipe:
        while chunk := os.read(pipe.fileno(), _CHUNK):
            kept = cap.take(chunk)
            sink += kept
            if on_chunk is not None and kept:
                on_chunk(kept)
            if on_over is not None and cap.exceeded:
                on_over()
                return  # closing the pipe: whatever still writes to it gets EPIPE


def run_sync(
    prepared: PreparedRun,
    timeout_s: float | None,
    on_stdout: OnChunk | None = None,
    *,
    max_stdout_bytes: int | None = None,
) -> RunOutcome:
    """Run ``prepared`` to completion or until ``timeout_s`` (None: no limit); return the outcome.

    ``on_stdout`` is called with each stdout chunk as it arrives (on a reader thread).
    Past ``max_stdout_bytes`` the group is killed and stdout ends one byte past the limit;
    stderr keeps as many bytes at most (``None``: both are kept whole).

    On timeout the whole process group is killed and reaped, ``returncode`` is ``None`` and
    ``timed_out`` is True; what was read until then is returned.
    """
    proc = subprocess.Popen(
        prepared.argv,
        env=prepared.env,
        stdin=_stdin(prepared),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    assert proc.stdout is not None and proc.stderr is not None
    pid = proc.pid
    readers = [
        threading.Thread(
            target=_drain,
            args=(proc.stdout, out, OutputCap(max_stdout_bytes)),
            kwargs={"on_chunk": on_stdout, "on_over": lambda: _kill_group(pid)},
            daemon=True,
        ),
        threading.Thread(
            target=_drain, args=(proc.stderr, err, OutputCap(max_stdout_bytes)), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        if not _wait_exit(proc, timeout_s):
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        if not _join(readers, _DRAIN_GRACE_S):
            _kill_group(proc.pid)
            if not _join(readers, _AFTER_KILL_S):
                logger.warning("pid %d left a process holding its output open", proc.pid)
    except BaseException:
        # KeyboardInterrupt and the like: never leave the group running.
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # held open until the process ended (see PreparedRun)
    return (None if timed_out else proc.returncode), bytes(out), bytes(err), timed_out


def _stdin(prepared: PreparedRun) -> int:
    # A pipe nobody writes to is a stdin that never reaches EOF while the run lasts.
    return subprocess.PIPE if prepared.hold_stdin else subprocess.DEVNULL


def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float | None) -> bool:
    """Reap ``proc`` if it exits within ``timeout_s``; False when it is still running.

    ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms, which adds milliseconds
    to every short exec; a pidfd (Linux 5.3+) wakes up the moment the process exits.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline: float | None = None
        if timeout_s is not None and not math.isinf(timeout_s):
            deadline = time.monotonic() + timeout_s
        # poll() takes at most 2**31 - 1 ms (24 days); longer limits wait in slices.
        while not poller.poll(_poll_slice_ms(deadline)):
            if deadline is not None and time.monotonic() >= deadline:
                return False
    finally:
        os.close(pidfd)
    proc.wait()
    return True


_POLL_SLICE_MS = 3_600_000


def _poll_slice_ms(deadline: float | None) -> int:
    if deadline is None:
        return _POLL_SLICE_MS
    return min(_POLL_SLICE_MS, max(0, math.ceil((deadline - time.monotonic()) * 1000)))


def _join(threads: list[threading.Thread], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


async def run_async(
    prepared: PreparedRun,
    timeout_s: float | None,
    on_stdout: OnChunk | None = None,
    *,
    max_stdout_bytes: int | None = None,
) -> RunOutcome:
    """Like :func:`run_sync`, under anyio (asyncio or trio).

    A cancellation from outside kills and reaps the process group (shielded), then propagates.
    """
    process = await anyio.open_process(
        prepared.argv,
        env=prepared.env,
        stdin=_stdin(prepared),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            assert process.stdout is not None and process.stderr is not None
            out_done, err_done = anyio.Event(), anyio.Event()
            pid = process.pid
            tg.start_soon(
                functools.partial(
                    _drain_async,
                    process.stdout,
                    out,
                    out_done,
                    OutputCap(max_stdout_bytes),
                    on_chunk=on_stdout,
                    on_over=lambda: _kill_group(pid),
                )
            )
            tg.start_soon(_drain_async, process.stderr, err, err_done, OutputCap(max_stdout_bytes))
            with anyio.move_on_after(math.inf if timeout_s is None else timeout_s) as scope:
                await process.wait()
            if scope.cancelled_caught:
                timed_out = True
                _kill_group(process.pid)
                with anyio.CancelScope(shield=True):
                    await process.wait()
            if not await _wait_events((out_done, err_done), _DRAIN_GRACE_S):
                _kill_group(process.pid)
                if not await _wait_events((out_done, err_done), _AFTER_KILL_S):
                    logger.warning("pid %d left a process holding its output open", process.pid)
                    tg.cancel_scope.cancel()
    except BaseException:
        with anyio.CancelScope(shield=True):
            _kill_group(process.pid)
            await process.wait()
            await process.aclose()
        raise
    with anyio.CancelScope(shield=True):
        await process.aclose()
    return (None if timed_out else process.returncode), bytes(out), bytes(err), timed_out


async def _drain_async(
    stream: anyio.abc.ByteReceiveStream,
    sink: bytearray,
    done: anyio.Event,
    cap: OutputCap,
    *,
    on_chunk: OnChunk | None = None,
    on_over: Callable[[], None] | None = None,
) -> None:
    try:
        async for chunk in stream:
            kept = cap.take(chunk)
            sink += kept
            if on_chunk is not None and kept:
                on_chunk(kept)
            if on_over is not None and cap.exceeded:
                on_over()
                break
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    finally:
        done.set()


async def _wait_events(events: tuple[anyio.Event, ...], timeout_s: float) -> bool:
    with anyio.move_on_after(timeout_s):
        for event in events:
            await event.wait()
        return True
    return False


__all__ = ["RunOutcome", "run_async", "run_sync"]
