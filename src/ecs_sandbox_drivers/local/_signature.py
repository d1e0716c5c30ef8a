"""Which signature a request carries, its check, and the error AWS answers a refusal with.

The one entry point of the local endpoint's authentication: :func:`verify` dispatches to
SigV4 (header or presigned query, :mod:`._sigv4`) or S3's SigV2 presigned URLs
(:mod:`._sigv2`); :func:`error_for` maps a :class:`Refusal` to the code and HTTP status of each
wire protocol. Pure: the caller passes the clock reading and the key table.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._sigv2 import verify_presigned_v2
from ._sigv4 import (
    ALGORITHM,
    Refusal,
    SignedRequest,
    Verified,
    WireProtocol,
    query_pairs,
    verify_header,
    verify_query,
)


def verify(request: SignedRequest, *, keys: Mapping[str, str], now: float) -> Verified | Refusal:
    """Check ``request``'s signature against ``keys`` (access key id -> secret key).

    SigV4 in the ``Authorization`` header or the query string, or S3's SigV2 presigned query;
    any other scheme (SigV2 headers, another algorithm) is ``unsupported``, none ``missing``.
    """
    path, _, query = request.target.partition("?")
    params = query_pairs(query)
    names = {name for name, _ in params}
    authorization = request.headers.get("authorization", "").strip()
    if authorization.startswith(ALGORITHM + " "):
        return verify_header(request, path, params, authorization, keys, now)
    if "X-Amz-Signature" in names or "X-Amz-Algorithm" in names:
        return verify_query(request, path, params, keys, now)
    if "AWSAccessKeyId" in names and "Signature" in names:
        return verify_presigned_v2(request, path, params, keys, now)
    if authorization or "AWSAccessKeyId" in names or "Signature" in names:
        return Refusal(
            "unsupported",
            "The authorization mechanism you have provided is not supported. "
            f"Please use {ALGORITHM}.",
        )
    return Refusal("missing", "Missing Authentication Token")


def error_for(refusal: Refusal, protocol: WireProtocol) -> tuple[str, int]:
    """The error code and HTTP status AWS answers ``refusal`` with in ``protocol``."""
    if protocol == "s3":
        return {
            "missing": ("AccessDenied", 403),
            "unsupported": ("InvalidRequest", 400),
            "malformed": (
                ("AuthorizationQueryParametersError", 400)
                if refusal.presigned
                else ("AuthorizationHeaderMalformed", 400)
            ),
            "unknown-key": ("InvalidAccessKeyId", 403),
            "mismatch": ("SignatureDoesNotMatch", 403),
            "skewed": ("RequestTimeTooSkewed", 403),
            "expired": ("AccessDenied", 403),
            "content-sha": ("XAmzContentSHA256Mismatch", 400),
        }[refusal.kind]
    if protocol == "json":
        return {
            "missing": ("MissingAuthenticationTokenException", 400),
            "unsupported": ("IncompleteSignatureException", 400),
            "malformed": ("IncompleteSignatureException", 400),
            "unknown-key": ("UnrecognizedClientException", 400),
            "mismatch": ("InvalidSignatureException", 400),
            "skewed": ("InvalidSignatureException", 400),
            "expired": ("InvalidSignatureException", 400),
            "content-sha": ("InvalidSignatureException", 400),
        }[refusal.kind]
    return {  # the query protocol's common errors (STS, EC2...)
        "missing": ("MissingAuthenticationToken", 403),
        "unsupported": ("IncompleteSignature", 400),
        "malformed": ("IncompleteSignature", 400),
        "unknown-key": ("InvalidClientTokenId", 403),
        "mismatch": ("SignatureDoesNotMatch", 403),
        "skewed": ("SignatureDoesNotMatch", 403),
        "expired": ("RequestExpired", 400),
        "content-sha": ("SignatureDoesNotMatch", 403),
    }[refusal.kind]


__all__ = ["Refusal", "SignedRequest", "Verified", "WireProtocol", "error_for", "verify"]
