"""``ecs-sandbox doctor``: every ECS Exec prerequisite checked, as one flow of AWS calls.

Theory of operation
-------------------
:func:`doctor_flow` asks AWS read-only questions, one :class:`AwsCall` at a time, and turns
each answer into :class:`Check` values (pass / fail / unknown, with the exact fix) through
the pure functions of :mod:`._doctor_checks` and :mod:`._doctor_policy`. Nothing is retried
and nothing raises: an answer that does not come (an error value, or an exception the driver
throws in) makes the checks that needed it ``unknown`` with the reason, so that the report
always lists everything that could be learnt. Order matters only for the reader: the checks
come roughly in the order in which a sandbox meets them (region and credentials, the
cluster, the caller's rights, the task definition and its role, the network, the platform,
then a running task's own description).

Permissions are decided by IAM's policy simulator where the caller may use it. Otherwise the
caller's rights are ``unknown`` (with the statement it needs as the fix), while the task
role's policies are read and evaluated (:func:`._doctor_policy.evaluate`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._config import EcsFargateConfig
from ._doctor_checks import (
    FAIL,
    PASS,
    UNKNOWN,
    Check,
    ExecConfig,
    cluster_checks,
    egress_check,
    network_check,
    platform_check,
)
from ._doctor_iam import Need, ask, caller_needs, permission_checks, role_needs
from ._doctor_policy import PolicyParseError, trusts_ecs_tasks
from ._doctor_task import task_exec_check
from ._effects import Effect

DEFAULT_REGION = "us-east-1"
"""Where the drivers' AWS calls go when no region is configured anywhere."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorReport:
    """The checks of one ``doctor`` run, in order."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (unknown ones do not count as failures)."""
        return all(c.status != FAIL for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == FAIL), None)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (``doctor --json``)."""
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks]}

    def lines(self) -> list[str]:
        """The report for a terminal: one line per check, its fix indented below."""
        out: list[str] = []
        for check in self.checks:
            out.append(f"[{check.status.upper():7}] {check.title}: {check.detail}")
            if check.fix and check.status != PASS:
                out += ["          fix: " + line for line in check.fix.splitlines()]
        failed = sum(c.status == FAIL for c in self.checks)
        unknown = sum(c.status == UNKNOWN for c in self.checks)
        out.append(
            f"{len(self.checks)} checks: {failed} failed, {unknown} unknown"
            + ("" if failed else "; nothing blocks ECS Exec that could be checked")
        )
        return out


def doctor_flow(
    cfg: EcsFargateConfig, *, region: str | None, task_arn: str | None = None
) -> Generator[Effect, Any, DoctorReport]:
    """Check every prerequisite of ECS Exec for ``cfg``; returns the report.

    ``region`` is the region the driver's calls go to (the configuration's, else the AWS
    environment's; None when neither names one). ``task_arn`` adds the checks of a running
    task's own description.
    """
    checks: list[Check] = [_region_check(cfg, region)]
    region = region or DEFAULT_REGION
    identity, why = yield from ask("sts", "get_caller_identity")
    if identity is None:
        checks.append(
            Check(
                name="credentials",
                title="AWS credentials work",
                status=FAIL,
                detail=str(why),
                fix="Configure credentials for boto3 (AWS_PROFILE, aws configure, aws sso login, "
                "or an instance/task role); every other check needs them.",
            )
        )
        return DoctorReport(checks=tuple(checks))
    account = str(identity.get("Account", ""))
    caller = str(identity.get("Arn", ""))
    checks.append(
        Check(name="credentials", title="AWS credentials work", status=PASS, detail=caller)
    )

    clusters, why = yield from ask(
        "ecs", "describe_clusters", clusters=[cfg.cluster], include=["CONFIGURATIONS"]
    )
    found, exec_config = cluster_checks(cfg.cluster, clusters, why)
    checks += found

    definition_check, task_role, execution_role = yield from _definition(cfg)
    principal = yield from _principal_arn(caller)
    needs = caller_needs(
        cfg,
        region=region,
        account=account,
        roles=[r for r in (task_role, execution_role) if r],
        kms_key=exec_config.kms_key if exec_config is not None else None,
    )
    checks += yield from permission_checks(principal, needs, who="caller", role_name=None)
    checks.append(definition_check)
    checks += yield from _role_checks(task_role, exec_config, region=region, account=account)
    checks += yield from _network_checks(cfg, region)
    checks.append(platform_check(cfg.platform_version))
    if task_arn is not None:
        checks.append((yield from _task_check(cfg, task_arn)))
    return DoctorReport(checks=tuple(checks))


def _region_check(cfg: EcsFargateConfig, region: str | None) -> Check:
    title = "an AWS region is configured"
    if region is None:
        return Check(
            name="region",
            title=title,
            status=FAIL,
            detail=f"neither region nor AWS_REGION / AWS_DEFAULT_REGION is set; calls go to "
            f"{DEFAULT_REGION}",
            fix="Set region in the configuration (--set region=eu-west-1, ECS_SANDBOX_REGION) "
            "or AWS_REGION.",
        )
    source = "configuration" if cfg.region else "AWS environment"
    return Check(name="region", title=title, status=PASS, detail=f"{region} (from the {source})")


def _principal_arn(caller: str) -> Generator[Effect, Any, str]:
    """The IAM ARN to simulate for ``caller``: an assumed role's role (with its path)."""
    parts = caller.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        data, _ = yield from ask("iam", "get_role", RoleName=role)
        if data is not None and data.get("Role", {}).get("Arn"):
            return str(data["Role"]["Arn"])
        return f"arn:aws:iam::{parts[4]}:role/{role}"
    return caller


