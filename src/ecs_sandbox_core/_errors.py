"""Errors, split by whose fault they are.

``UsageError`` means the caller asked for something that cannot work (bad configuration, a
hostile archive, a session name that already exists): fixing the call fixes it.
``RemoteError`` means AWS, the exec transport or the container misbehaved: the same call may
work later, or needs a change in the AWS account. Every error carries ``remedy``, a short
hint of what to do, which ``str()`` appends so that it reaches logs and terminals.

Every error pickles round trip with its attributes (process-pool harnesses send them between
processes): the base class's ``__reduce__`` rebuilds an instance without calling its
``__init__`` (whose keyword-only arguments the default pickling cannot pass) and restores
its attributes from ``__dict__``.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[EcsSandboxError], args: tuple[Any, ...]) -> EcsSandboxError:
    """Unpickling helper: an instance of ``cls`` with ``args``, attributes restored later."""
    # The built-in base that lays the instance out (OSError for the timeouts, which are
    # TimeoutErrors) must allocate it: ``cls.__new__`` may find another base's first.
    solid: type = cls
    while solid.__module__ != "builtins" and solid.__base__ is not None:
        solid = solid.__base__
    error: EcsSandboxError = solid.__new__(cls, *args)
    error.args = args
    return error


class EcsSandboxError(Exception):
    """Base of every error this library raises on purpose."""

    remedy: str = ""

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if remedy is not None:
            self.remedy = remedy

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), dict(self.__dict__))

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message}\n\nHow to fix: {self.remedy}"
        return self.message


# --- the caller's fault -------------------------------------------------------------------


class UsageError(EcsSandboxError, ValueError):
    """The caller asked for something that cannot work; fix the call."""


class ConfigError(UsageError):
    """A configuration value is missing or invalid."""


class UnsafeArchiveError(UsageError):
    """An archive member would escape its destination or create a device file."""

    remedy = (
        "Only regular files, directories and links that stay inside the destination can be "
        "copied; remove absolute names, '..' components, escaping links and device files."
    )


class SessionError(UsageError):
    """A tmux session was used in a way it cannot support (duplicate name, bad keys)."""


class NoSuchUserError(UsageError):
    """An exec was to run as a user that does not exist in the container; it did not run.

    ``user`` is the name asked for.
    """

    def __init__(self, message: str, *, user: str) -> None:
        super().__init__(
            message,
            remedy="Create the user in the image (or in an earlier exec as root), or pass "
            "a user that exists; user=None runs as the container's own user.",
        )
        self.user = user


# --- AWS, the transport or the container misbehaved ---------------------------------------


class RemoteError(EcsSandboxError, RuntimeError):
    """AWS, the exec transport or the container failed; the call itself was valid."""


class AwsCredentialsError(RemoteError):
    """No usable AWS credentials (STS GetCallerIdentity failed)."""

    remedy = (
        "Give boto3 and the AWS CLI the same valid credentials: export AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or set AWS_PROFILE "
        "to a configured profile, or run where an IAM role is attached. Expired or invalid "
        "credentials, or no route to STS, give the same failure."
    )


class AwsCliMissingError(RemoteError):
    """The AWS CLI or session-manager-plugin needed for ECS Exec is not installed."""

    remedy = (
        "ECS Exec runs through the AWS CLI ('aws') and AWS's session-manager-plugin on this "
        "host; install both and make sure they are on PATH."
    )


class AwsApiError(RemoteError):
    """An AWS API call failed in a way that retrying will not fix."""

    def __init__(
        self, message: str, *, code: str = "", operation: str = "", remedy: str | None = None
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.code = code
        self.operation = operation


class TaskDefinitionError(AwsApiError):
    """The base task definition cannot be used or a per-task one cannot be registered."""


class RunTaskError(AwsApiError):
    """RunTask failed: capacity never came, or the request is refused."""

    remedy = (
        "Check IAM permissions (ecs:RunTask and iam:PassRole for the task and execution roles), "
        "that the cluster and task definition exist in this region, and that the subnets and "
        "security groups belong to the same VPC."
    )


class TaskStoppedError(RemoteError):
    """The task stopped while it was expected to be running."""

    def __init__(
        self,
        message: str,
        *,
        task_arn: str = "",
        stop_code: str = "",
        stopped_reason: str = "",
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.task_arn = task_arn
        self.stop_code = stop_code
        self.stopped_reason = stopped_reason
        self.exit_code = exit_code


class PhaseTimeoutError(RemoteError, TimeoutError):
    """A phase (waiting for RUNNING, an exec, a tmux wait) did not finish in time."""

    def __init__(self, message: str, *, phase: str, timeout_s: float) -> None:
        super().__init__(message)
        self.phase = phase
        self.timeout_s = timeout_s


class EcsExecError(RemoteError):
    """An ECS Exec round trip failed, or the command reported a failure when checked."""

    def __init__(
        self, message: str, *, exit_code: int | None = None, remedy: str | None = None
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.exit_code = exit_code


class ExecAgentNotConnectedError(EcsExecError):
    """The task's exec agent never became reachable."""

    remedy = (
        "The task runs with enableExecuteCommand, so the usual causes are: private subnets "
        "without a NAT gateway or VPC endpoints for ssm, ssmmessages and ec2messages; a task "
        "role without the ssmmessages:* permissions ECS Exec needs; or an agent that is still "
        "starting (wait longer)."
    )


