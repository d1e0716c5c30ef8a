"""Admission to the local SSM gateway: the upgrade, then the open message with its token.

Theory of operation
-------------------
A connection is admitted in two steps before its session starts:

1. The HTTP upgrade (wsproto, server side): the path must be ``/v1/data-channel/<sessionId>``
   with ``role=publish_subscribe``; an unknown session gets 404, and a request that is not
   SigV4-signed for service ``ssmmessages`` in the session's region with LocalAws's own
   credentials (or a key pair added with :meth:`SsmGateway.accept_credentials`) gets 403
   (:func:`._agent_auth.check_signature`); any other malformed upgrade
   gets wsproto's 4xx.
2. The open message: the first WebSocket message must be TEXT JSON with
   ``MessageSchemaVersion``, ``RequestId``, ``TokenValue``, ``ClientId`` and ``ClientVersion``
   (:func:`open_fields`: strings, or an integer schema version as pyssm-client sends it).
   A missing field, a wrong token, a token already used (tokens are single use: the first
   connection that presents the right one spends it), a BINARY first message or no message
   within ``open_timeout_s`` is refused by closing the WebSocket with code 1008 (policy
   violation) and a reason saying which, then the TCP connection. Why a close rather than an
   HTTP error: the token only arrives after the upgrade has succeeded, so a close frame is the
   only answer left, and 1008 is WebSocket's code for "the peer broke the rules"; the reason
   text makes a failing client's error message useful.

This is a mixin of :class:`._gateway.SsmGateway`, which owns the registrations and keys
declared here (under its lock) and the loop the sessions run on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from wsproto.events import Request

from ._agent import AgentSession
from ._agent_auth import check_signature
from ._agent_faults import ChannelFaults, FaultPlan
from ._agent_pty import PtyChild
from ._agent_wire import AgentCounters, AgentSettings, SessionSpec
from ._gateway_conn import Connection

PATH_PREFIX = "/v1/data-channel/"
_OPEN_FIELDS = ("MessageSchemaVersion", "RequestId", "TokenValue", "ClientId", "ClientVersion")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def open_fields(text: str) -> dict[str, object]:
    """The open message's fields; ValueError saying why the message is refused.

    Every field of :data:`_OPEN_FIELDS` must be a non-empty string, except that
    ``MessageSchemaVersion`` may also be an integer: session-manager-plugin sends ``"1.0"``,
    pyssm-client sends ``1``, and AWS's gateway has taken both (pyssm-client's history shows
    sessions against AWS with ``1`` since September 2025).
    """
    try:
        message = json.loads(text)
    except ValueError:
        raise ValueError("the open message is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("the open message is not a JSON object")

    def valid(name: str) -> bool:
        value = message.get(name)
        if name == "MessageSchemaVersion" and type(value) is int:
            return True
        return isinstance(value, str) and bool(value)

    missing = [name for name in _OPEN_FIELDS if not valid(name)]
    if missing:
        raise ValueError(f"the open message lacks {', '.join(missing)}")
    return message


@dataclass(slots=True)
class Registration:
    spec: SessionSpec
    registered_at: float
    faults: ChannelFaults | None = None
    spent: bool = False
    session: AgentSession | None = None


class Admission:
    """Upgrade checks, open-message checks and session start, on the SSM gateway."""

    settings: AgentSettings
    faults: ChannelFaults
    counters: AgentCounters
    _keys: dict[str, str]
    _lock: threading.Lock
    _registrations: dict[str, Registration]
    _loop: asyncio.AbstractEventLoop | None
    _spawn: Callable[[SessionSpec], concurrent.futures.Future[PtyChild]]
    _session_ended: Callable[[AgentSession], None]

    def check_upgrade(self, request: Request) -> tuple[int, str, Registration | None]:
        """HTTP status (101 to accept), reason and registration for an upgrade request."""
        path, _, query = request.target.partition("?")
        if not path.startswith(PATH_PREFIX):
            return 404, "Not Found", None
        if parse_qs(query).get("role") != ["publish_subscribe"]:
            return 400, "the role query parameter must be publish_subscribe", None
        session_id = unquote(path[len(PATH_PREFIX) :])
        with self._lock:
            registration = self._registrations.get(session_id)
        if registration is None:
            return 404, f"Session {session_id} was not found", None
        headers: dict[str, list[str]] = {"host": [request.host]}
        for name, value in request.extra_headers:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        access_key, secret_key = self._key_pair(headers)
        reason = check_signature(
            method="GET",
            host=request.host,
            target=request.target,
            headers=headers,
            region=registration.spec.region,
            access_key=access_key,
            secret_key=secret_key,
        )
        if reason is not None:
            return 403, reason, None
        return 101, "", registration

    def _key_pair(self, headers: dict[str, list[str]]) -> tuple[str, str]:
        """The accepted key pair the upgrade names (``Credential=KEY/...``), else the first."""
        found = _CREDENTIAL.search(",".join(headers.get("authorization", ())))
        with self._lock:
            if found is not None and found.group(1) in self._keys:
                return found.group(1), self._keys[found.group(1)]
            return next(iter(self._keys.items()))

    def open_session(self, connection: Connection, text: str) -> str | None:
        """Check the open message and start the session; the refusal reason otherwise."""
        registration = connection.registration
        assert isinstance(registration, Registration) and self._loop is not None
        try:
            message = open_fields(text)
        except ValueError as exc:
            return str(exc)
        faults = registration.faults or self.faults
        if faults.refuse_token:
            return "the token was refused (fault injection)"
        with self._lock:
            if registration.spent:
                return "the token was already used (tokens are single use)"
            given = str(message["TokenValue"]).encode()
            if not hmac.compare_digest(given, registration.spec.token.encode()):
                return "the token is not valid for this session"
            registration.spent = True
        session = AgentSession(
            registration.spec,
            client_id=str(message["ClientId"]),
            settings=self.settings,
            plan=FaultPlan(faults),
            link=connection,
            loop=self._loop,
            spawner=self._spawn,
            counters=self.counters,
            on_end=self._session_ended,
        )
        registration.session = connection.session = session
        session.start()
        return None


__all__ = ["PATH_PREFIX", "Admission", "Registration", "open_fields"]
