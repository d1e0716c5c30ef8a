"""Marker wrapping and parsing, proved against a real POSIX shell.

The wrapped scripts are run with /bin/sh (dash here), bash and busybox ash; a transport is
simulated around the shell's real output: session-manager chatter before and after it, and
the PTY's ``\\n`` -> ``\\r\\n`` translation. Forgeries by the command and its children are
in test_markers_forgery.py, timeouts and process handling in test_markers_processes.py.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _shells import SHELLS, run_shell
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._errors import UsageError
from ecs_sandbox_core._markers import (
    MAX_INLINE_COMMAND,
    ExecOutcome,
    ExecStatus,
    exec_script,
    parse_exec_output,
    staged_script_command,
    validate_nonce,
    wrap_command,
)

NONCE = "00112233445566778899aabbccddeeff"
SESSION = "ecs-execute-command-0a1b2c3d4e5f"
BEFORE = (
    b"\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a "
    b"session.\n\n\nStarting session with SessionId: " + SESSION.encode() + b"\n"
)
AFTER = b"\n\nExiting session with sessionId: " + SESSION.encode() + b".\n\n"
SHELL_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def run_ecs_style(command_line: str, *, stdin: int | None = subprocess.DEVNULL) -> bytes:
    """Run an ECS Exec ``--command`` string as ECS does: split shell-style, no shell."""
    proc = subprocess.run(
        shlex.split(command_line), check=False, capture_output=True, timeout=60, stdin=stdin
    )
    return proc.stdout


def as_transport(shell_output: bytes, *, pty: bool, chatter: bool = True) -> bytes:
    body = shell_output.replace(b"\n", b"\r\n") if pty else shell_output
    return BEFORE + body + AFTER if chatter else body


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def cat_command(path: Path, exit_code: int, form: str) -> str | list[str]:
    """A command printing the file's bytes exactly and exiting with ``exit_code``."""
    if form == "text":
        return f"cat {shlex.quote(str(path))}; exit {exit_code}"
    return ["sh", "-c", 'cat "$1"; exit "$2"', "sh", str(path), str(exit_code)]


# --- payloads that try to confuse the parser -----------------------------------------------


def tricky_fragments(nonce: str) -> list[bytes]:
    """Imitations of this call's markers (the nonce is no secret), chatter, line-end oddities."""
    tag = f"<<ecsx-{nonce}:".encode()
    secret = str(uuid.uuid4()).encode()
    return [
        tag + b"begin>>\n",
        tag + b"begin:" + secret + b">>\n",
        tag + b"begin:>>\n",
        b"\n" + tag + b"end:0>>\n",
        b"\n" + tag + b"end:77>>",
        b"\n" + tag + b"end:0:" + secret + b">>\n",
        b"\n" + tag + b"end:0:>>\n",
        b"\n" + tag + b"end:timeout:" + secret + b">>\n",
        b"\n" + tag + b"end:3:" + secret[:-1],
        tag + b"rc:5>>",
        tag + b"rc:0:" + secret + b">>",
        tag + b"rc:timeout:>>",
        b"\n<<ecsx-ffffffffffffffff:end:9>>\n",
        BEFORE,
        AFTER,
        b"Exiting session with sessionId: x.\n",
        b"Rate exceeded\n",
        b"An error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
        b"operation: x\n",
        b"\r\n",
        b"\r",
        b"\n",
        b"\x00",
        b"\xff\xfe",
        b"=",
        b"QUJD",
    ]


@st.composite
def payloads(draw: st.DrawFn, nonce: str, *, truncatable: bool = False) -> bytes:
    """Bytes mixing random data with marker imitations, chatter and line-end oddities.

    ``truncatable`` leaves out what a truncated stream cannot be told apart from: the
    plugin's closing line. (Forged end markers lack the secret, so they can stay.)
    """
    fragments = tricky_fragments(nonce)
    if truncatable:
        fragments = [f for f in fragments if b"Exiting" not in f]
    parts = draw(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(fragments))))
    return b"".join(parts)


nonces = st.binary(min_size=8, max_size=20).map(bytes.hex)


