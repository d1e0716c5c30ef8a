"""S3's SigV2 presigned URLs, verified as S3 does (botocore still presigns S3 so in us-east-1).

Pure, like :mod:`._sigv4`, whose request and outcome types it shares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from ._sigv4 import Refusal, SignedRequest, Verified

# S3's subresources that its SigV2 string to sign includes (AWS's documented list).
_SUBRESOURCE_NAMES = """
    accelerate acl analytics cors defaultObjectAcl delete inventory lifecycle location logging
    metrics notification object-lock partNumber policy replication requestPayment restore
    select select-type storageClass tagging torrent uploadId uploads versionId versioning
    versions website response-cache-control response-content-disposition
    response-content-encoding response-content-language response-content-type response-expires
"""
_SUBRESOURCES = frozenset(_SUBRESOURCE_NAMES.split())


def verify_presigned_v2(
    request: SignedRequest,
    path: str,
    params: list[tuple[str, str]],
    keys: Mapping[str, str],
    now: float,
) -> Verified | Refusal:
    """S3's SigV2 presigned URL (botocore still presigns S3 so in us-east-1).

    String to sign: method, Content-MD5, Content-Type, the ``Expires`` second, the ``x-amz-*``
    headers and query parameters (``name:value`` lines, sorted), then the raw path with the
    subresources of the query; the signature is the base64 HMAC-SHA1 of it.
    """
    values = dict(params)
    expires_text = values.get("Expires", "")
    if not (expires_text.isascii() and expires_text.isdigit()):
        return Refusal("malformed", "Query-string authentication requires Expires", "s3", True)
    if now > int(expires_text):
        return Refusal("expired", "Request has expired", "s3", True)
    secret = keys.get(values["AWSAccessKeyId"])
    if secret is None:
        return Refusal(
            "unknown-key",
            "The AWS Access Key Id you provided does not exist in our records.",
            "s3",
            True,
        )
    amz = {k: v for k, v in request.headers.items() if k.startswith("x-amz-")}
    amz.update((k.lower(), v) for k, v in params if k.lower().startswith("x-amz-"))
    subresources = sorted((k, v) for k, v in params if k in _SUBRESOURCES)
    resource = path + (
        "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources) if subresources else ""
    )
    string_to_sign = "\n".join(
        (
            request.method.upper(),
            request.headers.get("content-md5", ""),
            request.headers.get("content-type", ""),
            expires_text,
            *(f"{k}:{amz[k].strip()}" for k in sorted(amz)),
            resource,
        )
    )
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1)
    if not hmac.compare_digest(base64.b64encode(digest.digest()).decode(), values["Signature"]):
        return Refusal(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            "s3",
            True,
        )
    return Verified(values["AWSAccessKeyId"], "s3", "", presigned=True)


__all__ = ["verify_presigned_v2"]
