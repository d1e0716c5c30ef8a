"""The recorder script itself, fed chunk by chunk in each shell a container may have as sh.

The writer sends one chunk, then waits until the recorder has noted it in ``idx`` before
sending the next, so every chunk is one turn of the recorder's loop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _shells import GUARD_S, SHELLS

from ecs_sandbox_core._recording import RECORDER, build_asciicast, parse_index

CHUNKS = [
    b"echo hi\r\n",
    b"caf\xc3",  # a character split between two chunks
    b"\xa9\r\n\x00nul\x00\r\n",
    "😀 \x1b[1mbold\x1b[0m\r\n".encode(),
    b"\xff not utf-8\r\n",
]


def record(
    tmp_path: Path,
    shell: str,
    chunks: list[bytes],
    *,
    script: str = RECORDER,
    prefix: list[str] | None = None,
) -> tuple[str, bytes, Path]:
    """Run the recorder on ``chunks``; return idx, raw and the strace output's path."""
    (tmp_path / "rec.sh").write_text(script)
    (tmp_path / "raw").write_bytes(b"")
    (tmp_path / "idx").write_text("s 1796000000.25 80 24\n")
    trace = tmp_path / "trace"
    argv = [*(prefix or []), *SHELLS[shell], str(tmp_path / "rec.sh")]
    argv = [part.replace("{trace}", str(trace)) for part in argv]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env={**os.environ, "PATH": _path()})
    assert proc.stdin is not None
    deadline = time.monotonic() + GUARD_S  # a guard against hanging, not a timing
    for n, chunk in enumerate(chunks):
        proc.stdin.write(chunk)
        proc.stdin.flush()
        while _chunks_noted(tmp_path) <= n:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
    proc.stdin.close()
    assert proc.wait(timeout=GUARD_S) == 0
    return (tmp_path / "idx").read_text(), (tmp_path / "raw").read_bytes(), trace


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def _chunks_noted(directory: Path) -> int:
    return len(re.findall(r"^[ou] ", (directory / "idx").read_text(), re.M))


def cast_text(idx: str, raw: bytes) -> str:
    lines = build_asciicast(idx, raw).splitlines()
    return "".join(json.loads(line)[2] for line in lines[1:])


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_recorder_keeps_every_byte_and_times_chunks_by_uptime(
    tmp_path: Path, shell: str
) -> None:
    idx, raw, _ = record(tmp_path, shell, CHUNKS)
    assert raw == b"".join(CHUNKS)
    lines = idx.splitlines()
    assert lines[1].startswith("c ")  # the clock anchor, then chunks timed by /proc/uptime
    assert [line.split()[0] for line in lines[2:]] == ["u"] * len(CHUNKS)
    entries = parse_index(idx)
    sizes = [e.size for e in entries[1:]]
    assert sizes == [sum(map(len, CHUNKS[: n + 1])) for n in range(len(CHUNKS))]
    times = [e.time for e in entries]
    assert times[1:] == sorted(times[1:])
    assert cast_text(idx, raw) == b"".join(CHUNKS).decode("utf-8", "replace")


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_without_uptime_or_a_byte_count_from_dd_the_recorder_falls_back(
    tmp_path: Path, shell: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """busybox's dd may report records only (then ``wc -c`` counts); without a readable
    /proc/uptime, ``date`` times each chunk."""
    if shutil.which("busybox") is None:
        pytest.skip("busybox is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dd").symlink_to(shutil.which("busybox") or "")
    monkeypatch.setenv("PATH", f"{bin_dir}:{_path()}")
    probe = subprocess.run(["dd"], input=b"x", capture_output=True, check=True)
    assert b"bytes" not in probe.stderr  # a dd without the byte count
    script = RECORDER.replace("/proc/uptime", str(tmp_path / "no-uptime"))
    idx, raw, _ = record(tmp_path, shell, CHUNKS, script=script)
    assert raw == b"".join(CHUNKS)
    assert [line.split()[0] for line in idx.splitlines()[1:]] == ["o"] * len(CHUNKS)
    sizes = [e.size for e in parse_index(idx)[1:]]
    assert sizes == [sum(map(len, CHUNKS[: n + 1])) for n in range(len(CHUNKS))]
    assert cast_text(idx, raw) == b"".join(CHUNKS).decode("utf-8", "replace")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_chunk_runs_one_program(tmp_path: Path, shell: str) -> None:
    """Each chunk costs one program, ``dd``: no ``wc`` or ``date`` per chunk (the recorder
    runs about twice per agent step); those run once, at the start."""
    chunks = [b"%d\r\n" % n for n in range(8)]
    strace = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", "{trace}"]
    _, raw, trace = record(tmp_path, shell, chunks, prefix=strace)
    assert raw == b"".join(chunks)
    programs = re.findall(r'execve\("([^"]+)".* = 0$', trace.read_text(), re.M)
    ran = [Path(p).name for p in programs[1:]]  # after the shell itself
    assert ran.count("dd") == len(chunks) + 1  # and the read that finds the pane closed
    assert sorted(p for p in ran if p != "dd") == ["date", "dirname", "wc"]