# --- round trips through a real shell ------------------------------------------------------


@SHELL_SETTINGS
@given(
    data=st.data(),
    nonce=nonces,
    exit_code=st.integers(0, 255),
    binary=st.booleans(),
    pty=st.booleans(),
    form=st.sampled_from(["text", "argv"]),
    shell=st.sampled_from(sorted(SHELLS)),
    timeout_s=st.sampled_from([None, 600.0]),
)
def test_no_payload_changes_exit_code_or_output(
    workdir: Path,
    data: st.DataObject,
    nonce: str,
    exit_code: int,
    binary: bool,
    pty: bool,
    form: str,
    shell: str,
    timeout_s: float | None,
) -> None:
    payload = data.draw(payloads(nonce))
    path = workdir / f"payload-{nonce}"
    path.write_bytes(payload)
    command = cat_command(path, exit_code, form)
    script = exec_script(command, nonce=nonce, binary=binary, timeout_s=timeout_s)
    stream = as_transport(run_shell(script, shell), pty=pty)
    assert parse_exec_output(stream, nonce=nonce, binary=binary, pty=pty) == ExecOutcome(
        ExecStatus.COMPLETED, exit_code, payload
    )


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("command", "output", "exit_code"),
    [
        ("printf 'no newline'", b"no newline", 0),
        ("printf 'one\\n'", b"one\n", 0),
        ("printf 'two\\n\\n'", b"two\n\n", 0),
        ("printf ''", b"", 0),
        ("echo $((1 + 2)) | tr 3 x; exit 4", b"x\n", 4),
        ("echo to-stderr >&2; exit 1", b"to-stderr\n", 1),
        ("kill -TERM $$", None, 128 + 15),  # the shell reports the signal
        ("echo (", None, 2),  # a syntax error is the command's failure, after it started
        (
            ["printf", "%s|", "a b", "'q'", '"d"', "$(x)", "`y`", "é"],
            "a b|'q'|\"d\"|$(x)|`y`|é|",
            0,
        ),
        (["no-such-program-xyz"], None, 127),
    ],
)
def test_command_forms(
    command: str | list[str], output: bytes | str | None, exit_code: int, binary: bool
) -> None:
    stream = run_shell(exec_script(command, nonce=NONCE, binary=binary))
    outcome = parse_exec_output(stream, nonce=NONCE, binary=binary)
    assert outcome.status is ExecStatus.COMPLETED
    assert outcome.exit_code == exit_code
    if output is not None:
        expected = output.encode() if isinstance(output, str) else output
        assert outcome.output == expected
    else:
        assert outcome.output  # the shell's own report, merged into the output


def test_ten_megabytes_of_arbitrary_bytes_come_back_exactly(workdir: Path) -> None:
    payload = random.Random(7).randbytes(10 * 1024 * 1024)
    path = workdir / "big"
    path.write_bytes(payload)
    stream = as_transport(
        run_shell(exec_script(["cat", str(path)], nonce=NONCE, binary=True)), pty=True
    )
    outcome = parse_exec_output(stream, nonce=NONCE, binary=True, pty=True)
    assert outcome.status is ExecStatus.COMPLETED
    assert outcome.exit_code == 0
    assert outcome.output == payload


@SHELL_SETTINGS
@given(
    env=st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
            lambda name: name not in {"PWD", "OLDPWD", "SHLVL", "_"}
        ),
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=30),
        max_size=5,
    ),
    dirname=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\0/"), min_size=1, max_size=20
    ).filter(lambda name: name not in {".", ".."}),
    binary=st.booleans(),
)
def test_env_and_cwd_arrive_exactly_through_the_ecs_command_form(
    workdir: Path, env: dict[str, str], dirname: str, binary: bool
) -> None:
    assume(len(dirname.encode()) < 200)
    cwd = workdir / "cwd" / dirname
    cwd.mkdir(parents=True, exist_ok=True)
    report = (
        "import json, os, sys\n"
        "names = sys.argv[1:]\n"
        "print(json.dumps({'cwd': os.getcwd(), 'env': {n: os.environ.get(n) for n in names}}))"
    )
    command = [sys.executable, "-c", report, *env]
    line = wrap_command(command, nonce=NONCE, binary=binary, env=env, cwd=str(cwd))
    outcome = parse_exec_output(run_ecs_style(line), nonce=NONCE, binary=binary)
    assert outcome.status is ExecStatus.COMPLETED, outcome
    assert outcome.exit_code == 0
    assert json.loads(outcome.output) == {"cwd": str(cwd), "env": env}


