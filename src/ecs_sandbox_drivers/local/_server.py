"""``LocalAws``: moto behind the ECS-emulating middleware, served on 127.0.0.1.

Theory of operation
-------------------
Start-up builds the parts from the inside out, each handed to the next: a temporary root
(task files, session records, the AWS CLI's files), the container host, the SSM gateway (its
own loop thread), the ECS emulator that uses both, the middleware that puts the emulator and
the signature checks in front of moto's WSGI app, and a threaded werkzeug server on an
ephemeral port; then the base resources are made through that very endpoint, and the
instance is registered by endpoint so that a configuration alone finds it again
(:meth:`LocalAws.for_config`). A failure at any step closes what was made. Closing goes the
other way round: the gateway first (so that live sessions end with ``channel_closed``), then
the containers, the server and the root.

Note that moto keeps its state per *process*: two LocalAws instances in one process share
their AWS resources (each creates its own cluster, task definition and bucket names, so they
do not collide), and moto's task state progression is set process-wide.

The callers' side (credentials, clients, the CLI environment) is :mod:`._server_access`'s;
the middleware's hooks are :mod:`._server_hooks`'s and the gateway's knobs
:mod:`._server_ssm`'s, all mixins of :class:`LocalAws`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._errors import ConfigError

from ._agent_faults import ChannelFaults
from ._agent_wire import AgentSettings, Handshake
from ._containers import HOST_IMAGE, ContainerHost, LocalContainer
from ._ecs import EcsEmulator, ExecRefusal
from ._gateway import SsmGateway
from ._middleware import ADMIN_HEADER, Hook, Middleware
from ._server_access import AwsAccess
from ._server_hooks import ApiKnobs
from ._server_ssm import SsmKnobs

logger = logging.getLogger(__name__)

CONTAINER_NAME = "main"
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SYSDEPS_REMEDY = (
    "pip cannot install it: install the system package (bubblewrap for bwrap, util-linux for "
    "nsenter and setpriv) with the package manager, e.g. sudo apt-get install bubblewrap"
)


_QUERY = re.compile(r"\?[^\s\"]*")


class _QuietHandler(MotoRequestHandler):
    """werkzeug's handler logs every request to stderr; send that to debug logging."""

    def log(self, type: str, message: str, *args: Any) -> None:
        # The request line of a presigned GET carries its signature and the session token
        # in the query string: log the path only.
        text = _QUERY.sub("?<redacted>", message % args if args else message)
        logger.debug("%s %s", self.address_string(), text)


# The started instances by endpoint, so that a configuration made by config() finds its
# LocalAws again (the drivers build their transport and boto3 session from a config alone).
_RUNNING: dict[str, LocalAws] = {}
_RUNNING_LOCK = threading.Lock()


