"""Running wrapped commands the ways the container does: a plain shell, or under a PTY.

``run_in_pty`` plays the SSM agent: the wrapper is a session leader whose controlling
terminal is a fresh PTY, and the session ends when every holder of the PTY has let go (the
read side then gets EIO), exactly what decides when an ECS Exec session closes.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

# Each shell a container may have as /bin/sh: dash (Debian, Ubuntu), bash (RHEL, Amazon
# Linux), busybox ash (Alpine, distroless-busybox). busybox is skipped where it is missing.
SHELLS = {"dash": ["/bin/sh"], "bash": ["bash"]}
if shutil.which("busybox"):
    SHELLS["busybox"] = ["busybox", "sh"]

GUARD_S = 120.0
"""How long a run may take before the test fails: a guard against hanging, not a timing."""


def shell_argv(shell: str, script: str) -> list[str]:
    return [*SHELLS[shell], "-c", script]


def run_shell(script: str, shell: str = "dash") -> bytes:
    """Run ``script`` as the container's sh would; return its stdout, check stderr is empty."""
    proc = subprocess.run(
        shell_argv(shell, script),
        check=False,
        capture_output=True,
        timeout=GUARD_S,
        stdin=subprocess.DEVNULL,
    )
    # The script merges the command's stderr into its stdout: the error channel stays clean.
    assert proc.stderr == b"", proc.stderr
    return proc.stdout


def _controlling_terminal() -> None:  # pragma: no cover - runs in the child
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(argv: Sequence[str], *, cwd: Path | None = None) -> bytes:
    """Run ``argv`` as ECS Exec does and return everything the PTY delivered.

    Returns only once every process holding the terminal has closed it.
    """
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            start_new_session=True,
            # What the SSM agent does for its command; core tests start no threads.
            preexec_fn=_controlling_terminal,  # noqa: PLW1509
        )
    finally:
        os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], GUARD_S)
            if not ready:
                raise AssertionError(f"the session never ended; so far: {bytes(out)[-300:]!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: nothing holds the terminal any more
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.wait(timeout=GUARD_S)
    return bytes(out)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """Whether ``pid`` ends (waits for it: closing its files comes a moment before its end)."""
    deadline = time.monotonic() + GUARD_S
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def processes_with_argv(argv: Sequence[str]) -> list[int]:
    """Pids of live processes whose whole command line is ``argv``."""
    wanted = b"\0".join(arg.encode() for arg in argv) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() == wanted and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