def _definition(
    cfg: EcsFargateConfig,
) -> Generator[Effect, Any, tuple[Check, str | None, str | None]]:
    title = "the task definition is usable"
    data, why = yield from ask(
        "ecs", "describe_task_definition", taskDefinition=cfg.task_definition
    )
    if data is None:
        missing = why is not None and "ClientException" in why
        if missing and cfg.registers_task_definitions:
            check = Check(
                name="task-definition",
                title=title,
                status=PASS if cfg.execution_role_arn else FAIL,
                detail="not found; ecs-sandbox registers one from the configuration",
                fix=None
                if cfg.execution_role_arn
                else "Set execution_role_arn (needed to build a task definition from scratch).",
            )
            return check, cfg.task_role_arn, cfg.execution_role_arn
        status = FAIL if missing else UNKNOWN
        return (
            Check(
                name="task-definition",
                title=title,
                status=status,
                detail=str(why),
                fix="Set task_definition to a family, family:revision or ARN this account "
                "can describe."
                if missing
                else None,
            ),
            None,
            None,
        )
    definition = data.get("taskDefinition") or {}
    task_role = definition.get("taskRoleArn") or (
        cfg.task_role_arn if cfg.registers_task_definitions else None
    )
    execution_role = definition.get("executionRoleArn") or cfg.execution_role_arn
    names = [c.get("name") for c in definition.get("containerDefinitions") or []]
    if cfg.container_name not in names:
        return (
            Check(
                name="task-definition",
                title=title,
                status=FAIL,
                detail=f"it has no container {cfg.container_name!r} (it has {names})",
                fix="Set container_name to one of its containers.",
            ),
            task_role,
            execution_role,
        )
    if definition.get("networkMode") not in (None, "awsvpc"):
        return (
            Check(
                name="task-definition",
                title=title,
                status=FAIL,
                detail=f"networkMode is {definition.get('networkMode')}; Fargate needs awsvpc",
                fix="Register the task definition with networkMode awsvpc.",
            ),
            task_role,
            execution_role,
        )
    arn = str(definition.get("taskDefinitionArn", cfg.task_definition))
    return (
        Check(name="task-definition", title=title, status=PASS, detail=arn),
        task_role,
        (execution_role),
    )


def _role_checks(
    task_role: str | None, exec_config: ExecConfig | None, *, region: str, account: str
) -> Generator[Effect, Any, list[Check]]:
    title = "the task definition has a task role"
    if task_role is None:
        return [
            Check(
                name="task-role",
                title=title,
                status=FAIL,
                detail="no taskRoleArn: the exec agent in the task has no credentials for "
                "ssmmessages",
                fix="Create a role that ecs-tasks.amazonaws.com may assume, with the "
                "ssmmessages permissions below, and set task_role_arn (or taskRoleArn in "
                "the task definition).",
            )
        ]
    name = task_role.rsplit("/", 1)[-1]
    checks = [Check(name="task-role", title=title, status=PASS, detail=task_role)]
    role, why = yield from ask("iam", "get_role", RoleName=name)
    checks.append(_trust_check(name, role, why))
    needs = role_needs(exec_config, region=region, account=account)
    checks += yield from permission_checks(task_role, needs, who="task role", role_name=name)
    return checks


