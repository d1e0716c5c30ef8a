"""Limits on what comes back: the output cap, the exec flow's check, bounded inflation,
downloads that are too large, and the configuration keys that set them."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import zlib
from typing import Any

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core import ConfigError, EcsFargateConfig
from ecs_sandbox_core._effects import (
    AcquireChannel,
    AwsCall,
    AwsResult,
    ChannelLease,
    ChannelRequest,
    ExecRun,
    ExecSession,
    Now,
    Random,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import (
    DownloadTooLargeError,
    EcsExecError,
    ExecOutputTooLargeError,
    OutputLimitError,
)
from ecs_sandbox_core._exec_flow import ExecResult, exec_flow
from ecs_sandbox_core._lifecycle import TaskHandle
from ecs_sandbox_core._limits import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_DOWNLOAD_MEMBERS,
    DEFAULT_MAX_EXEC_OUTPUT_BYTES,
    OutputCap,
    download_stream_limit,
    exceeds,
    inflated_size,
)
from ecs_sandbox_core._sandbox import SandboxContext, command_flow
from ecs_sandbox_core._tar import TarEntry, build_tar, check_archive

NONCE = "cd" * 16
TAG = f"<<ecsx-{NONCE}".encode()

# --- OutputCap and exceeds ------------------------------------------------------------------


@given(
    chunks=st.lists(st.binary(max_size=50), max_size=20),
    limit=st.none() | st.integers(0, 600),
)
def test_the_cap_keeps_exactly_one_byte_past_the_limit(
    chunks: list[bytes], limit: int | None
) -> None:
    cap = OutputCap(limit)
    kept = b"".join(cap.take(chunk) for chunk in chunks)
    whole = b"".join(chunks)
    assert kept == (whole if limit is None else whole[: limit + 1])
    assert cap.kept == len(kept)
    assert cap.exceeded == exceeds(len(whole), limit) == (limit is not None and len(whole) > limit)


def test_the_cap_refuses_nonsense_limits() -> None:
    with pytest.raises(TypeError):
        OutputCap(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OutputCap(-1)


# --- the exec flow --------------------------------------------------------------------------


SECRET = b"00112233-4455-6677-8899-aabbccddeeff"  # what the wrapper draws in the container


def framed(output: bytes, rc: int = 0) -> bytes:
    begin = TAG + b":begin:" + SECRET + b">>\n"
    return begin + output + b"\n" + TAG + f":end:{rc}:".encode() + SECRET + b">>\n"


def run_exec(result: TransportResult, limit: int | None) -> ExecResult:
    flow = exec_flow(
        task_arn="arn:task/1",
        container="main",
        command="yes",
        timeout_s=30,
        connect_timeout_s=60,
        max_output_bytes=limit,
    )
    steps: list[tuple[object, object]] = [
        (Token(nbytes=16), NONCE),
        (Now(), 0.0),
        (lambda e: isinstance(e, ExecRun) and e.max_output_bytes == limit, result),
    ]
    if not exceeds(len(result.stdout), limit):
        steps += [(Now(), 1.0), (Random(), 0.5)]
    return run_script(flow, steps)


@given(payload=st.binary(max_size=200), slack=st.integers(0, 3))
def test_output_at_the_limit_is_whole_and_past_it_is_an_error(payload: bytes, slack: int) -> None:
    stream = framed(payload)
    assert run_exec(TransportResult(stdout=stream), len(stream) + slack).output == payload
    # What the driver hands back when the command went on: the limit plus one byte.
    limit = max(1, len(stream) - 1 - slack)
    with pytest.raises(ExecOutputTooLargeError) as caught:
        run_exec(TransportResult(stdout=stream[: limit + 1], returncode=-9), limit)
    error = caught.value
    assert (error.limit, error.setting, error.exit_code) == (limit, "max_exec_output_bytes", None)
    assert isinstance(error, EcsExecError) and isinstance(error, OutputLimitError)
    assert "max_exec_output_bytes" in str(error) and "not run again" in str(error)


@pytest.mark.parametrize(("transport", "sessions"), [("aws-cli", 4), ("ssm", 0), ("ssm", 4)])
def test_commands_carry_the_configured_limit(transport: str, sessions: int) -> None:
    cfg = EcsFargateConfig(
        exec_transport=transport,
        exec_sessions_per_sandbox=sessions,
        cluster="c",
        task_definition="td",
        container_name="main",
        subnets=["s"],
        security_groups=["g"],
        max_exec_output_bytes=12_345,
    )
    handle = TaskHandle(
        task_arn="arn:task/1",
        cluster="c",
        task_definition_arn=None,
        digest=None,
        task_id="t",
        run_id="r",
        started_at=0.0,
    )
    ctx = SandboxContext(cfg=cfg, handle=handle, trial_name="x")
    flow = command_flow(ctx, "echo hi", timeout_s=30.0)
    assert next(flow) == Token(nbytes=16)
    flow.send(NONCE)
    effect = flow.send(0.0)
    if cfg.loop_sessions:  # a pooled command-loop session carries the limit
        assert isinstance(effect, AcquireChannel)
        effect = flow.send(ChannelLease(lease_id=1, fresh=False))
        assert isinstance(effect, ChannelRequest) and effect.max_output_bytes == 12_345
    elif transport == "ssm":  # ExecuteCommand first, then the session carries the limit
        assert isinstance(effect, AwsCall) and effect.operation == "execute_command"
        session = {"streamUrl": "wss://x/y", "tokenValue": "t", "sessionId": "s"}
        effect = flow.send(AwsResult(data={"session": session}))
        assert isinstance(effect, ExecSession) and effect.max_output_bytes == 12_345
    else:
        assert isinstance(effect, ExecRun) and effect.max_output_bytes == 12_345
    flow.close()


def test_exec_run_validates_its_limit() -> None:
    for bad in (0, -5, True, 1.5):
        with pytest.raises(ValueError, match="max_output_bytes"):
            ExecRun(task_arn="a", container="c", command="x", timeout_s=1, max_output_bytes=bad)  # type: ignore[arg-type]


# --- bounded inflation ----------------------------------------------------------------------


@given(
    parts=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    pad=st.integers(0, 20),
    limit=st.integers(0, 15_000),
)
def test_inflated_size_counts_concatenated_members_up_to_the_limit(
    parts: list[bytes], pad: int, limit: int
) -> None:
    data = b"".join(gzip.compress(p, mtime=0) for p in parts) + b"\0" * pad
    total = sum(map(len, parts))
    size = inflated_size(data, limit)
    assert (size > limit) == (total > limit)
    if total <= limit:
        assert size == total


def _bomb_member(zeros: int) -> bytes:
    return gzip.compress(b"\0" * zeros, compresslevel=9, mtime=0)


def test_a_gzip_bomb_is_measured_only_up_to_the_limit() -> None:
    # 4 GiB of zeros in about 4 MB: inflating all of it would take many seconds and, once
    # extracted, the disk; the measurement stops one chunk past the limit.
    bomb = _bomb_member(1 << 20) * 4096
    assert len(bomb) < 5_000_000
    size = inflated_size(bomb, 8 << 20)
    assert 8 << 20 < size <= (8 << 20) + (1 << 20)


@pytest.mark.parametrize(
    "data", [b"not gzip at all", gzip.compress(bytes(range(256)) * 40)[:-12], zlib.compress(b"x")]
)
def test_inflated_size_refuses_what_is_not_whole_gzip(data: bytes) -> None:
    with pytest.raises(EcsExecError, match="gzip"):
        inflated_size(data, 1 << 20)


def tar_bomb(file_size: int) -> bytes:
    """A gzip tar whose one member claims ``file_size`` bytes of zeros, a few KB on the wire."""
    info = tarfile.TarInfo("out/zeros")
    info.size = file_size
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    chunk = 1 << 20
    assert file_size % chunk == 0
    return gzip.compress(header, mtime=0) + _bomb_member(chunk) * (file_size // chunk)


def test_check_archive_refuses_a_bomb_before_reading_its_members() -> None:
    with pytest.raises(DownloadTooLargeError, match="max_download_bytes") as caught:
        check_archive(tar_bomb(1 << 30), max_bytes=16 << 20)
    assert (caught.value.limit, caught.value.setting) == (16 << 20, "max_download_bytes")


@given(count=st.integers(1, 40), limit=st.integers(1, 40))
def test_check_archive_counts_members(count: int, limit: int) -> None:
    archive = build_tar([TarEntry(f"out/f{i}", "file", data=b"x") for i in range(count)])
    if count > limit:
        with pytest.raises(DownloadTooLargeError, match="max_download_members"):
            check_archive(archive, max_members=limit)
    else:
        assert len(check_archive(archive, max_members=limit)) == count


@given(data=st.binary(min_size=0, max_size=200_000))
def test_the_stream_limit_covers_any_archive_within_the_byte_limit(data: bytes) -> None:
    # Random bytes do not compress: the worst case for the framed stream.
    archive = build_tar([TarEntry("f", "file", data=data)])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert tar.getmembers()
    unpacked = inflated_size(archive, 1 << 40)
    framed_stream = base64.encodebytes(archive).replace(b"\n", b"\r\n") + b"x" * 400
    assert len(framed_stream) <= download_stream_limit(unpacked)


# --- configuration --------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "cluster": "c",
    "task_definition": "td",
    "container_name": "main",
    "subnets": ["s"],
    "security_groups": ["g"],
}


def test_limits_have_sensible_defaults() -> None:
    cfg = EcsFargateConfig(**BASE)
    assert cfg.max_exec_output_bytes == DEFAULT_MAX_EXEC_OUTPUT_BYTES == 64 << 20
    assert cfg.max_download_bytes == DEFAULT_MAX_DOWNLOAD_BYTES == 1 << 30
    assert cfg.max_download_members == DEFAULT_MAX_DOWNLOAD_MEMBERS == 100_000


@pytest.mark.parametrize(
    "key", ["max_exec_output_bytes", "max_download_bytes", "max_download_members"]
)
@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, None])
def test_limits_must_be_positive_whole_numbers(key: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=key):
        EcsFargateConfig(**BASE, **{key: bad})
    assert getattr(EcsFargateConfig(**BASE, **{key: 7}), key) == 7
