"""The local SSM agent's pure parts: output chunking, Size parsing, the upgrade's SigV4 check."""

from __future__ import annotations

import itertools
import json
import time
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_drivers.local._agent_auth import check_signature
from ecs_sandbox_drivers.local._agent_faults import ChannelFaults, FaultPlan
from ecs_sandbox_drivers.local._agent_pty import READ_SIZE, agent_env, split_output
from ecs_sandbox_drivers.local._agent_wire import handshake_errors, parse_size

REPLACEMENT = "\ufffd".encode()

# --- output chunking -------------------------------------------------------------------------


def decode_unit(data: bytes, i: int) -> tuple[int, bool]:
    """Oracle for Go's DecodeRune: the shortest strict UTF-8 decode from ``i``, else 1 byte."""
    for size in (1, 2, 3, 4):
        if i + size > len(data):
            break
        try:
            data[i : i + size].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return size, True
    return 1, False


def reference_split(pending: bytes, quirk: bool) -> tuple[bytes, bytes]:
    """The Go agent's processStdoutData loop, rune by rune, with the oracle above."""
    out, i, n = bytearray(), 0, len(pending)
    while i < n:
        size, valid = decode_unit(pending, i)
        if not valid or (quirk and pending[i : i + size] == REPLACEMENT):
            if n - i < 4:
                break
            out.append(pending[i])
        else:
            out += pending[i : i + size]
        i += size
    return bytes(out), pending[i:]


# Hard inputs: text, truncated runes, lone continuation bytes, surrogates, overlongs, U+FFFD.
pieces = st.one_of(
    st.text(max_size=8).map(str.encode),
    st.sampled_from(
        [
            REPLACEMENT,
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\xc3",
            b"\x80",
            b"\xbf\xbf",
            b"\xed\xa0\x80",  # a surrogate: invalid in Go and Python alike
            b"\xc0\x80",  # overlong
            b"\xf4\x90\x80\x80",  # above U+10FFFF
            b"\xff",
        ]
    ),
    st.binary(max_size=6),
)
streams = st.lists(pieces, max_size=40).map(b"".join)


@given(streams, st.booleans())
def test_split_output_matches_the_go_loop(data: bytes, quirk: bool) -> None:
    assert split_output(data, replacement_quirk=quirk) == reference_split(data, quirk)


def run_agent(data: bytes, cuts: list[int], quirk: bool) -> tuple[list[bytes], bytes]:
    """Feed ``data`` read by read (cut at ``cuts``); the chunks sent and the tail dropped."""
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    carry, chunks = b"", []
    for start, end in itertools.pairwise(bounds):
        chunk, carry = split_output(carry + data[start:end], replacement_quirk=quirk)
        chunks.append(chunk)
    return chunks, carry


