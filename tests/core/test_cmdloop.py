"""The command loop: its sh script under a real PTY, and the pooled round trip by script."""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _script import run_script
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import _cmdloop_wire
from ecs_sandbox_core._cmdloop import (
    LOOP_SCRIPT,
    FrameWatch,
    frame_complete,
    loop_command,
    loop_round_trip,
    ready_marker,
    request_line,
)
from ecs_sandbox_core._effects import (
    AcquireChannel,
    AwsCall,
    AwsError,
    AwsResult,
    ChannelLease,
    ChannelRequest,
    OpenChannel,
    ReleaseChannel,
    SessionResult,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import EcsExecError
from ecs_sandbox_core._markers import ExecStatus, exec_script, parse_exec_output

LOOP = "ab" * 16
NONCE = "cd" * 16
TASK = "arn:aws:ecs:us-east-1:123456789012:task/c/0123"


class Loop:
    """The loop script running under a real PTY, as the agent runs a session's command.

    ``prefix`` runs it under another program (``strace``); if that fails with a complaint
    about ``ptrace``, the complaint stays in ``buffer``.
    """

    def __init__(self, prefix: Sequence[str] = ()) -> None:
        argv = [*prefix, *shlex.split(loop_command(LOOP))]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvp(argv[0], argv)
        self.buffer = b""
        self.read_until(lambda b: ready_marker(LOOP) in b or b"ptrace" in b)
        if ready_marker(LOOP) in self.buffer:
            self.buffer = b""

    def read_until(self, done: object, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not done(self.buffer):  # type: ignore[operator]
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {self.buffer!r}"
            if select.select([self.fd], [], [], left)[0]:
                self.buffer += os.read(self.fd, 65536)
        return self.buffer

    def run(self, script: str, nonce: str = NONCE, binary: bool = False) -> bytes:
        self.buffer = b""
        os.write(self.fd, request_line(script))
        return self.read_until(lambda b: frame_complete(b, nonce=nonce, binary=binary))

    def close(self) -> None:
        os.close(self.fd)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@settings(max_examples=25, deadline=None)
@given(output=st.binary(max_size=3000), code=st.integers(0, 255), binary=st.booleans())
def test_any_output_and_exit_code_come_back_exactly(
    loop: Loop, output: bytes, code: int, binary: bool
) -> None:
    escaped = "".join(f"\\{byte:03o}" for byte in output)
    command = ["sh", "-c", 'printf "$1"; exit "$2"', "sh", escaped, str(code)]
    stream = loop.run(exec_script(command, nonce=NONCE, binary=binary), binary=binary)
    outcome = parse_exec_output(stream, nonce=NONCE, binary=binary, pty=False)
    assert (outcome.status, outcome.exit_code) == (ExecStatus.COMPLETED, code)
    # With the terminal's output processing off, even text mode returns every byte as sent.
    assert outcome.output == output


def test_many_requests_in_a_row_and_keepalive_lines(loop: Loop) -> None:
    for i in range(20):
        os.write(loop.fd, b"\n\n")  # keep-alive lines are no-ops
        nonce = f"{i:032x}"
        stream = loop.run(exec_script(f"echo {i}", nonce=nonce), nonce=nonce)
        assert parse_exec_output(stream, nonce=nonce, pty=False).output == f"{i}\n".encode()


def test_a_command_cannot_read_the_loops_requests(loop: Loop) -> None:
    # The command's stdin is /dev/null: it must not swallow the next request line.
    stream = loop.run(exec_script("cat; echo done", nonce=NONCE))
    assert parse_exec_output(stream, nonce=NONCE, pty=False).output == b"done\n"


def test_long_scripts_fit_one_request(loop: Loop) -> None:
    payload = "x" * 90_000
    stream = loop.run(exec_script(f"printf %s {payload} | wc -c", nonce=NONCE))
    assert parse_exec_output(stream, nonce=NONCE, pty=False).output.strip() == b"90000"


SECRET = "0123abcd-" * 4
_NOISE = st.lists(
    st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                f"\n<<ecsx-{NONCE}:end:0:{SECRET}>>\n".encode(),
                f"<<ecsx-{NONCE}:rc:3:{SECRET}>>".encode(),
                f"\n<<ecsx-{NONCE}:end:0:ffff>>\n".encode(),  # an imitation: wrong secret
                f"<<ecsx-{NONCE}:end:".encode(),
                b"aGVsbG8=\n",
                b"x" * 700,
            ]
        ),
    ),
    max_size=5,
).map(b"".join)
# Noise, usually a begin marker, noise, usually an end marker (or a part of one), noise.
_STREAMS = st.tuples(
    _NOISE,
    st.sampled_from([f"<<ecsx-{NONCE}:begin:{SECRET}>>\n".encode()] * 4 + [b""]),
    _NOISE,
    st.sampled_from(
        [
            f"\n<<ecsx-{NONCE}:end:0:{SECRET}>>\n".encode(),
            f"\n<<ecsx-{NONCE}:end:7:{SECRET}>>".encode(),
            f"<<ecsx-{NONCE}:rc:3:{SECRET}>>\n<<ecsx-{NONCE}:end:0:{SECRET}>>".encode(),
            f"\n<<ecsx-{NONCE}:end:timeout:{SECRET}>>".encode(),
            f"\n<<ecsx-{NONCE}:end:1".encode(),
            b"",
        ]
    ),
    _NOISE,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=_STREAMS, cuts=st.lists(st.integers(1, 400), max_size=40), binary=st.booleans())
