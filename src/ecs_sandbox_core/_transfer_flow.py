"""Moving files into and out of a sandbox, as effect flows.

Uploads travel through S3 (:mod:`._s3_staging`): the archive is put as a private object, the
container fetches it through a presigned URL (no inbound connectivity needed), checks and
extracts it with :data:`EXTRACT_SCRIPT`, all in one exec round trip, and the object is deleted
whatever happened. Downloads come back in the exec stream itself, base64-framed by the exec
flow.

A presigned URL is a bearer credential until it expires: it goes into the command and
nowhere else, never into a :class:`Log` effect or an exception message (output that echoes
it is scrubbed first).
"""

from __future__ import annotations

import base64
import logging
import posixpath
import re
import shlex
import zlib
from collections.abc import Generator
from typing import Any

from ._config import EcsFargateConfig
from ._effects import Effect, Log, Token
from ._errors import (
    DownloadTooLargeError,
    EcsExecError,
    ExecOutputTooLargeError,
    UnsafeArchiveError,
    UsageError,
)
from ._exec_flow import exec_flow
from ._limits import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_DOWNLOAD_MEMBERS,
    download_stream_limit,
)
from ._s3_staging import MAX_PRESIGN_S, delete_object_flow, stage_object_flow, staging_key
from ._s3_staging import _key_part as _key_part  # noqa: PLC0414 - _gc imports it from here
from ._tar import (
    CONFLICT_PREFIX,
    EXIT_CONFLICT,
    EXIT_NO_SUCH_PATH,
    EXIT_TOO_LARGE,
    EXIT_UNSAFE,
    EXTRACT_SCRIPT,
    FAILURE_PREFIX,
    PACK_SCRIPT,
    UNSAFE_PREFIX,
    check_archive,
)
from ._tar_scripts import FETCH_SCRIPT

UPLOAD_TIMEOUT_FLOOR_S = 300.0  # fetching and unpacking a large archive outlasts a quick exec
_SIGNATURE = re.compile(r"X-Amz-[A-Za-z-]+=[^&\s'\"]*|Signature=[^&\s'\"]*")
_EXCERPT_HEAD = _EXCERPT_TAIL = 1000

_FIND_PYTHON = (
    "PY=$(command -v python3 || command -v python) || "
    "{ echo 'ecs-sandbox: file transfer needs python3 in the container' >&2; exit 127; }"
)


def _log(level: int, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase="transfer")


def _scrub(text: str, url: str) -> str:
    return _SIGNATURE.sub("<redacted>", text.replace(url, "<presigned URL>"))


def _text(output: bytes, url: str = "") -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return _scrub(text, url) if url else text


def _excerpt(text: str) -> str:
    """``text``, its middle elided when long: the start says what failed, the end why."""
    if len(text) <= _EXCERPT_HEAD + _EXCERPT_TAIL:
        return text
    skipped = len(text) - _EXCERPT_HEAD - _EXCERPT_TAIL
    return f"{text[:_EXCERPT_HEAD]} [... {skipped} characters ...] {text[-_EXCERPT_TAIL:]}"


def _line_starting(output: str, prefix: str) -> str | None:
    """The last line of ``output`` that starts with ``prefix`` (a script's own report)."""
    for line in reversed(output.splitlines()):
        if line.strip().startswith(prefix):
            return _excerpt(line.strip())
    return None


def _explain(output: str) -> str:
    """What a failed script said: its own failure line if it wrote one, else an excerpt."""
    return _line_starting(output, FAILURE_PREFIX) or _excerpt(output)


def _check_dest(dest_dir: str) -> None:
    if not isinstance(dest_dir, str) or not dest_dir.startswith("/") or "\0" in dest_dir:
        raise UsageError(
            f"destination {dest_dir!r} is not an absolute path",
            remedy="Give the directory in the sandbox as an absolute path, e.g. '/app'.",
        )