def _trust_check(name: str, role: Mapping[str, Any] | None, why: str | None) -> Check:
    title = f"role {name} may be assumed by ECS tasks"
    if role is None:
        return Check(name="task-role-trust", title=title, status=UNKNOWN, detail=str(why))
    document = role.get("Role", {}).get("AssumeRolePolicyDocument") or {}
    try:
        trusted = trusts_ecs_tasks(document)
    except PolicyParseError as exc:
        return Check(name="task-role-trust", title=title, status=UNKNOWN, detail=str(exc))
    if trusted is None:
        return Check(
            name="task-role-trust",
            title=title,
            status=UNKNOWN,
            detail="its trust policy trusts ecs-tasks.amazonaws.com under conditions",
        )
    if trusted:
        return Check(
            name="task-role-trust",
            title=title,
            status=PASS,
            detail="trusts ecs-tasks.amazonaws.com",
        )
    return Check(
        name="task-role-trust",
        title=title,
        status=FAIL,
        detail="its trust policy does not let ecs-tasks.amazonaws.com assume it",
        fix=f"aws iam update-assume-role-policy --role-name {name} --policy-document "
        '\'{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
        '{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}\'',
    )


def _network_checks(cfg: EcsFargateConfig, region: str) -> Generator[Effect, Any, list[Check]]:
    checks = yield from _subnet_checks(cfg, region)
    groups, why = yield from ask(
        "ec2", "describe_security_groups", GroupIds=list(cfg.security_groups)
    )
    if groups is not None:
        return [*checks, egress_check(_items(groups, "SecurityGroups"))]
    missing = why is not None and "NotFound" in why
    failed = Check(
        name="security-groups",
        title="security groups allow outbound TCP 443",
        status=FAIL if missing else UNKNOWN,
        detail=str(why),
        fix="Set security_groups to groups of this account and region." if missing else None,
    )
    return [*checks, failed]


def _subnet_checks(cfg: EcsFargateConfig, region: str) -> Generator[Effect, Any, list[Check]]:
    subnets, why = yield from ask("ec2", "describe_subnets", SubnetIds=list(cfg.subnets))
    if subnets is None:
        missing = why is not None and "NotFound" in why
        return [
            Check(
                name=f"network:{subnet}",
                title=f"subnet {subnet} reaches ssmmessages",
                status=FAIL if missing else UNKNOWN,
                detail=str(why),
                fix="Set subnets to subnets of this account and region." if missing else None,
            )
            for subnet in cfg.subnets
        ]
    found = [s for s in subnets.get("Subnets") or [] if isinstance(s, Mapping)]
    vpcs = sorted({str(s.get("VpcId")) for s in found})
    tables, why_tables = yield from ask(
        "ec2", "describe_route_tables", Filters=[{"Name": "vpc-id", "Values": vpcs}]
    )
    endpoints, why_endpoints = yield from ask(
        "ec2", "describe_vpc_endpoints", Filters=[{"Name": "vpc-id", "Values": vpcs}]
    )
    if tables is None or endpoints is None:
        return [
            Check(
                name=f"network:{subnet.get('SubnetId')}",
                title=f"subnet {subnet.get('SubnetId')} reaches ssmmessages",
                status=UNKNOWN,
                detail=str(why_tables or why_endpoints),
            )
            for subnet in found
        ]
    return [
        network_check(
            subnet,
            _items(tables, "RouteTables"),
            _items(endpoints, "VpcEndpoints"),
            region=region,
            assign_public_ip=cfg.assign_public_ip,
        )
        for subnet in found
    ]


def _items(data: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    return [item for item in data.get(key) or [] if isinstance(item, Mapping)]


def _task_check(cfg: EcsFargateConfig, task_arn: str) -> Generator[Effect, Any, Check]:
    data, why = yield from ask("ecs", "describe_tasks", cluster=cfg.cluster, tasks=[task_arn])
    tasks = _items(data or {}, "tasks")
    if not tasks:
        return Check(
            name="task-exec",
            title=f"task {task_arn.rsplit('/', 1)[-1]} runs the ECS Exec agent",
            status=UNKNOWN if why else FAIL,
            detail=why or f"no task {task_arn} in cluster {cfg.cluster}",
        )
    return task_exec_check(tasks[0], cfg.container_name)


__all__ = ["DEFAULT_REGION", "DoctorReport", "Need", "doctor_flow"]
