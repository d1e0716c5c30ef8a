"""Finding a call's markers: ``bytes.find`` and patterns compiled once, no pattern per nonce.

The reference is the whole marker as one regular expression per nonce and secret, as the
parser used to compile it; the search must find exactly what that finds, in generated
streams full of near-misses (other nonces, other secrets, cut markers, bad statuses).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._frames import (
    _SECRET,
    _STATUS,
    OutputStream,
    _Frame,
    _Marker,
    parse_exec_output,
)

NONCE = "0123456789abcdef" * 2
OTHER = "fedcba9876543210" * 2
SECRETS = [b"", b"1f2e-3d", b"a" * 64, b"a" * 65, b"1F2E-3D"]
STATUSES = [b"0", b"7", b"25", b"255", b"256", b"007", b"timeout", b"time", b"-1", b""]


def reference(frame: _Frame, kind: str, secret: bytes) -> re.Pattern[bytes]:
    """The marker as one pattern, as it was compiled per nonce."""
    if kind == "begin":
        return re.compile(re.escape(frame.tag + b"begin:") + b"(" + _SECRET + b")>>\n")
    lead = b"\n" if kind == "end" else b""
    name = b"end" if kind == "end" else kind.encode()
    return re.compile(
        re.escape(lead + frame.tag + name + b":") + _STATUS + re.escape(b":" + secret + b">>")
    )


def ours(frame: _Frame, kind: str, secret: bytes) -> _Marker:
    if kind == "begin":
        return frame.begin
    return frame.end(secret) if kind == "end" else frame.marker(kind.encode(), secret)


def pieces(kind: str, secret: bytes) -> st.SearchStrategy[bytes]:
    """Markers mostly right for ``kind`` and ``secret``, each part wrong now and then."""
    tags = [f"<<ecsx-{n}:".encode() for n in (NONCE, NONCE, NONCE, OTHER)]
    name = b"begin:" if kind == "begin" else kind.encode() + b":"
    marker = st.builds(
        lambda lead, tag, name, status, secret, close: (
            lead + tag + name + (status + b":" if name != b"begin:" else b"") + secret + close
        ),
        st.sampled_from([b"\n", b"\n", b""]),
        st.sampled_from(tags),
        st.sampled_from([name, name, name, b"begin:", b"end:", b"rc:"]),
        st.sampled_from(STATUSES),
        st.sampled_from([secret, secret, secret, *SECRETS]),
        st.sampled_from([b">>\n", b">>\n", b">>", b">", b"", b">>>\n"]),
    )
    noise = st.binary(max_size=12) | st.sampled_from([b"\n", b"<<", b">>", b":", b"end:"])
    return marker | noise


@settings(max_examples=400, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["begin", "end", "rc"]), cut=st.integers(0, 2000))
def test_search_and_match_find_what_the_whole_pattern_finds(
    data: st.DataObject, kind: str, cut: int
) -> None:
    secret = data.draw(st.sampled_from(SECRETS[:3] + SECRETS[4:]))
    stream = b"".join(data.draw(st.lists(pieces(kind, secret), max_size=8)))
    stream = stream[: cut % (len(stream) + 1)] if cut % 3 == 0 else stream
    frame = _Frame(NONCE)
    want, got = reference(frame, kind, secret), ours(frame, kind, secret)
    found, expected = got.search(stream), want.search(stream)
    assert (found is None) == (expected is None)
    if found is not None and expected is not None:
        assert (found.start(), found.end(), found.group(1)) == (
            expected.start(),
            expected.end(),
            expected.group(1),
        )
    for pos in range(len(stream) + 1):
        one, other = got.match(stream, pos), want.match(stream, pos)
        assert (one is None) == (other is None)
        if one is not None and other is not None:
            assert (one.end(), one.group(1)) == (other.end(), other.group(1))


def test_reading_a_frame_compiles_no_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every nonce is new, so a pattern compiled per call always missed re's cache: about
    # 80 µs each, several times per command.
    stream = f"<<ecsx-{NONCE}:begin:1f-2e>>\nout\n\n<<ecsx-{NONCE}:end:3:1f-2e>>\n".encode()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"re.compile{args!r}")

    monkeypatch.setattr(re, "compile", refuse)
    assert parse_exec_output(stream, nonce=NONCE).exit_code == 3
    shown = OutputStream(nonce=NONCE)
    assert shown.feed(stream) == b"out\n"
    assert shown.finished
