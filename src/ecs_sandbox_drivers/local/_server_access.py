"""How callers reach a LocalAws: its credentials, and the clients built from them.

Theory of operation
-------------------
A LocalAws is an endpoint URL, one key pair and a temporary root; everything a caller needs
to talk to it is derived from those three: boto3 sessions and clients aimed at the endpoint,
an environment for the AWS CLI (its own configuration file, so that the user's profiles stay
out of the way, and the stand-in session-manager-plugin first on PATH), an
:class:`EcsFargateConfig` naming the base resources, and a CLI transport. None of them holds
state of its own, so each can be made at any time after start-up and as often as wanted.

This is a mixin of :class:`._server.LocalAws`, which owns the attributes declared here and
the server's life cycle.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from ecs_sandbox_core._config import EcsFargateConfig

from .._transport import AwsCliTransport
from ._plugin import STATE_ENV


class AwsAccess:
    """Credentials, clients, CLI environment and configuration of a LocalAws."""

    region: str
    endpoint_url: str
    cluster: str
    bucket: str
    task_definition: str
    container_name: str
    subnet_id: str
    security_group_id: str
    _root: Path | None
    _access_key: str
    _secret_key: str
    _session_token: str

    @property
    def root(self) -> Path:
        """The temporary root holding every task's files (``tasks/<task id>/fs``)."""
        if self._root is None:
            raise RuntimeError("LocalAws is not started")
        return self._root

    @property
    def plugin_bin_dir(self) -> Path:
        """The directory holding the stand-in ``session-manager-plugin``; put it first on PATH."""
        return self.root / "bin"

    @property
    def credentials(self) -> tuple[str, str, str]:
        """This instance's (access key id, secret access key, session token)."""
        return self._access_key, self._secret_key, self._session_token

    def aws_env(self) -> dict[str, str]:
        """Environment for boto3 and the AWS CLI: credentials, region, endpoint, plugin.

        Lay it over ``os.environ`` for a subprocess; it keeps the user's own AWS configuration
        (profiles, credentials files) out of the way.
        """
        root = self.root
        return {
            "AWS_ACCESS_KEY_ID": self._access_key,
            "AWS_SECRET_ACCESS_KEY": self._secret_key,
            "AWS_SESSION_TOKEN": self._session_token,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_PROFILE": "default",
            "AWS_CONFIG_FILE": str(root / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": f"{self.plugin_bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            STATE_ENV: str(root),
        }

    def boto3_session(self) -> boto3.Session:
        """A boto3 session with this instance's credentials and region."""
        return boto3.Session(
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            aws_session_token=self._session_token,
            region_name=self.region,
        )

    def client(self, service: str, *, max_attempts: int | None = None) -> Any:
        """A boto3 client for ``service`` aimed at this endpoint."""
        retries: Any = {"mode": "standard"}
        if max_attempts is not None:
            retries["total_max_attempts"] = max_attempts
        return self.boto3_session().client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint_url, config=Config(retries=retries)
        )

    def config(self, **overrides: Any) -> EcsFargateConfig:
        """An :class:`EcsFargateConfig` for this local ECS; ``overrides`` replace fields.

        Commands go over ECS Exec's data channel to the local agent, as on AWS; give
        ``exec_transport="aws-cli"`` for the AWS CLI and the stand-in plugin, or
        ``"nsenter"`` to enter containers directly (debugging only).
        """
        values: dict[str, Any] = {
            "region": self.region,
            "cluster": self.cluster,
            "task_definition": self.task_definition,
            "container_name": self.container_name,
            "subnets": (self.subnet_id,),
            "security_groups": (self.security_group_id,),
            "s3_bucket": self.bucket,
            "endpoint_url": self.endpoint_url,
            "exec_transport": "ssm",
        }
        values.update(overrides)
        return EcsFargateConfig(**values)

    def cli_transport(self, *, aws_executable: str = "aws") -> AwsCliTransport:
        """An :class:`AwsCliTransport` for this local ECS (the real CLI, the stand-in plugin)."""
        return AwsCliTransport(
            cluster=self.cluster,
            region=self.region,
            endpoint_url=self.endpoint_url,
            aws_executable=aws_executable,
            env=self.aws_env(),
        )

    def _write_client_files(self) -> None:
        """The AWS CLI's configuration and the stand-in plugin, in the temporary root."""
        (self.root / "aws-config").write_text(f"[default]\nregion = {self.region}\n")
        source = Path(__file__).with_name("_plugin.py").read_text()
        script = self.root / "bin" / "session-manager-plugin"
        # -I keeps the caller's PYTHON* environment out; this interpreter's site-packages
        # (botocore, wsproto, this package) stay importable.
        script.write_text(f"#!{sys.executable} -I\n{source}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


__all__ = ["AwsAccess"]
