"""SigV4's canonical form: what a signer computes, and what the verifier recomputes.

Theory of operation. A SigV4 signature is an HMAC over a canonical form of the request, so
that client and server, each from its own view of the request, arrive at the same bytes.

The canonical request is six lines: the method; the path (S3: exactly as sent; every other
service: with ``.``/``..`` segments removed and percent-encoded once more, as botocore signs);
the query parameters, each name and value URI-encoded (RFC 3986 unreserved characters kept),
sorted, the presigned signature left out; each signed header as ``name:value`` with runs of
whitespace collapsed, then a blank line; the ``;``-joined signed header names; and the payload
hash: the ``X-Amz-Content-Sha256`` header when present (S3 always sends it: a hex SHA-256 of
the body, ``UNSIGNED-PAYLOAD``, or a ``STREAMING-...`` marker for aws-chunked bodies), a
presigned S3 URL's ``UNSIGNED-PAYLOAD``, or else the SHA-256 of the body. The string to sign
is the algorithm, the request time, the credential scope and the canonical request's SHA-256;
the key is derived by chained HMACs over date, region, service and ``aws4_request``.

Which payload hash applies, and whether the signature matches, is :mod:`._sigv4`'s business;
everything here is a pure function of its arguments.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"


def canonical_path(raw_path: str, service: str) -> str:
    """The canonical URI of a raw (percent-encoded) request path for ``service``."""
    if service == "s3":
        return raw_path or "/"
    return quote(_remove_dot_segments(raw_path) or "/", safe="/~")


def canonical_request(
    *,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    payload_hash: str,
) -> str:
    """The canonical request; ``params`` decoded, ``headers`` in signed order (lower-case)."""
    query = "&".join(
        f"{k}={v}" for k, v in sorted((_uri_encode(k), _uri_encode(v)) for k, v in params)
    )
    header_lines = "".join(f"{name}:{' '.join(value.split())}\n" for name, value in headers)
    signed = ";".join(name for name, _ in headers)
    return "\n".join((method.upper(), path, query, header_lines, signed, payload_hash))


def signature_for(
    canonical: str, *, secret: str, amz_date: str, scope: tuple[str, str, str]
) -> str:
    """The hex signature of ``canonical`` for ``scope`` = (date, region, service)."""
    date, region, service = scope
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            sha256_hex(canonical.encode("utf-8")),
        )
    )
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a raw query string, in order (``+`` is not a space)."""
    pairs = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986's dot-segment removal as botocore applies it (empty segments dropped too)."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and kept else ""
    return lead + "/".join(kept) + trail


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "ALGORITHM",
    "canonical_path",
    "canonical_request",
    "query_pairs",
    "sha256_hex",
    "signature_for",
]
