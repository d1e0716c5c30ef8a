"""Retry decisions: pure functions from what came back to Ok, Retry(delay) or GiveUp(error).

Randomness arrives as an argument (``rand`` in [0, 1)), so every decision, back-off
included, is a value that tests can check exactly.

Exec decisions are :mod:`._retry_exec`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._effects import AwsError
from ._errors import (
    AwsApiError,
    AwsCredentialsError,
    EcsSandboxError,
    RunTaskError,
    S3StagingError,
    TaskDefinitionError,
)


@dataclass(frozen=True, slots=True)
class Ok:
    """Go on with ``value``."""

    value: object = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay_s`` seconds; ``reason`` is for the log."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop and raise ``error``."""

    error: EcsSandboxError


Decision: TypeAlias = Ok | Retry | GiveUp


def backoff(attempt: int, rand: float, *, base_s: float = 1.0, cap_s: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (1 for the first retry), with jitter.

    The ceiling doubles per attempt from ``base_s`` up to ``cap_s``; the delay is drawn from
    the upper half of it, so that it never collapses to zero and, for a given ``rand``,
    never shrinks as attempts grow.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), not {rand}")
    # The exponent is bounded so that huge attempt numbers cannot overflow a float.
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 64))
    return ceiling * (1.0 + rand) / 2.0


# --- AWS API errors ------------------------------------------------------------------------

_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
RESPONSE_LOST = "ResponseLost"
"""Error code of a call whose response never arrived (read timeout, connection closed after
the request was sent): AWS may or may not have carried it out."""

NETWORK_ERROR = "NetworkError"
"""Error code of a call that never reached AWS (no connection could be made)."""

# Server-side failures that say nothing about the request; worth the same back-off.
_TRANSIENT = frozenset(
    {
        RESPONSE_LOST,
        "ServerException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# (code, message fragment) pairs that are throttling in disguise. RunTask with awsvpc
# networking makes EC2 calls on the caller's behalf, and ECS passes EC2's throttling on as an
# InvalidParameterException quoting EC2's code (dagster-io/dagster#33439: "Error retrieving
# subnet information for [...]: Rate exceeded (ErrorCode: Throttling)";
# dask/dask-cloudprovider#56: "...: Request limit exceeded. (ErrorCode: RequestLimitExceeded)").
# Fargate's own launch quota needs no entry: ECS refuses a launch past it with a plain
# ThrottlingException, "Rate exceeded" (see ecs_sandbox_drivers.local._throttle).
_THROTTLING_MESSAGES = (
    ("ClientException", "too many concurrent attempts to create a new revision"),
    ("InvalidParameterException", "(errorcode: throttling)"),
    ("InvalidParameterException", "(errorcode: requestlimitexceeded)"),
)
_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "AuthFailure",
        "IncompleteSignature",
    }
)
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})

_S3_OPERATIONS = frozenset(
    {
        "put_object",
        "get_object",
        "head_object",
        "delete_object",
        "delete_objects",
        "head_bucket",
        "list_objects_v2",
        "generate_presigned_url",
    }
)
_TASK_DEFINITION_OPERATIONS = frozenset(
    {"register_task_definition", "describe_task_definition", "deregister_task_definition"}
)
_SERVICE_OF = {
    **dict.fromkeys(_S3_OPERATIONS, "s3"),
    "get_caller_identity": "sts",
    "create_log_group": "logs",
    "put_retention_policy": "logs",
}

# Remedies for codes that mean the same thing whatever the operation; {permission} is the
# IAM action of the failed operation.
_CODE_REMEDIES = {
    **dict.fromkeys(
        _ACCESS_DENIED,
        "Grant {permission} to the credentials in use (and iam:PassRole for the task and "
        "execution roles when running or registering tasks).",
    ),
    "ClusterNotFoundException": (
        "Create the cluster, or set 'cluster' and 'region' to an existing one."
    ),
    "InvalidParameterException": (
        "AWS refused a parameter named in the message: check subnets, security groups, "
        "role ARNs, cpu/memory and the image against the cluster's region and VPC."
    ),
    "PlatformUnknownException": "Set platform_version to 'LATEST' or a valid Fargate version.",
    "PlatformTaskDefinitionIncompatibilityException": (
        "Use a task definition that is compatible with Fargate (networkMode awsvpc, task "
        "cpu and memory set)."
    ),
    "NoSuchBucket": "Create s3_bucket in this region, or set s3_bucket to an existing bucket.",
}
_THROTTLED_REMEDY = (
    "AWS kept throttling the call: run fewer sandboxes at once, or reuse one task definition "
    "(register_task_definition_per_task=False) so that fewer registrations compete; raising "
    "the account's ECS quotas also helps."
)


def _permission(operation: str) -> str:
    service = _SERVICE_OF.get(operation, "ecs")
    action = "".join(part.capitalize() for part in operation.split("_"))
    if operation == "generate_presigned_url":
        action = "GetObject"
    return f"{service}:{action}"


def _error_for(
    operation: str, error: AwsError, message: str, remedy: str | None = None
) -> EcsSandboxError:
    """The library error for an AWS error that retrying did not or will not fix."""
    if remedy is None and error.code in _CODE_REMEDIES:
        remedy = _CODE_REMEDIES[error.code].format(permission=_permission(operation))
    if error.code in _CREDENTIALS or operation == "get_caller_identity":
        return AwsCredentialsError(message, remedy=remedy)
    factory = _ERROR_FACTORIES.get(_kind(operation), _api_error)
    return factory(message, error, operation, remedy)


