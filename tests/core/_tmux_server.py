"""A private tmux server for tests: scripts run by /bin/sh against plain ``tmux``.

The server's socket lives in a fresh short directory (``TMUX_TMPDIR``); ``private_server``
kills it and removes the directory afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Server:
    """A private tmux server: scripts run with ``sh -c`` in its environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # No shell history: a shell killed with the server would write it into the removed
        # directory afterwards and leave it behind.
        self.env = {
            "TMUX_TMPDIR": str(root),
            "PATH": os.environ["PATH"],
            "HOME": str(root),
            "HISTFILE": "/dev/null",
            # The session's hook file and recording go here, and with the server.
            "TMPDIR": str(root),
        }

    def sh(
        self, script: str, *, timeout: float = 60, path: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.env if path is None else {**self.env, "PATH": path}
        return subprocess.run(
            ["/bin/sh", "-c", script],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return proc.stdout

    def display(self, session: str, fmt: str) -> str:
        return self.tmux("display", "-p", "-t", f"={session}:", fmt).strip()


@contextmanager
def private_server() -> Iterator[Server]:
    # A short directory: the socket path must fit in a sockaddr_un.
    root = Path(tempfile.mkdtemp(prefix="tmx"))
    srv = Server(root)
    try:
        yield srv
    finally:
        subprocess.run(
            ["tmux", "kill-server"], env=srv.env, capture_output=True, check=False, timeout=30
        )
        shutil.rmtree(root, ignore_errors=True)


def poll(check: Callable[[], T | None], *, what: str, deadline_s: float = 10.0) -> T:
    """Poll a real tmux until ``check`` returns a value, within a bounded deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
