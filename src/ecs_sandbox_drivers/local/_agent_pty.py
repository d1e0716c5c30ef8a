"""The local SSM agent's command: a real PTY in a task's container, and its output chunking.

What the command sees is what amazon-ssm-agent's InteractiveCommands plugin gives it in
container mode: its argv split shell-style, run without a shell as root, with a fresh PTY as
stdin, stdout and stderr *and* as its controlling terminal (so input is echoed, ``\\n`` leaves
as ``\\r\\n`` and stderr is merged), the container's environment plus ``TERM=xterm-256color``
and ``LANG=C.UTF-8`` when unset.

How it gets there: the PTY is allocated from the container's own ``/dev/ptmx`` (reached
through ``/proc/<pid 1>/root``), so inside it is ``/dev/pts/N`` and ``tty`` names it, as in a
real container. ``nsenter`` enters the container's namespaces and forks; its child runs
``setsid --ctty -- <argv>``, which makes a new session, takes the PTY as controlling terminal
and execs the command in the same process. So the command is the session leader of its
terminal, as the agent's ``pty.Start`` makes it, and its pid is nsenter's only child. That pid
(held as a pidfd, safe against reuse) is the *direct child* that a terminated session SIGKILLs;
its background processes are left alone, as on AWS. (Those still in its foreground process
group get the kernel's SIGHUP when their session leader dies, as they would on AWS; detached
ones, such as a tmux server, live on.)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# ioctl requests (asm-generic): unlock the slave; open it from the master (Linux 4.13+).
_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
READ_SIZE = 1024
"""The agent reads its PTY 1024 bytes at a time (``StreamDataPayloadSize``)."""
_CHILD_WAIT_S = 5.0
_MAX_CARRY = 3


AGENT_EXEC_PREFIX = ("setsid", "--ctty", "--")
"""Run inside the container before the command: a new session whose controlling terminal is
the PTY on stdin; ``setsid`` execs the command in the same process."""


def agent_env(container_env: Mapping[str, str]) -> dict[str, str]:
    """The container's environment with the agent's ``TERM`` and default ``LANG``."""
    env = dict(container_env)
    env["TERM"] = "xterm-256color"
    env.setdefault("LANG", "C.UTF-8")
    return env


class PtyChild:
    """One command under a PTY: the master side, nsenter's process and the direct child."""

    def __init__(self, master: int, proc: subprocess.Popen[bytes], command_pid: int | None):
        self.master = master
        self.proc = proc
        self.command_pid = command_pid
        self._pidfd: int | None = None
        if command_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                self._pidfd = os.pidfd_open(command_pid)
        self._master_open = True

    def kill_direct(self) -> None:
        """SIGKILL the command itself (never its process group); nsenter then exits too."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        elif self.proc.poll() is None:
            # nsenter never forked (it failed to enter): nothing inside to spare.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    def set_size(self, cols: int, rows: int) -> None:
        """TIOCSWINSZ, with the agent's uint16 truncation of each dimension."""
        if self._master_open:
            winsize = struct.pack("HHHH", rows & 0xFFFF, cols & 0xFFFF, 0, 0)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, winsize)

    def close_master(self) -> None:
        """Close the PTY master (the slave side gets a hangup, as when the agent stops)."""
        if self._master_open:
            self._master_open = False
            os.close(self.master)

    def reap(self, timeout_s: float | None = None) -> bool:
        """Wait for nsenter (it exits once the command has); True when it is reaped."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return True

    def close(self) -> None:
        """Kill what is left, close every descriptor and reap nsenter (gateway shutdown)."""
        self.kill_direct()
        self.close_master()
        if not self.reap(timeout_s=2.0):
            self.proc.kill()
            self.reap(timeout_s=2.0)


def open_pty(dev_root: str | None = None) -> tuple[int, int]:
    """A new PTY (master, slave), from the devpts of ``dev_root`` (a container's ``/dev``).

    Falls back to the host's PTYs when that ``/dev`` has no usable ``ptmx``.
    """
    if dev_root is not None:
        try:
            master = os.open(f"{dev_root}/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            logger.debug("no ptmx under %s (%s): using a host PTY", dev_root, exc)
        else:
            try:
                fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
                slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError:
                os.close(master)
                raise
            return master, slave
    return os.openpty()


def spawn(argv: Sequence[str], env: Mapping[str, str], *, dev_root: str | None = None) -> PtyChild:
    """Start ``argv`` on a new PTY; returns once the command's own pid is known.

    Blocking (fork, exec and nsenter's namespace set-up take a few milliseconds): the gateway
    calls it from a worker thread, and the PTY counts as "up" only when it returns.
    """
    master, slave = open_pty(dev_root)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            # nsenter stays out of our terminal's signals; the command gets its own session.
            start_new_session=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    return PtyChild(master, proc, _forked_child(proc))


def _forked_child(proc: subprocess.Popen[bytes]) -> int | None:
    """The pid nsenter forked (the command), or None if nsenter ended without one."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + _CHILD_WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            listed = children.read_text().split()
            if listed:
                return int(listed[0])
        if proc.poll() is not None:
            return None
        time.sleep(0.001)
    logger.warning("nsenter pid %d forked no command within %.0f s", proc.pid, _CHILD_WAIT_S)
    return None


# --- output chunking ---------------------------------------------------------------------------

_CONT = range(0x80, 0xC0)


def _unit(data: bytes, i: int) -> tuple[int, bool]:
    """Size of the decode unit at ``i`` and whether it is a valid rune (Go's DecodeRune)."""
    first = data[i]
    if first < 0x80:
        return 1, True
    if 0xC2 <= first <= 0xDF:
        need, low, high = 1, 0x80, 0xBF
    elif 0xE0 <= first <= 0xEF:
        need = 2
        low, high = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F)}.get(first, (0x80, 0xBF))
    elif 0xF0 <= first <= 0xF4:
        need = 3
        low, high = {0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(first, (0x80, 0xBF))
    else:
        return 1, False
    if i + need >= len(data) or not low <= data[i + 1] <= high:
        return 1, False
    if any(data[j] not in _CONT for j in range(i + 2, i + need + 1)):
        return 1, False
    return need + 1, True


_REPLACEMENT = b"\xef\xbf\xbd"


def split_output(pending: bytes, *, replacement_quirk: bool = True) -> tuple[bytes, bytes]:
    """What the agent sends for ``pending`` (carried bytes + one PTY read), and the new carry.

    The agent walks the bytes rune by rune: valid runes and invalid bytes are sent as they
    are, but a rune that decodes to U+FFFD in the last 3 bytes is kept back for the next read
    (an incomplete sequence decodes that way); at EOF the carry is dropped.
    ``replacement_quirk`` reproduces a defect of the Go agent: a *valid* U+FFFD is taken for a
    decoding error, so outside the tail only its first byte (0xEF) is sent.

    Every byte before the last non-continuation byte that leaves at least 4 bytes behind it
    starts or continues a unit that cannot reach the tail, so that prefix is handled in bulk;
    only the rest is walked.
    """
    n = len(pending)
    start = 0
    for k in range(n - 4, -1, -1):
        if pending[k] not in _CONT:
            start = k
            break
    head = pending[:start]
    out = bytearray(head.replace(_REPLACEMENT, b"\xef") if replacement_quirk else head)
    i = start
    while i < n:
        size, valid = _unit(pending, i)
        error = not valid or (replacement_quirk and pending[i : i + size] == _REPLACEMENT)
        if error:
            if n - i <= _MAX_CARRY:
                break
            out.append(pending[i])
        else:
            out += pending[i : i + size]
        i += size
    return bytes(out), pending[i:]


__all__ = [
    "AGENT_EXEC_PREFIX",
    "READ_SIZE",
    "PtyChild",
    "agent_env",
    "open_pty",
    "spawn",
    "split_output",
]