class LocalAws(SsmKnobs, ApiKnobs, AwsAccess):
    """An embedded local AWS whose ECS tasks are bubblewrap containers on this machine.

    Use as a context manager (or call :meth:`start` and :meth:`close`). Once started it has a
    cluster, a base task definition (container ``"main"``), a subnet, a security group and an
    S3 bucket; :meth:`config` gives an :class:`EcsFargateConfig` that uses them.

    ``start_delay_s`` keeps new tasks PENDING (and their exec agent unreachable) that long.
    ``root_dir`` is where the temporary root (task files, sessions, the plugin) is made.

    ExecuteCommand sessions are served by a local SSM gateway and agent (:attr:`ssm_gateway`):
    ``first_read_delay_s`` (AWS: 1 s) passes before the agent first reads a command's output,
    ``idle_timeout_s`` (AWS: 20 min) without client input ends a session, ``exec_handshake``
    is ``"none"`` (AWS without a KMS key), ``"session"`` or ``"kms"``; ``channel_faults``
    apply to every new session (see :class:`ChannelFaults`).

    Every instance has its own random key pair (:attr:`credentials`); the endpoint and the
    data-channel gateway refuse requests not signed with it (or with a pair added by
    :meth:`accept_credentials`), as AWS refuses them. Tasks never get it: they have no AWS
    credentials, so a command in one sandbox cannot drive the control plane (stop other tasks,
    read other sandboxes' objects); the presigned URLs the drivers hand them still work.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        start_delay_s: float = 0.0,
        root_dir: str | os.PathLike[str] | None = None,
        first_read_delay_s: float = 1.0,
        idle_timeout_s: float = 20 * 60.0,
        exec_handshake: Handshake = "none",
        channel_faults: ChannelFaults | None = None,
    ) -> None:
        self.region = region
        self._agent_settings = AgentSettings(
            first_read_delay_s=first_read_delay_s,
            idle_timeout_s=idle_timeout_s,
            handshake=exec_handshake,
        )
        self._channel_faults = channel_faults or ChannelFaults()
        self._gateway: SsmGateway | None = None
        self._start_delay_s = start_delay_s
        self._root_dir = root_dir
        suffix = secrets.token_hex(4)
        self.cluster = f"ecs-sandbox-local-{suffix}"
        self.bucket = f"ecs-sandbox-local-{suffix}"
        self.task_definition_family = f"ecs-sandbox-local-{suffix}"
        self.container_name = CONTAINER_NAME
        self.task_definition = ""
        self.subnet_id = ""
        self.security_group_id = ""
        self.endpoint_url = ""
        self._root: Path | None = None
        self._host: ContainerHost | None = None
        self._emulator: EcsEmulator | None = None
        self._middleware: Middleware | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._pending_hooks: list[Hook] = []
        self._access_key = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        self._secret_key = secrets.token_urlsafe(30)
        self._session_token = secrets.token_urlsafe(48)

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> LocalAws:
        """Serve moto behind the middleware and create the base resources; returns self."""
        if self._server is not None:
            return self
        bwrap = shutil.which("bwrap")
        nsenter = shutil.which("nsenter")
        # As root, execs drop to the task's capabilities with setpriv (util-linux, as nsenter).
        setpriv = shutil.which("setpriv") if os.geteuid() == 0 else "not needed"
        if bwrap is None or nsenter is None or setpriv is None:
            missing = "bwrap" if bwrap is None else "nsenter" if nsenter is None else "setpriv"
            raise RuntimeError(f"LocalAws needs {missing}: {_SYSDEPS_REMEDY}")
        root = Path(tempfile.mkdtemp(prefix="ecs-sandbox-local-", dir=self._root_dir))
        self._root = root
        try:
            for sub in ("tasks", "sessions", "bin"):
                (root / sub).mkdir()
            self._write_client_files()
            self._host = ContainerHost(root, bwrap=bwrap)
            self._gateway = SsmGateway(
                access_key=self._access_key,
                secret_key=self._secret_key,
                settings=self._agent_settings,
                faults=self._channel_faults,
            ).start()
            self._emulator = EcsEmulator(
                self._host,
                sessions_dir=root / "sessions",
                nsenter=nsenter,
                start_delay_s=self._start_delay_s,
                gateway=self._gateway,
            )
            self._serve()
            self._create_resources()
            with _RUNNING_LOCK:
                _RUNNING[self.endpoint_url] = self
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every container, stop the server and delete the temporary root."""
        with _RUNNING_LOCK:
            if _RUNNING.get(self.endpoint_url) is self:
                del _RUNNING[self.endpoint_url]
        if self._gateway is not None:
            self._gateway.close()  # before the containers: sessions end with channel_closed
            self._gateway = None
        if self._host is not None:
            self._host.close()
            self._host = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # --- what callers use ---------------------------------------------------------------------

    @classmethod
    def for_config(cls, cfg: EcsFargateConfig) -> LocalAws:
        """The started LocalAws in this process whose endpoint ``cfg`` uses."""
        with _RUNNING_LOCK:
            found = _RUNNING.get(cfg.endpoint_url or "")
        if found is None:
            raise ConfigError(
                f"no embedded local ECS is running at {cfg.endpoint_url!r}",
                remedy=(
                    "exec_transport='local' works only with a LocalAws started in this process; "
                    "build the configuration with LocalAws.config() while it runs."
                ),
            )
        return found

    @classmethod
    def running_at(cls, endpoint_url: str) -> LocalAws | None:
        """The started LocalAws in this process serving ``endpoint_url``, or None."""
        with _RUNNING_LOCK:
            return _RUNNING.get(endpoint_url)

    @property
    def start_delay_s(self) -> float:
        """How long a new task stays PENDING before it is RUNNING and reachable by exec."""
        return self._start_delay_s

    @start_delay_s.setter
    def start_delay_s(self, value: float) -> None:
        self._start_delay_s = value
        if self._emulator is not None:
            self._emulator.start_delay_s = value

    def accept_credentials(self, access_key: str, secret_key: str) -> None:
        """Also accept API calls and data-channel upgrades signed with this key pair."""
        self._require_middleware().accept_credentials(access_key, secret_key)
        self.ssm_gateway.accept_credentials(access_key, secret_key)

    def container(self, task: str) -> LocalContainer | None:
        """The local container of a task (by ARN or id), or None."""
        return self._require_host().get(task)

    def containers(self) -> list[LocalContainer]:
        """Every container started so far, running or not."""
        return self._require_host().all()

    def exec_target(
        self, task: str, container_name: str | None = None
    ) -> LocalContainer | ExecRefusal:
        """The container an ECS Exec on ``task`` reaches, or ECS's reason to refuse it."""
        if self._emulator is None:
            raise RuntimeError("LocalAws is not started")
        return self._emulator.exec_target(task, container_name)

    # --- internals --------------------------------------------------------------------------

    def _require_host(self) -> ContainerHost:
        if self._host is None:
            raise RuntimeError("LocalAws is not started")
        return self._host

    def _serve(self) -> None:
        assert self._emulator is not None
        self._middleware = Middleware(
            DomainDispatcherApplication(create_backend_app),
            self._emulator,
            default_region=self.region,
            keys={self._access_key: self._secret_key},
        )
        for hook in self._pending_hooks:
            self._middleware.add_hook(hook)
        self._server = make_server(
            "127.0.0.1", 0, self._middleware, threaded=True, request_handler=_QuietHandler
        )
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ecs-sandbox-local-aws", daemon=True
        )
        self._thread.start()
        logger.info("local AWS serving on %s (root %s)", self.endpoint_url, self.root)

    def _create_resources(self) -> None:
        # Without this, every DescribeTasks moves a moto task one step towards STOPPED.
        body = {
            "model_name": "ecs::task",
            "transition": {"progression": "manual", "times": 1000000},
        }
        request = urllib.request.Request(  # noqa: S310 - our own http endpoint
            f"{self.endpoint_url}/moto-api/state-manager/set-transition",
            data=json.dumps(body).encode(),
            method="POST",
            headers={ADMIN_HEADER: self._require_middleware().admin_token},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
        ec2 = self.client("ec2")
        self.subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        group = ec2.create_security_group(
            GroupName=self.cluster, Description="ecs-sandbox local tasks"
        )
        self.security_group_id = group["GroupId"]
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=self.cluster)
        registered = ecs.register_task_definition(
            family=self.task_definition_family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": CONTAINER_NAME,
                    "image": HOST_IMAGE,
                    "memory": 512,  # moto's RunTask fails without a container memory
                    "essential": True,
                    "command": ["sleep", "infinity"],
                }
            ],
        )
        self.task_definition = registered["taskDefinition"]["taskDefinitionArn"]
        self.client("s3").create_bucket(Bucket=self.bucket)
        # Callers count their own calls, not the set-up's.
        self.calls.clear()


__all__ = ["CONTAINER_NAME", "LocalAws"]