class ExecCutOffError(EcsExecError):
    """The command started but its output ended before the exit-code marker."""

    remedy = (
        "The exec session ended early (network, session timeout or a killed task). The "
        "command may have run in part; it is not run again automatically."
    )


class ExecTimeoutError(EcsExecError, PhaseTimeoutError):
    """The exec round trip did not finish within its timeout."""

    def __init__(self, message: str, *, timeout_s: float, started: bool) -> None:
        # Both bases take different keywords; initialise the shared root once, directly.
        EcsSandboxError.__init__(self, message)
        self.exit_code = None
        self.phase = "exec"
        self.timeout_s = timeout_s
        self.started = started


class OutputLimitError(RemoteError):
    """The sandbox sent back more than a configured limit allows (output, a download).

    ``limit`` is the limit that was passed and ``setting`` the configuration key that sets
    it. Nothing beyond the limit was kept in memory or written to disk.
    """

    def __init__(
        self, message: str, *, limit: int, setting: str, remedy: str | None = None
    ) -> None:
        super().__init__(
            message,
            remedy=remedy
            if remedy is not None
            else f"Raise {setting} in the configuration (it is {limit}), or produce less.",
        )
        self.limit = limit
        self.setting = setting


class ExecOutputTooLargeError(OutputLimitError, EcsExecError):
    """A command's output went past ``max_exec_output_bytes``; the command was killed.

    The command may have run in part; it is not run again.
    """

    def __init__(self, message: str, *, limit: int, setting: str = "max_exec_output_bytes") -> None:
        OutputLimitError.__init__(
            self,
            message,
            limit=limit,
            setting=setting,
            remedy=f"Raise {setting} (it is {limit} bytes), or have the command print less "
            "(redirect bulky output to a file and copy it with copy_from_sandbox).",
        )


class DownloadTooLargeError(OutputLimitError):
    """A download is larger (in bytes or members, uncompressed) than the configured limits."""


class S3StagingError(RemoteError):
    """Staging a file through S3 failed."""

    remedy = (
        "Check that s3_bucket exists in this region and that the credentials may put, get and "
        "delete objects under s3_prefix."
    )


__all__ = [
    "AwsApiError",
    "AwsCliMissingError",
    "AwsCredentialsError",
    "ConfigError",
    "DownloadTooLargeError",
    "EcsExecError",
    "EcsSandboxError",
    "ExecAgentNotConnectedError",
    "ExecCutOffError",
    "ExecOutputTooLargeError",
    "ExecTimeoutError",
    "OutputLimitError",
    "PhaseTimeoutError",
    "RemoteError",
    "RunTaskError",
    "S3StagingError",
    "SessionError",
    "TaskDefinitionError",
    "TaskStoppedError",
    "UnsafeArchiveError",
    "UsageError",
]