def _packed(source: str) -> str:
    """``source`` as a compressed python3 one-liner.

    The extraction script is about 7 KB; compressed, the whole upload command usually stays
    under ECS Exec's inline limit, which saves staging a second object (and its fetch and
    delete) on every upload.
    """
    # Comment lines and blank lines go first (the scripts hold no multi-line strings).
    lines = [line for line in source.splitlines() if line.strip()]
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    blob = base64.b64encode(zlib.compress(code.encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{blob}')))"


_EXTRACT_PACKED = _packed(EXTRACT_SCRIPT)
_FETCH_PACKED = _packed(FETCH_SCRIPT)
_PACK_PACKED = _packed(PACK_SCRIPT)


def _upload_command(url: str, archive_path: str, dest_dir: str) -> str:
    q = shlex.quote
    return "\n".join(
        [
            _FIND_PYTHON,
            # The archive file is private while it exists; the extraction itself runs
            # under the container's usual umask.
            "m=$(umask)",
            "umask 077",
            f"a={q(archive_path)}",
            f'"$PY" -c {q(_FETCH_PACKED)} {q(url)} "$a"',
            "rc=$?",
            'umask "$m"',
            f'[ "$rc" -ne 0 ] || "$PY" -c {q(_EXTRACT_PACKED)} "$a" {q(dest_dir)}',
            'rc2=$?; [ "$rc" -ne 0 ] || rc=$rc2',
            'rm -f -- "$a"',
            'exit "$rc"',
        ]
    )


def upload_flow(
    cfg: EcsFargateConfig,
    *,
    task_arn: str,
    run_id: str,
    task_id: str,
    archive: bytes,
    dest_dir: str,
    pty: bool,
) -> Generator[Effect, Any, None]:
    """Copy a gzip tar (from :func:`build_tar`) into ``dest_dir`` of the sandbox.

    One exec round trip fetches, checks and extracts it; the staged objects (the archive,
    and the command's script when it is too long to send inline) are deleted afterwards
    whatever happened. Raises :class:`UnsafeArchiveError` when the container refuses a
    member, :class:`UsageError` when the archive conflicts with what is there, and
    :class:`EcsExecError` for any other failure.
    """
    bucket = cfg.s3_bucket
    if not bucket:
        raise UsageError(
            "copying files into a sandbox needs s3_bucket",
            remedy="Set s3_bucket to a bucket in the task's region that the harness may "
            "write and the container may read through presigned URLs.",
        )
    _check_dest(dest_dir)
    token: str = yield Token(nbytes=8)
    staged: list[str] = []

    def stage(body: bytes, suffix: str) -> Generator[Effect, Any, str]:
        key = staging_key(cfg, run_id=run_id, task_id=task_id, token=token, suffix=suffix)
        url = yield from stage_object_flow(bucket=bucket, key=key, body=body)
        staged.append(key)
        return url

    def stage_script(script: str) -> Generator[Effect, Any, str]:
        return (yield from stage(script.encode("utf-8"), "extract.sh"))

    # A path in the container, private to this upload through the token.
    archive_path = f"/tmp/.ecs-sandbox-upload-{token}.tgz"  # noqa: S108
    url = ""
    try:
        url = yield from stage(archive, "upload.tar.gz")
        result = yield from exec_flow(
            task_arn=task_arn,
            container=cfg.container_name,
            cluster=cfg.cluster,
            command=_upload_command(url, archive_path, dest_dir),
            timeout_s=max(float(cfg.ecs_exec_timeout_sec), UPLOAD_TIMEOUT_FLOOR_S),
            connect_timeout_s=cfg.exec_connect_timeout_sec,
            pty=pty,
            stage=stage_script,
            native=cfg.exec_transport == "ssm",
            loop_sessions=cfg.loop_sessions,
            max_output_bytes=cfg.max_exec_output_bytes,
        )
    finally:
        for key in staged:
            yield from delete_object_flow(bucket=bucket, key=key)

    output = _text(result.output, url)
    if result.exit_code == EXIT_UNSAFE:
        raise UnsafeArchiveError(
            _line_starting(output, UNSAFE_PREFIX)
            or f"{UNSAFE_PREFIX}(no detail): {_excerpt(output)}"
        )
    if result.exit_code == EXIT_CONFLICT:
        raise UsageError(
            _line_starting(output, CONFLICT_PREFIX) or _excerpt(output),
            remedy=f"Remove or rename the conflicting path in {dest_dir!r}, or upload elsewhere.",
        )
    if result.exit_code != 0:
        raise EcsExecError(
            f"extracting the upload into {dest_dir!r} failed with exit code "
            f"{result.exit_code}: {_explain(output)}",
            exit_code=result.exit_code,
        )
    yield _log(logging.INFO, "copied %d bytes into %s of %s", len(archive), dest_dir, task_arn)


def _download_command(path: str, max_bytes: int, max_members: int) -> str:
    q = shlex.quote
    return f'{_FIND_PYTHON}\nexec "$PY" -c {q(_PACK_PACKED)} {q(path)} {max_bytes} {max_members}'


def download_flow(
    *,
    task_arn: str,
    container: str,
    path: str,
    timeout_s: float | None,
    connect_timeout_s: float,
    pty: bool,
    cluster: str | None = None,
    native: bool = False,
    loop_sessions: int = 0,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_members: int = DEFAULT_MAX_DOWNLOAD_MEMBERS,
) -> Generator[Effect, Any, bytes]:
    """Fetch ``path`` (a file or a directory tree) from the sandbox as a gzip tar.

    Member names are relative to ``path``'s parent, so the first member is its base name.
    The archive has passed :func:`check_archive` when it is returned. Raises
    :class:`UsageError` when ``path`` does not exist, and :class:`DownloadTooLargeError`
    when it unpacks to more than ``max_bytes`` or holds more than ``max_members`` members
    (the container says so before sending anything; the stream and the archive are
    bounded here whatever it says). ``cluster`` lets a failed session be explained by a
    stopped task (see :func:`exec_flow`).
    """
    if not isinstance(path, str) or not path or "\0" in path:
        raise UsageError(f"{path!r} is not a path")
    try:
        result = yield from exec_flow(
            task_arn=task_arn,
            container=container,
            cluster=cluster,
            command=_download_command(path, max_bytes, max_members),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            binary=True,
            pty=pty,
            max_output_bytes=download_stream_limit(max_bytes),
            native=native,
            loop_sessions=loop_sessions,
        )
    except ExecOutputTooLargeError as exc:
        raise DownloadTooLargeError(
            f"downloading {path!r} sent more than {exc.limit} bytes, more than an archive "
            f"within max_download_bytes ({max_bytes}) can need; it was stopped there",
            limit=max_bytes,
            setting="max_download_bytes",
        ) from exc
    if result.exit_code == EXIT_NO_SUCH_PATH:
        raise UsageError(
            f"no such path in the sandbox: {path!r}",
            remedy="Check the path (relative paths start at the container's working "
            "directory); list the directory with an exec first.",
        )
    if result.exit_code == EXIT_CONFLICT:
        raise UsageError(f"cannot download {path!r}: {_excerpt(_text(result.output))}")
    if result.exit_code == EXIT_TOO_LARGE:
        text = _explain(_text(result.output))
        too_many = "max_download_members" in text
        raise DownloadTooLargeError(
            text.removeprefix(FAILURE_PREFIX) + "; nothing was sent",
            limit=max_members if too_many else max_bytes,
            setting="max_download_members" if too_many else "max_download_bytes",
        )
    if result.exit_code != 0:
        raise EcsExecError(
            f"packing {path!r} in the sandbox failed with exit code {result.exit_code}: "
            f"{_explain(_text(result.output))}",
            exit_code=result.exit_code,
        )
    check_archive(result.output, max_bytes=max_bytes, max_members=max_members)
    yield _log(
        logging.INFO,
        "fetched %s (%d bytes) from %s",
        posixpath.normpath(path),
        len(result.output),
        task_arn,
    )
    return result.output


__all__ = [
    "MAX_PRESIGN_S",
    "delete_object_flow",
    "download_flow",
    "stage_object_flow",
    "staging_key",
    "upload_flow",
]
