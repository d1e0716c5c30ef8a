"""Recordings: the asciicast builder (properties) and the recorder against a real tmux."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from _tmux_server import private_server
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._errors import SessionError
from ecs_sandbox_core._recording import (
    build_asciicast,
    parse_index,
    recording_from_archive,
    snapshot_script,
)
from ecs_sandbox_core._tmux import plan_keys, send_script, start_script

START = 1_796_000_000.5

chunks = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=40),
        st.text(min_size=1, max_size=10).map(str.encode),
        st.sampled_from([b"\xe4", b"\xb8\xad", "😀".encode()[:2], "😀".encode()[2:], b"\r\n"]),
    ),
    max_size=25,
)
steps = st.lists(st.floats(min_value=-0.5, max_value=3.0, allow_nan=False), max_size=25)


UPTIME = 4321.5


def index_for(
    pieces: list[bytes], gaps: list[float], resize_at: int | None, *, uptime: bool = False
) -> str:
    """The index the recorder writes: chunk times from date (o lines) or from /proc/uptime
    anchored to the wall clock at the start (c, then u lines)."""
    lines = [f"s {START:.9f} 80 24"]
    if uptime:
        lines.append(f"c {START:.9f} {UPTIME:.2f}")
    size, now = 0, START
    for n, piece in enumerate(pieces):
        now += gaps[n % len(gaps)] if gaps else 0.0
        size += len(piece)
        if uptime:
            lines.append(f"u {UPTIME + now - START:.2f} {size}")
        else:
            lines.append(f"o {now:.9f} {size}")
        if resize_at == n:
            lines.append(f"r {now:.9f} 120 40")
    return "\n".join(lines) + "\n"


def events(cast: str) -> tuple[dict[str, object], list[list[object]]]:
    header, *rest = cast.removesuffix("\n").split("\n")
    assert all(len(line.splitlines()) == 1 for line in (header, *rest))
    return json.loads(header), [json.loads(line) for line in rest]


@given(chunks, steps, st.one_of(st.none(), st.integers(0, 30)), st.booleans())
def test_the_cast_holds_every_byte_in_order_with_times_that_never_go_back(
    pieces: list[bytes], gaps: list[float], resize_at: int | None, uptime: bool
) -> None:
    raw = b"".join(pieces)
    cast = build_asciicast(index_for(pieces, gaps, resize_at, uptime=uptime), raw)
    assert cast.endswith("\n")
    header, evs = events(cast)
    assert header == {
        "version": 2,
        "width": 80,
        "height": 24,
        "timestamp": int(START),
        "env": {"TERM": "tmux-256color"},
    }
    times = [e[0] for e in evs]
    assert all(isinstance(t, float | int) and t >= 0 for t in times)
    assert times == sorted(times)
    assert all(e[1] in ("o", "r") and isinstance(e[2], str) for e in evs)
    # A stream decode: a character split between chunks is whole in the later event.
    assert "".join(str(e[2]) for e in evs if e[1] == "o") == raw.decode("utf-8", "replace")
    resizes = [e[2] for e in evs if e[1] == "r"]
    assert resizes == (["120x40"] if resize_at is not None and resize_at < len(pieces) else [])


@given(chunks, st.booleans(), st.sampled_from(["o 17999", "o 1799999999.5 1", "u 4", "u 1.0 9"]))
def test_bytes_past_the_index_wait_for_the_next_download(
    pieces: list[bytes], uptime: bool, torn: str
) -> None:
    raw = b"".join(pieces)
    index = index_for(pieces[:-1], [0.1], None, uptime=uptime)
    # The recorder writes each line with its newline: a last line without one is being
    # written, even when what has arrived of it looks whole (a size missing digits).
    _, evs = events(build_asciicast(index + torn, raw))
    shown = "".join(str(e[2]) for e in evs)
    assert shown == b"".join(pieces[:-1]).decode("utf-8", "replace")


@given(
    st.integers(0, 2_000_000_000),
    st.integers(0, 999_999_999),
    st.integers(0, 10**9),
    st.lists(st.integers(0, 10**6), max_size=10),
)
def test_uptime_chunks_are_timed_from_the_wall_clock_anchor(
    secs: int, nanos: int, up: int, deltas: list[int]
) -> None:
    """A u line's time is the anchor's wall-clock time plus the uptime since the anchor
    (uptimes in hundredths of a second, as /proc/uptime has them)."""
    lines = [f"s {secs}.{nanos:09d} 80 24", f"c {secs}.{nanos:09d} {up // 100}.{up % 100:02d}"]
    tick = up
    for n, delta in enumerate(deltas):
        tick += delta
        lines.append(f"u {tick // 100}.{tick % 100:02d} {n + 1}")
    entries = parse_index("\n".join(lines) + "\n")
    start = secs + nanos / 1e9
    assert [e.kind for e in entries] == ["s"] + ["o"] * len(deltas)
    assert [e.size for e in entries[1:]] == list(range(1, len(deltas) + 1))
    elapsed = [e.time - start for e in entries[1:]]
    expected = [(sum(deltas[: n + 1])) / 100 for n in range(len(deltas))]
    assert elapsed == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "index",
    [
        "",
        "o 1.0 5\n",
        "s 1.0 80\n",
        "s 1.0 80 24\nx 2.0 5\no 3.0 6\n",
        "s 1.0 80 24\nr 2.0 5\n\n",
        "s 1.0 80 24\nu 2.0 5\n",  # output timed by uptime before the clock anchor
        "s 1.0 80 24\nc 1.0\nu 2.0 5\n",
        "s 1.0 80 24\nc 1.0 2.0\nu 2.0x 5\n",
    ],
)
def test_malformed_indexes_are_refused(index: str) -> None:
    with pytest.raises(SessionError):
        parse_index(index)


def test_whole_seconds_where_date_has_no_nanoseconds() -> None:
    entries = parse_index("s 100.%N 80 24\no 101.%N 3\no 102.25 4\n")
    assert [e.time for e in entries] == [100.0, 101.0, 102.25]


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def test_a_downloaded_snapshot_becomes_a_cast() -> None:
    idx = b"s 10.0 80 24\no 10.5 5\n"
    cast = recording_from_archive(tar_of({"snap/idx": idx, "snap/raw": b"hello"}))
    assert events(cast)[1] == [[0.5, "o", "hello"]]
    with pytest.raises(SessionError, match="lacks"):
        recording_from_archive(tar_of({"snap/idx": idx}))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_real_session_is_recorded_from_its_start() -> None:
    with private_server() as srv:
        assert srv.sh(start_script("rec", width=90, height=25)).returncode == 0
        for keys in ("echo hello-$((6*7))\n", "printf 'caf\\303\\251\\n'\n", "seq 1 3\n"):
            proc = srv.sh(send_script("rec", plan_keys(keys, block=True), wait_timeout_s=20))
            assert proc.returncode == 0, proc.stderr
        proc = srv.sh(snapshot_script("rec"))
        assert proc.returncode == 0, proc.stderr
        snap = Path(proc.stdout.strip())
        assert snap == srv.root / ".ecs-sbx-rec.rec.snap"  # in $TMPDIR, gone with the server
        index = (snap / "idx").read_text()
        cast = build_asciicast(index, (snap / "raw").read_bytes())
    # The pane's sh anchored /proc/uptime to the wall clock and timed its chunks by it.
    assert index.split("\n")[1].startswith("c ") and "\nu " in index
    header, evs = events(cast)
    assert (header["version"], header["width"], header["height"]) == (2, 90, 25)
    assert [e[0] for e in evs] == sorted(e[0] for e in evs)
    output = "".join(str(e[2]) for e in evs if e[1] == "o")
    assert "echo hello-$((6*7))" in output  # what was typed, echoed
    assert "hello-42\r\n" in output
    assert "café" in output
    assert "1\r\n2\r\n3\r\n" in output
