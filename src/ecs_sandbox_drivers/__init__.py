"""ecs-sandbox drivers: the sync API (this module), the anyio API (``.aio``) and the embedded
local ECS (``.local``).

    from ecs_sandbox_drivers import EcsFargateConfig, EcsFargateSandbox

    with EcsFargateSandbox.spin_up(cfg=cfg, task_id="t1", trial_name="a", run_id="r1") as sb:
        print(sb.exec("uname -a").exit_code)
"""

from ecs_sandbox_core import (
    AwsCliMissingError,
    AwsCredentialsError,
    ConfigError,
    DownloadTooLargeError,
    EcsExecError,
    EcsFargateConfig,
    EcsSandboxError,
    ExecOutputTooLargeError,
    OutputLimitError,
    PhaseTimeoutError,
    RemoteError,
    SessionError,
    TaskStoppedError,
    UnsafeArchiveError,
    UsageError,
)
from ecs_sandbox_core._exec_flow import ExecResult

from ._api import EcsFargateSandbox, EcsFargateTmuxSession
from ._async import AsyncDriver
from ._common import ExecRunResult, SandboxCommand
from ._gc import collect_garbage
from ._sync import SyncDriver
from ._transport import AwsCliTransport, ExecTransport

__all__ = [
    "AsyncDriver",
    "AwsCliMissingError",
    "AwsCliTransport",
    "AwsCredentialsError",
    "ConfigError",
    "DownloadTooLargeError",
    "EcsExecError",
    "EcsFargateConfig",
    "EcsFargateSandbox",
    "EcsFargateTmuxSession",
    "EcsSandboxError",
    "ExecOutputTooLargeError",
    "ExecResult",
    "ExecRunResult",
    "ExecTransport",
    "OutputLimitError",
    "PhaseTimeoutError",
    "RemoteError",
    "SandboxCommand",
    "SessionError",
    "SyncDriver",
    "TaskStoppedError",
    "UnsafeArchiveError",
    "UsageError",
    "collect_garbage",
]