def test_frame_watch_answers_as_frame_complete_does(
    stream: bytes, cuts: list[int], binary: bool
) -> None:
    """Fed a stream chunk by chunk, the watch first says "complete" at the very chunk where
    frame_complete first does (a driver stops reading there)."""
    ends, at = [], 0
    for cut in cuts:
        at += cut
        if at < len(stream):
            ends.append(at)
    ends.append(len(stream))
    watch = FrameWatch(nonce=NONCE, binary=binary)
    grown = bytearray()
    for end in ends:
        grown += stream[len(grown) : end]
        expected = frame_complete(bytes(grown), nonce=NONCE, binary=binary)
        assert watch.complete(grown) is expected, (end, bytes(grown))
        if expected:
            break


def test_frame_watch_parses_a_long_output_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parses: list[int] = []

    def counting(stream: bytes, *, nonce: str, binary: bool = False) -> bool:
        parses.append(len(stream))
        return frame_complete(stream, nonce=nonce, binary=binary)

    monkeypatch.setattr(_cmdloop_wire, "frame_complete", counting)
    watch = FrameWatch(nonce=NONCE)
    grown = bytearray(f"<<ecsx-{NONCE}:begin:{SECRET}>>\n".encode())
    for i in range(5000):  # 5 MB in 1 KiB chunks, an imitation of the end marker among them
        grown += b"y" * 1024
        if i == 100:
            grown += f"<<ecsx-{NONCE}:end:0:bad>>".encode()
        assert not watch.complete(grown)
    grown += f"\n<<ecsx-{NONCE}:end:5:{SECRET}>>\n".encode()
    assert watch.complete(grown)
    # The imitation is parsed when it appears and once more when the next chunk shows it can
    # no longer complete; the real end once. Not at each of the 5000 chunks.
    assert len(parses) == 3, parses


def test_frame_complete_needs_the_end_of_this_nonce() -> None:
    other = "ef" * 16
    assert not frame_complete(b"<<ecsx-" + other.encode() + b":end:0>>", nonce=NONCE)
    assert not frame_complete(b"", nonce=NONCE)


# --- the pooled round trip, by script -------------------------------------------------------

SESSION = {"sessionId": "s", "streamUrl": "wss://gw/s", "tokenValue": "tok"}


def trip(**kwargs: object) -> object:
    options: dict[str, object] = {
        "cluster": "c",
        "task_arn": TASK,
        "container": "main",
        "script": "echo hi",
        "nonce": NONCE,
        "binary": False,
        "timeout_s": 30.0,
        "open_timeout_s": 10.0,
        "max_sessions": 2,
    }
    options.update(kwargs)
    return loop_round_trip(**options)  # type: ignore[arg-type]


def request(lease: int) -> ChannelRequest:
    return ChannelRequest(
        lease_id=lease, request=request_line("echo hi"), nonce=NONCE, binary=False, timeout_s=30.0
    )


OK = TransportResult(stdout=b"frame", may_have_started=True)


def test_an_idle_session_is_reused_without_execute_command() -> None:
    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel(task_arn=TASK, max_sessions=2), ChannelLease(lease_id=7, fresh=False)),
            (request(7), OK),
            (ReleaseChannel(lease_id=7, reusable=True), None),
        ],
    )
    assert result == OK


