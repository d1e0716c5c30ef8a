"""boto3 behind the core's AWS effects: the one place where botocore's exceptions are mapped.

No retry happens here: botocore is told to try once, and every error comes back to the
core as an :class:`~ecs_sandbox_core.AwsError` value for it to classify.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from ecs_sandbox_core import AwsCall, AwsError, AwsResult, DescribeTask, EcsFargateConfig, Presign
from ecs_sandbox_core._retry import NETWORK_ERROR, RESPONSE_LOST

MISSING = "MISSING"
"""Error code of a DescribeTask whose task ECS does not know (its ``failures`` entry)."""


def map_exception(exc: Exception) -> AwsError | None:
    """The core's view of a botocore failure, or None when it is not one (a bug)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return AwsError(
            code=str(error.get("Code", "Unknown")),
            message=str(error.get("Message", "")),
            http_status=int(status) if status is not None else None,
        )
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return AwsError(code="NoCredentials", message=str(exc))
    # The messages name the endpoint, never credentials.
    if isinstance(exc, botocore.exceptions.ConnectionError):
        # No connection (endpoint unreachable, connect timeout, proxy): nothing was sent.
        return AwsError(code=NETWORK_ERROR, message=str(exc))
    if isinstance(exc, botocore.exceptions.HTTPClientError):
        # Read timeout, connection closed: the request may have been sent and carried out
        # (a RunTask may have started a task), so the core treats it as ambiguous.
        return AwsError(code=RESPONSE_LOST, message=str(exc))
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(code=type(exc).__name__, message=str(exc))
    return None


class AwsGateway:
    """Thread-safe boto3 clients for one configuration, and the calls the core asks for."""

    def __init__(
        self,
        cfg: EcsFargateConfig,
        *,
        session: boto3.session.Session | None = None,
        max_pool_connections: int = 64,
    ) -> None:
        self._cfg = cfg
        self._session = session or boto3.session.Session(region_name=cfg.region)
        self._botocore_config = botocore.config.Config(
            retries={"total_max_attempts": 1},
            max_pool_connections=max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def client(self, service: str) -> Any:
        """The (cached) boto3 client for ``service``; clients are safe to share by threads."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service,  # type: ignore[call-overload]
                    region_name=self._cfg.region or self._session.region_name or "us-east-1",
                    endpoint_url=self._cfg.endpoint_url,
                    config=self._botocore_config,
                )
            return self._clients[service]

    def stream_headers(self, url: str) -> list[tuple[str, str]]:
        """SigV4 headers for opening an ECS Exec data channel at ``url``.

        Signed with the credentials and region of the ECS calls, as session-manager-plugin
        signs with those of the ExecuteCommand call.
        """
        from ._ssm_io import signed_upgrade_headers  # noqa: PLC0415 - avoids an import cycle

        credentials = self._session.get_credentials()
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        region = self._cfg.region or self._session.region_name or "us-east-1"
        return signed_upgrade_headers(
            url, credentials=credentials.get_frozen_credentials(), region=region
        )

    def count_external(self, operation: str) -> None:
        """Count an ECS call another process makes for us (the AWS CLI's, during an exec)."""
        self._count(f"ecs:{operation}")

    def close(self) -> None:
        """Close the clients' connection pools; a later call opens new clients."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def call(self, effect: AwsCall) -> AwsResult:
        """Carry out an :class:`AwsCall`; expected failures come back as values."""
        self._count(f"{effect.service}:{effect.operation}")
        method = getattr(self.client(effect.service), effect.operation)
        try:
            data: Mapping[str, Any] = method(**effect.params)
        except Exception as exc:
            error = map_exception(exc)
            if error is None:
                raise
            return AwsResult(error=error)
        return AwsResult(data=data)

    def describe(self, effect: DescribeTask) -> AwsResult:
        """One task's description (drivers that batch use :meth:`describe_many`)."""
        results = self.describe_many(effect.cluster, [effect.task_arn])
        return results[effect.task_arn]

    def describe_many(self, cluster: str, arns: list[str]) -> dict[str, AwsResult]:
        """Describe up to 100 tasks in one DescribeTasks call."""
        result = self.call(
            AwsCall(
                service="ecs",
                operation="describe_tasks",
                params={"cluster": cluster, "tasks": arns},
                api_group="ecs-describe",
            )
        )
        if result.error is not None:
            return dict.fromkeys(arns, result)
        found = {t["taskArn"]: t for t in result.data.get("tasks", [])}
        out: dict[str, AwsResult] = {}
        for arn in arns:
            if arn in found:
                out[arn] = AwsResult(data=found[arn])
            else:
                out[arn] = AwsResult(error=AwsError(code=MISSING, message=f"no task {arn}"))
        return out

    def presign(self, effect: Presign) -> str:
        """A presigned GET URL (computed locally; no API call)."""
        url: str = self.client("s3").generate_presigned_url(
            "get_object",
            Params={"Bucket": effect.bucket, "Key": effect.key},
            ExpiresIn=effect.expires_s,
        )
        return url


__all__ = ["MISSING", "AwsGateway", "map_exception"]
