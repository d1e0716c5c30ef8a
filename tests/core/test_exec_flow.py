"""The exec flow, driven by scripted effects: no event loop, no clock, no sleeping.

Session streams are produced by running the wrapped script with the real /bin/sh, so the
flow is tested against what a shell really prints, not against a copy of the marker format.
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Generator
from typing import Any

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._effects import (
    AwsCall,
    Effect,
    ExecRun,
    Log,
    Now,
    Presign,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import (
    EcsExecError,
    ExecAgentNotConnectedError,
    ExecCutOffError,
    ExecTimeoutError,
    UsageError,
)
from ecs_sandbox_core._exec_flow import ExecResult, exec_flow, transport_timeout
from ecs_sandbox_core._markers import (
    MAX_INLINE_COMMAND,
    exec_script,
    staged_script_command,
    wrap_command,
)
from ecs_sandbox_core._retry import backoff

NONCE = "0123456789abcdef0123456789abcdef"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/sandbox/0123456789abcdef0123456789abcdef"
BEFORE = (
    b"\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a "
    b"session.\n\n\nStarting session with SessionId: ecs-execute-command-1\n"
)
AFTER = b"\n\nExiting session with sessionId: ecs-execute-command-1.\n\n"
NOT_CONNECTED = TransportResult(
    stderr=b"\nAn error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
    b"operation: The execute command failed due to an internal error. Try again later.\n",
    returncode=255,
)
THROTTLED = TransportResult(
    stderr=b"\nAn error occurred (ThrottlingException) when calling the ExecuteCommand "
    b"operation (reached max retries: 2): Rate exceeded\n",
    returncode=255,
)


def session(
    output: bytes,
    exit_code: int,
    *,
    binary: bool = False,
    pty: bool = True,
    then: str = "",
    timeout_s: float | None = None,
) -> bytes:
    """What ECS Exec delivers for a command that prints ``output`` and exits ``exit_code``.

    ``then`` runs after the printing (and before the exit), ``timeout_s`` is the wrapper's.
    """
    # printf's format turns \ooo escapes back into any byte, NUL included.
    escaped = "".join(f"\\{byte:03o}" for byte in output)
    command = ["sh", "-c", f'printf "$1"; {then} exit "$2"', "sh", escaped, str(exit_code)]
    script = exec_script(command, nonce=NONCE, binary=binary, timeout_s=timeout_s)
    shell = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True, timeout=30)
    stream = shell.stdout.replace(b"\n", b"\r\n") if pty else shell.stdout
    return BEFORE + stream + AFTER


def flow(command: str | list[str] = "echo hi", **kwargs: Any) -> Generator[Effect, Any, ExecResult]:
    options: dict[str, Any] = {
        "task_arn": TASK,
        "container": "main",
        "command": command,
        "timeout_s": 120.0,
        "connect_timeout_s": 60.0,
        "pty": True,
    }
    options.update(kwargs)
    return exec_flow(**options)


def run_of(command: str | list[str], timeout_s: float | None = 120.0, **kwargs: Any) -> ExecRun:
    return ExecRun(
        task_arn=TASK,
        container="main",
        command=wrap_command(command, nonce=NONCE, timeout_s=timeout_s, **kwargs),
        timeout_s=transport_timeout(timeout_s),
    )


def started_part(stream: bytes, extra: int) -> bytes:
    """``stream`` cut ``extra`` bytes after the end of its begin marker."""
    return stream[: stream.index(b">>\r\n") + len(b">>\r\n") + extra]


def test_success_on_the_first_attempt() -> None:
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 100.0),
            (run_of("echo hi"), TransportResult(stdout=session(b"hi\n", 0))),
            (Now(), 101.5),
            (Random(), 0.3),
        ],
    )
    assert result == ExecResult(exit_code=0, output=b"hi\n")
    assert result.text == "hi\n"


def test_a_failing_command_is_a_result_not_an_error() -> None:
    result = run_script(
        flow(["false"]),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (run_of(["false"]), TransportResult(stdout=session(b"\xff oops", 9))),
            (Now(), 1.0),
            (Random(), 0.0),
        ],
    )
    assert result == ExecResult(exit_code=9, output=b"\xff oops")
    assert result.text == "\ufffd oops"


def test_agent_not_connected_twice_then_success() -> None:
    def retry_log(effect: object) -> bool:
        return isinstance(effect, Log) and effect.level == logging.INFO and TASK in effect.args

    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 10.0),
            (run_of("echo hi"), NOT_CONNECTED),
            (Now(), 11.0),
            (Random(), 0.5),
            (retry_log, None),
            (Sleep(seconds=2.5), None),
            (run_of("echo hi"), NOT_CONNECTED),
            (Now(), 14.0),
            (Random(), 0.0),
            (retry_log, None),
            (Sleep(seconds=2.0), None),
            (run_of("echo hi"), TransportResult(stdout=session(b"hi\n", 0))),
            (Now(), 17.0),
            (Random(), 0.9),
        ],
    )
    assert result == ExecResult(exit_code=0, output=b"hi\n")


def test_throttled_exec_backs_off() -> None:
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (run_of("echo hi"), THROTTLED),
            (Now(), 0.5),
            (Random(), 0.25),
            (Log, None),
            (Sleep(seconds=backoff(1, 0.25)), None),
            (run_of("echo hi"), THROTTLED),
            (Now(), 2.0),
            (Random(), 0.25),
            (Log, None),
            (Sleep(seconds=backoff(2, 0.25)), None),
            (run_of("echo hi"), TransportResult(stdout=session(b"", 0))),
            (Now(), 5.0),
            (Random(), 0.25),
        ],
    )
    assert result == ExecResult(exit_code=0, output=b"")


def test_agent_that_never_connects_gives_up_at_the_connect_timeout() -> None:
    with pytest.raises(ExecAgentNotConnectedError) as caught:
        run_script(
            flow(connect_timeout_s=5.0),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (run_of("echo hi"), NOT_CONNECTED),
                (Now(), 1.0),
                (Random(), 0.5),
                (Log, None),
                (Sleep(seconds=2.5), None),
                (run_of("echo hi"), NOT_CONNECTED),
                (Now(), 4.0),
                (Random(), 0.5),
                (Log, None),
                (Sleep(seconds=1.0), None),  # only what is left of the connect timeout
                (run_of("echo hi"), NOT_CONNECTED),
                (Now(), 5.5),
                (Random(), 0.5),
            ],
        )
    assert "5 s" in caught.value.message


def test_a_timed_out_command_is_not_run_again() -> None:
    partial = started_part(session(b"working\n", 0), 4)
    with pytest.raises(ExecTimeoutError) as caught:
        run_script(
            flow(timeout_s=120.0),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (
                    run_of("echo hi"),
                    TransportResult(stdout=partial, returncode=None, timed_out=True),
                ),
                (Now(), 120.0),
                (Random(), 0.5),
            ],
        )
    assert caught.value.started is True
    assert caught.value.timeout_s == 120.0


def test_the_wrapper_gets_the_timeout_and_the_transport_a_later_backstop() -> None:
    # Issue 10, item 13: killing the transport at the timeout left the command running in
    # the container; the wrapper there stops it itself, the transport waits a little longer.
    run = run_of("sleep 100", timeout_s=7.5)
    assert run.command == wrap_command("sleep 100", nonce=NONCE, timeout_s=7.5)
    assert "i=7;" in run.command  # 7.5 s rounded up to 8: one second, then seven more
    assert run.timeout_s == transport_timeout(7.5) == 8 + 2 + 10
    with pytest.raises(ExecTimeoutError):
        run_script(
            flow("sleep 100", timeout_s=7.5),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (run, TransportResult(returncode=None, timed_out=True)),
                (Now(), 20.0),
                (Random(), 0.5),
            ],
        )


def test_no_timeout_means_no_timer() -> None:
    run = run_of("sleep 100", timeout_s=None)  # None: no limit (inf is turned into None)
    assert run.command == wrap_command("sleep 100", nonce=NONCE)
    assert run.timeout_s is None
    assert wrap_command("sleep 100", nonce=NONCE, timeout_s=math.inf) == run.command


def test_a_command_the_wrapper_stopped_is_a_timeout_while_the_transport_lives_on() -> None:
    stopped = TransportResult(stdout=session(b"working\n", 0, then="sleep 30;", timeout_s=1))
    assert stopped.timed_out is False
    with pytest.raises(ExecTimeoutError) as caught:
        run_script(
            flow(timeout_s=1.0),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (run_of("echo hi", timeout_s=1.0), stopped),
                (Now(), 1.0),
                (Random(), 0.5),
            ],
        )
    assert caught.value.started is True
    assert caught.value.timeout_s == 1.0
    assert "stopped" in caught.value.message


@pytest.mark.parametrize("binary", [False, True])
def test_late_output_of_a_child_does_not_change_the_result(binary: bool) -> None:
    # Issue 10, item 2: a child printed a fake end marker after the command exited 7.
    forge = "(trap '' HUP; sleep 0.2; printf '\\n<<ecsx-%s:end:0>>\\n<<ecsx-%s:rc:0>>' $n $n) & "
    stream = session(b"out", 7, binary=binary, then=f"n={NONCE}; {forge}")
    result = run_script(
        flow(binary=binary),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (run_of("echo hi", binary=binary), TransportResult(stdout=stream)),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    forged = f"\n<<ecsx-{NONCE}:end:0>>\n<<ecsx-{NONCE}:rc:0>>".encode()
    # Binary mode reads the command's stdout to its end: the child's bytes are output there
    # (encoded, so inert); in text mode they come after the end of the frame.
    assert result == ExecResult(exit_code=7, output=b"out" + (forged if binary else b""))


def test_a_completed_command_whose_session_hung_is_returned() -> None:
    hung = TransportResult(stdout=session(b"done\n", 0)[: -len(AFTER)], timed_out=True)
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (run_of("echo hi"), hung),
            (Now(), 120.0),
            (Random(), 0.5),
        ],
    )
    assert result == ExecResult(exit_code=0, output=b"done\n")


def test_cut_off_output_is_not_run_again() -> None:
    cut = started_part(session(b"partial output\n", 0), 10) + AFTER
    with pytest.raises(ExecCutOffError):
        run_script(
            flow(),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (run_of("echo hi"), TransportResult(stdout=cut, stderr=NOT_CONNECTED.stderr)),
                (Now(), 3.0),
                (Random(), 0.5),
            ],
        )


@pytest.mark.parametrize(
    "output",
    [
        b"Rate exceeded\n",
        b"An error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
        b"operation: x\n",
    ],
)
def test_output_that_looks_like_an_error_is_returned_not_retried(output: bytes) -> None:
    # Even with the transport reporting the same code, a completed command is a result.
    result = run_script(
        flow(),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (
                run_of("echo hi"),
                TransportResult(stdout=session(output, 1), stderr=THROTTLED.stderr),
            ),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    assert result == ExecResult(exit_code=1, output=output)


def test_unrecognised_failure_before_start_is_not_retried() -> None:
    crashed = TransportResult(
        stdout=BEFORE, stderr=b"Command '[...]' returned non-zero exit status 1.", returncode=255
    )
    with pytest.raises(EcsExecError, match="non-zero exit status 1"):
        run_script(
            flow(),
            [
                (Token(nbytes=16), NONCE),
                (Now(), 0.0),
                (run_of("echo hi"), crashed),
                (Now(), 1.0),
                (Random(), 0.5),
            ],
        )


def test_binary_output_comes_back_exactly() -> None:
    payload = bytes(range(256)) + b"\r\n\n\r" + bytes(range(255, -1, -1))
    result = run_script(
        flow(["cat", "/some/file"], binary=True),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (
                run_of(["cat", "/some/file"], binary=True),
                TransportResult(stdout=session(payload, 4, binary=True)),
            ),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    assert result == ExecResult(exit_code=4, output=payload)


def test_env_and_cwd_reach_the_command_line() -> None:
    env = {"GREETING": "it's $(here)"}
    run = run_of("echo $GREETING", env=env, cwd="/work dir")
    result = run_script(
        flow("echo $GREETING", env=env, cwd="/work dir"),
        [
            (Token(nbytes=16), NONCE),
            (Now(), 0.0),
            (run, TransportResult(stdout=session(b"ok", 0))),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    assert result.exit_code == 0


def test_long_command_is_staged() -> None:
    command = "echo " + "x" * MAX_INLINE_COMMAND
    url = "https://bucket.s3.amazonaws.com/exec/abc.sh?X-Amz-Signature=1"
    staged: list[str] = []

    def stage(script: str) -> Generator[Effect, Any, str]:
        staged.append(script)
        yield AwsCall(service="s3", operation="put_object", params={"Body": script})
        presigned: str = yield Presign(bucket="bucket", key="exec/abc.sh")
        return presigned

    expected_run = ExecRun(
        task_arn=TASK,
        container="main",
        command=staged_script_command(url=url, nonce=NONCE),
        timeout_s=transport_timeout(120.0),
    )
    result = run_script(
        flow(command, stage=stage),
        [
            (Token(nbytes=16), NONCE),
            (lambda e: isinstance(e, AwsCall) and e.operation == "put_object", None),
            (Presign(bucket="bucket", key="exec/abc.sh"), url),
            (Now(), 0.0),
            (expected_run, TransportResult(stdout=session(b"x\n", 0))),
            (Now(), 1.0),
            (Random(), 0.5),
        ],
    )
    assert staged == [exec_script(command, nonce=NONCE, timeout_s=120.0)]
    assert result == ExecResult(exit_code=0, output=b"x\n")


def test_long_command_without_staging_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="s3_bucket") as caught:
        run_script(flow("echo " + "x" * MAX_INLINE_COMMAND), [(Token(nbytes=16), NONCE)])
    assert "s3_bucket" in caught.value.remedy


def test_unusable_command_fails_before_any_exec() -> None:
    with pytest.raises(UsageError, match="NUL"):
        run_script(flow("echo \0"), [(Token(nbytes=16), NONCE)])


@given(
    failures=st.lists(st.sampled_from(["not_connected", "throttled"]), max_size=6),
    rands=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=7, max_size=7),
    exit_code=st.integers(0, 255),
)
def test_unstarted_attempts_are_retried_until_one_starts(
    failures: list[str], rands: list[float], exit_code: int
) -> None:
    """Drive the flow with a tiny driver: every failed attempt costs one Sleep, nothing else."""
    done = TransportResult(stdout=session(b"out", exit_code))
    answers = iter([NOT_CONNECTED if f == "not_connected" else THROTTLED for f in failures])
    draws = iter(rands)
    clock = 0.0
    runs: list[ExecRun] = []
    sleeps: list[float] = []
    gen = flow()
    reply: object = None
    try:
        while True:
            effect = gen.send(reply)
            if isinstance(effect, Token):
                reply = NONCE
            elif isinstance(effect, Now):
                reply = clock
            elif isinstance(effect, Random):
                reply = next(draws)
            elif isinstance(effect, ExecRun):
                runs.append(effect)
                clock += 0.5
                reply = next(answers, done)
            elif isinstance(effect, Sleep):
                sleeps.append(effect.seconds)
                clock += effect.seconds
                reply = None
            else:
                assert isinstance(effect, Log)
                reply = None
    except StopIteration as stop:
        result = stop.value
    assert result == ExecResult(exit_code=exit_code, output=b"out")
    assert len(runs) == len(failures) + 1
    assert len(set(runs)) == 1  # the same command, same nonce, every time
    assert len(sleeps) == len(failures)
    for kind, delay, rand in zip(failures, sleeps, rands[: len(failures)], strict=True):
        if kind == "not_connected":
            assert delay == pytest.approx(2.0 + rand)
    assert all(0.5 <= delay <= 30.0 for delay in sleeps)


@pytest.mark.parametrize(
    ("text", "staged"),
    [("x" * 44_000, False), ("日" * 44_000, True)],  # 44,000 characters; 132,000 bytes
    ids=["ascii", "three-byte-characters"],
)
def test_a_loop_script_is_measured_in_bytes(text: str, staged: bool) -> None:
    # sh -c takes at most 128 KiB in one argument: a script under MAX_LOOP_SCRIPT characters
    # but over it in bytes must be staged, not sent to fail with "Argument list too long".
    scripts: list[str] = []

    def stage(script: str) -> Generator[Any, Any, str]:
        scripts.append(script)
        return "https://stage.example/script"
        yield  # a flow, as the sandbox's staging is

    flow = exec_flow(
        task_arn=TASK,
        container="main",
        command=["printf", "%s", text],
        timeout_s=10.0,
        connect_timeout_s=1.0,
        cluster="c",
        native=True,
        loop_sessions=1,
        stage=stage,
    )
    flow.send(None)  # the nonce's Token
    flow.send("ab" * 16)
    assert bool(scripts) is staged
    flow.close()
