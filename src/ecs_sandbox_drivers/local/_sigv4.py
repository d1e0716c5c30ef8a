"""AWS Signature Version 4 verification, as the local AWS endpoint requires it.

Theory of operation. AWS accepts a request only when the signature it carries equals the one
the server computes with the secret key of the named access key, over a canonical form of the
request. A request is signed either in its ``Authorization`` header (``AWS4-HMAC-SHA256
Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX``) or, for
a presigned URL, in its query string (``X-Amz-Algorithm``, ``X-Amz-Credential``,
``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature``).

The canonical request (:mod:`._sigv4_canonical`) covers the method, the path, the query, the
signed headers and a payload hash: the ``X-Amz-Content-Sha256`` header when present (S3
always sends it), a presigned S3 URL's ``UNSIGNED-PAYLOAD``, or else the SHA-256 of the body.
Verification checks everything around it first: the credential scope's shape, the request
time against the clock (15 minutes either way for a header signature; a presigned URL's
``X-Amz-Expires``, at most seven days), that ``host`` is signed and that the access key is
known; then it recomputes the signature and compares it in constant time.

A body hash the client declared is also checked against the body (S3's
``XAmzContentSHA256Mismatch``). Streaming bodies' per-chunk signatures are not checked (botocore
sends ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` only over TLS; this endpoint is plain HTTP).

Everything here is pure: the caller passes the clock reading ``now`` and the key table.
:func:`._signature.verify` picks the scheme (this one, or S3's SigV2 presigned URLs in
:mod:`._sigv2`) and returns a :class:`Verified` or a :class:`Refusal`, whose ``kind`` becomes
the error AWS would send (:func:`._signature.error_for`).
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ._sigv4_canonical import (
    ALGORITHM,
    canonical_path,
    canonical_request,
    query_pairs,
    sha256_hex,
    signature_for,
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW_S = 15 * 60  # AWS refuses requests signed more than 15 minutes off its clock
MAX_EXPIRES_S = 7 * 24 * 3600  # a presigned URL lives at most seven days
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX = frozenset("0123456789abcdef")

Kind = Literal[
    "missing",  # no signature at all
    "unsupported",  # signed, but not with SigV4 (SigV2, another algorithm)
    "malformed",  # a SigV4 signature whose parts are missing or wrong
    "unknown-key",  # the access key id is not one of ours
    "mismatch",  # the signature does not match
    "skewed",  # header signed too far from now
    "expired",  # presigned URL past its expiry (or not yet valid)
    "content-sha",  # the body does not hash to the declared X-Amz-Content-Sha256
]
WireProtocol = Literal["s3", "json", "query"]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received: ``target`` is the raw request target (``/path?query``, still
    percent-encoded as sent), ``headers`` map lower-case names to values."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature holds: who signed it, for which service and region."""

    access_key: str
    service: str
    region: str
    presigned: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused; ``service`` is the signed scope's, or "" when unknown."""

    kind: Kind
    message: str
    service: str = ""
    presigned: bool = False


def verify_header(  # noqa: PLR0917 - one caller, _signature.verify
    request: SignedRequest,
    path: str,
    params: list[tuple[str, str]],
    authorization: str,
    keys: Mapping[str, str],
    now: float,
) -> Verified | Refusal:
    fields: dict[str, str] = {}
    for part in authorization[len(ALGORITHM) + 1 :].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            return Refusal(
                "malformed",
                f"Authorization header requires '{required}' parameter. "
                f"Authorization={authorization.split(' ', 1)[0]}",
            )
    scope = _scope(fields["Credential"])
    if isinstance(scope, Refusal):
        return scope
    _key, date, _region, service = scope
    amz_date = request.headers.get("x-amz-date", "")
    signed_at = _parse_date(amz_date)
    if signed_at is None:
        return Refusal("malformed", "X-Amz-Date is missing or malformed", service)
    if date != amz_date[:8]:
        return Refusal("malformed", f"Invalid credential date. Date is not {date}.", service)
    if abs(now - signed_at) > MAX_SKEW_S:
        return Refusal(
            "skewed",
            "Signature expired: the difference between the request time and the current "
            "time is too large.",
            service,
        )
    content_sha = request.headers.get("x-amz-content-sha256")
    if service == "s3" and content_sha is None:
        return Refusal(
            "malformed", "Missing required header for this request: x-amz-content-sha256", service
        )
    if content_sha is not None and not _known_payload_hash(content_sha):
        return Refusal(
            "malformed", "x-amz-content-sha256 must be a SHA-256 or UNSIGNED-PAYLOAD", service
        )
    payload_hash = content_sha if content_sha is not None else sha256_hex(request.body)
    outcome = _check(
        request,
        path=path,
        params=params,
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        scope=scope,
        amz_date=amz_date,
        payload_hash=payload_hash,
        keys=keys,
        presigned=False,
    )
    if isinstance(outcome, Refusal):
        return outcome
    if (
        content_sha is not None
        and len(content_sha) == 64
        and content_sha != sha256_hex(request.body)
    ):
        return Refusal(
            "content-sha",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            service,
        )
    return outcome


