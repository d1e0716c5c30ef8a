"""The command loop's request lines: decoded by a builtin, exactly, with no program of their own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_cmdloop import Loop

from ecs_sandbox_core._cmdloop import request_line
from ecs_sandbox_core._markers import ExecStatus, exec_script, parse_exec_output

SCRIPT_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@settings(max_examples=60, deadline=None)
@given(text=SCRIPT_TEXT)
@example(text="-v x")  # printf options
@example(text="--")
@example(text="%s%%\\c\\\\\\0101\r\n\x7f\x03")
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
@example(text="-v\n\n")
def test_any_script_text_reaches_the_loops_shell_exactly(loop: Loop, text: str) -> None:
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
    loop = Loop(["strace", "-ff", "-qq", "-e", "trace=execve", "-o", str(tmp_path / "trace")])
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