def test_shell_text_command_through_the_ecs_command_form() -> None:
    line = wrap_command("set -- a 'b c'; echo \"$#:$2\"; exit 3", nonce=NONCE, env={"X": "$HOME"})
    assert line.startswith("sh -lc '")
    outcome = parse_exec_output(as_transport(run_ecs_style(line), pty=False), nonce=NONCE)
    assert outcome == ExecOutcome(ExecStatus.COMPLETED, 3, b"2:b c\n")


def test_missing_cwd_is_the_commands_failure() -> None:
    stream = run_shell(exec_script(["true"], nonce=NONCE, cwd="/no/such/dir"))
    outcome = parse_exec_output(stream, nonce=NONCE)
    assert outcome.status is ExecStatus.COMPLETED
    assert outcome.exit_code != 0
    assert b"/no/such/dir" in outcome.output


def test_command_reads_no_stdin_even_when_the_session_keeps_it_open() -> None:
    read_end, write_end = os.pipe()
    try:
        stream = run_ecs_style(wrap_command("cat; echo done", nonce=NONCE), stdin=read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(ExecStatus.COMPLETED, 0, b"done\n")


def test_script_never_contains_a_whole_marker() -> None:
    for binary in (False, True):
        script = exec_script("echo hi", nonce=NONCE, binary=binary)
        assert f"ecsx-{NONCE}" not in script
        assert f"ecsx-{NONCE}" not in wrap_command("echo hi", nonce=NONCE, binary=binary)


# --- streams that did not complete ---------------------------------------------------------


@SHELL_SETTINGS
@given(
    data=st.data(),
    nonce=nonces,
    exit_code=st.integers(0, 255),
    binary=st.booleans(),
    pty=st.booleans(),
    chatter=st.booleans(),
)
def test_truncated_streams_are_cut_off(
    workdir: Path,
    data: st.DataObject,
    nonce: str,
    exit_code: int,
    binary: bool,
    pty: bool,
    chatter: bool,
) -> None:
    payload = data.draw(payloads(nonce, truncatable=True))
    path = workdir / f"cut-{nonce}"
    path.write_bytes(payload)
    full = run_shell(exec_script(cat_command(path, exit_code, "argv"), nonce=nonce, binary=binary))
    begin_end = full.index(b">>\n") + len(b">>\n")  # the begin marker comes first
    # Anywhere from just after the begin marker to just before the end marker is complete.
    cut = data.draw(st.integers(begin_end, full.rindex(b">>") + 1))
    stream = BEFORE + as_transport(full[:cut], pty=pty, chatter=False)
    if chatter:
        stream += AFTER
    outcome = parse_exec_output(stream, nonce=nonce, binary=binary, pty=pty)
    assert outcome.status is ExecStatus.CUT_OFF
    assert outcome.exit_code is None
    if binary:
        assert payload.startswith(outcome.output)
    else:
        # Everything that arrived after the begin marker, exactly.
        assert outcome.output == full[begin_end:cut]


CHATTER_LINES = [
    b"The Session Manager plugin was installed successfully. Use the AWS CLI to start a session.",
    b"Starting session with SessionId: " + SESSION.encode(),
    b"Exiting session with sessionId: " + SESSION.encode() + b".",
]


@given(
    nonce=nonces,
    lines=st.lists(
        st.one_of(
            st.binary(max_size=60).filter(lambda line: b"\n" not in line and b"\r" not in line),
            st.sampled_from(CHATTER_LINES),
        )
    ),
    binary=st.booleans(),
    pty=st.booleans(),
)
def test_streams_without_begin_never_started(
    nonce: str, lines: list[bytes], binary: bool, pty: bool
) -> None:
    assume(not any(b"begin>>" in line for line in lines))
    stream = (b"\r\n" if pty else b"\n").join(lines)
    outcome = parse_exec_output(stream, nonce=nonce, binary=binary, pty=pty)
    assert outcome.status is ExecStatus.NEVER_STARTED
    assert outcome.exit_code is None
    # Exactly the chatter lines are gone; the rest is kept for diagnosis.
    kept = b"\n".join(line for line in lines if line not in CHATTER_LINES)
    assert outcome.output == kept.strip(b"\r\n")


def test_never_started_keeps_other_text_and_drops_chatter() -> None:
    stream = BEFORE + b'exec: "sh": executable file not found in $PATH\r\n' + AFTER
    outcome = parse_exec_output(stream, nonce=NONCE, pty=True)
    assert outcome == ExecOutcome(
        ExecStatus.NEVER_STARTED, None, b'exec: "sh": executable file not found in $PATH'
    )


def test_a_begin_marker_of_another_call_is_not_a_start() -> None:
    other = "ffffffffffffffffffffffffffffffff"
    stream = run_shell(exec_script("echo hi", nonce=other))
    assert parse_exec_output(stream, nonce=NONCE).status is ExecStatus.NEVER_STARTED


def test_chatter_inside_the_output_is_kept() -> None:
    lines = BEFORE + b"Starting session with SessionId: mine\n" + AFTER
    stream = run_shell(exec_script(["printf", "%s", lines.decode()], nonce=NONCE))
    outcome = parse_exec_output(BEFORE + stream + AFTER, nonce=NONCE)
    assert outcome == ExecOutcome(ExecStatus.COMPLETED, 0, lines)


SECRET = b"5f1b3d0c-9a4e-4c57-8a36-3e1f0b7d2c91"
TAG = f"<<ecsx-{NONCE}:".encode()
BEGIN = TAG + b"begin:" + SECRET + b">>\n"


def end(status: bytes, secret: bytes = SECRET) -> bytes:
    return b"\n" + TAG + b"end:" + status + b":" + secret + b">>\n"


def rc(status: bytes, secret: bytes = SECRET) -> bytes:
    return TAG + b"rc:" + status + b":" + secret + b">>"


def test_binary_stream_with_a_failed_encoder_is_not_completed() -> None:
    ok = BEGIN + rc(b"0") + b"aGk=\n" + end(b"0")
    assert parse_exec_output(ok, nonce=NONCE, binary=True) == ExecOutcome(
        ExecStatus.COMPLETED, 0, b"hi"
    )
    failed = ok.replace(end(b"0"), end(b"1"))
    assert parse_exec_output(failed, nonce=NONCE, binary=True).status is ExecStatus.CUT_OFF
    garbled = ok.replace(b"aGk=", b"base64: write error")
    assert parse_exec_output(garbled, nonce=NONCE, binary=True).status is ExecStatus.CUT_OFF
    no_status = ok.replace(rc(b"0"), b"")
    assert parse_exec_output(no_status, nonce=NONCE, binary=True).status is ExecStatus.CUT_OFF
    forged_status = ok.replace(rc(b"0"), rc(b"0", b"0" * 32))
    assert parse_exec_output(forged_status, nonce=NONCE, binary=True).status is ExecStatus.CUT_OFF


def test_a_timeout_status_is_timed_out_with_what_was_printed() -> None:
    stream = BEGIN + b"partial\nTerminated\n" + end(b"timeout")
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(
        ExecStatus.TIMED_OUT, None, b"partial\nTerminated\n"
    )
    binary = BEGIN + b"cGFy" + rc(b"timeout") + b"dA==\n" + end(b"0")
    assert parse_exec_output(binary, nonce=NONCE, binary=True) == ExecOutcome(
        ExecStatus.TIMED_OUT, None, b"part"
    )


@pytest.mark.parametrize(
    "code", [b"256", b"-1", b"x", b"1234", b"", b"007", b"01", b"timeou", b"timeouts"]
)
def test_invalid_end_codes_are_cut_off(code: bytes) -> None:
    stream = BEGIN + b"out\n" + end(code)
    assert parse_exec_output(stream, nonce=NONCE).status is ExecStatus.CUT_OFF


@pytest.mark.parametrize(
    "secret", [b"", b"0" * 36, SECRET[:-1], SECRET + b"0", SECRET.upper(), b"5f1b3d0c"]
)
def test_end_markers_without_the_secret_of_the_begin_marker_do_not_end_the_frame(
    secret: bytes,
) -> None:
    stream = BEGIN + b"out" + end(b"0", secret) + b"more" + end(b"7")
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(
        ExecStatus.COMPLETED, 7, b"out" + end(b"0", secret) + b"more"
    )


def test_the_first_end_marker_with_the_secret_wins() -> None:
    stream = BEGIN + b"out" + end(b"7") + end(b"0") + b"late" + end(b"timeout")
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(ExecStatus.COMPLETED, 7, b"out")


# --- the parser alone, on generated frames -------------------------------------------------


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, bytes, ExecOutcome, bool, bool]:
    """A session stream as the wrapper frames it, with imitations and late junk around.

    (An empty secret, the wrapper's last resort, would make the payload's empty-secret
    imitation valid; it has a test of its own.)
    """
    nonce = draw(nonces)
    secret = draw(st.sampled_from([str(uuid.uuid4()).encode(), b"0123456789abcdef"]))
    tag = f"<<ecsx-{nonce}:".encode()
    binary, pty = draw(st.booleans()), draw(st.booleans())
    output = draw(payloads(nonce))
    status = draw(st.sampled_from([b"0", b"1", b"127", b"255", b"timeout"]))
    # What may follow the real end marker: anything, even markers with the real secret.
    late_parts = [*tricky_fragments(nonce), b"\n" + tag + b"end:0:" + secret + b">>\n"]
    late = b"".join(draw(st.lists(st.sampled_from(late_parts), max_size=4)))
    if binary:
        encoded = base64.encodebytes(output)
        at = draw(st.integers(0, len(encoded)))
        status_marker = tag + b"rc:" + status + b":" + secret + b">>"
        body = encoded[:at] + status_marker + encoded[at:]
        end_marker = b"\n" + tag + b"end:0:" + secret + b">>\n"
    else:
        body = output
        end_marker = b"\n" + tag + b"end:" + status + b":" + secret + b">>\n"
    shell = tag + b"begin:" + secret + b">>\n" + body + end_marker + late
    stream = as_transport(shell, pty=pty)
    timed_out = status == b"timeout"
    expected = ExecOutcome(
        ExecStatus.TIMED_OUT if timed_out else ExecStatus.COMPLETED,
        None if timed_out else int(status),
        output,
    )
    return nonce, stream, expected, binary, pty


