"""The exec-transport seam: how a command string reaches a task's container.

Both drivers (sync and anyio) run an exec in three steps so that only the middle one differs
between them: ``prepare()`` turns an :class:`~ecs_sandbox_core._effects.ExecRun` into a
:class:`PreparedRun` (an argv and environment) or an immediate
:class:`~ecs_sandbox_core._effects.TransportResult` when the run cannot start; the driver runs
the argv (``_process.run_sync`` or ``_process.run_async``); ``finish()`` turns the captured
bytes into the result the core classifies.

Transport stdout is the session stream; transport stderr is the transport's own error channel.
Errors before the command starts appear on stderr in the AWS CLI's form
``An error occurred (CODE) when calling the ExecuteCommand operation: MESSAGE``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ecs_sandbox_core._effects import TransportResult
from ecs_sandbox_core._errors import AwsCliMissingError

logger = logging.getLogger(__name__)

PLUGIN_EXECUTABLE = "session-manager-plugin"

# The AWS CLI's own retries for ExecuteCommand and DescribeTasks: "standard" mode retries
# throttling with back-off, which the legacy default does only a few times.
_CLI_ENV_DEFAULTS = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "12"}


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A transport run ready to start: the argv, its environment and the stream's line ends.

    ``env`` is the whole environment of the process (``None`` inherits the caller's).
    ``pty`` is True when the session stream comes through a PTY (``\\r\\n`` line ends), as
    with the AWS CLI; the core's parser needs to know.
    """

    argv: list[str]
    env: dict[str, str] | None
    pty: bool
    hold_stdin: bool = False
    """Give the process a stdin pipe that stays open (never at EOF) until it ends.

    session-manager-plugin reads its stdin as keyboard input and ends the session at EOF
    ("Cannot perform start session: EOF"), so the AWS CLI must not get /dev/null."""


def cli_error(code: str, message: str) -> bytes:
    """Format a pre-start failure the way the AWS CLI prints it on stderr."""
    text = f"An error occurred ({code}) when calling the ExecuteCommand operation: {message}"
    return f"\n{text}\n".encode()


@runtime_checkable
class ExecTransport(Protocol):
    """What a driver needs from an exec transport (see the module docstring)."""

    @property
    def name(self) -> str:
        """A short name for logs and metrics ("aws-cli", "local")."""
        ...

    def prepare(
        self, *, task_arn: str, container: str, command: str
    ) -> PreparedRun | TransportResult:
        """Build the run for ``command`` (the ECS Exec command string), or fail at once."""
        ...

    def finish(
        self,
        prepared: PreparedRun,
        *,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool,
    ) -> TransportResult:
        """Turn what the run produced into the result the core classifies."""
        ...

    def check_available(self) -> None:
        """Raise :class:`AwsCliMissingError` when a program the transport needs is missing."""
        ...


class SsmTransport:
    """The native transport: ECS Exec's data channel spoken in process (no CLI, no plugin).

    Its sessions are :class:`~ecs_sandbox_core.ExecSession` effects that the drivers run
    themselves; this object only tells the drivers which path is in use.
    """

    name = "ssm"
    pty = True  # ECS Exec always runs the command under a PTY

    def check_available(self) -> None:
        """Nothing to check: the client is part of this library."""

    def prepare(
        self, *, task_arn: str, container: str, command: str
    ) -> PreparedRun | TransportResult:
        """Never used: native execs are sessions, not processes."""
        return TransportResult(
            stderr=b"the ssm transport runs ExecSession effects, not processes\n",
            returncode=255,
        )

    def finish(
        self,
        prepared: PreparedRun,
        *,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool,
    ) -> TransportResult:
        """Never used (see :meth:`prepare`)."""
        return TransportResult(stdout=stdout, stderr=stderr, returncode=returncode)


class AwsCliTransport:
    """ECS Exec through the real ``aws ecs execute-command`` and session-manager-plugin.

    ``env`` is laid over ``os.environ`` for the CLI process (credentials, a ``PATH`` that finds
    a particular plugin); ``os.environ`` itself is never changed.
    """

    name = "aws-cli"
    # What `aws ecs execute-command` calls before the plugin starts: the driver spends these
    # from its budget so that CLI execs cannot drain the bucket StopTask needs unseen.
    api_calls = ("execute_command", "describe_tasks")

    def __init__(
        self,
        *,
        cluster: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        aws_executable: str = "aws",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.region = region
        self.endpoint_url = endpoint_url
        self.aws_executable = aws_executable
        self._env_overlay = dict(env or {})

    def environment(self) -> dict[str, str]:
        """The CLI's whole environment: ``os.environ``, the overlay, then retry defaults."""
        env = dict(os.environ)
        env.update(self._env_overlay)
        for key, value in _CLI_ENV_DEFAULTS.items():
            env.setdefault(key, value)
        return env

    def check_available(self) -> None:
        """Raise :class:`AwsCliMissingError` naming whichever of aws / the plugin is missing."""
        path = self.environment().get("PATH", os.defpath)
        if shutil.which(self.aws_executable, path=path) is None:
            raise AwsCliMissingError(
                f"the AWS CLI ({self.aws_executable!r}) is not on PATH",
                remedy=(
                    "Install the AWS CLI (v2 from AWS's installer, or 'pip install awscli') and "
                    "make sure 'aws' is on PATH, or pass aws_executable= the full path to it."
                ),
            )
        if shutil.which(PLUGIN_EXECUTABLE, path=path) is None:
            raise AwsCliMissingError(
                f"{PLUGIN_EXECUTABLE} is not on PATH; the AWS CLI needs it for ECS Exec",
                remedy=(
                    "Install AWS's Session Manager plugin (https://docs.aws.amazon.com/"
                    "systems-manager/latest/userguide/session-manager-working-with-install-"
                    "plugin.html) and make sure 'session-manager-plugin' is on PATH."
                ),
            )

    def prepare(self, *, task_arn: str, container: str, command: str) -> PreparedRun:
        """Build ``aws ecs execute-command ... --interactive --command COMMAND``."""
        env = self.environment()
        executable = shutil.which(self.aws_executable, path=env.get("PATH", os.defpath))
        if executable is None:
            # check_available() passed at start-up, so the CLI vanished since: unexpected.
            self.check_available()
            raise AwsCliMissingError(f"the AWS CLI ({self.aws_executable!r}) is not on PATH")
        argv = [executable]
        if self.region:
            argv += ["--region", self.region]
        if self.endpoint_url:
            argv += ["--endpoint-url", self.endpoint_url]
        argv += [
            "ecs",
            "execute-command",
            "--cluster",
            self.cluster,
            "--task",
            task_arn,
            "--container",
            container,
            "--interactive",
            "--command",
            command,
        ]
        return PreparedRun(argv=argv, env=env, pty=True, hold_stdin=True)

    def finish(
        self,
        prepared: PreparedRun,
        *,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        timed_out: bool,
    ) -> TransportResult:
        """Pass the CLI's output through: the core reads the chatter and markers itself."""
        return TransportResult(
            stdout=stdout,
            stderr=stderr,
            returncode=returncode,
            timed_out=timed_out,
            pty=prepared.pty,
        )


__all__ = [
    "PLUGIN_EXECUTABLE",
    "AwsCliTransport",
    "ExecTransport",
    "PreparedRun",
    "SsmTransport",
    "cli_error",
]
