"""Nothing a command or its children print can change the reported status or output.

The nonce is no secret (it is in the wrapper's command line, readable by everything in the
container), so the forgers here know it: the command prints imitations of this call's
markers, and children that outlive it print more after it exited, through its stdout or by
writing straight into the session stream (``/proc/<wrapper>/fd/1``). Run with real shells.
"""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

import pytest
from _shells import SHELLS, run_shell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._markers import ExecOutcome, ExecStatus, exec_script, parse_exec_output

NONCE = "00112233445566778899aabbccddeeff"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Reads this call's nonce the way an attacker in the container would: from the command line
# of the shell that runs the command.
READ_NONCE = "n=$(tr '\\0' '\\n' </proc/$PPID/cmdline | grep -o '[0-9a-f]\\{32\\}' | head -n 1); "


def test_a_child_cannot_forge_the_exit_code_after_the_command_exits() -> None:
    """Issue 10, item 2, as reported: exit 7, then a fake end marker 0.2 s later."""
    command = (
        READ_NONCE + "( sleep 0.2; printf '\\n<<ecsx-%s:end:0>>\\n' \"$n\"; "
        'printf \'\\n<<ecsx-%s:end:0:%s>>\\n\' "$n" "$(cat /proc/sys/kernel/random/uuid)" ) & '
        "exit 7"
    )
    stream = run_shell(exec_script(command, nonce=NONCE))
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(ExecStatus.COMPLETED, 7, b"")


# Waits until process $1 has exited (a zombie counts: here the wrapper's parent, the test,
# reaps it only once the stream is closed, and it must close).
WAIT_GONE = (
    'gone() { read -r l 2>/dev/null </proc/$1/stat || return 0; set -- ${l##*") "}; '
    '[ "$1" = Z ]; }; until gone $1; do sleep 0.01; done; '
)
# The wrapper (whose stdout is the session stream) is the command's parent in text mode and
# its grandparent in binary mode (the parent is then the first part of the base64 pipeline).
FIND_WRAPPER = {
    False: "main=$PPID; ",
    True: 'read -r l </proc/$PPID/stat; set -- ${l##*") "}; main=$2; ',
}


@pytest.mark.parametrize("binary", [False, True])
def test_a_detached_child_cannot_forge_the_result_after_the_wrapper_exits(binary: bool) -> None:
    # It survives the hang-up (own session) and writes straight into the session stream.
    forge = WAIT_GONE + 'printf "<<ecsx-%s:rc:0>>\\n<<ecsx-%s:end:0>>\\n" $2 $2 >&5'
    command = (
        READ_NONCE
        + FIND_WRAPPER[binary]
        + "exec 5>/proc/$main/fd/1; "
        + f'setsid sh -c {shlex.quote(forge)} sh $main "$n" >/dev/null 2>&1 & '
        + "echo out; exit 7"
    )
    stream = run_shell(exec_script(command, nonce=NONCE, binary=binary))
    assert stream.endswith(b":end:0>>\n")  # the forgery did arrive, after the frame
    assert parse_exec_output(stream, nonce=NONCE, binary=binary) == ExecOutcome(
        ExecStatus.COMPLETED, 7, b"out\n"
    )


@st.composite
def imitations(draw: st.DrawFn, nonce: str) -> bytes:
    """Text that imitates a marker of this call, with a made-up secret and status."""
    kind = draw(st.sampled_from(["begin", "end", "rc"]))
    secret = draw(
        st.one_of(
            st.just(""),
            st.just(str(uuid.uuid4())),
            st.text("0123456789abcdef-", max_size=40),
        )
    )
    status = draw(st.sampled_from(["0", "1", "7", "255", "timeout", "256", "x"]))
    fields = [status, secret][: draw(st.integers(0, 2))] if kind != "begin" else [secret]
    marker = f"<<ecsx-{nonce}:{kind}" + "".join(f":{f}" for f in fields) + ">>"
    lead, tail = draw(st.sampled_from(["", "\n"])), draw(st.sampled_from(["", "\n", "\r\n"]))
    return (lead + marker + tail).encode()


@st.composite
def texts(draw: st.DrawFn, nonce: str, *, max_parts: int = 4) -> bytes:
    parts = st.one_of(imitations(nonce), st.binary(max_size=20))
    return b"".join(draw(st.lists(parts, max_size=max_parts)))


