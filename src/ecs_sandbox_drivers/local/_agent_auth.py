"""SigV4 verification of a data-channel WebSocket upgrade, as the SSM gateway requires it.

Since session-manager-plugin 1.2.764.0 the upgrade request is signed (service
``ssmmessages``, the session's region). The gateway here checks it as AWS would: the
``Authorization`` header's credential scope, a fresh ``X-Amz-Date``, every signed header
present, and the signature itself, recomputed with botocore's SigV4 signer over exactly the
headers the client listed in ``SignedHeaders`` (with LocalAws's own key pair).
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections.abc import Mapping, Sequence

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SERVICE = "ssmmessages"
_ALGORITHM = "AWS4-HMAC-SHA256"
_MAX_SKEW_S = 5 * 60


class _Verifier(SigV4Auth):
    """botocore's signer, signing exactly the headers the request carries.

    A server takes ``SignedHeaders`` as given; botocore's own selection would leave out
    headers it never signs itself (``connection``, ``upgrade``...) that another client may
    have signed.
    """

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        selected = HTTPHeaders()
        for name, value in request.headers.items():
            selected[name.lower()] = value
        return selected


def check_signature(
    *,
    method: str,
    host: str,
    target: str,
    headers: Mapping[str, Sequence[str]],
    region: str,
    access_key: str,
    secret_key: str,
    now: float | None = None,
) -> str | None:
    """None when the request is signed for ``region`` with the given key, else the reason.

    ``headers`` maps lower-case names to their values (``host`` included).
    """
    authorization = ",".join(headers.get("authorization", ())).strip()
    if not authorization:
        return "Missing Authentication Token"
    algorithm, _, fields_text = authorization.partition(" ")
    if algorithm != _ALGORITHM:
        return f"Authorization must use {_ALGORITHM}"
    fields: dict[str, str] = {}
    for part in fields_text.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    try:
        key_id, date, scope_region, service, terminal = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "Authorization header is malformed"
    if service != SERVICE or terminal != "aws4_request":
        return f"Credential should be scoped to correct service: '{SERVICE}'"
    if scope_region != region:
        return f"Credential should be scoped to a valid region: '{region}'"
    if key_id != access_key:
        return "The security token included in the request is invalid"
    amz_date = ",".join(headers.get("x-amz-date", ()))
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "X-Amz-Date is missing or malformed"
    if abs((time.time() if now is None else now) - signed_at) > _MAX_SKEW_S:
        return "Signature expired"
    if date != amz_date[:8]:
        return "Credential date does not match X-Amz-Date"
    if "host" not in signed or "x-amz-date" not in signed or signed != sorted(signed):
        return "SignedHeaders must list host and x-amz-date, sorted"
    missing = [name for name in signed if name not in headers]
    if missing:
        return f"Signed headers missing from the request: {', '.join(missing)}"
    request = AWSRequest(
        method=method,
        url=f"http://{host}{target}",
        headers={name: ",".join(v.strip() for v in headers[name]) for name in signed},
    )
    request.context["timestamp"] = amz_date
    auth = _Verifier(Credentials(access_key, secret_key), SERVICE, region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    expected = auth.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided."
    return None


__all__ = ["SERVICE", "check_signature"]
