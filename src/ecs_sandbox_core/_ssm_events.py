"""What an SSM data channel tells its driver: output, an exit code, or why it closed."""

from __future__ import annotations

from dataclasses import dataclass

KMS_REMEDY = (
    "This cluster encrypts ECS Exec sessions with a KMS key (executeCommandConfiguration."
    "kmsKeyId), which ecs-sandbox's native client does not implement. Use a cluster without "
    "a KMS key for exec, or set exec_transport='aws-cli' to go through the AWS CLI and "
    "session-manager-plugin."
)


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes the session's command wrote to its terminal, in order, each delivered once."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ExitCode:
    """An exit code the agent reported (only non-interactive sessions do; ECS Exec never)."""

    code: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The channel ended. ``by_agent`` is True for a ``channel_closed`` from the service.

    ``kind`` says why: ``"channel_closed"``, ``"kms"`` (an encryption request this client
    refuses), ``"unacknowledged"`` (input never acknowledged), or ``"protocol"``.
    """

    reason: str
    by_agent: bool
    kind: str


ChannelEvent = Output | ExitCode | Closed


__all__ = ["KMS_REMEDY", "ChannelEvent", "Closed", "ExitCode", "Output"]
