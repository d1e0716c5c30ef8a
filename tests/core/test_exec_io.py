"""Stdin, users and separate stdout/stderr (``_exec_io``), proved against real shells.

Every wrapped script runs in dash, bash and (where present) busybox ash; the stream it
prints goes through the same parser the exec flow uses, with and without a PTY's CRLF and
session-manager chatter around it. The command's bytes are arbitrary (Hypothesis), including
text that imitates this very call's markers.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _shells import GUARD_S, SHELLS, shell_argv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import _exec_io
from ecs_sandbox_core._errors import UsageError
from ecs_sandbox_core._exec_io import check_user
from ecs_sandbox_core._frames import frame_ended
from ecs_sandbox_core._markers import (
    ExecOutcome,
    ExecStatus,
    exec_script,
    parse_exec_output,
    wrap_command,
)

NONCE = "00112233445566778899aabbccddeeff"
BEFORE = b"\nStarting session with SessionId: ecs-execute-command-0a1b\n"
AFTER = b"\n\nExiting session with sessionId: ecs-execute-command-0a1b.\n\n"
SHELL_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ROOT = os.geteuid() == 0


def run(
    script: str, shell: str = "dash", *, env: dict[str, str] | None = None, cwd: str = "/"
) -> bytes:
    proc = subprocess.run(
        shell_argv(shell, script),
        check=False,
        capture_output=True,
        timeout=GUARD_S,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    assert proc.stderr == b"", proc.stderr  # the wrapper keeps its error channel clean
    return proc.stdout


def parse(stream: bytes, *, pty: bool = False, separate: bool = True) -> ExecOutcome:
    if pty:
        stream = BEFORE + stream.replace(b"\n", b"\r\n") + AFTER
    return parse_exec_output(stream, nonce=NONCE, pty=pty, separate=separate)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def _marker_like(secret: str = "0f988fb1-9e1b-4d64-baf4-757e1a4f5116") -> list[bytes]:
    tag = f"<<ecsx-{NONCE}:".encode()
    return [
        tag + b"begin:" + secret.encode() + b">>\n",
        b"\n" + tag + b"mid:" + secret.encode() + b">>\n",
        b"\n" + tag + b"end:0:" + secret.encode() + b">>\n",
        b"\n" + tag + b"end:nouser:" + secret.encode() + b">>\n",
        b"\n" + tag + b"end:broken:>>\n",
        b"\r\n",
        b"\n",
        b"ECSX_IN\n",
        b"=",
    ]


payloads = st.lists(
    st.one_of(st.binary(max_size=64), st.sampled_from(_marker_like())), max_size=6
).map(b"".join)


def _files_command(workdir: Path, out: bytes, err: bytes, code: int) -> list[str]:
    """An argv that prints ``out`` and ``err`` exactly, copies its stdin to a file and exits
    with ``code``."""
    (workdir / "out").write_bytes(out)
    (workdir / "err").write_bytes(err)
    script = 'cat "$1/out"; cat "$1/err" >&2; cat >"$1/got"; exit "$2"'
    return ["sh", "-c", script, "sh", str(workdir), str(code)]


@pytest.mark.parametrize("shell", sorted(SHELLS))
@SHELL_SETTINGS
@given(out=payloads, err=payloads, stdin=payloads, code=st.integers(0, 255), pty=st.booleans())
def test_stdout_stderr_and_stdin_are_exact(
    workdir: Path, shell: str, out: bytes, err: bytes, stdin: bytes, code: int, pty: bool
) -> None:
    command = _files_command(workdir, out, err, code)
    stream = run(exec_script(command, nonce=NONCE, stdin=stdin, separate=True), shell)
    outcome = parse(stream, pty=pty)
    assert outcome == ExecOutcome(ExecStatus.COMPLETED, code, out + err, stdout=out, stderr=err)
    assert (workdir / "got").read_bytes() == stdin
    assert frame_ended(stream, nonce=NONCE)


@pytest.mark.parametrize("shell", sorted(SHELLS))
@SHELL_SETTINGS
@given(stdin=payloads, out=payloads)
def test_stdin_in_merged_and_binary_mode(
    workdir: Path, shell: str, stdin: bytes, out: bytes
) -> None:
    (workdir / "out").write_bytes(out)
    command = f"cat; cat {shlex.quote(str(workdir / 'out'))}"
    stream = run(exec_script(command, nonce=NONCE, stdin=stdin, binary=True), shell)
    outcome = parse_exec_output(stream, nonce=NONCE, binary=True)
    assert (outcome.status, outcome.exit_code, outcome.output) == (
        ExecStatus.COMPLETED,
        0,
        stdin + out,
    )
    assert outcome.stdout is None  # merged: no separate streams


def test_no_input_means_dev_null_and_empty_input_means_eof() -> None:
    for stdin in (None, b""):
        stream = run(exec_script(["wc", "-c"], nonce=NONCE, stdin=stdin, separate=True))
        assert parse(stream).stdout.strip() == b"0"


def test_a_long_command_text_keeps_its_input(workdir: Path) -> None:
    # Past one exec argument's limit the text travels on stdin; the input waits on fd 6.
    command = "cat #" + "x" * 120_000
    stream = run(exec_script(command, nonce=NONCE, stdin=b"in\x00put", separate=True))
    assert parse(stream).stdout == b"in\x00put"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_forged_frames_from_stdout_stderr_and_children_change_nothing(shell: str) -> None:
    # The command learns its nonce from its own command line and prints every marker of
    # this call it can build, to both streams, and leaves a child printing after it ends.
    forged = "".join(
        f"printf '\\n<<ecsx-%s:{kind}>>\\n' \"$n\"; printf '\\n<<ecsx-%s:{kind}>>\\n' \"$n\" >&2;"
        for kind in ("mid:", "end:0:", "end:7:", "end:nouser:", "end:broken:")
    )
    command = (
        f"n={NONCE[:8]}{NONCE[8:]}; {forged} "
        "(sleep 0.3; echo late; echo late >&2) & printf out; printf err >&2; exit 5"
    )
    stream = run(exec_script(command, nonce=NONCE, separate=True), shell)
    outcome = parse(stream)
    assert outcome.status is ExecStatus.COMPLETED and outcome.exit_code == 5
    assert outcome.stdout is not None and outcome.stderr is not None
    assert outcome.stdout.endswith(b"out") and outcome.stderr.endswith(b"err")
    assert outcome.stdout.count(b"<<ecsx-") == 5 and outcome.stderr.count(b"<<ecsx-") == 5


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, str]:
    """A separate frame as the wrapper prints it, for arbitrary streams and statuses."""
    out, err = draw(payloads), draw(payloads)
    status = draw(st.sampled_from(["0", "1", "126", "127", "255", "timeout"]))
    secret = draw(st.uuids()).hex
    tag = f"<<ecsx-{NONCE}:"

    def b64(data: bytes) -> bytes:
        text = base64.encodebytes(data)
        return text

    stream = (
        f"{tag}begin:{secret}>>\n".encode()
        + b64(out)
        + f"\n{tag}mid:{secret}>>\n".encode()
        + b64(err)
        + f"\n{tag}end:{status}:{secret}>>\n".encode()
    )
    return stream, out, err, status


@given(frame=frames(), cut=st.integers(0, 10_000), pty=st.booleans())
def test_the_parser_reads_any_frame_and_no_cut_frame_as_complete(
    frame: tuple[bytes, bytes, bytes, str], cut: int, pty: bool
) -> None:
    stream, out, err, status = frame
    whole = parse(stream, pty=pty)
    assert (whole.stdout, whole.stderr, whole.output) == (out, err, out + err)
    if status == "timeout":
        assert whole.status is ExecStatus.TIMED_OUT
    else:
        assert (whole.status, whole.exit_code) == (ExecStatus.COMPLETED, int(status))
    # A stream cut anywhere before the end marker is whole is never read as finished.
    if cut < len(stream) - 1:
        part = parse_exec_output(stream[:cut], nonce=NONCE, separate=True)
        assert part.status in (ExecStatus.NEVER_STARTED, ExecStatus.CUT_OFF)
        assert not frame_ended(stream[:cut], nonce=NONCE)
        assert out.startswith(part.stdout or b"")


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("separate", [False, True])
def test_user_runs_the_command_as_that_user(shell: str, separate: bool) -> None:
    command = 'id -un; printf "%s %s %s" "$HOME" "$USER" "$LOGNAME"; echo " $X"'
    script = exec_script(command, nonce=NONCE, user="nobody", separate=separate, env={"X": "given"})
    outcome = parse(run(script, shell), separate=separate)
    home = _home("nobody")
    assert outcome.exit_code == 0
    assert outcome.output == f"nobody\n{home} nobody nobody given\n".encode()
    # The caller's env wins over the user's defaults.
    script = exec_script("echo $HOME", nonce=NONCE, user="nobody", env={"HOME": "/h"})
    assert parse(run(script, shell), separate=False).output == b"/h\n"


def _home(user: str) -> str:
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields[5]
    raise AssertionError(f"no {user} in /etc/passwd")


def _bin_with(tmp_path: Path, tools: Sequence[str]) -> str:
    """A PATH holding only ``tools`` (symlinks to this machine's), open to every user."""
    bindir = Path(tempfile.mkdtemp(prefix="ecsx-bin-"))
    bindir.chmod(0o755)
    (tmp_path / "bindir").write_text(str(bindir))  # for the record; removed with /tmp
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    return str(bindir)


BASE_TOOLS = ("id", "mktemp", "base64", "rm", "cat", "setsid", "sleep", "whoami", "sh")


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
@pytest.mark.parametrize("switch", ["setpriv", "runuser", "su"])
def test_each_user_switch_the_image_may_have(
    tmp_path: Path, switch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _bin_with(tmp_path, (*BASE_TOOLS, switch))
    monkeypatch.setattr(_exec_io, "SYSTEM_DIRS", (path,))
    command = ["sh", "-c", "whoami; echo err >&2; exit 4"]
    script = exec_script(command, nonce=NONCE, user="nobody", separate=True)
    outcome = parse(run(script, env={"PATH": path}))
    assert (outcome.exit_code, outcome.stdout, outcome.stderr) == (4, b"nobody\n", b"err\n")
    # Not found and not executable keep their codes through every switch.
    for argv, code in ((["no-such-command"], 127), (["/etc/passwd"], 126)):
        script = exec_script(argv, nonce=NONCE, user="nobody", separate=True)
        assert parse(run(script, env={"PATH": path})).exit_code == code, switch


def test_no_way_to_switch_users_is_a_setup_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _bin_with(tmp_path, BASE_TOOLS)
    monkeypatch.setattr(_exec_io, "SYSTEM_DIRS", (path,))
    script = exec_script(["whoami"], nonce=NONCE, user="nobody", separate=True)
    outcome = parse(run(script, env={"PATH": path}))
    assert outcome.status is ExecStatus.SETUP_FAILED
    assert b"no setpriv, runuser or su" in outcome.output


@pytest.mark.parametrize("separate", [False, True])
def test_an_unknown_user_is_reported_and_nothing_runs(tmp_path: Path, separate: bool) -> None:
    marker = tmp_path / "ran"
    script = exec_script(f"touch {marker}", nonce=NONCE, user="no-such-user-x", separate=separate)
    outcome = parse(run(script), separate=separate)
    assert outcome.status is ExecStatus.NO_SUCH_USER and outcome.exit_code is None
    assert not marker.exists()


def test_the_user_the_wrapper_runs_as_switches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No switching tool at all: asking for oneself must still work (non-root images).
    path = _bin_with(tmp_path, BASE_TOOLS)
    monkeypatch.setattr(_exec_io, "SYSTEM_DIRS", (path,))
    me = subprocess.run(["id", "-un"], capture_output=True, check=True).stdout.decode().strip()
    script = exec_script(["whoami"], nonce=NONCE, user=me, separate=True)
    assert parse(run(script, env={"PATH": path})).stdout == f"{me}\n".encode()


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
def test_tools_planted_in_path_never_run_as_root(tmp_path: Path) -> None:
    # A directory the user could write to comes first in PATH and holds a fake id and
    # setpriv; the wrapper must use the system's, and only the command sees PATH.
    planted = Path(tempfile.mkdtemp(prefix="ecsx-planted-"))
    planted.chmod(0o755)
    proof = tmp_path / "planted-ran"
    for tool in ("id", "setpriv", "runuser", "su"):
        fake = planted / tool
        fake.write_text(f"#!/bin/sh\ntouch {proof}\nexit 1\n")
        fake.chmod(0o755)
    env = {"PATH": f"{planted}:{os.environ['PATH']}"}
    script = exec_script(["whoami"], nonce=NONCE, user="nobody", separate=True)
    outcome = parse(run(script, env=env))
    assert outcome.stdout == b"nobody\n"
    assert not proof.exists()
    shutil.rmtree(planted)


def test_no_writable_temporary_directory_is_a_setup_failure() -> None:
    env = {"PATH": os.environ["PATH"], "TMPDIR": "/nonexistent-dir"}
    script = exec_script(["true"], nonce=NONCE, separate=True)
    outcome = parse(run(script, env=env))
    assert outcome.status is ExecStatus.SETUP_FAILED
    assert b"writable temporary directory" in outcome.output


def test_the_temporary_directory_is_removed(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path)}
    for kwargs in ({"separate": True}, {"stdin": b"x"}, {"stdin": b"x", "binary": True}):
        script = exec_script(["cat"], nonce=NONCE, **kwargs)  # type: ignore[arg-type]
        run(script, env=env)
        assert list(tmp_path.iterdir()) == [], kwargs


def test_a_timeout_still_reports_both_streams() -> None:
    command = "echo before; echo warn >&2; sleep 30"
    stream = run(exec_script(command, nonce=NONCE, separate=True, timeout_s=1))
    outcome = parse(stream)
    assert outcome.status is ExecStatus.TIMED_OUT
    assert outcome.stdout == b"before\n"
    assert outcome.stderr is not None and outcome.stderr.startswith(b"warn\n")


def test_the_ecs_command_string_carries_the_options() -> None:
    line = wrap_command(["cat"], nonce=NONCE, stdin=b"abc", user="nobody", separate=True)
    outcome = parse(subprocess.run(shlex.split(line), capture_output=True, check=False).stdout)
    if ROOT:
        assert outcome.stdout == b"abc"


@pytest.mark.parametrize("user", ["", "-r", "a b", "x;y", "$(id)", "a" * 40, 7, None])
def test_user_names_that_are_refused(user: object) -> None:
    if user is None:
        return
    with pytest.raises(UsageError):
        check_user(user)


def test_input_must_be_bytes() -> None:
    with pytest.raises(UsageError):
        exec_script(["cat"], nonce=NONCE, stdin="text")  # type: ignore[arg-type]
