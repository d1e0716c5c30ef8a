"""The prompt hook's text, the status line parser and the step footer (pure parts).

The hook and the wait loop run against real shells in ``test_terminal_real.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._pane import Increment
from ecs_sandbox_core._session import StepResult
from ecs_sandbox_core._terminal import (
    StatusParseError,
    TerminalStatus,
    env_file_text,
    hook_channel,
    parse_status,
    prompt_command,
    wait_functions,
)

pids = st.integers(1, 4_194_304).map(str)
codes = st.integers(0, 255)
words = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=20)
paths = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"), max_size=40)


def q_escape(text: str) -> str:
    """What tmux's ``#{q:...}`` does to a command name (a backslash before specials)."""
    return re.sub(r"([^A-Za-z0-9_./-])", r"\\\1", text)


def status_line(
    tpgid: str, pgrp: str, pane_pid: str, hook: str, state: str, code: int | None,
    alternate: bool, command: str, path: str,
) -> str:  # fmt: skip
    exit_field = "-" if code is None else f"r{code}"
    return (
        f"{tpgid} {pgrp} S {pane_pid} {hook} {state} {exit_field} {int(alternate)}"
        f" {q_escape(command)} {path}"
    )


@given(
    pids, pids, pids, st.one_of(st.just("0"), pids), st.sampled_from(["-", "p", "P", "c"]),
    st.one_of(st.none(), codes), st.booleans(), words, paths,
)  # fmt: skip
def test_status_lines_parse_back(
    tpgid: str, pgrp: str, pane_pid: str, hook: str, state: str, code: int | None,
    alternate: bool, command: str, path: str,
) -> None:  # fmt: skip
    line = status_line(tpgid, pgrp, pane_pid, hook, state, code, alternate, command, path)
    status = parse_status(line)
    assert status == TerminalStatus(
        exit_code=code,
        running=tpgid not in (pgrp, hook),
        foreground=command,
        continuation=state == "c",
        alternate_screen=alternate,
        cwd=path,
        hooked=hook != "0",
    )
    footer = status.footer()
    assert "\n" not in footer
    assert footer.startswith("[terminal: ") and footer.endswith("]")
    assert ("running " in footer) == status.running


def test_an_unknown_foreground_counts_as_running() -> None:
    # No /proc entry for the pane's process: the shell cannot be shown to be in front.
    status = parse_status("- - - 12 0 - - 0 bash /root")
    assert status.running
    assert status.exit_code is None and not status.hooked


@given(st.text(max_size=60))
def test_garbage_is_refused_or_parsed_never_crashes(line: str) -> None:
    with contextlib.suppress(StatusParseError):
        parse_status(line)


@pytest.mark.parametrize(
    "line",
    ["", "1 2 S 3 4 p r0 0 bash", "1 2 S x 4 p r0 0 bash /", "1 2 S 3 4 p 0 0 bash /",
     "1 2 S 3 4 p r0 2 bash /", "1 2 S 3 4 p rx 0 bash /"],
)  # fmt: skip
def test_malformed_status_lines(line: str) -> None:
    with pytest.raises(StatusParseError):
        parse_status(line)


def test_the_footer_follows_the_output_on_a_line_of_its_own() -> None:
    status = parse_status("7 7 S 7 7 P r2 0 bash /work dir")
    step = StepResult(False, False, Increment("new", "$ make\nfailed"), status)
    assert step.render() == "New Terminal Output:\n$ make\nfailed"
    assert step.render(footer=True) == (
        "New Terminal Output:\n$ make\nfailed\n[terminal: last exit 2; idle in bash; cwd /work dir]"
    )
    assert (
        StepResult(False, False, Increment("new", "x\n"), None).render(footer=True).endswith("x\n")
    )


@given(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
def test_hook_texts_are_valid_shell_and_name_only_their_channel(name: str) -> None:
    for text in (env_file_text(name), prompt_command(name), wait_functions(f"={name}:", name)):
        channels = set(re.findall(r"wait(?: -S)? '?([A-Za-z0-9_-]+)", text))
        assert channels == {hook_channel(name)}
        # Parses (sh -n) without running anything.
        proc = subprocess.run(["/bin/sh", "-n", "-c", text], capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_the_hook_prints_nothing_and_keeps_the_exit_code() -> None:
    """bash with the hook but no tmux: the prompt command must not leak output or $?."""
    proc = subprocess.run(
        ["bash", "-c", 'PATH=/nonexistent; (exit 7); eval "$PC"; echo rc=$?'],
        env={"PC": prompt_command("s")},
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.PIPE,  # open and empty: no input pending, so the hook reports
    )
    assert (proc.stdout, proc.stderr) == ("rc=7\n", "")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("shell", ["bash", "dash", "busybox"])
def test_a_prompt_costs_one_process_its_tmux_client(shell: str, tmp_path: Path) -> None:
    """The hook runs at every prompt: bash restores $? without a subshell, and sh's
    ``$(...)`` becomes the tmux client instead of forking one."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tmux").write_text('#!/bin/sh\necho "$*" >> "$CALLS"\n')
    (bin_dir / "tmux").chmod(0o755)
    (tmp_path / "env.sh").write_text(env_file_text("s"))
    if shell == "bash":  # PROMPT_COMMAND as bash runs it before each prompt, reading a
        # terminal with no input pending (else the hook stays quiet)
        argv, lines = ["bash", "--norc", "-c", 'eval "$PC"; eval "$PC"; eval "$PC"'], None
    else:  # an interactive sh reading two lines: a prompt before each and at the end
        argv = ["busybox", "sh", "-i"] if shell == "busybox" else ["dash", "-i"]
        lines = "true\ntrue\n"
    trace = tmp_path / "trace"
    master, terminal = os.openpty()
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fork,vfork,clone,clone3", "-o", str(trace), *argv],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "PC": prompt_command("s"),
            "ENV": str(tmp_path / "env.sh"),
            "CALLS": str(tmp_path / "calls"),
        },
        input=lines,
        stdin=terminal if lines is None else None,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    os.close(master)
    os.close(terminal)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip("ptrace is not permitted here")
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) >= 3 and all("wait -S" in call for call in calls)
    created = [line for line in trace.read_text().splitlines() if "= " in line and "<" not in line]
    assert len(created) == len(calls), created
