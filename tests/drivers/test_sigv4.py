"""SigV4 verification (``local/_sigv4.py``) against botocore's own signer.

Requests are signed by botocore exactly as the clients sign them (SigV4 headers for ECS, STS,
EC2 and Logs; S3's header auth with its payload hash; S3 presigned URLs, SigV4 and SigV2);
every one must verify, and any change to what the signature covers must not.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_drivers.local._signature import (
    Refusal,
    SignedRequest,
    Verified,
    error_for,
    verify,
)

KEY, SECRET = "AKIDLOCALTEST", "s3cr3t/key+value"
KEYS = {KEY: SECRET}
HOST = "127.0.0.1:4566"

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_params = st.lists(st.tuples(_segment, _text), max_size=4, unique_by=lambda p: p[0])
_bodies = st.binary(max_size=64)


def _received(request: AWSRequest, body: bytes) -> SignedRequest:
    """The request as the server sees it: raw target, lower-case headers, Host."""
    parts = urlsplit(request.url)
    headers = {
        k.lower(): v.decode() if isinstance(v, bytes) else str(v)
        for k, v in request.headers.items()
    }
    headers["host"] = parts.netloc
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return SignedRequest(request.method, target, headers, body)


def _url(path_segments: list[str], params: list[tuple[str, str]]) -> str:
    path = "/" + "/".join(quote(s, safe="~") for s in path_segments)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params)
    return f"http://{HOST}{path}" + (f"?{query}" if query else "")


def sign_header(
    service: str, method: str, url: str, body: bytes, secret: str = SECRET
) -> SignedRequest:
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "x/y"})
    credentials = Credentials(KEY, secret, "token")
    if service == "s3":
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    else:
        SigV4Auth(credentials, service, "us-east-1").add_auth(request)
    return _received(request, body)


def presign(method: str, url: str, expires: int = 60, secret: str = SECRET) -> SignedRequest:
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(
        Credentials(KEY, secret, "token"), "s3", "us-east-1", expires=expires
    ).add_auth(request)
    return _received(request, b"")


@settings(max_examples=60, deadline=None)
@given(
    service=st.sampled_from(["s3", "ecs", "sts", "logs"]),
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
    path=st.lists(_segment, min_size=1, max_size=3),
    params=_params,
    body=_bodies,
)
def test_botocore_signed_requests_verify(
    service: str, method: str, path: list[str], params: list[tuple[str, str]], body: bytes
) -> None:
    signed = sign_header(service, method, _url(path, params), body)
    assert verify(signed, keys=KEYS, now=time.time()) == Verified(KEY, service, "us-east-1", False)


@settings(max_examples=60, deadline=None)
@given(
    service=st.sampled_from(["s3", "ecs"]),
    path=st.lists(_segment, min_size=1, max_size=3),
    params=_params,
    body=_bodies,
    change=st.sampled_from(["method", "path", "query", "header", "body", "secret", "key"]),
    extra=_segment,
)
def test_any_change_fails(
    service: str,
    path: list[str],
    params: list[tuple[str, str]],
    body: bytes,
    change: str,
    extra: str,
) -> None:
    url = _url(path, params)
    signed = sign_header(service, "POST", url, body)
    if change == "method":
        signed = replace(signed, method="PUT")
    elif change == "path":
        signed = replace(signed, target=f"/{quote(extra, safe='')}" + signed.target)
    elif change == "query":
        sep = "&" if "?" in signed.target else "?"
        signed = replace(signed, target=f"{signed.target}{sep}{quote(extra, safe='')}=1")
    elif change == "header":
        signed = replace(signed, headers={**signed.headers, "content-type": "x/" + extra})
    elif change == "body":
        signed = replace(signed, body=signed.body + extra.encode())
    elif change == "secret":
        signed = sign_header(service, "POST", url, body, secret=SECRET + extra)
    else:
        signed = replace(
            signed,
            headers={
                **signed.headers,
                "authorization": signed.headers["authorization"].replace(KEY, KEY + "X"),
            },
        )
    outcome = verify(signed, keys=KEYS, now=time.time())
    assert isinstance(outcome, Refusal)
    expected = {"key": "unknown-key", "body": "content-sha" if service == "s3" else "mismatch"}
    assert outcome.kind == expected.get(change, "mismatch")


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT"]),
    path=st.lists(_segment, min_size=1, max_size=3),
    params=_params,
    body=_bodies,
)
def test_presigned_s3_urls_verify_with_any_body(
    method: str, path: list[str], params: list[tuple[str, str]], body: bytes
) -> None:
    signed = replace(presign(method, _url(path, params)), body=body)
    assert verify(signed, keys=KEYS, now=time.time()) == Verified(KEY, "s3", "us-east-1", True)
    tampered = replace(signed, target=signed.target.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
    assert verify(tampered, keys=KEYS, now=time.time()) == Refusal(
        "mismatch", _MISMATCH, "s3", True
    )


_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def test_presigned_url_expires() -> None:
    signed = presign("GET", f"http://{HOST}/bucket/key", expires=30)
    now = time.time()
    assert isinstance(verify(signed, keys=KEYS, now=now + 25), Verified)
    late = verify(signed, keys=KEYS, now=now + 40)
    assert isinstance(late, Refusal) and late.kind == "expired"
    assert error_for(late, "s3") == ("AccessDenied", 403)


def test_sigv2_presigned_urls_from_boto3() -> None:
    boto3 = pytest.importorskip("boto3")
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        aws_session_token="token",
        endpoint_url=f"http://{HOST}",
    )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "a b/c"}, ExpiresIn=60
    )
    parts = urlsplit(url)
    assert "AWSAccessKeyId=" in parts.query  # botocore presigns S3 with SigV2 in us-east-1
    request = SignedRequest("GET", f"{parts.path}?{parts.query}", {"host": parts.netloc}, b"")
    assert isinstance(verify(request, keys=KEYS, now=time.time()), Verified)
    wrong = verify(replace(request, method="PUT"), keys=KEYS, now=time.time())
    assert isinstance(wrong, Refusal) and wrong.kind == "mismatch"
    other_key = verify(request, keys={KEY: "other"}, now=time.time())
    assert isinstance(other_key, Refusal) and other_key.kind == "mismatch"
    expired = verify(request, keys=KEYS, now=time.time() + 120)
    assert isinstance(expired, Refusal) and expired.kind == "expired"


@pytest.mark.parametrize(
    ("headers", "target", "kind"),
    [
        ({"host": HOST}, "/", "missing"),
        ({"host": HOST, "authorization": "AWS AKID:c2ln"}, "/", "unsupported"),
        ({"host": HOST, "authorization": "AWS4-HMAC-SHA256 Credential=a/b"}, "/", "malformed"),
        ({"host": HOST}, "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256", "malformed"),
    ],
)
def test_unsigned_and_malformed(headers: dict[str, str], target: str, kind: str) -> None:
    outcome = verify(SignedRequest("GET", target, headers, b""), keys=KEYS, now=time.time())
    assert isinstance(outcome, Refusal) and outcome.kind == kind


def test_clock_skew_is_refused() -> None:
    signed = sign_header("ecs", "POST", f"http://{HOST}/", b"{}")
    outcome = verify(signed, keys=KEYS, now=time.time() + 16 * 60)
    assert isinstance(outcome, Refusal) and outcome.kind == "skewed"


def test_error_codes_follow_aws() -> None:
    mismatch = Refusal("mismatch", "m", "s3")
    assert error_for(mismatch, "s3") == ("SignatureDoesNotMatch", 403)
    assert error_for(mismatch, "query") == ("SignatureDoesNotMatch", 403)
    assert error_for(Refusal("unknown-key", "m"), "query") == ("InvalidClientTokenId", 403)
    assert error_for(Refusal("malformed", "m"), "query") == ("IncompleteSignature", 400)
    assert error_for(Refusal("unknown-key", "m"), "json") == ("UnrecognizedClientException", 400)