@given(streams, st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_chunks_are_the_stream_minus_a_short_tail_whatever_the_reads(
    data: bytes, cuts: list[int], quirk: bool
) -> None:
    chunks, dropped = run_agent(data, cuts, quirk)
    expected = data.replace(REPLACEMENT, b"\xef") if quirk else data
    assert len(dropped) <= 3
    sent = b"".join(chunks)
    assert sent + (dropped.replace(REPLACEMENT, b"\xef") if quirk else dropped) == expected
    assert sent == expected[: len(sent)]


@given(st.text(), st.lists(st.integers(min_value=0), max_size=12))
def test_text_is_sent_in_whole_runes(text: str, cuts: list[int]) -> None:
    data = text.replace("\ufffd", "?").encode()
    chunks, dropped = run_agent(data, cuts, quirk=True)
    for chunk in chunks:
        chunk.decode("utf-8")
    assert b"".join(chunks) + dropped == data


def test_a_full_read_can_grow_by_its_carry() -> None:
    euro = "€".encode()
    first, carry = split_output(b"xy" + euro * 340 + euro[:2])
    assert (len(first), carry) == (READ_SIZE - 2, euro[:2])
    second, carry = split_output(carry + euro[2:] + b"z" * (READ_SIZE - 1))
    assert len(second) == READ_SIZE + 2 and carry == b""


def test_the_agent_environment() -> None:
    env = agent_env({"PATH": "/bin", "TERM": "dumb"})
    assert env == {"PATH": "/bin", "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    assert agent_env({"LANG": "fr_FR.UTF-8"})["LANG"] == "fr_FR.UTF-8"


# --- Size and handshake payloads ---------------------------------------------------------------

uint32 = st.integers(min_value=0, max_value=2**32 - 1)


@given(uint32, uint32, st.sampled_from(["cols", "Cols", "COLS"]))
def test_size_payloads_are_read_as_go_reads_them(cols: int, rows: int, key: str) -> None:
    assert parse_size(json.dumps({key: cols, "rows": rows}).encode()) == (cols, rows)


@given(
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**32),
        st.floats(allow_nan=False),
        st.text(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_size_values_go_cannot_take_are_refused(value: object) -> None:
    assert parse_size(json.dumps({"cols": value, "rows": 1}).encode()) is None


def test_size_payloads_that_are_not_objects() -> None:
    assert parse_size(b"not json") is None
    assert parse_size(b"[80, 24]") is None
    assert parse_size(b"\xff") is None
    assert parse_size(b"null") == (0, 0)  # Go leaves the struct as it was
    assert parse_size(b'{"cols": null, "other": "x"}') == (0, 0)


def test_handshake_responses() -> None:
    ok = {"ProcessedClientActions": [{"ActionType": "SessionType", "ActionStatus": 1}]}
    assert handshake_errors(json.dumps(ok).encode(), kms=False) == []
    failed = {"ProcessedClientActions": [{"ActionType": "X", "ActionStatus": 3, "Error": "no"}]}
    assert handshake_errors(json.dumps(failed).encode(), kms=False) == [
        "X failed on client with status 3 error: no"
    ]
    assert handshake_errors(b"{", kms=False) is None
    assert handshake_errors(json.dumps(ok).encode(), kms=True)  # no KMS exchange here


# --- the upgrade's signature -------------------------------------------------------------------

HOST = "127.0.0.1:41234"


def signed(target: str, region: str, extra: dict[str, str]) -> dict[str, list[str]]:
    request = AWSRequest(method="GET", url=f"ws://{HOST}{target}", headers=dict(extra))
    SigV4Auth(Credentials("testing", "testing", "testing"), "ssmmessages", region).add_auth(request)
    headers = {name.lower(): [value] for name, value in request.headers.items()}
    headers["host"] = [HOST]
    return headers


def check(target: str, headers: dict[str, list[str]], **changes: object) -> str | None:
    args: dict[str, object] = {
        "method": "GET",
        "host": HOST,
        "target": target,
        "headers": headers,
        "region": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
    }
    args.update(changes)
    return check_signature(**args)  # type: ignore[arg-type]


segments = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=8)
params = st.dictionaries(
    st.text("abcdefgh-_", min_size=1, max_size=5), st.text(max_size=6), max_size=3
)
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10)


@given(segments, params, st.dictionaries(st.sampled_from(["x-trace", "x-amz-meta"]), header_values))
def test_botocore_signatures_are_accepted(
    segment: str, query: dict[str, str], extra: dict[str, str]
) -> None:
    target = "/v1/data-channel/" + quote(segment, safe="")
    if query:
        target += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    headers = signed(target, "us-east-1", extra)
    assert check(target, headers) is None
    assert check(target, headers, region="eu-west-1") is not None
    assert check(target, headers, secret_key="other") is not None
    assert check(target + ("&" if query else "?") + "x=1", headers) is not None


def test_what_the_signature_check_refuses() -> None:
    target = "/v1/data-channel/s?role=publish_subscribe"
    headers = signed(target, "us-east-1", {})
    assert check(target, headers) is None
    assert check(target, {"host": [HOST]}) == "Missing Authentication Token"
    assert "expired" in str(check(target, headers, now=time.time() + 301))
    assert "security token" in str(check(target, headers, access_key="another"))
    tampered = dict(headers, authorization=[headers["authorization"][0][:-2] + "00"])
    assert "signature" in str(check(target, tampered))
    other_service = AWSRequest(method="GET", url=f"ws://{HOST}{target}")
    SigV4Auth(Credentials("testing", "testing"), "ssm", "us-east-1").add_auth(other_service)
    wrong = {k.lower(): [v] for k, v in other_service.headers.items()} | {"host": [HOST]}
    assert "ssmmessages" in str(check(target, wrong))


# --- faults ------------------------------------------------------------------------------------


def test_fault_plans_are_reproducible() -> None:
    faults = ChannelFaults(seed=7, drop_output=0.3, duplicate_output=0.3, reorder_output=0.3)
    first, second = FaultPlan(faults), FaultPlan(faults)
    fates = [first.transmission(first=True) for _ in range(50)]
    assert fates == [second.transmission(first=True) for _ in range(50)]
    assert any(f.copies == 0 for f in fates) and any(f.copies == 2 for f in fates)


def test_byte_count_faults_fire_once() -> None:
    plan = FaultPlan(ChannelFaults(close_after_bytes=10, pause_after_bytes=5))
    assert plan.triggered(4) == []
    assert plan.triggered(6) == ["pause"]
    assert plan.triggered(20) == ["close"]
    assert plan.triggered(30) == []
