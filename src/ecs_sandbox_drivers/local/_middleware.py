"""A WSGI middleware in front of moto: hooks, call counts and the ECS additions.

Every request is read once into an :class:`InterceptedRequest` and its SigV4 signature
checked against the accepted key pairs (:mod:`._sigv4`): an unsigned or wrongly signed request
is answered with AWS's error for it and goes no further. Hooks run next (in the order added)
and may answer it (fault injection, throttling) or change its JSON parameters;
then the ECS emulator gets it (RunTask, StopTask, DescribeTasks, ExecuteCommand) and whatever
it leaves goes to moto unchanged.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import escape

from ._signature import Refusal, SignedRequest, WireProtocol, error_for, verify

logger = logging.getLogger(__name__)

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
ADMIN_HEADER = "X-Ecs-Sandbox-Admin"
"""moto's own ``/moto-api`` (reset, state transitions) answers only requests carrying this
header with the middleware's ``admin_token``: a task on the shared network must not reset
the whole local AWS."""
_JSON_TYPE = "application/x-amz-json-1.1"

WsgiEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[WsgiEnviron, StartResponse], Iterable[bytes]]


@dataclass(slots=True)
class InterceptedRequest:
    """One request as hooks and the emulator see it.

    ``operation`` is the API operation when it can be told (``RunTask`` from the
    ``X-Amz-Target`` header, ``GetCallerIdentity`` from a query ``Action``) and otherwise
    ``"<service> <METHOD>"`` (S3's REST calls). ``params`` is the parsed JSON body of a JSON
    protocol request; hooks may change it in place and the change reaches moto.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    service: str
    operation: str
    region: str
    params: dict[str, Any] | None = None
    _original: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def is_ecs(self) -> bool:
        return self.headers.get("x-amz-target", "").startswith(ECS_TARGET_PREFIX)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete HTTP answer (from a hook, the emulator, or moto)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        """A JSON-protocol answer (ECS, Logs)."""
        return cls(status, json.dumps(data).encode(), (("Content-Type", _JSON_TYPE),))

    @classmethod
    def json_error(cls, code: str, message: str, status: int = 400) -> Reply:
        """A JSON-protocol error as botocore parses it: ``Error.Code`` = ``code``."""
        body = {"__type": code, "message": message}
        headers = (("Content-Type", _JSON_TYPE), ("x-amzn-ErrorType", code))
        return cls(status, json.dumps(body).encode(), headers)

    def json_body(self) -> Any:
        return json.loads(self.body) if self.body else None


Hook = Callable[[InterceptedRequest], "Reply | None"]
"""Called for every request before moto; return a :class:`Reply` to answer it instead."""

ReplyHook = Callable[[InterceptedRequest, Reply], "Reply | None"]
"""Called with every answer (after moto and the emulator did the work); return a
:class:`Reply` to send instead: a fault after the fact, such as a task started whose
RunTask answer is lost."""

Forward = Callable[[InterceptedRequest], Reply]


class Emulator(Protocol):
    """The ECS additions: answer or post-process a request, or return None to pass it on."""

    def handle(self, request: InterceptedRequest, forward: Forward) -> Reply | None: ...


class Middleware:
    """The WSGI app LocalAws serves: signature check, hooks, counting, the emulator, moto.

    ``keys`` maps the accepted access key ids to their secret keys (see
    :meth:`accept_credentials`); ``refused`` counts refused requests by error kind.
    """

    def __init__(
        self,
        app: WsgiApp,
        emulator: Emulator,
        *,
        default_region: str,
        keys: Mapping[str, str],
        admin_token: str | None = None,
    ) -> None:
        self._app = app
        self._emulator = emulator
        self._default_region = default_region
        self._keys = dict(keys)
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.refused: Counter[str] = Counter()
        self._hooks: list[Hook] = []
        self._reply_hooks: list[ReplyHook] = []
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def accept_credentials(self, access_key: str, secret_key: str) -> None:
        """Also accept requests signed with this key pair (another IAM user, as it were)."""
        with self._lock:
            self._keys[access_key] = secret_key

    def add_hook(self, hook: Hook) -> None:
        with self._lock:
            self._hooks.append(hook)

    def remove_hook(self, hook: Hook) -> None:
        with self._lock:
            self._hooks.remove(hook)

    def add_reply_hook(self, hook: ReplyHook) -> None:
        with self._lock:
            self._reply_hooks.append(hook)

    def remove_reply_hook(self, hook: ReplyHook) -> None:
        with self._lock:
            self._reply_hooks.remove(hook)

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            given = str(environ.get("HTTP_" + ADMIN_HEADER.upper().replace("-", "_"), ""))
            if not hmac.compare_digest(given.encode(), self.admin_token.encode()):
                return _send(Reply(403, b"Forbidden"), start_response)
            return self._app(environ, start_response)
        request = self._capture(environ)
        refusal = self._authenticate(environ, request)
        if refusal is not None:
            return _send(refusal, start_response)
        with self._lock:
            self.calls[request.operation] += 1
            hooks = list(self._hooks)
            reply_hooks = list(self._reply_hooks)
        for hook in hooks:
            reply = hook(request)
            if reply is not None:
                return _send(reply, start_response)
        if request.params is not None and request.params != request._original:
            request.body = json.dumps(request.params).encode()

        def forward(req: InterceptedRequest) -> Reply:
            return self.forward(environ, req)

        reply = self._emulator.handle(request, forward) if request.is_ecs else None
        if reply is None:
            if not reply_hooks:
                environ["wsgi.input"] = io.BytesIO(request.body)
                environ["CONTENT_LENGTH"] = str(len(request.body))
                return self._app(environ, start_response)
            reply = forward(request)
        for reply_hook in reply_hooks:
            reply = reply_hook(request, reply) or reply
        return _send(reply, start_response)

    def _authenticate(self, environ: WsgiEnviron, request: InterceptedRequest) -> Reply | None:
        """None when ``request`` is signed with an accepted key pair, else AWS's error."""
        target = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "")
        if not target:  # not werkzeug: rebuild the target from the decoded parts
            query = str(environ.get("QUERY_STRING", ""))
            target = quote(request.path, safe="/~") + (f"?{query}" if query else "")
        headers = dict(request.headers)
        if environ.get("CONTENT_LENGTH"):  # WSGI keeps it out of HTTP_*; other SDKs sign it
            headers["content-length"] = str(environ["CONTENT_LENGTH"])
        with self._lock:
            keys = dict(self._keys)
        outcome = verify(
            SignedRequest(request.method, target, headers, request.body),
            keys=keys,
            now=time.time(),
        )
        if not isinstance(outcome, Refusal):
            return None
        protocol: WireProtocol = "s3"
        if "x-amz-target" in request.headers:
            protocol = "json"
        elif outcome.service != "s3" and " " not in request.operation:
            protocol = "query"  # an Action parameter named the operation
        with self._lock:
            self.refused[outcome.kind] += 1
        logger.info(
            "refused %s %s: %s (%s)", request.method, request.path, outcome.kind, outcome.message
        )
        return _refusal_reply(outcome, protocol, request.service, request.method)

    def forward(self, environ: WsgiEnviron, request: InterceptedRequest) -> Reply:
        """Send ``request`` (body as it is now) to moto and collect the whole answer."""
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(request.body)
        env["CONTENT_LENGTH"] = str(len(request.body))
        if "x-amz-target" in request.headers:
            env["HTTP_X_AMZ_TARGET"] = request.headers["x-amz-target"]
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers

        chunks = self._app(env, start)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        headers = tuple((k, v) for k, v in captured["headers"] if k.lower() != "content-length")
        return Reply(captured["status"], body, headers)

    def _capture(self, environ: WsgiEnviron) -> InterceptedRequest:
        if environ.get("wsgi.input_terminated"):
            # A chunked upload has no Content-Length; the server ends the stream for us.
            body = environ["wsgi.input"].read()
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        authorization = headers.get("authorization", "")
        if not authorization:
            # A presigned URL carries its credential scope in the query string.
            query = parse_qs(str(environ.get("QUERY_STRING", "")))
            credential = query.get("X-Amz-Credential", [""])[0]
            if not credential and "AWSAccessKeyId" in query:  # SigV2 presigning: S3 only
                credential = f"key/date/{self._default_region}/s3/aws4_request"
            authorization = f"Credential={credential}" if credential else ""
        service, region = _scope(authorization, self._default_region)
        target = headers.get("x-amz-target", "")
        params: dict[str, Any] | None = None
        original: dict[str, Any] | None = None
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if target:
            operation = target.rsplit(".", 1)[-1]
            if body:
                try:
                    loaded = json.loads(body)
                except ValueError:
                    loaded = None
                if isinstance(loaded, dict):
                    params, original = loaded, json.loads(body)
        else:
            action = parse_qs(body.decode("latin-1")).get("Action") if body else None
            action = action or parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
            operation = action[0] if action else f"{service} {method}"
        return InterceptedRequest(
            method=method,
            path=str(environ.get("PATH_INFO", "/")),
            headers=headers,
            body=body,
            service=service,
            operation=operation,
            region=region,
            params=params,
            _original=original,
        )


