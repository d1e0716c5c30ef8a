"""Retry decisions: back-off bounds, AWS error tables, RunTask and exec classification."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._budget import API_GROUPS, LAUNCH_GROUP, ApiBudget
from ecs_sandbox_core._effects import AwsError, TransportResult
from ecs_sandbox_core._errors import (
    AwsApiError,
    AwsCliMissingError,
    AwsCredentialsError,
    EcsExecError,
    ExecAgentNotConnectedError,
    ExecCutOffError,
    ExecTimeoutError,
    RunTaskError,
    S3StagingError,
    TaskDefinitionError,
)
from ecs_sandbox_core._markers import ExecOutcome, ExecStatus
from ecs_sandbox_core._retry import (
    GiveUp,
    Ok,
    Retry,
    backoff,
    classify_aws_error,
    classify_run_task,
    is_ambiguous,
)
from ecs_sandbox_core._retry_exec import classify_exec, transport_error_code

rands = st.floats(0.0, 1.0, exclude_max=True)
attempts = st.integers(1, 10_000)


# --- backoff -------------------------------------------------------------------------------


@given(attempt=attempts, rand=rands)
def test_backoff_stays_within_half_and_whole_of_its_ceiling(attempt: int, rand: float) -> None:
    ceiling = min(30.0, 2.0 ** min(attempt - 1, 64))
    delay = backoff(attempt, rand)
    assert ceiling / 2 <= delay <= ceiling
    assert 0.5 <= delay <= 30.0


@given(attempt=attempts, rand=rands)
def test_backoff_never_shrinks_as_attempts_grow(attempt: int, rand: float) -> None:
    assert backoff(attempt + 1, rand) >= backoff(attempt, rand)


@given(attempt=st.integers(1, 4), rand=rands)
def test_backoff_doubles_below_the_cap(attempt: int, rand: float) -> None:
    assert backoff(attempt + 1, rand) == pytest.approx(2 * backoff(attempt, rand))


@given(
    attempt=attempts,
    rand=rands,
    base=st.floats(0.01, 10.0),
    cap=st.floats(0.01, 100.0),
)
def test_backoff_respects_base_and_cap(attempt: int, rand: float, base: float, cap: float) -> None:
    delay = backoff(attempt, rand, base_s=base, cap_s=cap)
    assert 0 < delay <= cap
    assert delay >= min(base, cap) / 2


def test_jitter_spreads_delays() -> None:
    assert backoff(3, 0.0) == 2.0
    assert backoff(3, 0.5) == 3.0
    assert backoff(30, 0.0) == 15.0


@pytest.mark.parametrize(("attempt", "rand"), [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.1)])
def test_backoff_rejects_out_of_range_inputs(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        backoff(attempt, rand)


# --- AWS API errors ------------------------------------------------------------------------

RETRYABLE = [
    AwsError(code="ThrottlingException", message="Rate exceeded"),
    AwsError(code="TooManyRequestsException", message=""),
    AwsError(code="RequestLimitExceeded", message="Request limit exceeded."),
    AwsError(code="SlowDown", message="Please reduce your request rate.", http_status=503),
    AwsError(code="ServerException", message="Service unavailable", http_status=500),
    AwsError(code="SomethingNew", message="", http_status=502),
    AwsError(
        code="ClientException",
        message="Too many concurrent attempts to create a new revision of the specified family.",
    ),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: e.code)
def test_throttling_and_server_errors_retry_with_backoff(error: AwsError) -> None:
    decision = classify_aws_error(
        "register_task_definition", error, attempt=2, max_attempts=5, rand=0.0
    )
    assert decision == Retry(backoff(2, 0.0), f"register_task_definition: {error.code}")


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: e.code)
def test_retryable_errors_give_up_at_max_attempts(error: AwsError) -> None:
    decision = classify_aws_error("run_task", error, attempt=5, max_attempts=5, rand=0.3)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, RunTaskError)
    assert "5 attempts" in decision.error.message
    assert error.code in decision.error.message


def test_given_up_throttling_names_the_cure() -> None:
    error = AwsError(code="ThrottlingException", message="Rate exceeded")
    decision = classify_aws_error(
        "register_task_definition", error, attempt=3, max_attempts=3, rand=0.3
    )
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, TaskDefinitionError)
    assert "register_task_definition_per_task" in decision.error.remedy


@pytest.mark.parametrize(
    ("operation", "error", "expected_type", "remedy_part"),
    [
        (
            "run_task",
            AwsError(code="AccessDeniedException", message="not authorized to perform"),
            RunTaskError,
            "ecs:RunTask",
        ),
        (
            "run_task",
            AwsError(code="InvalidParameterException", message="subnet not in VPC"),
            RunTaskError,
            "subnets",
        ),
        (
            "run_task",
            AwsError(code="ClusterNotFoundException", message="Cluster not found."),
            RunTaskError,
            "cluster",
        ),
        (
            "run_task",
            AwsError(code="ClientException", message="bad task definition"),
            RunTaskError,
            "iam:PassRole",  # the class's own remedy
        ),
        (
            "describe_task_definition",
            AwsError(code="ClientException", message="Unable to describe task definition."),
            TaskDefinitionError,
            "task_definition",
        ),
        (
            "register_task_definition",
            AwsError(code="AccessDeniedException", message="denied"),
            TaskDefinitionError,
            "ecs:RegisterTaskDefinition",
        ),
        (
            "deregister_task_definition",
            AwsError(code="InvalidParameterException", message="bad revision"),
            TaskDefinitionError,
            "parameter",
        ),
        (
            "get_caller_identity",
            AwsError(code="InvalidClientTokenId", message="The security token is invalid."),
            AwsCredentialsError,
            "AWS_ACCESS_KEY_ID",
        ),
        (
            "run_task",
            AwsError(code="ExpiredTokenException", message="expired"),
            AwsCredentialsError,
            "AWS_PROFILE",
        ),
        (
            "put_object",
            AwsError(code="NoSuchBucket", message="The specified bucket does not exist"),
            S3StagingError,
            "s3_bucket",
        ),
        (
            "delete_object",
            AwsError(code="AccessDenied", message="Access Denied", http_status=403),
            S3StagingError,
            "s3:DeleteObject",
        ),
        (
            "stop_task",
            AwsError(code="AccessDeniedException", message="denied"),
            AwsApiError,
            "ecs:StopTask",
        ),
    ],
)
def test_other_errors_give_up_with_the_operations_error_and_remedy(
    operation: str, error: AwsError, expected_type: type, remedy_part: str
) -> None:
    decision = classify_aws_error(operation, error, attempt=1, max_attempts=30, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert type(decision.error) is expected_type
    assert error.code in decision.error.message
    assert error.message in decision.error.message
    assert remedy_part in decision.error.remedy
    if isinstance(decision.error, AwsApiError):
        assert decision.error.code == error.code
        assert decision.error.operation == operation


@given(
    code=st.text(min_size=1, max_size=30),
    message=st.text(max_size=60),
    operation=st.sampled_from(["run_task", "put_object", "describe_task_definition", "x"]),
    attempt=st.integers(1, 40),
    max_attempts=st.integers(1, 40),
    rand=rands,
)
def test_aws_errors_retry_only_if_known_retryable_and_attempts_remain(
    code: str, message: str, operation: str, attempt: int, max_attempts: int, rand: float
) -> None:
    error = AwsError(code=code, message=message)
    decision = classify_aws_error(
        operation, error, attempt=attempt, max_attempts=max_attempts, rand=rand
    )
    retryable = {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServerException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
    lowered = message.lower()
    disguised = (code == "ClientException" and "too many concurrent attempts" in lowered) or (
        code == "InvalidParameterException"
        and ("(errorcode: throttling)" in lowered or "(errorcode: requestlimitexceeded)" in lowered)
    )
    if (code in retryable or disguised) and attempt < max_attempts:
        assert isinstance(decision, Retry)
        assert 0.5 <= decision.delay_s <= 30.0
    else:
        assert isinstance(decision, GiveUp)


# ECS's answer to a RunTask past Fargate's task-launch quota (see local/_throttle.py).
LAUNCH_QUOTA = AwsError(code="ThrottlingException", message="Rate exceeded", http_status=400)


@given(
    attempt=st.integers(1, 60),
    max_attempts=st.integers(1, 60),
    rand=rands,
    launches=st.integers(1, 10),
    now=st.floats(0.0, 1e6),
)
def test_a_run_task_past_the_launch_quota_is_throttling_not_a_hard_failure(
    attempt: int, max_attempts: int, rand: float, launches: int, now: float
) -> None:
    decision = classify_aws_error(
        "run_task", LAUNCH_QUOTA, attempt=attempt, max_attempts=max_attempts, rand=rand
    )
    assert not is_ambiguous(LAUNCH_QUOTA)  # refused: nothing started, no lookup needed
    if attempt < max_attempts:
        assert decision == Retry(backoff(attempt, rand), "run_task: ThrottlingException")
    else:
        assert isinstance(decision, GiveUp) and isinstance(decision.error, RunTaskError)
        assert "run fewer sandboxes" in decision.error.remedy  # the throttling remedy
    # ...and the budget hears it as throttling: launches slow down, tear-down does not.
    budget = ApiBudget()
    assert budget.observe("ecs-run", LAUNCH_QUOTA.code, now, launches=launches) is True
    launch, run = budget.bucket(LAUNCH_GROUP), budget.bucket("ecs-run")
    assert launch is not None and run is not None
    assert launch.rate_at(now) == API_GROUPS[LAUNCH_GROUP][1] / 2
    assert run.rate_at(now) == API_GROUPS["ecs-run"][1]


@pytest.mark.parametrize(
    "message",
    [
        "Error retrieving subnet information for [subnet-0abc]: Rate exceeded "
        "(ErrorCode: Throttling)",
        "Error retrieving security group information for [sg-0abc]: Request limit exceeded. "
        "(ErrorCode: RequestLimitExceeded)",
    ],
)
def test_ec2_throttling_passed_on_by_run_task_is_retried(message: str) -> None:
    error = AwsError(code="InvalidParameterException", message=message, http_status=400)
    decision = classify_aws_error("run_task", error, attempt=1, max_attempts=30, rand=0.5)
    assert decision == Retry(backoff(1, 0.5), "run_task: InvalidParameterException")
    assert not is_ambiguous(error)


# --- RunTask ---------------------------------------------------------------------------------

CAPACITY = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)
TASK = {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/abc", "lastStatus": "PROVISIONING"}


def test_run_task_with_a_task_is_ok() -> None:
    data = {"tasks": [TASK], "failures": []}
    assert classify_run_task(data, attempt=1, max_attempts=3, rand=0.0) == Ok(TASK)


def test_capacity_shortage_retries_until_max_attempts() -> None:
    data = {"tasks": [], "failures": [{"arn": "x", "reason": CAPACITY}]}
    first = classify_run_task(data, attempt=1, max_attempts=3, rand=0.5)
    assert isinstance(first, Retry)
    assert first.delay_s == backoff(1, 0.5, base_s=2.0)
    assert isinstance(classify_run_task(data, attempt=2, max_attempts=3, rand=0.5), Retry)
    last = classify_run_task(data, attempt=3, max_attempts=3, rand=0.5)
    assert isinstance(last, GiveUp)
    assert isinstance(last.error, RunTaskError)
    assert "capacity" in last.error.message.lower()
    assert "availability zones" in last.error.remedy


def test_other_failures_give_up_quoting_their_reasons() -> None:
    data = {
        "tasks": [],
        "failures": [
            {"arn": "x", "reason": "MISSING", "detail": "task definition gone"},
            {"arn": "y", "reason": CAPACITY},
        ],
    }
    decision = classify_run_task(data, attempt=1, max_attempts=30, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, RunTaskError)
    assert "MISSING (task definition gone)" in decision.error.message
    assert "iam:PassRole" in decision.error.remedy


@pytest.mark.parametrize("data", [{}, {"tasks": [], "failures": []}, {"failures": ["odd"]}])
def test_no_task_and_no_failure_gives_up(data: dict[str, object]) -> None:
    decision = classify_run_task(data, attempt=1, max_attempts=30, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, RunTaskError)


# --- the transport's error channel -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        (
            b"\nAn error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
            b"operation: The execute command failed due to an internal error. Try again later.\n",
            "TargetNotConnectedException",
        ),
        (
            b"An error occurred (ThrottlingException) when calling the ExecuteCommand operation "
            b"(reached max retries: 2): Rate exceeded\n",
            "ThrottlingException",
        ),
        (
            b"An error occurred (ThrottlingException) when calling the DescribeTasks operation: "
            b"Rate exceeded",
            "ThrottlingException",
        ),
        (b"SessionManagerPlugin is not found. Please refer to SessionManager Documentation", None),
        (b"", None),
        (b"error (TargetNotConnectedException)", None),
    ],
)
def test_transport_error_code(stderr: bytes, code: str | None) -> None:
    assert transport_error_code(stderr) == code


@given(
    before=st.binary(max_size=80),
    code=st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,40}", fullmatch=True),
    operation=st.from_regex(r"[A-Za-z]{1,30}", fullmatch=True),
    message=st.text(
        st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=80
    ),
)
def test_transport_error_code_finds_the_clis_line_anywhere(
    before: bytes, code: str, operation: str, message: str
) -> None:
    line = f"An error occurred ({code}) when calling the {operation} operation: {message}\n"
    stderr = before.replace(b"An error occurred", b"") + b"\n" + line.encode()
    assert transport_error_code(stderr) == code


# --- exec classification ---------------------------------------------------------------------

NOT_CONNECTED = (
    b"An error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
    b"operation: The execute command failed due to an internal error. Try again later.\n"
)
NOT_ENABLED = (
    b"An error occurred (InvalidParameterException) when calling the ExecuteCommand operation:"
    b" The execute command failed because execute command was not enabled when the task was "
    b"run or the execute command agent isn't running. Wait and try again or run a new task "
    b"with execute command enabled and try again.\n"
)
THROTTLED = (
    b"An error occurred (ThrottlingException) when calling the ExecuteCommand operation "
    b"(reached max retries: 2): Rate exceeded\n"
)
NEVER = ExecOutcome(ExecStatus.NEVER_STARTED, None, b"")
DONE = ExecOutcome(ExecStatus.COMPLETED, 3, b"out")
CUT = ExecOutcome(ExecStatus.CUT_OFF, None, b"par")


def exec_decision(
    result: TransportResult,
    outcome: ExecOutcome,
    *,
    attempt: int = 1,
    elapsed_s: float = 0.0,
    rand: float = 0.5,
) -> Ok | Retry | GiveUp:
    return classify_exec(
        result,
        outcome,
        attempt=attempt,
        elapsed_s=elapsed_s,
        connect_timeout_s=60.0,
        timeout_s=120.0,
        rand=rand,
    )


def test_completed_is_ok_with_the_outcome() -> None:
    assert exec_decision(TransportResult(stdout=b"x"), DONE) == Ok(DONE)


def test_completed_is_ok_even_if_the_session_then_hung() -> None:
    result = TransportResult(returncode=None, timed_out=True)
    assert exec_decision(result, DONE) == Ok(DONE)


@pytest.mark.parametrize("stderr", [NOT_CONNECTED, NOT_ENABLED])
def test_agent_not_connected_retries_every_two_to_three_seconds(stderr: bytes) -> None:
    for rand in (0.0, 0.5, 0.999):
        decision = exec_decision(TransportResult(stderr=stderr, returncode=255), NEVER, rand=rand)
        assert isinstance(decision, Retry)
        assert decision.delay_s == pytest.approx(2.0 + rand)


@pytest.mark.parametrize("stderr", [NOT_CONNECTED, NOT_ENABLED])
def test_agent_not_connected_gives_up_at_the_connect_timeout(stderr: bytes) -> None:
    result = TransportResult(stderr=stderr, returncode=255)
    near = exec_decision(result, NEVER, elapsed_s=59.0, rand=0.9)
    assert isinstance(near, Retry)
    assert near.delay_s == pytest.approx(1.0)  # never sleeps past the deadline
    decision = exec_decision(result, NEVER, elapsed_s=60.0)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ExecAgentNotConnectedError)
    assert "60 s" in decision.error.message
    assert "ssmmessages" in decision.error.remedy


def test_throttled_exec_retries_with_backoff_then_gives_up() -> None:
    result = TransportResult(stderr=THROTTLED, returncode=255)
    decision = exec_decision(result, NEVER, attempt=3, rand=0.25)
    assert decision == Retry(backoff(3, 0.25), "ExecuteCommand throttled (ThrottlingException)")
    late = exec_decision(result, NEVER, attempt=9, elapsed_s=61.0)
    assert isinstance(late, GiveUp)
    assert type(late.error) is EcsExecError
    assert "throttled" in late.error.message


@pytest.mark.parametrize("outcome", [NEVER, CUT, ExecOutcome(ExecStatus.CUT_OFF, None, b"")])
def test_timeouts_are_never_retried(outcome: ExecOutcome) -> None:
    result = TransportResult(stderr=NOT_CONNECTED, returncode=None, timed_out=True)
    decision = exec_decision(result, outcome)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ExecTimeoutError)
    assert decision.error.started is (outcome.status is not ExecStatus.NEVER_STARTED)
    assert decision.error.timeout_s == 120.0


@pytest.mark.parametrize("timed_out", [False, True])
def test_a_command_the_wrapper_stopped_is_a_timeout(timed_out: bool) -> None:
    # The wrapper in the container stopped the command and said so; whether the transport
    # is still there does not matter, and the command is not run again.
    stopped = ExecOutcome(ExecStatus.TIMED_OUT, None, b"partial")
    result = TransportResult(stderr=THROTTLED, returncode=None, timed_out=timed_out)
    decision = exec_decision(result, stopped)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ExecTimeoutError)
    assert decision.error.started is True
    assert decision.error.timeout_s == 120.0
    assert "stopped" in decision.error.message


def test_cut_off_gives_up() -> None:
    decision = exec_decision(TransportResult(stderr=THROTTLED), CUT)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, ExecCutOffError)


def test_cut_off_says_why_the_session_ended() -> None:
    # The transport's own channel says what happened; the stream (the command's) is not quoted.
    why = b"\nECS Exec data channel failed (dropped): the connection dropped without a close\n"
    decision = exec_decision(TransportResult(stdout=b"secret output", stderr=why), CUT)
    assert isinstance(decision, GiveUp)
    assert decision.error.message == (
        "the exec session ended before the command finished (ECS Exec data channel failed "
        "(dropped): the connection dropped without a close)"
    )
    silent = exec_decision(TransportResult(stderr=b" \n"), CUT)
    assert isinstance(silent, GiveUp)
    assert silent.error.message == "the exec session ended before the command finished"


def test_unrecognised_failure_before_start_shows_the_transports_channel() -> None:
    stderr = b"Command '['session-manager-plugin', ...]' returned non-zero exit status 1.\n"
    decision = exec_decision(TransportResult(stderr=stderr, returncode=255), NEVER)
    assert isinstance(decision, GiveUp)
    assert type(decision.error) is EcsExecError
    assert "returned non-zero exit status 1" in decision.error.message


def test_transport_stderr_is_truncated_in_errors() -> None:
    decision = exec_decision(TransportResult(stderr=b"x" * 10_000, returncode=255), NEVER)
    assert isinstance(decision, GiveUp)
    assert len(decision.error.message) < 2300
    assert "7952 more characters" in decision.error.message


def test_missing_plugin_is_its_own_error() -> None:
    stderr = b"\nSessionManagerPlugin is not found. Please refer to SessionManager Documentation"
    decision = exec_decision(TransportResult(stderr=stderr, returncode=255), NEVER)
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, AwsCliMissingError)


@pytest.mark.parametrize(
    ("stderr", "remedy_part"),
    [
        (
            b"An error occurred (AccessDeniedException) when calling the ExecuteCommand "
            b"operation: User is not authorized",
            "ecs:ExecuteCommand",
        ),
        (
            b"An error occurred (ClusterNotFoundException) when calling the ExecuteCommand "
            b"operation: Cluster not found.",
            "cluster",
        ),
        (
            b"An error occurred (InvalidParameterException) when calling the ExecuteCommand "
            b"operation: task length should be one of [32,36]",
            "parameter",
        ),
    ],
)
def test_refused_exec_gives_up_with_a_remedy(stderr: bytes, remedy_part: str) -> None:
    decision = exec_decision(TransportResult(stderr=stderr, returncode=255), NEVER)
    assert isinstance(decision, GiveUp)
    assert type(decision.error) is EcsExecError
    assert remedy_part in decision.error.remedy


SCARY = [
    b"Rate exceeded",
    b"TargetNotConnectedException",
    NOT_CONNECTED,
    THROTTLED,
    b"An error occurred (ThrottlingException)",
]


@given(
    stdout=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SCARY))).map(b"".join),
    output=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SCARY))).map(b"".join),
    stderr=st.sampled_from([b"", NOT_CONNECTED, THROTTLED, b"junk"]),
    status=st.sampled_from([ExecStatus.COMPLETED, ExecStatus.CUT_OFF, ExecStatus.TIMED_OUT]),
    exit_code=st.integers(0, 255),
    timed_out=st.booleans(),  # timed out after starting, or not: never run again
    attempt=st.integers(1, 50),
    elapsed=st.floats(0, 1000),
    rand=rands,
)
def test_a_started_command_is_never_retried_whatever_it_printed(
    stdout: bytes,
    output: bytes,
    stderr: bytes,
    status: ExecStatus,
    exit_code: int,
    timed_out: bool,
    attempt: int,
    elapsed: float,
    rand: float,
) -> None:
    check_started_command_is_never_retried(**locals())


def check_started_command_is_never_retried(
    stdout: bytes,
    output: bytes,
    stderr: bytes,
    status: ExecStatus,
    exit_code: int,
    timed_out: bool,
    attempt: int,
    elapsed: float,
    rand: float,
) -> None:
    outcome = ExecOutcome(status, exit_code if status is ExecStatus.COMPLETED else None, output)
    result = TransportResult(stdout=stdout, stderr=stderr, timed_out=timed_out)
    decision = exec_decision(result, outcome, attempt=attempt, elapsed_s=elapsed, rand=rand)
    assert not isinstance(decision, Retry)
    if status is ExecStatus.COMPLETED:
        assert decision == Ok(outcome)
    else:
        assert isinstance(decision, GiveUp)
        # Errors never quote what the command printed: they read the same whatever it
        # printed. (Comparing texts instead would fail when the command happens to print
        # what the transport itself said, such as "Rate exceeded".)
        quiet = ExecOutcome(status, outcome.exit_code, b"")
        silent = TransportResult(stdout=b"", stderr=stderr, timed_out=timed_out)
        baseline = exec_decision(silent, quiet, attempt=attempt, elapsed_s=elapsed, rand=rand)
        assert isinstance(baseline, GiveUp)
        assert (decision.error.message, decision.error.remedy) == (
            baseline.error.message,
            baseline.error.remedy,
        )


@given(
    stdout=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SCARY))).map(b"".join),
    stderr=st.binary(max_size=200),
)
def test_never_started_without_a_cli_error_code_is_never_retried(
    stdout: bytes, stderr: bytes
) -> None:
    outcome = ExecOutcome(ExecStatus.NEVER_STARTED, None, stdout)
    decision = exec_decision(TransportResult(stdout=stdout, stderr=stderr), outcome)
    if transport_error_code(stderr) is None:
        assert isinstance(decision, GiveUp)