def _kind(operation: str) -> str:
    if operation == "run_task":
        return "run_task"
    if operation in _TASK_DEFINITION_OPERATIONS:
        return "task_definition"
    if operation in _S3_OPERATIONS:
        return "s3"
    return "api"


def _api_error(
    message: str, error: AwsError, operation: str, remedy: str | None
) -> EcsSandboxError:
    return AwsApiError(message, code=error.code, operation=operation, remedy=remedy)


def _run_task_error(
    message: str, error: AwsError, operation: str, remedy: str | None
) -> EcsSandboxError:
    return RunTaskError(message, code=error.code, operation=operation, remedy=remedy)


def _task_definition_error(
    message: str, error: AwsError, operation: str, remedy: str | None
) -> EcsSandboxError:
    return TaskDefinitionError(
        message,
        code=error.code,
        operation=operation,
        remedy=remedy
        or "Check that task_definition names an existing family or ARN in this region and "
        "that the credentials may describe and register task definitions.",
    )


def _s3_error(message: str, error: AwsError, operation: str, remedy: str | None) -> EcsSandboxError:
    return S3StagingError(message, remedy=remedy)


_ERROR_FACTORIES: dict[str, Callable[[str, AwsError, str, str | None], EcsSandboxError]] = {
    "api": _api_error,
    "run_task": _run_task_error,
    "task_definition": _task_definition_error,
    "s3": _s3_error,
}


def _is_throttling(error: AwsError) -> bool:
    if error.code in _THROTTLING:
        return True
    text = error.message.lower()
    return any(code == error.code and part in text for code, part in _THROTTLING_MESSAGES)


def _is_retryable(error: AwsError) -> bool:
    server_side = error.http_status is not None and error.http_status >= 500
    return _is_throttling(error) or error.code in _TRANSIENT or server_side


def is_ambiguous(error: AwsError) -> bool:
    """Whether the failed call may have been carried out all the same.

    A server error (5xx) or a lost response says nothing about what AWS did with the
    request; throttling and every other 4xx mean it was refused, and a call that could not
    connect never arrived.
    """
    if error.code == RESPONSE_LOST:
        return True
    if _is_throttling(error):
        return False
    return error.http_status is not None and error.http_status >= 500


def classify_aws_error(
    operation: str, error: AwsError, *, attempt: int, max_attempts: int, rand: float
) -> Retry | GiveUp:
    """Decide what to do after ``operation`` (boto3's name) failed with ``error``.

    Throttling and server-side failures are retried with back-off until ``attempt`` reaches
    ``max_attempts``; every other error gives up at once with the error class of the
    operation (RunTaskError, TaskDefinitionError, S3StagingError, AwsCredentialsError,
    else AwsApiError) and a remedy for the code where one is known.
    """
    detail = f"{error.code}: {error.message}" if error.message else error.code
    if not _is_retryable(error):
        return GiveUp(_error_for(operation, error, f"{operation} failed with {detail}"))
    if attempt >= max_attempts:
        message = f"{operation} still failing after {attempt} attempts ({detail})"
        remedy = _THROTTLED_REMEDY if _is_throttling(error) else None
        return GiveUp(_error_for(operation, error, message, remedy))
    return Retry(backoff(attempt, rand), f"{operation}: {error.code}")


# --- RunTask --------------------------------------------------------------------------------

_CAPACITY = "capacity is unavailable"


def classify_run_task(
    data: Mapping[str, Any], *, attempt: int, max_attempts: int, rand: float
) -> Ok | Retry | GiveUp:
    """Decide what a RunTask response means; ``Ok.value`` is the started task's dict.

    Fargate reports a capacity shortage as a ``failures[]`` entry, retried with back-off
    until ``max_attempts``; any other failure, or a response with neither task nor failure,
    gives up with a RunTaskError that quotes the failure reasons.
    """
    tasks = data.get("tasks") or []
    if tasks:
        return Ok(tasks[0])
    failures = data.get("failures") or []
    reasons = [_failure_text(f) for f in failures if isinstance(f, Mapping)]
    if not reasons:
        return GiveUp(RunTaskError("RunTask returned neither a task nor a failure"))
    summary = "; ".join(reasons)
    if not all(_CAPACITY in reason.lower() for reason in reasons):
        return GiveUp(RunTaskError(f"RunTask refused: {summary}", operation="run_task"))
    if attempt >= max_attempts:
        return GiveUp(
            RunTaskError(
                f"no Fargate capacity after {attempt} attempts: {summary}",
                operation="run_task",
                remedy="Give subnets in more availability zones, use a smaller cpu/memory, "
                "raise run_task_max_retries, or try again later.",
            )
        )
    return Retry(backoff(attempt, rand, base_s=2.0), "RunTask: no Fargate capacity")


def _failure_text(failure: Mapping[str, Any]) -> str:
    reason = str(failure.get("reason") or "unknown reason")
    detail = failure.get("detail")
    return f"{reason} ({detail})" if detail else reason


__all__ = [
    "NETWORK_ERROR",
    "RESPONSE_LOST",
    "Decision",
    "GiveUp",
    "Ok",
    "Retry",
    "backoff",
    "classify_aws_error",
    "classify_run_task",
    "is_ambiguous",
]