def _scope(authorization: str, default_region: str) -> tuple[str, str]:
    """Service and region from a SigV4 ``Authorization`` header's credential scope."""
    try:
        credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
        _key, _date, region, service, _term = credential.split("/")
    except (IndexError, ValueError):
        return "unknown", default_region
    return service, region


def _refusal_reply(refusal: Refusal, protocol: WireProtocol, service: str, method: str) -> Reply:
    """AWS's error answer for a refused request, in the shape its protocol's clients parse."""
    code, status = error_for(refusal, protocol)
    if protocol == "json":
        return Reply.json_error(code, refusal.message, status)
    request_id = secrets.token_hex(8)
    message = escape(refusal.message)
    if protocol == "s3":
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    elif service == "ec2":
        text = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        text = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
    body = b"" if method == "HEAD" else text.encode()
    return Reply(status, body, (("Content-Type", "application/xml"),))


def _send(reply: Reply, start_response: StartResponse) -> list[bytes]:
    headers = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(reply.body))))
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    start_response(f"{reply.status} {phrase}", headers)
    return [reply.body]


__all__ = [
    "ADMIN_HEADER",
    "ECS_TARGET_PREFIX",
    "Hook",
    "InterceptedRequest",
    "Middleware",
    "Reply",
    "ReplyHook",
]
