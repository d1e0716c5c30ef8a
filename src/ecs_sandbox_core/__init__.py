"""ecs-sandbox's pure core: every decision, no I/O.

Nothing here touches the network, the file system, the clock, randomness or the environment;
drivers (``ecs_sandbox_drivers``) carry out the effects that the flows yield.
"""

from ._budget import ApiBudget, TokenBucket
from ._config import EcsFargateConfig
from ._effects import (
    AwsCall,
    AwsError,
    AwsResult,
    DescribeTask,
    Effect,
    ExecRun,
    Flow,
    Log,
    Now,
    Presign,
    Random,
    Sleep,
    Token,
    TransportResult,
)
from ._errors import (
    AwsApiError,
    AwsCliMissingError,
    AwsCredentialsError,
    ConfigError,
    EcsExecError,
    EcsSandboxError,
    ExecAgentNotConnectedError,
    ExecCutOffError,
    ExecTimeoutError,
    PhaseTimeoutError,
    RemoteError,
    RunTaskError,
    S3StagingError,
    SessionError,
    TaskDefinitionError,
    TaskStoppedError,
    UnsafeArchiveError,
    UsageError,
)
from ._exec_flow import ExecResult, exec_flow
from ._lifecycle import TaskHandle, preflight_flow, start_flow, teardown_flow
from ._markers import ExecOutcome, ExecStatus, parse_exec_output, wrap_command
from ._pane import CaptureRequest, Increment, PaneTracker
from ._registry import TaskDefinitionRegistry
from ._retry import GiveUp, Ok, Retry, backoff, classify_aws_error, classify_exec, classify_run_task
from ._session import SessionSpec, send_keys_flow, start_session_flow
from ._tar import TarEntry, build_tar, check_archive, check_member
from ._taskdef import definition_hash, sanitize_family
from ._tmux import KeyPlan, plan_keys

__all__ = [
    "ApiBudget",
    "AwsApiError",
    "AwsCall",
    "AwsCliMissingError",
    "AwsCredentialsError",
    "AwsError",
    "AwsResult",
    "CaptureRequest",
    "ConfigError",
    "DescribeTask",
    "EcsExecError",
    "EcsFargateConfig",
    "EcsSandboxError",
    "Effect",
    "ExecAgentNotConnectedError",
    "ExecCutOffError",
    "ExecOutcome",
    "ExecResult",
    "ExecRun",
    "ExecStatus",
    "ExecTimeoutError",
    "Flow",
    "GiveUp",
    "Increment",
    "KeyPlan",
    "Log",
    "Now",
    "Ok",
    "PaneTracker",
    "PhaseTimeoutError",
    "Presign",
    "Random",
    "RemoteError",
    "Retry",
    "RunTaskError",
    "S3StagingError",
    "SessionError",
    "SessionSpec",
    "Sleep",
    "TarEntry",
    "TaskDefinitionError",
    "TaskDefinitionRegistry",
    "TaskHandle",
    "TaskStoppedError",
    "Token",
    "TokenBucket",
    "TransportResult",
    "UnsafeArchiveError",
    "UsageError",
    "backoff",
    "build_tar",
    "check_archive",
    "check_member",
    "classify_aws_error",
    "classify_exec",
    "classify_run_task",
    "definition_hash",
    "exec_flow",
    "parse_exec_output",
    "plan_keys",
    "preflight_flow",
    "sanitize_family",
    "send_keys_flow",
    "start_flow",
    "start_session_flow",
    "teardown_flow",
    "wrap_command",
]