def verify_query(
    request: SignedRequest,
    path: str,
    params: list[tuple[str, str]],
    keys: Mapping[str, str],
    now: float,
) -> Verified | Refusal:
    values = dict(params)
    for required in (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ):
        if not values.get(required):
            return Refusal(
                "malformed",
                f"Query-string authentication version 4 requires the {required} parameter.",
                presigned=True,
            )
    if values["X-Amz-Algorithm"] != ALGORITHM:
        return Refusal("malformed", f'X-Amz-Algorithm only supports "{ALGORITHM}"', presigned=True)
    scope = _scope(values["X-Amz-Credential"], presigned=True)
    if isinstance(scope, Refusal):
        return scope
    _key, date, _region, service = scope
    amz_date = values["X-Amz-Date"]
    signed_at = _parse_date(amz_date)
    if signed_at is None or date != amz_date[:8]:
        return Refusal("malformed", "X-Amz-Date must be in the ISO8601 Long Format", service, True)
    expires_text = values.get("X-Amz-Expires", "")
    if service == "s3" and not expires_text:
        return Refusal(
            "malformed",
            "Query-string authentication version 4 requires the X-Amz-Expires parameter.",
            service,
            True,
        )
    expires = int(expires_text) if expires_text.isdigit() and expires_text.isascii() else None
    if expires_text and (expires is None or not 0 < expires <= MAX_EXPIRES_S):
        return Refusal(
            "malformed",
            f"X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES_S}",
            service,
            True,
        )
    if signed_at - now > MAX_SKEW_S:
        return Refusal("expired", "Request is not valid yet", service, True)
    if expires is not None and now > signed_at + expires:
        return Refusal("expired", "Request has expired", service, True)
    payload_hash = (
        UNSIGNED_PAYLOAD
        if service == "s3"
        else request.headers.get("x-amz-content-sha256", sha256_hex(request.body))
    )
    return _check(
        request,
        path=path,
        params=[(k, v) for k, v in params if k != "X-Amz-Signature"],
        signed_headers=values["X-Amz-SignedHeaders"],
        signature=values["X-Amz-Signature"],
        scope=scope,
        amz_date=amz_date,
        payload_hash=payload_hash,
        keys=keys,
        presigned=True,
    )


def _check(
    request: SignedRequest,
    *,
    path: str,
    params: list[tuple[str, str]],
    signed_headers: str,
    signature: str,
    scope: tuple[str, str, str, str],
    amz_date: str,
    payload_hash: str,
    keys: Mapping[str, str],
    presigned: bool,
) -> Verified | Refusal:
    access_key, _date, region, service = scope
    signed = signed_headers.split(";")
    if "host" not in signed:
        return Refusal("malformed", "SignedHeaders must include host", service, presigned)
    secret = keys.get(access_key)
    if secret is None:
        message = "The security token included in the request is invalid."
        if service == "s3":
            message = "The AWS Access Key Id you provided does not exist in our records."
        return Refusal("unknown-key", message, service, presigned)
    missing = [name for name in signed if name not in request.headers]
    if missing:
        return Refusal(
            "mismatch",
            f"Signed headers missing from the request: {', '.join(missing)}",
            service,
            presigned,
        )
    canonical = canonical_request(
        method=request.method,
        path=canonical_path(path, service),
        params=params,
        headers=[(name, request.headers[name]) for name in signed],
        payload_hash=payload_hash,
    )
    expected = signature_for(canonical, secret=secret, amz_date=amz_date, scope=scope[1:])
    if not hmac.compare_digest(expected, signature):
        return Refusal(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            service,
            presigned,
        )
    return Verified(access_key=access_key, service=service, region=region, presigned=presigned)


# --- helpers --------------------------------------------------------------------------------


def _scope(credential: str, presigned: bool = False) -> tuple[str, str, str, str] | Refusal:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        return Refusal(
            "malformed",
            f"Credential should be scoped to a valid region and service: {credential!r}",
            parts[3] if len(parts) == 5 else "",
            presigned,
        )
    return parts[0], parts[1], parts[2], parts[3]


def _parse_date(text: str) -> int | None:
    try:
        return calendar.timegm(time.strptime(text, _DATE_FORMAT))
    except ValueError:
        return None


def _known_payload_hash(value: str) -> bool:
    if value == UNSIGNED_PAYLOAD or value.startswith("STREAMING-"):
        return True
    return len(value) == 64 and set(value) <= _HEX


__all__ = [
    "ALGORITHM",
    "MAX_EXPIRES_S",
    "MAX_SKEW_S",
    "Kind",
    "Refusal",
    "SignedRequest",
    "Verified",
    "WireProtocol",
    "canonical_path",
    "canonical_request",
    "query_pairs",
    "sha256_hex",
    "signature_for",
    "verify_header",
    "verify_query",
]