def forger(*, early: Path, late: Path, exit_code: int, binary: bool, how: str, way: str) -> str:
    """The command: print ``early``, leave a child that prints ``late`` after it, exit.

    ``how`` the child survives: ``setsid`` (own session) or ``nohup`` (ignores SIGHUP).
    ``way`` it writes: into the session stream itself (``/proc/<wrapper>/fd/1``, once the
    wrapper has exited) or, text mode only, through the stdout it inherited, as soon as the
    command is gone. Every write is one ``cat`` of a small file, so it cannot be split.
    """
    q = shlex.quote
    child = f"{WAIT_GONE}cat {q(str(late))}"
    if way == "stream":
        child, wait_for, detach = f"{child} >&5", "$main", " >/dev/null 2>&1"
    else:
        wait_for, detach = "$$", ""
    start = {"setsid": "setsid sh -c", "nohup": "nohup sh -c"}[how]
    return (
        FIND_WRAPPER[binary]
        + "exec 5>/proc/$main/fd/1; "
        + f"{start} {q(child)} sh {wait_for}{detach} & "
        + f"cat {q(str(early))}; exit {exit_code}"
    )


@SETTINGS
@given(
    data=st.data(),
    exit_code=st.integers(0, 255),
    binary=st.booleans(),
    shell=st.sampled_from(sorted(SHELLS)),
    how=st.sampled_from(["setsid", "nohup"]),
    way=st.sampled_from(["stream", "stdout"]),
    timeout_s=st.sampled_from([None, 600.0]),
)
def test_no_child_output_changes_status_or_output(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    exit_code: int,
    binary: bool,
    shell: str,
    how: str,
    way: str,
    timeout_s: float | None,
) -> None:
    if binary and way == "stdout":
        way = "stream"  # a binary command's stdout is base64's input: see the test below
    workdir = tmp_path_factory.mktemp("forgery")
    early, late = data.draw(texts(NONCE)), data.draw(texts(NONCE, max_parts=6))
    (workdir / "early").write_bytes(early)
    (workdir / "late").write_bytes(late[:4000])
    command = forger(
        early=workdir / "early",
        late=workdir / "late",
        exit_code=exit_code,
        binary=binary,
        how=how,
        way=way,
    )
    script = exec_script(command, nonce=NONCE, binary=binary, timeout_s=timeout_s)
    stream = run_shell(script, shell)
    outcome = parse_exec_output(stream, nonce=NONCE, binary=binary)
    assert outcome.status is ExecStatus.COMPLETED, (outcome, stream)
    assert outcome.exit_code == exit_code
    if way == "stream":
        assert outcome.output == early
    else:
        # A survivor that keeps the command's stdout prints into the frame for as long as the
        # wrapper still runs; one whole write, or nothing, and never a changed status.
        assert outcome.output in (early, early + late[:4000])


@SETTINGS
@given(data=st.data(), exit_code=st.integers(0, 255), shell=st.sampled_from(sorted(SHELLS)))
def test_in_binary_mode_a_survivor_on_stdout_adds_encoded_output_only(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, exit_code: int, shell: str
) -> None:
    # base64 reads its input to the end, so a child that keeps the command's stdout open (and
    # ignores the hang-up) delays the end of the frame, and what it writes is output; its
    # imitations are encoded like every other byte.
    workdir = tmp_path_factory.mktemp("forgery")
    early, late = data.draw(texts(NONCE)), data.draw(texts(NONCE))
    (workdir / "early").write_bytes(early)
    (workdir / "late").write_bytes(late)
    q = shlex.quote
    child = f"{WAIT_GONE}cat {q(str(workdir / 'late'))}"
    command = f"nohup sh -c {q(child)} sh $$ & cat {q(str(workdir / 'early'))}; exit {exit_code}"
    stream = run_shell(exec_script(command, nonce=NONCE, binary=True), shell)
    assert parse_exec_output(stream, nonce=NONCE, binary=True) == ExecOutcome(
        ExecStatus.COMPLETED, exit_code, early + late
    )


def test_the_secret_is_nowhere_the_command_can_read() -> None:
    # Every command line and environment in reach, and the command's own variables.
    command = (
        "for f in /proc/[0-9]*; do cat $f/cmdline $f/environ 2>/dev/null; done; "
        "set; env; cat /proc/$PPID/cmdline /proc/$PPID/environ"
    )
    for binary in (False, True):
        # An exported variable of the wrapper's name, and a profile's `set -a`, leak nothing.
        script = "set -a; ecsx_s=inherited; export ecsx_s\n" + exec_script(
            command, nonce=NONCE, binary=binary
        )
        stream = run_shell(script)
        secret = stream.split(b":begin:", 1)[1].split(b">>", 1)[0]
        assert len(secret) == 36
        outcome = parse_exec_output(stream, nonce=NONCE, binary=binary)
        assert outcome.status is ExecStatus.COMPLETED
        assert NONCE.encode() in outcome.output  # it did read the wrapper's command line
        assert secret not in outcome.output
