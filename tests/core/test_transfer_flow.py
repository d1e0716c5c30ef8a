"""Transfer flows: scripted effect by effect, then run end to end against a real shell."""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import logging
import shlex
import subprocess
import tarfile
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _script import run_script
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import (
    AwsCall,
    AwsError,
    AwsResult,
    ExecRun,
    Log,
    Now,
    Presign,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ecs_sandbox_core._errors import (
    DownloadTooLargeError,
    EcsExecError,
    S3StagingError,
    UnsafeArchiveError,
    UsageError,
)
from ecs_sandbox_core._limits import download_stream_limit
from ecs_sandbox_core._tar import TarEntry, build_tar
from ecs_sandbox_core._transfer_flow import (
    delete_object_flow,
    download_flow,
    stage_object_flow,
    staging_key,
    upload_flow,
)

TOKEN = "ab" * 8
NONCE = "cd" * 16
SECRET = "X-Amz-Signature=s3cr3t"
ARCHIVE = build_tar([TarEntry("f.txt", "file", data=b"hi")])


def url_for(key: str) -> str:
    return f"https://bucket.s3.amazonaws.com/{key}?X-Amz-Credential=AKIA&{SECRET}"


def config(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "cluster": "c",
        "task_definition": "td",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        "s3_bucket": "stage-bucket",
        "s3_prefix": "pre/fix",
        # These scripts answer ExecRun effects; the native round trip has its own tests.
        "exec_transport": "aws-cli",
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


FRAME_SECRET = b"0f0e0d0c-0b0a-0908-0706-050403020100"


def framed(rc: int, output: bytes, *, binary: bool = False) -> TransportResult:
    """The session stream of a completed wrapped command (see _markers)."""
    tag = f"<<ecsx-{NONCE}".encode()
    if binary:
        status = tag + f":rc:{rc}:".encode() + FRAME_SECRET + b">>"
        end = b"\n" + tag + b":end:0:" + FRAME_SECRET + b">>\n"
        body = base64.encodebytes(output) + status + end
    else:
        body = output + b"\n" + tag + f":end:{rc}:".encode() + FRAME_SECRET + b">>\n"
    return TransportResult(stdout=tag + b":begin:" + FRAME_SECRET + b">>\n" + body)


def put(key: str) -> Callable[[object], bool]:
    def is_put(effect: object) -> bool:
        return (
            isinstance(effect, AwsCall)
            and effect.operation == "put_object"
            and effect.params["Key"] == key
            and effect.api_group == "s3"
        )

    is_put.__name__ = f"put_object({key})"
    return is_put


def delete(key: str) -> AwsCall:
    return AwsCall(
        service="s3",
        operation="delete_object",
        params={"Bucket": "stage-bucket", "Key": key},
        api_group="s3",
    )


ARCHIVE_KEY = f"pre/fix/run-1/task-1/{TOKEN}-upload.tar.gz"
SCRIPT_KEY = f"pre/fix/run-1/task-1/{TOKEN}-extract.sh"
OK = AwsResult()


def upload(**overrides: Any) -> Generator[Any, Any, None]:
    values: dict[str, Any] = {
        "task_arn": "arn:task/1",
        "run_id": "run-1",
        "task_id": "task-1",
        "archive": ARCHIVE,
        "dest_dir": "/app",
        "pty": False,
    }
    values.update(overrides)
    return upload_flow(config(), **values)


def upload_steps_until_exec() -> list[tuple[object, object]]:
    """Stage the archive, up to the exec itself (the command, extractor included, is inline)."""
    return [
        (Token(nbytes=8), TOKEN),
        (put(ARCHIVE_KEY), OK),
        (Presign(bucket="stage-bucket", key=ARCHIVE_KEY, expires_s=3600), url_for(ARCHIVE_KEY)),
        (Log, None),
        (Token(nbytes=16), NONCE),
        (Now(), 0.0),
    ]


def is_exec(effect: object) -> bool:
    return isinstance(effect, ExecRun) and effect.task_arn == "arn:task/1"


# --- upload, scripted -----------------------------------------------------------------------


def test_upload_success_deletes_every_staged_object() -> None:
    run_script(
        upload(),
        [
            *upload_steps_until_exec(),
            (is_exec, framed(0, b"")),
            (Now(), 1.0),
            (Random(), 0.5),
            (delete(ARCHIVE_KEY), OK),
            (Log, None),
        ],
    )


def test_a_command_too_long_to_inline_is_staged_and_deleted_too() -> None:
    long_url = url_for(ARCHIVE_KEY) + "&X-Amz-Security-Token=" + "t" * 4000
    steps = upload_steps_until_exec()
    steps[2] = (steps[2][0], long_url)
    run_script(
        upload(),
        [
            *steps[:-1],
            (put(SCRIPT_KEY), OK),
            (Presign(bucket="stage-bucket", key=SCRIPT_KEY, expires_s=3600), url_for(SCRIPT_KEY)),
            (Log, None),
            (Now(), 0.0),
            (is_exec, framed(0, b"")),
            (Now(), 1.0),
            (Random(), 0.5),
            (delete(ARCHIVE_KEY), OK),
            (delete(SCRIPT_KEY), OK),
            (Log, None),
        ],
    )


def test_upload_command_fetches_extracts_and_removes_the_archive() -> None:
    staged: dict[str, bytes] = {}
    commands: list[str] = []

    def keep(effect: object) -> bool:
        if isinstance(effect, AwsCall) and effect.operation == "put_object":
            staged[effect.params["Key"]] = effect.params["Body"]
        return True

    def exec_kept(effect: object) -> bool:
        if isinstance(effect, ExecRun):
            commands.append(effect.command)
        return is_exec(effect)

    steps = upload_steps_until_exec()
    steps[1] = (keep, OK)
    run_script(
        upload(),
        [
            *steps,
            (exec_kept, framed(0, b"")),
            (Now(), 1.0),
            (Random(), 0.5),
            (AwsCall, OK),
            (Log, None),
        ],
    )
    assert staged == {ARCHIVE_KEY: ARCHIVE}
    script = shlex.split(commands[0])[-1]  # sh -lc '<script>'
    assert url_for(ARCHIVE_KEY) in script and "/app" in script and "rm -f" in script


def test_extract_refusal_still_deletes_and_raises_unsafe_archive_error() -> None:
    output = b"unsafe archive member: '../x': '..' component in name"
    with pytest.raises(UnsafeArchiveError) as info:
        run_script(
            upload(),
            [
                *upload_steps_until_exec(),
                (is_exec, framed(3, output)),
                (Now(), 1.0),
                (Random(), 0.5),
                (delete(ARCHIVE_KEY), OK),
            ],
        )
    assert info.value.message == output.decode()


def test_conflict_is_a_usage_error() -> None:
    output = b"archive conflicts with destination: 'x': exists as a directory"
    with pytest.raises(UsageError, match="exists as a directory") as info:
        run_script(
            upload(),
            [
                *upload_steps_until_exec(),
                (is_exec, framed(4, output)),
                (Now(), 1.0),
                (Random(), 0.5),
                (delete(ARCHIVE_KEY), OK),
            ],
        )
    assert not isinstance(info.value, UnsafeArchiveError)


def test_failure_output_is_scrubbed_of_the_url() -> None:
    echoed = f"curl: failed {url_for(ARCHIVE_KEY)}\nother {SECRET}&x=1".encode()
    with pytest.raises(EcsExecError) as info:
        run_script(
            upload(),
            [
                *upload_steps_until_exec(),
                (is_exec, framed(5, echoed)),
                (Now(), 1.0),
                (Random(), 0.5),
                (delete(ARCHIVE_KEY), OK),
            ],
        )
    assert info.value.exit_code == 5
    assert "s3cr3t" not in str(info.value) and "AKIA" not in str(info.value)
    assert "<presigned URL>" in str(info.value)


def test_exception_during_exec_still_deletes() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        run_script(
            upload(),
            [
                *upload_steps_until_exec(),
                (is_exec, Boom()),
                (delete(ARCHIVE_KEY), OK),
            ],
        )


def test_put_failure_raises_and_leaves_nothing_to_delete() -> None:
    denied = AwsResult(error=AwsError(code="AccessDenied", message="no", http_status=403))
    with pytest.raises(S3StagingError, match="AccessDenied") as info:
        run_script(upload(), [(Token(nbytes=8), TOKEN), (put(ARCHIVE_KEY), denied)])
    assert info.value.remedy


def test_upload_needs_a_bucket_and_an_absolute_destination() -> None:
    with pytest.raises(UsageError, match="s3_bucket"):
        next(
            upload_flow(
                config(s3_bucket=None),
                task_arn="t",
                run_id="r",
                task_id="t",
                archive=b"",
                dest_dir="/a",
                pty=False,
            )
        )
    with pytest.raises(UsageError, match="absolute"):
        next(upload(dest_dir="relative/dir"))


def drive(
    flow: Generator[Any, Any, Any], answer: Callable[[object], object]
) -> tuple[list[object], object]:
    """Run a flow with a responder; return its effects and its result or exception."""
    effects: list[object] = []
    value: object = None
    try:
        effect = next(flow)
        while True:
            effects.append(effect)
            reply = answer(effect)
            effect = flow.throw(reply) if isinstance(reply, BaseException) else flow.send(reply)
    except StopIteration as stop:
        value = stop.value
    except Exception as exc:
        value = exc
    return effects, value


@pytest.mark.parametrize("exit_code", [0, 1, 3, 4])
def test_url_never_reaches_logs_or_errors(exit_code: int) -> None:
    urls: list[str] = []

    def answer(effect: object) -> object:
        if isinstance(effect, Token):
            return "ef" * effect.nbytes
        if isinstance(effect, Presign):
            urls.append(url_for(effect.key))
            return urls[-1]
        if isinstance(effect, ExecRun):
            nonce = "ef" * 16
            tag = f"<<ecsx-{nonce}".encode()
            body = f"unsafe archive member: 'x': why {urls[0]}".encode()
            begin = tag + b":begin:" + FRAME_SECRET + b">>\n"
            end = f":end:{exit_code}:".encode() + FRAME_SECRET + b">>\n"
            return TransportResult(stdout=begin + body + b"\n" + tag + end)
        if isinstance(effect, (Now, Random)):
            return 0.0
        return AwsResult() if isinstance(effect, AwsCall) else None

    effects, outcome = drive(upload(), answer)
    assert len(urls) == 1  # the archive; the command itself is inline
    texts = [e.message % e.args for e in effects if isinstance(e, Log)]
    texts += [repr(e.args) for e in effects if isinstance(e, Log)]
    texts.append(str(outcome))
    for text in texts:
        assert "s3cr3t" not in text and "X-Amz" not in text, text
    deletes = [e for e in effects if isinstance(e, AwsCall) and e.operation == "delete_object"]
    puts = [e for e in effects if isinstance(e, AwsCall) and e.operation == "put_object"]
    assert sorted(d.params["Key"] for d in deletes) == sorted(p.params["Key"] for p in puts)


# --- stage and delete -----------------------------------------------------------------------


def test_presign_failure_removes_the_object() -> None:
    class SignerBroke(Exception):
        pass

    with pytest.raises(SignerBroke):
        run_script(
            stage_object_flow(bucket="stage-bucket", key="k", body=b"x"),
            [(put("k"), OK), (Presign, SignerBroke()), (delete("k"), OK)],
        )


def test_stage_object_returns_the_url_and_logs_only_the_key() -> None:
    effects, url = drive(
        stage_object_flow(bucket="stage-bucket", key="k", body=b"xyz", expires_s=60),
        lambda e: (
            url_for("k")
            if isinstance(e, Presign)
            else (AwsResult() if isinstance(e, AwsCall) else None)
        ),
    )
    assert url == url_for("k")
    assert effects[1] == Presign(bucket="stage-bucket", key="k", expires_s=60)
    (log,) = [e for e in effects if isinstance(e, Log)]
    assert url_for("k") not in log.message % log.args


@pytest.mark.parametrize("bad", [0, 7 * 24 * 3600 + 1, True])
def test_stage_object_rejects_bad_expiry(bad: Any) -> None:
    with pytest.raises(UsageError):
        next(stage_object_flow(bucket="b", key="k", body=b"", expires_s=bad))


def test_delete_failure_is_logged_not_raised() -> None:
    failed = AwsResult(error=AwsError(code="InternalError", message="later"))
    run_script(
        delete_object_flow(bucket="stage-bucket", key="k"),
        [
            (delete("k"), failed),
            (lambda e: isinstance(e, Log) and e.level == logging.WARNING, None),
        ],
    )


# --- staging_key ----------------------------------------------------------------------------


@given(
    st.text(max_size=20),
    st.text(max_size=20),
    st.text(max_size=20),
    st.text(min_size=1, max_size=10),
)
def test_staging_key_stays_under_the_prefix(
    run_id: str, task_id: str, token: str, suffix: str
) -> None:
    key = staging_key(config(), run_id=run_id, task_id=task_id, token=token, suffix=suffix)
    parts = key.split("/")
    assert parts[:2] == ["pre", "fix"] and len(parts) == 5
    for part in parts:
        assert part and part not in (".", "..")
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in part)


def test_staging_key_example() -> None:
    key = staging_key(config(s3_prefix=""), run_id="r/1", task_id="..", token="ab", suffix="x.tgz")
    assert key == "r_1/__/ab-x.tgz"


# --- download, scripted ---------------------------------------------------------------------


def download() -> Generator[Any, Any, bytes]:
    return download_flow(
        task_arn="arn:task/1",
        container="main",
        path="/app/out",
        timeout_s=30,
        connect_timeout_s=60,
        pty=True,
    )


def download_steps(result: TransportResult) -> list[tuple[object, object]]:
    def packs(effect: object) -> bool:
        return is_exec(effect) and "/app/out" in effect.command and "base64" in effect.command  # type: ignore[attr-defined]

    return [(Token(nbytes=16), NONCE), (Now(), 0.0), (packs, result), (Now(), 1.0), (Random(), 0.5)]


def test_download_returns_a_checked_archive() -> None:
    archive = build_tar([TarEntry("out/f", "file", data=b"\0\xff")])
    assert (
        run_script(download(), [*download_steps(framed(0, archive, binary=True)), (Log, None)])
        == archive
    )


def test_download_of_a_missing_path() -> None:
    with pytest.raises(UsageError, match="no such path in the sandbox"):
        run_script(download(), download_steps(framed(2, b"no such path: /app/out\n", binary=True)))


def test_download_refuses_a_hostile_archive() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("../escape"), io.BytesIO(b""))
    with pytest.raises(UnsafeArchiveError, match="escape"):
        run_script(download(), download_steps(framed(0, buf.getvalue(), binary=True)))


