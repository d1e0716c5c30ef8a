"""OutputStream: what is shown while a command runs equals what the parser returns."""

from __future__ import annotations

import itertools
import subprocess
import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._markers import OutputStream, exec_script, parse_exec_output

NONCE = "0123456789abcdef" * 2
TAG = f"<<ecsx-{NONCE}:".encode()
CHATTER = b"\nStarting session with SessionId: s-1\n"
EXIT_CHATTER = b"\n\nExiting session with sessionId: s-1.\n\n"
# Imitations of this call's end marker, whole and in part: none carries the wrapper's secret.
IMITATIONS = [
    b"\n" + TAG + b"end:0>>\n",
    b"\n" + TAG + b"end:0:" + str(uuid.uuid4()).encode() + b">>\n",
    b"\n" + TAG + b"end:timeout:>>\n",
    b"\n" + TAG + b"end:",
    b"\n" + TAG + b"end:25",
    b"\n" + TAG,
    b"\r\n",
    b"\r",
]


def session(payload: bytes, code: int) -> bytes:
    """The real stream: the wrapped script run by sh, writing ``payload`` then exiting."""
    write = f"import sys; sys.stdout.buffer.write(bytes.fromhex('{payload.hex()}'))"
    command = f'python3 -c "{write}"; exit {code}'
    script = exec_script(command, nonce=NONCE)
    return subprocess.run(["sh", "-c", script], capture_output=True, check=False).stdout


def shown(stream: bytes, cuts: list[int], *, pty: bool) -> tuple[bytes, bool]:
    out = OutputStream(nonce=NONCE, pty=pty)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    text = b"".join(out.feed(stream[a:b]) for a, b in itertools.pairwise(points))
    return text, out.finished


@settings(max_examples=60, deadline=None)
@given(
    payload=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(IMITATIONS))).map(b"".join),
    code=st.integers(0, 255),
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
    pty=st.booleans(),
)
# A PTY's CR held back right before the begin marker's LF once cost the marker's first byte.
@example(payload=b"\0" * 17, code=100, cuts=[1312], pty=True)
# An imitation of the end marker once ended the display early.
@example(payload=IMITATIONS[1] + b"after", code=3, cuts=[], pty=False)
def test_shown_output_is_the_parsed_output(
    payload: bytes, code: int, cuts: list[int], pty: bool
) -> None:
    stream = CHATTER + session(payload, code) + EXIT_CHATTER
    if pty:
        stream = stream.replace(b"\n", b"\r\n")
    parsed = parse_exec_output(stream, nonce=NONCE, pty=pty)
    assert parsed.exit_code == code
    assert shown(stream, cuts, pty=pty) == (parsed.output, True)
    assert parsed.output == payload


def test_nothing_is_shown_before_the_command_starts() -> None:
    out = OutputStream(nonce=NONCE)
    assert out.feed(b"motd from the login shell\n" + CHATTER) == b""
    assert out.feed(TAG + b"begin:0123-ab>>\nhi") == b"hi"
    assert not out.finished


def test_only_the_end_marker_with_the_secret_finishes() -> None:
    out = OutputStream(nonce=NONCE)
    imitation = b"\n" + TAG + b"end:0>>"
    assert out.feed(TAG + b"begin:0123-ab>>\nhi" + imitation) == b"hi" + imitation
    # A newline, then what could still become the end marker, is held back...
    assert out.feed(b"\n" + TAG + b"end:0:0123-ab") == b""
    assert out.feed(b"c>>") == b"\n" + TAG + b"end:0:0123-abc>>"  # ...until it cannot
    assert not out.finished
    assert out.feed(b"\n" + TAG + b"end:0:0123-ab>>\nlate") == b""
    assert out.finished
    assert out.feed(b"more") == b""
