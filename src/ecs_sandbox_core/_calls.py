"""The AWS call step every flow shares: make a call, retry what is worth retrying.

Shared by spin-up (``_lifecycle``), tear-down (``_teardown``) and ``gc``; not public.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any

from ._budget import api_group
from ._effects import AwsCall, AwsError, AwsResult, Effect, Log, Random, Sleep
from ._retry import GiveUp, classify_aws_error


def _log(level: int, phase: str, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase=phase)


def _never(error: AwsError) -> bool:
    return False


def _call(
    call: AwsCall,
    *,
    phase: str,
    max_attempts: int,
    tolerate: Callable[[AwsError], bool] = _never,
) -> Generator[Effect, Any, AwsResult]:
    """Make ``call``, retrying what the classifier says is worth retrying.

    Returns the result when it succeeded or failed with an error ``tolerate`` accepts;
    raises the classifier's error (typed after the operation) otherwise.
    """
    attempt = 0
    while True:
        attempt += 1
        result: AwsResult = yield call
        if result.error is None or tolerate(result.error):
            return result
        rand: float = yield Random()
        decision = classify_aws_error(
            call.operation, result.error, attempt=attempt, max_attempts=max_attempts, rand=rand
        )
        if isinstance(decision, GiveUp):
            raise decision.error
        yield _log(
            logging.WARNING,
            phase,
            "%s failed (%s), attempt %d/%d; retrying in %.1fs",
            call.operation,
            result.error.code,
            attempt,
            max_attempts,
            decision.delay_s,
        )
        yield Sleep(seconds=decision.delay_s)


def _ecs(operation: str, params: Mapping[str, Any], *, priority: int = 0) -> AwsCall:
    return AwsCall(
        service="ecs",
        operation=operation,
        params=params,
        api_group=api_group(operation),
        priority=priority,
    )