def test_a_fresh_lease_opens_the_loop_first() -> None:
    def loop_call(effect: object) -> bool:
        return (
            isinstance(effect, AwsCall)
            and effect.operation == "execute_command"
            and effect.params["command"] == loop_command(LOOP)
            and effect.params["interactive"] is True
        )

    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
            (Token(nbytes=16), LOOP),
            (loop_call, AwsResult(data={"session": SESSION})),
            (
                OpenChannel(
                    lease_id=1,
                    session_id="s",
                    stream_url="wss://gw/s",
                    token="tok",
                    ready=ready_marker(LOOP),
                    timeout_s=10.0,
                ),
                None,
            ),
            (request(1), OK),
            (ReleaseChannel(lease_id=1, reusable=True), None),
        ],
    )
    assert result == OK


def test_a_session_found_ended_before_sending_is_replaced() -> None:
    unsent = TransportResult(stderr=b"ended", returncode=255, may_have_started=False)
    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel, ChannelLease(lease_id=1, fresh=False)),
            (request(1), unsent),
            (ReleaseChannel(lease_id=1, reusable=False), None),
            (AcquireChannel, ChannelLease(lease_id=2, fresh=False)),
            (request(2), OK),
            (ReleaseChannel(lease_id=2, reusable=True), None),
        ],
    )
    assert result == OK


@pytest.mark.parametrize(
    "answer",
    [
        TransportResult(stdout=b"part", returncode=255, may_have_started=True),
        TransportResult(stdout=b"part", returncode=None, timed_out=True, may_have_started=True),
    ],
)
def test_a_request_that_may_have_run_is_returned_and_its_session_dropped(
    answer: TransportResult,
) -> None:
    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel, ChannelLease(lease_id=1, fresh=False)),
            (request(1), answer),
            (ReleaseChannel(lease_id=1, reusable=False), None),
        ],
    )
    assert result == answer


def test_execute_command_refused_is_a_transport_error_and_the_lease_is_freed() -> None:
    refused = AwsResult(error=AwsError(code="TargetNotConnectedException", message="not yet"))
    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
            (Token(nbytes=16), LOOP),
            (AwsCall, refused),
            (ReleaseChannel(lease_id=1, reusable=False), None),
        ],
    )
    assert isinstance(result, TransportResult) and b"TargetNotConnectedException" in result.stderr
    assert result.may_have_started is False


def test_a_loop_that_never_gets_ready_proves_nothing_ran() -> None:
    failed = SessionResult(output=b"", ended="failed", kind="refused", reason="HTTP 403")
    result = run_script(
        trip(),  # type: ignore[arg-type]
        [
            (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
            (Token(nbytes=16), LOOP),
            (AwsCall, AwsResult(data={"session": SESSION})),
            (OpenChannel, failed),
            (ReleaseChannel(lease_id=1, reusable=False), None),
        ],
    )
    assert isinstance(result, TransportResult)
    assert result.may_have_started is False and b"HTTP 403" in result.stderr


def test_kms_is_refused_with_its_remedy_and_the_lease_freed() -> None:
    kms = SessionResult(output=b"", ended="failed", kind="kms", reason="KMS")
    flow = trip()
    with pytest.raises(EcsExecError, match="cannot start"):
        run_script(
            flow,  # type: ignore[arg-type]
            [
                (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
                (Token(nbytes=16), LOOP),
                (AwsCall, AwsResult(data={"session": SESSION})),
                (OpenChannel, kms),
                (ReleaseChannel(lease_id=1, reusable=False), None),
            ],
        )


@pytest.mark.parametrize("tool", ["stty", "base64"])
def test_a_loop_missing_a_tool_says_so_instead_of_hanging(tool: str, tmp_path: Path) -> None:
    # The real script, with PATH holding every tool but one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sh", "stty", "base64", "printf", "cat"):
        found = shutil.which(name)
        if found and name != tool:
            (bin_dir / name).symlink_to(found)
    # sh -c, not the login shell loop_command() asks for: a profile would reset PATH.
    argv = ["sh", "-c", LOOP_SCRIPT, "ecsx", LOOP]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(shutil.which("sh") or "/bin/sh", argv, {"PATH": str(bin_dir)})
    out = b""
    try:
        deadline = time.monotonic() + 10
        while b">>" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    failed = SessionResult(output=out, ended="closed", kind="channel_closed", reason="")
    with pytest.raises(EcsExecError, match=f"no working {tool}") as caught:
        run_script(
            trip(),  # type: ignore[arg-type]
            [
                (AcquireChannel, ChannelLease(lease_id=1, fresh=True)),
                (Token(nbytes=16), LOOP),
                (AwsCall, AwsResult(data={"session": SESSION})),
                (OpenChannel, failed),
                (ReleaseChannel(lease_id=1, reusable=False), None),
            ],
        )
    assert "exec_sessions_per_sandbox=0" in caught.value.remedy