def test_download_other_failures_are_exec_errors() -> None:
    with pytest.raises(EcsExecError, match="exit code 1") as info:
        run_script(download(), download_steps(framed(1, b"Traceback: boom", binary=True)))
    assert info.value.exit_code == 1


# --- end to end: the real exec flow, a real shell and a local "S3" ----------------------------


class Bucket(http.server.BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.objects.get(self.path.split("?")[0].lstrip("/"))
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_s3() -> Iterator[tuple[dict[str, bytes], int]]:
    objects: dict[str, bytes] = {}
    handler = type("Handler", (Bucket,), {"objects": objects})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield objects, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def local_driver(objects: dict[str, bytes], port: int) -> Callable[[object], object]:
    counter = iter(range(1, 1000))

    def answer(effect: object) -> object:
        if isinstance(effect, Token):
            return f"{next(counter):0{2 * effect.nbytes}x}"
        if isinstance(effect, AwsCall):
            key = effect.params["Key"]
            if effect.operation == "put_object":
                objects[key] = effect.params["Body"]
            else:
                objects.pop(key, None)
            return AwsResult()
        if isinstance(effect, Presign):
            return f"http://127.0.0.1:{port}/{effect.key}?{SECRET}"
        if isinstance(effect, ExecRun):
            # ECS Exec splits the command shell-style and runs it without a shell.
            done = subprocess.run(
                shlex.split(effect.command), capture_output=True, timeout=60, check=False
            )
            return TransportResult(
                stdout=done.stdout, stderr=done.stderr, returncode=done.returncode
            )
        if isinstance(effect, (Now, Random)):
            return 0.0
        assert isinstance(effect, (Log, Sleep))
        return None

    return answer


def test_upload_then_download_round_trip(
    local_s3: tuple[dict[str, bytes], int], tmp_path: Path
) -> None:
    objects, port = local_s3
    entries = [
        TarEntry("proj/bin/tool", "file", data=bytes(range(256)), mode=0o755),
        TarEntry("proj/README", "file", data=b"read me\n"),
        TarEntry("proj/link", "symlink", target="README"),
    ]
    answer = local_driver(objects, port)
    effects, outcome = drive(
        upload(archive=build_tar(entries), dest_dir=str(tmp_path / "dest")), answer
    )
    assert outcome is None, outcome
    assert not [e for e in effects if isinstance(e, Log) and "s3cr3t" in e.message % e.args]
    assert objects == {}  # every staged object was deleted
    assert (tmp_path / "dest/proj/bin/tool").read_bytes() == bytes(range(256))
    assert (tmp_path / "dest/proj/bin/tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "dest/proj/link").readlink() == Path("README")
    assert not list(Path("/tmp").glob(".ecs-sandbox-upload-*"))

    flow = download_flow(
        task_arn="arn:task/1",
        container="main",
        path=str(tmp_path / "dest/proj"),
        timeout_s=30,
        connect_timeout_s=60,
        pty=False,
    )
    _, data = drive(flow, answer)
    assert isinstance(data, bytes), data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name: m for m in tar.getmembers()}
        assert set(names) == {"proj", "proj/bin", "proj/bin/tool", "proj/README", "proj/link"}
        tool = tar.extractfile(names["proj/bin/tool"])
        assert tool is not None and tool.read() == bytes(range(256))


def test_hostile_upload_is_refused_in_the_shell(
    local_s3: tuple[dict[str, bytes], int], tmp_path: Path
) -> None:
    objects, port = local_s3
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
    _, outcome = drive(
        upload(archive=buf.getvalue(), dest_dir=str(tmp_path / "dest")), local_driver(objects, port)
    )
    assert isinstance(outcome, UnsafeArchiveError)
    assert str(outcome).startswith("unsafe archive member: 'l': absolute link target")
    assert objects == {}
    assert not (tmp_path / "dest").exists()


def test_missing_download_path_end_to_end(
    local_s3: tuple[dict[str, bytes], int], tmp_path: Path
) -> None:
    objects, port = local_s3
    flow = download_flow(
        task_arn="arn:task/1",
        container="main",
        path=str(tmp_path / "nope"),
        timeout_s=30,
        connect_timeout_s=60,
        pty=False,
    )
    _, outcome = drive(flow, local_driver(objects, port))
    assert isinstance(outcome, UsageError) and "no such path in the sandbox" in str(outcome)


# --- limits and brief errors ------------------------------------------------------------------


def limited_download(max_bytes: int, max_members: int = 100) -> Generator[Any, Any, bytes]:
    return download_flow(
        task_arn="arn:task/1",
        container="main",
        path="/app/out",
        timeout_s=30,
        connect_timeout_s=60,
        pty=True,
        max_bytes=max_bytes,
        max_members=max_members,
    )


def limited_steps(result: TransportResult, max_bytes: int, max_members: int = 100) -> list[Any]:
    def packs_within_limits(effect: object) -> bool:
        return (
            isinstance(effect, ExecRun)
            and effect.max_output_bytes == download_stream_limit(max_bytes)
            and f" /app/out {max_bytes} {max_members}" in effect.command
        )

    steps: list[Any] = [(Token(nbytes=16), NONCE), (Now(), 0.0), (packs_within_limits, result)]
    if len(result.stdout) <= download_stream_limit(max_bytes):
        steps += [(Now(), 1.0), (Random(), 0.5)]
    return steps


def test_download_carries_its_limits_and_returns_an_archive_within_them() -> None:
    archive = build_tar([TarEntry("out/f", "file", data=b"x" * 5000)])
    steps = [*limited_steps(framed(0, archive, binary=True), 20_000), (Log, None)]
    assert run_script(limited_download(20_000), steps) == archive


def test_a_download_stream_past_its_limit_is_too_large() -> None:
    limit = download_stream_limit(1000)
    over = TransportResult(stdout=b"A" * (limit + 1), returncode=-9)
    with pytest.raises(DownloadTooLargeError, match="max_download_bytes") as caught:
        run_script(limited_download(1000), limited_steps(over, 1000))
    assert (caught.value.limit, caught.value.setting) == (1000, "max_download_bytes")


def test_a_gzip_bomb_from_the_sandbox_is_refused_before_it_is_unpacked() -> None:
    info = tarfile.TarInfo("out/zeros")
    info.size = 1 << 30
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    bomb = gzip.compress(header) + gzip.compress(b"\0" * (1 << 20), 9) * 1024  # 1 GiB unpacked
    assert len(bomb) < 2_000_000
    with pytest.raises(DownloadTooLargeError, match="unpacks to more than 4194304 bytes"):
        run_script(limited_download(4 << 20), limited_steps(framed(0, bomb, binary=True), 4 << 20))


def test_too_many_members_from_the_sandbox_are_refused() -> None:
    archive = build_tar([TarEntry(f"out/{i}", "file") for i in range(20)])
    with pytest.raises(DownloadTooLargeError, match="max_download_members"):
        run_script(
            limited_download(1 << 20, 10),
            limited_steps(framed(0, archive, binary=True), 1 << 20, 10),
        )


@pytest.mark.parametrize(
    ("said", "setting", "limit"),
    [
        ("unpacks to more than 1000 bytes (max_download_bytes)", "max_download_bytes", 1000),
        ("has more than 7 members (max_download_members)", "max_download_members", 7),
    ],
)
def test_the_sandbox_saying_too_large_is_a_download_too_large_error(
    said: str, setting: str, limit: int
) -> None:
    output = f"\necs-sandbox: too large to download: '/app/out' {said}\n".encode()
    with pytest.raises(DownloadTooLargeError) as caught:
        run_script(
            limited_download(1000, 7), limited_steps(framed(6, output, binary=True), 1000, 7)
        )
    assert (caught.value.setting, caught.value.limit) == (setting, limit)
    assert caught.value.message.startswith("too large to download: '/app/out'")


def test_a_failure_line_survives_any_amount_of_output_around_it() -> None:
    reason = "ecs-sandbox: cannot extract 'a/b' (4069 characters): File name too long"
    output = b"noise " * 2000 + b"\n" + reason.encode() + b"\n" + b"more noise " * 2000
    steps = [*upload_steps_until_exec(), (is_exec, framed(7, output)), (Now, 1.0), (Random, 0.5)]
    steps += [(delete(ARCHIVE_KEY), OK)]
    with pytest.raises(EcsExecError) as caught:
        run_script(upload(), steps)
    assert caught.value.exit_code == 7
    assert caught.value.message.endswith(reason)
    assert len(caught.value.message) < 300


def test_an_overlong_member_is_refused_in_the_shell_with_its_reason(
    local_s3: tuple[dict[str, bytes], int], tmp_path: Path
) -> None:
    objects, port = local_s3
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("x" * 6000), io.BytesIO(b""))
    _, outcome = drive(
        upload(archive=buf.getvalue(), dest_dir=str(tmp_path / "dest")), local_driver(objects, port)
    )
    assert isinstance(outcome, UnsafeArchiveError), outcome
    assert "a name component is 6000 bytes, more than 255" in outcome.message
    assert "(6000 characters)" in outcome.message and len(outcome.message) < 250
    assert objects == {}


def test_a_path_too_long_for_the_destination_names_the_reason(
    local_s3: tuple[dict[str, bytes], int], tmp_path: Path
) -> None:
    objects, port = local_s3
    name = "/".join(["d" * 200] * 19 + ["e" * 250])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    _, outcome = drive(
        upload(archive=buf.getvalue(), dest_dir=str(tmp_path / "dest")), local_driver(objects, port)
    )
    assert isinstance(outcome, EcsExecError), outcome
    assert "File name too long" in outcome.message
    assert "Traceback" not in outcome.message and len(outcome.message) < 400
    assert objects == {}