@settings(max_examples=300)
@given(case=frames())
def test_parsing_a_frame_gives_back_exactly_its_status_and_output(
    case: tuple[str, bytes, ExecOutcome, bool, bool],
) -> None:
    nonce, stream, expected, binary, pty = case
    assert parse_exec_output(stream, nonce=nonce, binary=binary, pty=pty) == expected


def test_a_frame_without_a_secret_still_parses() -> None:
    # Where neither /proc nor od can give a secret, the frame works, unprotected.
    stream = TAG + b"begin:>>\nout" + end(b"3", b"") + b"late"
    assert parse_exec_output(stream, nonce=NONCE) == ExecOutcome(ExecStatus.COMPLETED, 3, b"out")


# --- staged scripts ------------------------------------------------------------------------


class _Served:
    def __init__(self, body: bytes, status: int = 200) -> None:
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, query: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/script?{query}"

    def __enter__(self) -> _Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize("binary", [False, True])
def test_staged_script_is_fetched_run_and_removed(workdir: Path, binary: bool) -> None:
    command = "printf 'staged %s' \"$V\"; umask; exit 6"
    # The staging wrapper tightens the umask only for its own download.
    umask = run_ecs_style("sh -lc umask")
    assert umask.strip().isdigit()
    script = exec_script(command, nonce=NONCE, binary=binary, env={"V": "x" * 10_000})
    assert len(wrap_command(command, nonce=NONCE, env={"V": "x" * 10_000})) > MAX_INLINE_COMMAND
    path = workdir / f"staged-{binary}.sh"
    with _Served(script.encode()) as served:
        # The query imitates a presigned URL's: & and % must survive the quoting.
        line = staged_script_command(
            url=served.url("X-Amz=a%2Fb&Sig=c"), nonce=NONCE, path=str(path)
        )
        assert len(line) < MAX_INLINE_COMMAND
        stream = run_ecs_style(line)
    assert served.requests == ["/script?X-Amz=a%2Fb&Sig=c"]
    outcome = parse_exec_output(stream, nonce=NONCE, binary=binary)
    assert outcome.status is ExecStatus.COMPLETED
    assert outcome.exit_code == 6
    assert outcome.output == b"staged " + b"x" * 10_000 + umask
    assert not path.exists()


