"""What the doctor's permission checks ask for: the IAM requests a run needs.

Theory of operation
-------------------
A run needs two principals to be allowed things: the harness's own credentials (the caller)
drive ECS, pass the task's roles, stage files in S3 and use the cluster's exec KMS key; the
task role lets the exec agent in the container open its ssmmessages channels, decrypt with
that key and write the cluster's session logs. Each group of ``(action, resource)`` pairs
that one check is about is a :class:`Need`, named and titled for the report.

These are pure functions of the configuration (and of the cluster's exec configuration, when
the doctor could read it): resources are spelled as IAM matches them (ARNs in the caller's
region and account, ``*`` where the API takes no resource), so that the same requests can be
simulated by IAM or evaluated against the role's own policies (:mod:`._doctor_iam`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._config import EcsFargateConfig
from ._doctor_checks import ExecConfig

SSM_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
"""What the exec agent in a task does with the task role's credentials."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Need:
    """A group of requests one check is about: ``(action, resource)`` pairs."""

    name: str
    title: str
    requests: tuple[tuple[str, str], ...]


def _task_definition_arn(cfg: EcsFargateConfig, region: str, account: str) -> str:
    if cfg.registers_task_definitions:
        return f"arn:aws:ecs:{region}:{account}:task-definition/*"
    given = cfg.task_definition
    if given.startswith("arn:"):
        return given if given.count(":") >= 6 else given + ":*"
    return f"arn:aws:ecs:{region}:{account}:task-definition/{given}" + (
        "" if ":" in given else ":*"
    )


def key_arn(key: str, *, region: str, account: str) -> str:
    """A KMS key's ARN from its id or ARN (aliases are left as they are)."""
    if key.startswith("arn:") or key.startswith("alias/"):
        return key
    return f"arn:aws:kms:{region}:{account}:key/{key}"


def caller_needs(
    cfg: EcsFargateConfig,
    *,
    region: str,
    account: str,
    roles: Sequence[str],
    kms_key: str | None = None,
) -> list[Need]:
    """What the harness's own credentials must be allowed to do (``kms_key``: the cluster's
    exec key, for which the caller needs kms:GenerateDataKey)."""
    prefix = f"arn:aws:ecs:{region}:{account}"
    cluster, tasks = f"{prefix}:cluster/{cfg.cluster}", f"{prefix}:task/{cfg.cluster}/*"
    needs = [
        Need(
            name="caller-exec",
            title="the caller may ecs:ExecuteCommand",
            requests=(("ecs:ExecuteCommand", cluster), ("ecs:ExecuteCommand", tasks)),
        ),
        Need(
            name="caller-tasks",
            title="the caller may run, tag, describe and stop tasks",
            requests=(
                ("ecs:RunTask", _task_definition_arn(cfg, region, account)),
                ("ecs:TagResource", tasks),
                ("ecs:DescribeTasks", tasks),
                ("ecs:StopTask", tasks),
                ("ecs:ListTasks", "*"),
            ),
        ),
    ]
    if roles:
        needs.append(
            Need(
                name="caller-pass-role",
                title="the caller may pass the task's roles to ECS",
                requests=tuple(("iam:PassRole", role) for role in roles),
            )
        )
    if kms_key:
        needs.append(
            Need(
                name="caller-kms",
                title="the caller may use the cluster's exec KMS key",
                requests=(
                    ("kms:GenerateDataKey", key_arn(kms_key, region=region, account=account)),
                ),
            )
        )
    if cfg.registers_task_definitions:
        needs.append(
            Need(
                name="caller-task-definitions",
                title="the caller may register and deregister task definitions",
                requests=(
                    ("ecs:DescribeTaskDefinition", "*"),
                    ("ecs:RegisterTaskDefinition", "*"),
                    ("ecs:DeregisterTaskDefinition", "*"),
                    ("ecs:TagResource", f"{prefix}:task-definition/*"),
                ),
            )
        )
    if cfg.s3_bucket:
        objects = f"arn:aws:s3:::{cfg.s3_bucket}/{cfg.s3_prefix.strip('/')}/*"
        needs.append(
            Need(
                name="caller-staging-bucket",
                title=f"the caller may put, get and delete objects in s3://{cfg.s3_bucket}",
                requests=tuple((f"s3:{op}Object", objects) for op in ("Put", "Get", "Delete")),
            )
        )
    return needs


def role_needs(exec_config: ExecConfig | None, *, region: str, account: str) -> list[Need]:
    """What the task role must be allowed for the exec agent (and the cluster's exec
    configuration: its KMS key, its session logging)."""
    needs = [
        Need(
            name="task-role-ssmmessages",
            title="the task role may open ECS Exec's ssmmessages channels",
            requests=tuple((action, "*") for action in SSM_ACTIONS),
        )
    ]
    if exec_config is None:
        return needs
    if exec_config.kms_key:
        key = key_arn(exec_config.kms_key, region=region, account=account)
        needs.append(
            Need(
                name="task-role-kms",
                title="the task role may decrypt with the cluster's exec KMS key",
                requests=(("kms:Decrypt", key),),
            )
        )
    logs: list[tuple[str, str]] = []
    if exec_config.log_group:
        group = f"arn:aws:logs:{region}:{account}:log-group:{exec_config.log_group}:*"
        logs += [("logs:DescribeLogGroups", "*")]
        logs += [(f"logs:{op}", group) for op in ("CreateLogStream", "DescribeLogStreams")]
        logs += [("logs:PutLogEvents", group)]
    if exec_config.s3_bucket:
        bucket = f"arn:aws:s3:::{exec_config.s3_bucket}"
        logs += [("s3:PutObject", f"{bucket}/{exec_config.s3_prefix}*")]
        logs += [("s3:GetEncryptionConfiguration", bucket)]
    if logs:
        needs.append(
            Need(
                name="task-role-exec-logs",
                title="the task role may write the cluster's exec session logs",
                requests=tuple(logs),
            )
        )
    return needs


__all__ = ["SSM_ACTIONS", "Need", "caller_needs", "key_arn", "role_needs"]
