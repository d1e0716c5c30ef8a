"""The embedded local ECS: moto plus bubblewrap containers, reachable by ECS Exec.

``LocalAws`` serves moto's AWS APIs on 127.0.0.1 behind a middleware that runs one bubblewrap
container per ECS task and answers ExecuteCommand; ``LocalTransport`` runs execs in those
containers directly, and a stand-in ``session-manager-plugin`` lets the real AWS CLI do so too.
"""

from ._containers import ContainerSpec, LocalContainer
from ._ecs import ExecRefusal
from ._middleware import Hook, InterceptedRequest, Reply
from ._server import LocalAws
from ._transport import LocalTransport, session_for, transport_for

__all__ = [
    "ContainerSpec",
    "ExecRefusal",
    "Hook",
    "InterceptedRequest",
    "LocalAws",
    "LocalContainer",
    "LocalTransport",
    "Reply",
    "session_for",
    "transport_for",
]