def test_failed_download_never_starts(workdir: Path) -> None:
    path = workdir / "missing.sh"
    with _Served(b"not found", status=404) as served:
        stream = run_ecs_style(
            staged_script_command(url=served.url("a"), nonce=NONCE, path=str(path))
        )
    assert parse_exec_output(stream, nonce=NONCE).status is ExecStatus.NEVER_STARTED
    assert not path.exists()


def test_staged_path_defaults_to_a_per_nonce_file() -> None:
    line = staged_script_command(url="https://bucket.s3.amazonaws.com/k?sig=1", nonce=NONCE)
    assert f"/tmp/.ecs-sandbox-{NONCE}.sh" in shlex.split(line)[2]


# --- input validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"command": "echo \0"},
        {"command": ["echo", "a\0b"]},
        {"command": []},
        {"command": b"echo"},
        {"command": ["echo", 1]},
        {"command": "echo", "env": {"A": "x\0"}},
        {"command": "echo", "env": {"1A": "x"}},
        {"command": "echo", "env": {"A-B": "x"}},
        {"command": "echo", "env": {"A B": "x"}},
        {"command": "echo", "env": {"": "x"}},
        {"command": "echo", "cwd": "/tmp/\0"},
        {"command": "echo \ud800"},
        {"command": "echo", "nonce": "abc"},
        {"command": "echo", "nonce": "g" * 32},
        {"command": "echo", "nonce": NONCE + "'; rm -rf /"},
    ],
)
def test_unusable_inputs_are_usage_errors(kwargs: dict[str, object]) -> None:
    kwargs.setdefault("nonce", NONCE)
    with pytest.raises(UsageError):
        wrap_command(**kwargs)  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_validate_nonce_accepts_exactly_long_hex(nonce: str) -> None:
    is_hex = len(nonce) >= 16 and all(c in "0123456789abcdefABCDEF" for c in nonce)
    if is_hex:
        assert validate_nonce(nonce) == nonce
    else:
        with pytest.raises(UsageError):
            validate_nonce(nonce)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "file:///etc/passwd"},
        {"url": "http://x/\0"},
        {"url": "http://x/", "path": "relative.sh"},
        {"url": "http://x/", "nonce": "short"},
    ],
)
def test_unusable_staging_inputs_are_usage_errors(kwargs: dict[str, str]) -> None:
    kwargs.setdefault("nonce", NONCE)
    with pytest.raises(UsageError):
        staged_script_command(**kwargs)


def _argv(line: str) -> Sequence[str]:
    return shlex.split(line)


@given(
    command=st.one_of(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0")),
        st.lists(
            st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0")),
            min_size=1,
        ),
    ),
    binary=st.booleans(),
)
def test_wrapped_command_is_one_script_word(command: str | list[str], binary: bool) -> None:
    argv = _argv(wrap_command(command, nonce=NONCE, binary=binary))
    assert argv == ["sh", "-lc", exec_script(command, nonce=NONCE, binary=binary)]
