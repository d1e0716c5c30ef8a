"""``LocalTransport``: ECS Exec into a LocalAws task's container, without the AWS CLI.

The fast path for tests and the demo: no API call, no CLI start, no plugin; the command runs
through ``nsenter`` in the task's container (about 10 ms). Like ECS Exec, the command string is
split shell-style and run without a shell, its stderr merged into its stdout. The merge is done
*inside* the container so that nsenter's own failures stay on the transport's stderr.
"""

from __future__ import annotations

import logging
import shlex
import shutil

import boto3

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import TransportResult

from .._transport import PreparedRun, cli_error
from ._containers import nsenter_argv
from ._ecs import ExecRefusal
from ._server import LocalAws

logger = logging.getLogger(__name__)

# ``exec "$@" 2>&1`` keeps the command's argv exactly as ECS would split it.
_MERGE_STDERR = ("sh", "-c", 'exec "$@" 2>&1', "sh")
_NOT_CONNECTED = "The execute command failed due to an internal error. Try again later."


class LocalTransport:
    """An :class:`~ecs_sandbox_drivers._transport.ExecTransport` for LocalAws tasks."""

    name = "local"

    def __init__(self, local_aws: LocalAws) -> None:
        self.local_aws = local_aws
        nsenter = shutil.which("nsenter")
        if nsenter is None:
            raise RuntimeError("LocalTransport needs nsenter (util-linux) on PATH")
        self._nsenter = nsenter

    def check_available(self) -> None:
        """Nothing beyond nsenter (checked on construction) is needed."""

    def prepare(
        self, *, task_arn: str, container: str, command: str
    ) -> PreparedRun | TransportResult:
        """nsenter into the task's container, or fail at once as ExecuteCommand would."""
        target = self.local_aws.exec_target(task_arn, container)
        if isinstance(target, ExecRefusal):
            return TransportResult(
                stdout=b"", stderr=cli_error(target.code, target.message), returncode=255
            )
        try:
            args = shlex.split(command)
        except ValueError as exc:
            # ECS rejects a command its splitter cannot parse before anything starts.
            return TransportResult(
                stderr=cli_error("InvalidParameterException", f"command: {exc}"), returncode=255
            )
        assert target.init_pid is not None  # a reachable container has a pid 1
        argv = nsenter_argv(self._nsenter, target.init_pid, [*_MERGE_STDERR, *args])
        return PreparedRun(argv=argv, env=dict(target.env), pty=False)

    def finish(
        self,
        prepared: PreparedRun,
        *,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool,
    ) -> TransportResult:
        """Report an nsenter that could not enter (the container died meanwhile) as ECS would."""
        if returncode not in (0, None) and stderr.startswith(b"nsenter:") and not stdout:
            logger.debug("nsenter failed: %s", stderr.decode(errors="replace").strip())
            stderr = cli_error("TargetNotConnectedException", _NOT_CONNECTED) + stderr
            returncode = 255
        return TransportResult(
            stdout=stdout,
            stderr=stderr,
            returncode=returncode,
            timed_out=timed_out,
            pty=prepared.pty,
        )


def transport_for(cfg: EcsFargateConfig) -> LocalTransport:
    """The LocalTransport of the running LocalAws that ``cfg`` points at."""
    return LocalTransport(LocalAws.for_config(cfg))


def session_for(cfg: EcsFargateConfig) -> boto3.Session:
    """A boto3 session with the credentials of the LocalAws ``cfg`` points at."""
    return LocalAws.for_config(cfg).boto3_session()


__all__ = ["LocalTransport", "session_for", "transport_for"]
