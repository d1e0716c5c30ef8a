"""Configuration of a sandbox fleet, validated when it is built.

Field names follow the reference module's ``EcsFargateConfig`` so that existing harness
configuration keeps working; the fields after ``ecs_exec_timeout_sec`` are new.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

from ._errors import ConfigError, UsageError
from ._exec_io import check_user
from ._limits import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_DOWNLOAD_MEMBERS,
    DEFAULT_MAX_EXEC_OUTPUT_BYTES,
)

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
# Fargate's valid cpu units; memory is checked as a positive MiB count only, since the valid
# pairs change over time and ECS reports a wrong pair clearly.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
EXEC_TRANSPORTS = ("ssm", "aws-cli", "nsenter", "local")
"""Accepted ``exec_transport`` values ("local" is the old name of "nsenter")."""
_FARGATE_CPU = {"256", "512", "1024", "2048", "4096", "8192", "16384"}


@dataclass(frozen=True, kw_only=True)
class EcsFargateConfig:
    """Where and how sandboxes run.

    Only ``cluster``, ``task_definition``, ``container_name``, ``subnets`` and
    ``security_groups`` are required. ``image_template`` may contain ``{task_id}``; with
    ``register_task_definition_per_task`` a task definition with that image is registered
    (once per distinct content) and released when its last sandbox is done.
    """

    region: str | None = None
    cluster: str
    task_definition: str
    container_name: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool = False
    image_template: str | None = None
    register_task_definition_per_task: bool = True
    cpu: str = "8192"
    memory: str = "32768"
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    log_group: str | None = None
    log_stream_prefix: str = "ecs-sandbox"
    max_task_lifetime_sec: int = 180 * 60
    run_task_max_retries: int = 30
    s3_bucket: str | None = None
    s3_prefix: str = "ecs-sandbox"
    ecs_exec_timeout_sec: int = 180
    # --- beyond the reference ------------------------------------------------------------
    endpoint_url: str | None = None
    """Send every AWS call here (a local AWS such as the embedded one) instead of AWS."""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Extra tags put on every task, task definition and staged object."""
    running_timeout_sec: float = 600.0
    """How long a task may take to reach RUNNING before spin-up gives up (and cleans up)."""
    exec_connect_timeout_sec: float = 180.0
    """How long to keep retrying while the task's exec agent is not yet connected."""
    platform_version: str = "LATEST"
    exec_transport: str = "ssm"
    """How commands reach the task: "ssm" (ECS Exec's data channel spoken natively, the
    default), "aws-cli" (``aws ecs execute-command`` and session-manager-plugin, a fallback)
    or "nsenter" (straight into an embedded local ECS container, for debugging only; "local"
    is an older name for it)."""
    exec_sessions_per_sandbox: int = 4
    """With ``exec_transport="ssm"``: how many ECS Exec sessions a sandbox keeps open, each
    running a small command loop that carries command after command (concurrent commands
    use more of them). 0 opens one session per command instead (an ExecuteCommand, a
    WebSocket and the agent's 1 s first-read delay each time)."""
    max_exec_output_bytes: int = DEFAULT_MAX_EXEC_OUTPUT_BYTES
    """Most bytes one exec round trip may deliver (64 MiB); a command that prints more is
    stopped there and :class:`~ecs_sandbox_core.ExecOutputTooLargeError` is raised. Counts
    the session stream as the transport delivers it (binary output travels as base64)."""
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    """Most bytes one ``copy_from_sandbox`` may unpack to (1 GiB: file contents plus tar
    headers); checked before anything is written, so a gzip bomb cannot fill the disk."""
    max_download_members: int = DEFAULT_MAX_DOWNLOAD_MEMBERS
    """Most files, directories and links one ``copy_from_sandbox`` may hold (100,000)."""
    api_share: float = 1.0
    """The share of the account's ECS API rates and Fargate task-launch rate that this
    process's drivers budget for, in (0, 1]: with n harness processes on one account and
    region, 1/n keeps them all under ECS's limits without their knowing of each other."""
    api_adaptive: bool = True
    """Whether a driver's budget slows a group of calls down when ECS throttles one of them
    (halving its rate, which then recovers over 30 s), so that processes that share an
    account settle below its limits together. False keeps the budget's rates fixed."""
    exec_user: str | None = None
    """The user that commands asked for through the public API (``exec``, ``exec_run``,
    the harness adapters' exec and file calls) run as when the call names none, as an
    image's ``USER`` does for ``docker exec``. ECS Exec itself runs everything as root; with
    a user set, files keep their owner's mode bits. None (the default) means root. A call's
    own ``user=`` wins ("root" included). ecs-sandbox's own scripts (tmux sessions,
    transfers) still run as root."""
    exec_workdir: str | None = None
    """The absolute directory those commands start in when the call names no ``cwd``, as
    an image's ``WORKDIR`` does (the container's own, usually ``/``, when None). It must
    exist in the image; with ``exec_user`` it should be writable by that user."""
    probe_image: bool = True
    """Whether the first sandbox of each image on a driver checks, in one exec round trip
    after it is RUNNING, that the image has the tools ecs-sandbox uses (tmux, base64,
    python3...), and warns naming what is missing. False skips that round trip."""

    @property
    def loop_sessions(self) -> int:
        """Command-loop sessions per sandbox in use (0 unless the transport is "ssm")."""
        return self.exec_sessions_per_sandbox if self.exec_transport == "ssm" else 0

    def __post_init__(self) -> None:
        # Lists are accepted for compatibility, stored as tuples so the config stays hashable.
        object.__setattr__(self, "subnets", _strings("subnets", self.subnets))
        object.__setattr__(
            self, "security_groups", _strings("security_groups", self.security_groups)
        )
        object.__setattr__(self, "tags", dict(self.tags))
        for name in ("cluster", "task_definition", "container_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(
                    f"{name} is required",
                    remedy=f"Set {name} to the ECS {name.replace('_', ' ')} to use.",
                )
        if self.region is not None and not _REGION.match(self.region):
            raise ConfigError(
                f"region {self.region!r} is not an AWS region name",
                remedy="Use a region such as 'us-east-1', or leave it unset to use AWS_REGION.",
            )
        if not self.subnets:
            raise ConfigError(
                "subnets is empty", remedy="Give at least one subnet id for awsvpc networking."
            )
        if not self.security_groups:
            raise ConfigError(
                "security_groups is empty", remedy="Give at least one security group id."
            )
        if self.exec_transport not in EXEC_TRANSPORTS:
            raise ConfigError(
                f"exec_transport {self.exec_transport!r} is unknown",
                remedy="Use 'ssm' (ECS Exec, native: the default), 'aws-cli' (ECS Exec through "
                "the AWS CLI) or 'nsenter' (the embedded local ECS, debugging only).",
            )
        if self.image_template is not None:
            _check_template(self.image_template)
        if str(self.cpu) not in _FARGATE_CPU:
            raise ConfigError(
                f"cpu {self.cpu!r} is not a Fargate cpu value",
                remedy=f"Use one of {sorted(_FARGATE_CPU, key=int)} (cpu units).",
            )
        if not str(self.memory).isdigit() or int(self.memory) <= 0:
            raise ConfigError(
                f"memory {self.memory!r} is not a positive number of MiB",
                remedy="Give memory in MiB as digits, e.g. '32768'.",
            )
        _positive("max_task_lifetime_sec", self.max_task_lifetime_sec)
        _positive("run_task_max_retries", self.run_task_max_retries)
        _positive("ecs_exec_timeout_sec", self.ecs_exec_timeout_sec)
        _positive("running_timeout_sec", self.running_timeout_sec)
        _positive("exec_connect_timeout_sec", self.exec_connect_timeout_sec)
        for name in ("max_exec_output_bytes", "max_download_bytes", "max_download_members"):
            _positive_int(name, getattr(self, name))
        share = self.api_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(
                f"api_share must be a number in (0, 1], not {share!r}",
                remedy="Give the fraction of the account's ECS rates this process may use, "
                "e.g. 0.25 for one of four harness processes sharing an account (1 when alone).",
            )
        if not isinstance(self.api_adaptive, bool):
            raise ConfigError(f"api_adaptive must be true or false, not {self.api_adaptive!r}")
        if self.exec_user is not None:
            try:
                check_user(self.exec_user)
            except UsageError:
                raise ConfigError(
                    f"exec_user {self.exec_user!r} is not a user name",
                    remedy="Give a user name (letters, digits, '.', '_', '-') or a numeric uid "
                    "that exists in the image, or leave it unset to run commands as root.",
                ) from None
        if self.exec_workdir is not None and (
            not isinstance(self.exec_workdir, str)
            or not self.exec_workdir.startswith("/")
            or "\0" in self.exec_workdir
        ):
            raise ConfigError(
                f"exec_workdir must be an absolute path, not {self.exec_workdir!r}",
                remedy="Give a directory that exists in the image, e.g. '/app' or '/tmp'.",
            )
        if not isinstance(self.probe_image, bool):
            raise ConfigError(f"probe_image must be true or false, not {self.probe_image!r}")
        sessions = self.exec_sessions_per_sandbox
        if isinstance(sessions, bool) or not isinstance(sessions, int) or not 0 <= sessions <= 64:
            raise ConfigError(
                f"exec_sessions_per_sandbox must be a whole number from 0 to 64, not {sessions!r}",
                remedy="Use a few (4 by default) so that concurrent commands each get a session, "
                "or 0 to open one session per command.",
            )
        if self.s3_bucket is not None and not re.match(
            r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", self.s3_bucket
        ):
            raise ConfigError(
                f"s3_bucket {self.s3_bucket!r} is not a valid bucket name",
                remedy="Bucket names are 3-63 lowercase letters, digits, dots and hyphens.",
            )
        if self.s3_prefix.startswith("/") or ".." in self.s3_prefix.split("/"):
            raise ConfigError(
                f"s3_prefix {self.s3_prefix!r} must be a relative key prefix",
                remedy="Drop the leading '/' and any '..' component.",
            )
        if self.endpoint_url is not None and not re.match(r"^https?://", self.endpoint_url):
            raise ConfigError(
                f"endpoint_url {self.endpoint_url!r} is not an http(s) URL",
                remedy="Give a URL such as 'http://127.0.0.1:5000'.",
            )
        for key, value in self.tags.items():
            if not isinstance(key, str) or not _TAG_KEY.match(key) or key.startswith("aws:"):
                raise ConfigError(
                    f"tag key {key!r} is not allowed",
                    remedy="Tag keys are 1-128 characters and may not start with 'aws:'.",
                )
            if not isinstance(value, str) or len(value) > 256:
                raise ConfigError(f"tag {key!r} needs a string value of at most 256 characters")

    def image_for(self, task_id: str) -> str | None:
        """The image for ``task_id``, or None when the base task definition's image is used."""
        if self.image_template is None:
            return None
        return self.image_template.replace("{task_id}", task_id)

    @property
    def registers_task_definitions(self) -> bool:
        return self.image_template is not None and self.register_task_definition_per_task

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EcsFargateConfig:
        """Build from a mapping (a TOML table, say), naming any unknown key."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s): {', '.join(unknown)}",
                remedy=f"Known keys: {', '.join(sorted(known))}.",
            )
        fields = cls.__dataclass_fields__.values()
        required = [f.name for f in fields if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise ConfigError(
                f"missing required configuration: {', '.join(missing)}",
                remedy="Set them in a TOML file, as ECS_SANDBOX_<KEY> environment variables "
                "or with --set KEY=VALUE (or use the embedded local ECS with --local).",
            )
        return cls(**values)


def _strings(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v]
    try:
        items = tuple(values)
    except TypeError:
        raise ConfigError(f"{name} must be a list of strings") from None
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{name} must contain only non-empty strings")
    return tuple(v.strip() for v in items)


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{name} must be a positive whole number, not {value!r}",
            remedy="Give a whole number greater than 0 (the limit is there to protect the host).",
        )


def _check_template(template: str) -> None:
    rest = template.replace("{task_id}", "")
    if "{" in rest or "}" in rest:
        raise ConfigError(
            f"image_template {template!r} has a placeholder other than {{task_id}}",
            remedy="Only '{task_id}' is substituted, e.g. 'registry/repo:{task_id}'.",
        )
    if not rest.strip() or any(c.isspace() for c in template):
        raise ConfigError(f"image_template {template!r} is not an image reference")


__all__ = ["EcsFargateConfig"]
