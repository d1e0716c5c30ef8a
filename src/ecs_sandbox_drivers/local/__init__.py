"""The embedded local ECS: moto plus bubblewrap containers, reachable by ECS Exec.

``LocalAws`` serves moto's AWS APIs on 127.0.0.1 behind a middleware that runs one bubblewrap
container per ECS task and answers ExecuteCommand; ``LocalTransport`` runs execs in those
containers directly, and a stand-in ``session-manager-plugin`` lets the real AWS CLI do so too.
ExecuteCommand's stream URL leads to a local SSM gateway (``SsmGateway``) whose agent speaks
the SSM data channel as amazon-ssm-agent does, with ``ChannelFaults`` to inject.
"""

from ._agent_faults import ChannelFaults
from ._agent_wire import AgentSettings
from ._containers import ContainerSpec, LocalContainer
from ._ecs import ExecRefusal
from ._gateway import GatewayStats, SsmGateway
from ._middleware import Hook, InterceptedRequest, Reply
from ._server import LocalAws
from ._transport import LocalTransport, session_for, transport_for

__all__ = [
    "AgentSettings",
    "ChannelFaults",
    "ContainerSpec",
    "ExecRefusal",
    "GatewayStats",
    "Hook",
    "InterceptedRequest",
    "LocalAws",
    "LocalContainer",
    "LocalTransport",
    "Reply",
    "SsmGateway",
    "session_for",
    "transport_for",
]
