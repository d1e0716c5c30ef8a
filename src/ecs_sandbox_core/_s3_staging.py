"""Staging objects in S3 for a sandbox to fetch, as effect flows.

Theory of operation
-------------------
A file travels into a sandbox through a private S3 object that the container fetches by a
presigned URL, so the task needs neither inbound connectivity nor AWS credentials. Staging is
all or nothing: :func:`stage_object_flow` puts the object and presigns it, and when anything
after the put fails (or an exception is thrown in), it deletes the object before re-raising,
since the caller learns the key only from a normal return. :func:`delete_object_flow` is the
clean-up half and never raises for an S3 failure, so that it cannot hide the error being
cleaned up after; it logs the object's name instead.

Keys are ``<s3_prefix>/<run_id>/<task_id>/<token>-<suffix>``, each part reduced to a safe
alphabet (:func:`staging_key`), so that the garbage collector can tell a run's objects by
their prefix and no id can climb out of it. The presigned URL is a bearer credential: it is
returned to the caller and never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator
from typing import Any

from ._config import EcsFargateConfig
from ._effects import AwsCall, AwsResult, Effect, Log, Presign
from ._errors import S3StagingError, UsageError

MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's limit on a presigned URL's lifetime
_KEY_PART = re.compile(r"[^A-Za-z0-9._-]")
_KEY_PART_MAX = 100


def _log(level: int, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase="transfer")


def _s3_error(what: str, bucket: str, key: str, result: AwsResult) -> S3StagingError:
    assert result.error is not None
    return S3StagingError(
        f"{what} s3://{bucket}/{key} failed: {result.error.code}: {result.error.message}"
    )


def stage_object_flow(
    *, bucket: str, key: str, body: bytes, expires_s: int = 3600
) -> Generator[Effect, Any, str]:
    """Put ``body`` at ``bucket``/``key`` and return a presigned GET URL for it.

    Either the object is staged and its URL returned, or :class:`S3StagingError` (or the
    exception thrown in) is raised and no object is left behind. The URL is a secret: the
    caller must not log it.
    """
    if isinstance(expires_s, bool) or not isinstance(expires_s, int):
        raise UsageError(f"expires_s must be an int, not {expires_s!r}")
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise UsageError(f"expires_s must be 1 to {MAX_PRESIGN_S} seconds, not {expires_s}")
    result: AwsResult = yield AwsCall(
        service="s3",
        operation="put_object",
        params={"Bucket": bucket, "Key": key, "Body": body},
        api_group="s3",
    )
    if not result.ok:
        raise _s3_error("putting", bucket, key, result)
    try:
        url = yield Presign(bucket=bucket, key=key, expires_s=expires_s)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise S3StagingError(f"presigning s3://{bucket}/{key} gave no http(s) URL")
        # Inside the try: an interruption thrown in at this log record (a Ctrl-C from a
        # progress callback) must not leave the object behind, since the caller learns its
        # key only from a normal return.
        yield _log(logging.DEBUG, "staged %d bytes at s3://%s/%s", len(body), bucket, key)
    except GeneratorExit:
        raise  # closed: no effect can run any more
    except BaseException:
        yield from delete_object_flow(bucket=bucket, key=key)
        raise
    return url


def delete_object_flow(*, bucket: str, key: str) -> Generator[Effect, Any, None]:
    """Delete a staged object; best effort.

    Used in clean-up paths, so it never raises for an S3 failure (that would hide the error
    being cleaned up after); it logs a warning naming the object instead, so that it can be
    removed by hand or by a lifecycle rule on the prefix.
    """
    result: AwsResult = yield AwsCall(
        service="s3",
        operation="delete_object",
        params={"Bucket": bucket, "Key": key},
        api_group="s3",
    )
    if not result.ok:
        assert result.error is not None
        yield _log(
            logging.WARNING,
            "could not delete staged object s3://%s/%s (%s: %s); remove it by hand",
            bucket,
            key,
            result.error.code,
            result.error.message,
        )


def _key_part(value: str) -> str:
    cleaned = _KEY_PART.sub("_", value)[:_KEY_PART_MAX]
    # "." and ".." are legal in S3 keys but read as path steps by every tool that syncs them.
    return cleaned if cleaned.strip(".") else cleaned.replace(".", "_") or "_"


def staging_key(
    cfg: EcsFargateConfig, *, run_id: str, task_id: str, token: str, suffix: str
) -> str:
    """The S3 key for a staged object: ``<s3_prefix>/<run_id>/<task_id>/<token>-<suffix>``.

    Every component is reduced to letters, digits, ``.``, ``_`` and ``-`` so that a key
    can never climb out of the prefix or collide through a ``/`` in an id.
    """
    prefix = "/".join(_key_part(p) for p in cfg.s3_prefix.split("/") if p)
    name = f"{_key_part(token)}-{_key_part(suffix)}"
    parts = [prefix] if prefix else []
    return "/".join([*parts, _key_part(run_id), _key_part(task_id), name])


__all__ = ["MAX_PRESIGN_S", "delete_object_flow", "stage_object_flow", "staging_key"]
