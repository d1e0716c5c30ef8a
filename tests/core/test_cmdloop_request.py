"""The command loop's request lines: decoded by a builtin, exactly, with no program of their own."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._cmdloop import (
    frame_complete,
    loop_command,
    ready_marker,
    request_line,
)
from ecs_sandbox_core._markers import ExecStatus, exec_script, parse_exec_output

LOOP = "ef" * 16
SCRIPT_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


class TracedLoop:
    """The loop under a real PTY, optionally under ``strace -ff`` (one file per process)."""

    def __init__(self, trace: Path | None = None) -> None:
        argv = shlex.split(loop_command(LOOP))
        if trace is not None:
            argv = ["strace", "-ff", "-qq", "-e", "trace=execve", "-o", str(trace), *argv]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvp(argv[0], argv)
        self.buffer = b""
        self.read_until(lambda b: ready_marker(LOOP) in b or b"ptrace" in b)

    def read_until(self, done: object, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not done(self.buffer):  # type: ignore[operator]
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {self.buffer!r}"
            if select.select([self.fd], [], [], left)[0]:
                self.buffer += os.read(self.fd, 65536)
        return self.buffer

    def run(self, script: str, nonce: str) -> bytes:
        self.buffer = b""
        os.write(self.fd, request_line(script))
        return self.read_until(lambda b: frame_complete(b, nonce=nonce))

    def close(self) -> None:
        os.close(self.fd)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


@pytest.fixture(scope="module")
def loop() -> Iterator[TracedLoop]:
    running = TracedLoop()
    yield running
    running.close()


@settings(max_examples=60, deadline=None)
@given(text=SCRIPT_TEXT)
def test_a_request_line_is_printable_ascii_that_printf_turns_back_into_the_script(
    text: str,
) -> None:
    line = request_line(text)
    assert line.startswith(b"x ") and line.endswith(b"\n")
    # Nothing the terminal acts on (newline, CR, ^C, ^S, ^V, DEL) and nothing non-ASCII.
    assert all(0x20 <= byte <= 0x7E for byte in line[:-1])
    decoded = subprocess.run(
        ["sh", "-c", 'printf "${1#x }"', "sh", line[:-1].decode("ascii")],
        capture_output=True,
        check=True,
    ).stdout
    assert decoded == text.encode("utf-8")


@settings(max_examples=25, deadline=None)
@given(text=SCRIPT_TEXT)
def test_any_script_text_reaches_the_loops_shell_exactly(loop: TracedLoop, text: str) -> None:
    # The text is an argument of the command, so it is in the script the loop decodes.
    nonce = "12" * 16
    stream = loop.run(exec_script(["printf", "%s", text], nonce=nonce), nonce)
    outcome = parse_exec_output(stream, nonce=nonce, pty=False)
    assert (outcome.status, outcome.exit_code) == (ExecStatus.COMPLETED, 0)
    # $(...) in the loop drops the script's trailing newlines, never the argument's.
    assert outcome.output == text.encode("utf-8")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid is not installed")
def test_a_trivial_command_runs_only_the_wrapper_setsid_and_itself(tmp_path: Path) -> None:
    """Per request the loop starts the wrapper's ``sh`` and nothing else of its own: no
    ``base64`` decodes the request (the ``printf`` builtin does)."""
    loop = TracedLoop(tmp_path / "trace")
    if b"ptrace" in loop.buffer:
        loop.close()
        pytest.skip("ptrace is not permitted here")
    try:
        before = set(tmp_path.iterdir())
        for i in range(3):
            nonce = f"{i:032x}"
            stream = loop.run(exec_script(["true"], nonce=nonce), nonce)
            assert parse_exec_output(stream, nonce=nonce, pty=False).exit_code == 0
    finally:
        loop.close()
    programs = []
    for path in set(tmp_path.iterdir()) - before:
        for line in path.read_text().splitlines():
            found = re.match(r'execve\("([^"]+)".* = 0$', line)
            if found:
                programs.append(os.path.basename(found.group(1)))
    # Each command: the wrapper's sh, then setsid exec-ing the command (its own session).
    assert sorted(programs) == sorted(["sh", "setsid", "true"] * 3)
