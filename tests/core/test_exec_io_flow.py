"""The exec flow with ``input``, ``user`` and ``separate``: every effect answered for real.

``ExecRun`` runs the ECS ``--command`` string as ECS does (split shell-style, no shell) on
this machine, with or without a PTY-like CRLF translation; ``Token``, ``Now`` and ``Random``
are answered plainly. So the flow, the wrapper and the parser are tested together.
"""

from __future__ import annotations

import itertools
import shlex
import subprocess
from collections.abc import Generator
from typing import Any

import pytest

from ecs_sandbox_core._effects import ExecRun, Log, Now, Random, Token, TransportResult
from ecs_sandbox_core._errors import EcsExecError, ExecOutputTooLargeError, NoSuchUserError
from ecs_sandbox_core._exec_flow import ExecResult, exec_flow

_counter = itertools.count()


def drive(flow: Generator[Any, Any, ExecResult], *, pty: bool = False) -> ExecResult:
    """Answer every effect of ``flow`` for real; return its result."""
    value: Any = None
    runs: list[ExecRun] = []
    try:
        while True:
            effect = flow.send(value)
            if isinstance(effect, Token):
                value = f"{next(_counter):032x}"[: effect.nbytes * 2]
            elif isinstance(effect, Now):
                value = 0.0
            elif isinstance(effect, Random):
                value = 0.5
            elif isinstance(effect, Log):
                value = None
            elif isinstance(effect, ExecRun):
                runs.append(effect)
                proc = subprocess.run(
                    shlex.split(effect.command),
                    capture_output=True,
                    check=False,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
                out = proc.stdout.replace(b"\n", b"\r\n") if pty else proc.stdout
                value = TransportResult(stdout=out, stderr=proc.stderr, pty=pty)
            else:
                raise AssertionError(f"unexpected effect {effect!r}")
    except StopIteration as stop:
        assert len(runs) == 1  # one round trip, never repeated
        result: ExecResult = stop.value
        return result


def flow(command: str | list[str], **kwargs: Any) -> Generator[Any, Any, ExecResult]:
    return exec_flow(
        task_arn="arn:task",
        container="main",
        command=command,
        timeout_s=kwargs.pop("timeout_s", 30.0),
        connect_timeout_s=5.0,
        **kwargs,
    )


@pytest.mark.parametrize("pty", [False, True])
def test_separate_streams_and_input_through_the_flow(pty: bool) -> None:
    data = b"line\r\nno newline \x00\xff"
    result = drive(flow("cat; echo oops >&2; exit 9", stdin=data, separate=True), pty=pty)
    assert (result.exit_code, result.stdout, result.stderr) == (9, data, b"oops\n")
    assert result.output == data + b"oops\n" and result.separated


def test_merged_results_keep_their_meaning() -> None:
    result = drive(flow("echo out; echo err >&2"))
    assert result == ExecResult(0, b"out\nerr\n")
    assert (result.stdout, result.stderr, result.separated) == (b"out\nerr\n", b"", False)


def test_an_unknown_user_is_a_typed_error_naming_it() -> None:
    with pytest.raises(NoSuchUserError) as caught:
        drive(flow(["true"], user="no-such-user-y", separate=True))
    assert caught.value.user == "no-such-user-y"
    assert "unable to find user no-such-user-y" in str(caught.value)


def test_separate_output_past_the_limit_is_a_typed_error() -> None:
    command = "head -c 5000 /dev/zero; head -c 5000 /dev/zero >&2"
    with pytest.raises(ExecOutputTooLargeError):
        drive(flow(command, separate=True, max_output_bytes=9999))
    result = drive(flow(command, separate=True, max_output_bytes=10_000))
    assert len(result.stdout) == len(result.stderr) == 5000


def test_a_stream_past_the_limit_is_a_typed_error_too() -> None:
    with pytest.raises(ExecOutputTooLargeError):
        drive(flow("head -c 100000 /dev/zero", separate=True, max_output_bytes=1000))


def test_a_failed_setup_is_an_exec_error_with_its_reason() -> None:
    with pytest.raises(EcsExecError, match="writable temporary directory"):
        drive(_with_tmpdir("/nonexistent-dir"))


def _with_tmpdir(path: str) -> Generator[Any, Any, ExecResult]:
    # mktemp honours TMPDIR; the wrapper's login shell sees the environment of ``drive``'s
    # subprocess, so the variable goes in front of the command string.
    inner = flow(["true"], separate=True)
    value: Any = None
    while True:
        try:
            effect = inner.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if isinstance(effect, ExecRun):
            effect = ExecRun(
                task_arn=effect.task_arn,
                container=effect.container,
                command=f"env TMPDIR={path} {effect.command}",
                timeout_s=effect.timeout_s,
                max_output_bytes=effect.max_output_bytes,
            )
        value = yield effect
