"""Run pyssm-client's own ``connect`` command on an ECS Exec session (python3.12 only).

Usage: ``python pyssm_peer.py [--sign] '<ExecuteCommand session JSON>'``.

This is not part of ecs-sandbox: tests/drivers/test_peer_client.py runs it in a python3.12
venv where pyssm-client (PyPI, Apache-2.0, by Damon Cortesi) is installed, against the
embedded local ECS. pyssm-client's code runs unmodified; the one thing this wrapper does is
replace the ``websockets`` ``connect`` that pyssm-client's WebSocket channel calls:

* always, to report a refused upgrade (status and body) on stderr as one JSON line, since
  pyssm-client logs only "HTTP 403";
* with ``--sign``, to SigV4-sign the upgrade (service ``ssmmessages``, the session's region,
  the same credentials as the ExecuteCommand call) as session-manager-plugin does.
  pyssm-client 0.2.0 sends ``Authorization: Bearer <token>`` instead; the local gateway
  refuses with 403 any upgrade that is not SigV4-signed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from pyssm_client.cli.main import cli
from pyssm_client.communicator import websocket_channel
from websockets.exceptions import InvalidStatus

_connect = websocket_channel.connect


def sigv4_headers(url: str) -> dict[str, str]:
    """The headers session-manager-plugin adds: Authorization, X-Amz-Date (and the token)."""
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None or session.region_name is None:
        raise SystemExit("pyssm_peer: no AWS credentials or region in the environment")
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials.get_frozen_credentials(), "ssmmessages", session.region_name).add_auth(
        request
    )
    return dict(request.headers.items())


def wrapped_connect(sign: bool) -> Any:
    """A stand-in for ``websockets``' ``connect``: signs (``sign``), reports refusals."""

    async def connect(url: str, *, additional_headers: Any = None, **kwargs: Any) -> Any:
        headers = dict(additional_headers or {})
        if sign:
            headers.pop("Authorization", None)  # pyssm-client's "Bearer <token>"
            headers.update(sigv4_headers(url))
        try:
            return await _connect(url, additional_headers=headers, **kwargs)
        except InvalidStatus as exc:
            refusal = {
                "refused": exc.response.status_code,
                "reason": exc.response.body.decode("utf-8", "replace") if exc.response.body else "",
            }
            print(json.dumps(refusal), file=sys.stderr, flush=True)
            raise

    return connect


def main(argv: list[str]) -> None:
    """Install the wrapper, then run ``pyssm connect`` on the session given in ``argv``."""
    sign = "--sign" in argv
    verbose = ["-v"] if "-v" in argv else []
    args = [a for a in argv if a not in ("--sign", "-v")]
    if len(args) != 1:
        raise SystemExit(__doc__)
    session = json.loads(args[0])
    websocket_channel.connect = wrapped_connect(sign)
    plugin_json = {
        "SessionId": session["sessionId"],
        "StreamUrl": session["streamUrl"],
        "TokenValue": session["tokenValue"],
    }
    # What `pyssm connect '<json>'` does; it exits with the session's status (0 or 1).
    cli([*verbose, "connect", json.dumps(plugin_json)])


if __name__ == "__main__":
    main(sys.argv[1:])
