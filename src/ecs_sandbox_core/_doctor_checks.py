"""The doctor's verdicts on ECS and VPC descriptions: pure functions from AWS answers to checks.

Each function takes the plain dicts an AWS API returned and gives one :class:`Check` (or a
few), with the exact fix when it fails. A task's own description is judged in
:mod:`._doctor_task`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "unknown"]
PASS: Status = "pass"  # noqa: S105 - a verdict, not a password
FAIL: Status = "fail"
UNKNOWN: Status = "unknown"

MIN_PLATFORM = (1, 4, 0)
"""ECS Exec needs Fargate platform version 1.4.0 or later (Linux)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One prerequisite: its verdict, what was seen, and the fix when it failed.

    ``name`` is stable (``"task-role-ssmmessages"``, ``"network:subnet-0abc"``), for scripts
    reading ``doctor --json``; ``fix`` is what to change, exactly (an IAM policy document, an
    AWS CLI command, a configuration key).
    """

    name: str
    title: str
    status: Status
    detail: str
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.status not in (PASS, FAIL, UNKNOWN):
            raise ValueError(f"status must be pass, fail or unknown, not {self.status!r}")

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
        }


# --- platform version ---------------------------------------------------------------------


def platform_check(version: str) -> Check:
    """Fargate's platform version must be LATEST or at least 1.4.0."""
    title = "Fargate platform version supports ECS Exec (>= 1.4.0)"
    if version.upper() == "LATEST":
        return Check(
            name="platform-version",
            title=title,
            status=PASS,
            detail="platform_version is LATEST (1.4.0 or later on Linux)",
        )
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        return Check(
            name="platform-version",
            title=title,
            status=UNKNOWN,
            detail=f"platform_version {version!r} is not a version number",
            fix="Set platform_version = LATEST (or 1.4.0).",
        )
    if parts >= MIN_PLATFORM:
        return Check(
            name="platform-version", title=title, status=PASS, detail=f"platform {version}"
        )
    return Check(
        name="platform-version",
        title=title,
        status=FAIL,
        detail=f"platform {version} predates ECS Exec (which needs 1.4.0)",
        fix="Set platform_version = LATEST (or 1.4.0) in the configuration.",
    )


# --- cluster ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecConfig:
    """What a cluster's ``executeCommandConfiguration`` asks of the task role."""

    kms_key: str | None = None
    log_group: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""


def cluster_checks(
    name: str, data: Mapping[str, Any] | None, error: str | None
) -> tuple[list[Check], ExecConfig | None]:
    """The cluster's checks from a DescribeClusters answer (``include=["CONFIGURATIONS"]``).

    Returns the checks and what the exec configuration requires (None when unknown).
    """
    title = f"cluster {name} exists and is ACTIVE"
    if error is not None or data is None:
        return [
            Check(name="cluster", title=title, status=UNKNOWN, detail=error or "no answer")
        ], None
    clusters = [c for c in data.get("clusters") or [] if isinstance(c, Mapping)]
    active = next((c for c in clusters if c.get("status") == "ACTIVE"), None)
    if active is None:
        seen = clusters[0].get("status") if clusters else "not found"
        return [
            Check(
                name="cluster",
                title=title,
                status=FAIL,
                detail=f"cluster {name}: {seen}",
                fix=f"Create it (aws ecs create-cluster --cluster-name {name}) or set "
                "cluster to an existing cluster's name.",
            )
        ], None
    checks = [Check(name="cluster", title=title, status=PASS, detail=active.get("clusterArn", ""))]
    config = (active.get("configuration") or {}).get("executeCommandConfiguration") or {}
    logging_mode = str(config.get("logging") or "DEFAULT")
    log = config.get("logConfiguration") or {}
    needs = ExecConfig(kms_key=config.get("kmsKeyId") or None)
    exec_title = "cluster's executeCommandConfiguration is usable"
    if logging_mode == "OVERRIDE":
        needs = ExecConfig(
            kms_key=needs.kms_key,
            log_group=log.get("cloudWatchLogGroupName") or None,
            s3_bucket=log.get("s3BucketName") or None,
            s3_prefix=str(log.get("s3KeyPrefix") or ""),
        )
        if needs.log_group is None and needs.s3_bucket is None:
            checks.append(
                Check(
                    name="cluster-exec-config",
                    title=exec_title,
                    status=FAIL,
                    detail="logging is OVERRIDE but logConfiguration names no log group or bucket",
                    fix=f"aws ecs update-cluster --cluster {name} --configuration "
                    "'executeCommandConfiguration={logging=DEFAULT}'",
                )
            )
            return checks, needs
    parts = [f"logging {logging_mode}"]
    if needs.log_group:
        parts.append(f"to log group {needs.log_group}")
    if needs.s3_bucket:
        parts.append(f"to s3://{needs.s3_bucket}/{needs.s3_prefix}")
    parts.append(f"KMS key {needs.kms_key}" if needs.kms_key else "no KMS key")
    checks.append(
        Check(name="cluster-exec-config", title=exec_title, status=PASS, detail=", ".join(parts))
    )
    return checks, needs


# --- network ------------------------------------------------------------------------------


def endpoint_service(region: str) -> str:
    """The VPC endpoint service ECS Exec's agent talks to."""
    return f"com.amazonaws.{region}.ssmmessages"


def route_table_for(subnet: Mapping[str, Any], tables: Sequence[Mapping[str, Any]]) -> Any:
    """The route table a subnet uses: its explicit association, else its VPC's main table."""
    subnet_id, vpc = subnet.get("SubnetId"), subnet.get("VpcId")
    main = None
    for table in tables:
        for assoc in table.get("Associations") or []:
            if assoc.get("SubnetId") == subnet_id:
                return table
            if assoc.get("Main") and table.get("VpcId") == vpc:
                main = table
    return main


def network_check(
    subnet: Mapping[str, Any],
    tables: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
    *,
    region: str,
    assign_public_ip: bool,
) -> Check:
    """Whether tasks in ``subnet`` can reach ``ssmmessages``: an interface endpoint in the
    VPC with private DNS, a default route to a NAT gateway, or to an internet gateway with
    ``assign_public_ip``."""
    subnet_id, vpc = str(subnet.get("SubnetId")), str(subnet.get("VpcId"))
    name, service = f"network:{subnet_id}", endpoint_service(region)
    title = f"subnet {subnet_id} reaches {service}"
    for endpoint in endpoints:
        if endpoint.get("ServiceName") != service or endpoint.get("VpcId") != vpc:
            continue
        if str(endpoint.get("State", "available")).lower() not in ("available", "pending"):
            continue
        if endpoint.get("PrivateDnsEnabled") is False:
            return Check(
                name=name,
                title=title,
                status=FAIL,
                detail=f"endpoint {endpoint.get('VpcEndpointId')} has private DNS off, so the "
                "agent still resolves the public ssmmessages address",
                fix=f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id "
                f"{endpoint.get('VpcEndpointId')} --private-dns-enabled",
            )
        return Check(
            name=name,
            title=title,
            status=PASS,
            detail=f"interface endpoint {endpoint.get('VpcEndpointId')} in {vpc} (its security "
            "groups must allow TCP 443 from the tasks)",
        )
    table = route_table_for(subnet, tables)
    route = _default_route(table)
    endpoint_fix = (
        f"aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface "
        f"--service-name {service} --subnet-ids {subnet_id} --private-dns-enabled "
        "--security-group-ids <a group allowing TCP 443 from the tasks>"
    )
    if route is not None and route.get("NatGatewayId"):
        return Check(
            name=name, title=title, status=PASS, detail=f"0.0.0.0/0 via {route['NatGatewayId']}"
        )
    if route is not None and str(route.get("GatewayId", "")).startswith("igw-"):
        if assign_public_ip:
            return Check(
                name=name,
                title=title,
                status=PASS,
                detail=f"0.0.0.0/0 via {route['GatewayId']}, tasks get a public IP",
            )
        return Check(
            name=name,
            title=title,
            status=FAIL,
            detail=f"0.0.0.0/0 goes to {route['GatewayId']} but tasks get no public IP "
            "(assign_public_ip is false), so they cannot use it",
            fix="Set assign_public_ip = true in the configuration, or " + endpoint_fix,
        )
    table_id = table.get("RouteTableId") if table is not None else None
    if route is not None:
        # A transit gateway, firewall or appliance may lead on to a NAT: not decidable here.
        return Check(
            name=name,
            title=title,
            status=UNKNOWN,
            detail=f"route table {table_id} sends 0.0.0.0/0 to {_target(route)}; it must lead "
            f"on to the internet (or {vpc} needs a {service} interface endpoint)",
            fix=endpoint_fix,
        )
    seen = "no route table" if table is None else f"route table {table_id} has no default route"
    return Check(
        name=name,
        title=title,
        status=FAIL,
        detail=f"{seen} and {vpc} has no {service} interface endpoint",
        fix=endpoint_fix
        + (
            f"   (or route 0.0.0.0/0 to a NAT gateway: aws ec2 create-route --route-table-id "
            f"{table_id} --destination-cidr-block 0.0.0.0/0 --nat-gateway-id <nat-...>)"
            if table_id
            else ""
        ),
    )


def _default_route(table: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if table is None:
        return None
    for route in table.get("Routes") or []:
        if route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("State") != "blackhole":
            return dict(route)
    return None


def _target(route: Mapping[str, Any]) -> str:
    for key in ("GatewayId", "NatGatewayId", "TransitGatewayId", "NetworkInterfaceId"):
        if route.get(key):
            return str(route[key])
    return "an unknown target"


def egress_check(groups: Sequence[Mapping[str, Any]]) -> Check:
    """Whether the tasks' security groups let TCP 443 out (the agent's only connection)."""
    title = "security groups allow outbound TCP 443"
    narrow: list[str] = []
    for group in groups:
        for rule in group.get("IpPermissionsEgress") or []:
            protocol = str(rule.get("IpProtocol"))
            if protocol not in ("-1", "tcp", "6"):
                continue
            if protocol != "-1" and not (
                int(rule.get("FromPort", 0)) <= 443 <= int(rule.get("ToPort", 65535))
            ):
                continue
            cidrs = [r.get("CidrIp") for r in rule.get("IpRanges") or []]
            if "0.0.0.0/0" in cidrs:
                return Check(
                    name="security-groups",
                    title=title,
                    status=PASS,
                    detail=f"{group.get('GroupId')} allows 443 to 0.0.0.0/0",
                )
            narrow.append(str(group.get("GroupId")))
    if narrow:
        return Check(
            name="security-groups",
            title=title,
            status=UNKNOWN,
            detail=f"{', '.join(sorted(set(narrow)))} allow 443 only to some destinations; "
            "they must include the ssmmessages endpoint",
        )
    first = groups[0].get("GroupId") if groups else "<sg-...>"
    return Check(
        name="security-groups",
        title=title,
        status=FAIL,
        detail="no egress rule of the tasks' security groups covers TCP 443",
        fix=f"aws ec2 authorize-security-group-egress --group-id {first} "
        "--protocol tcp --port 443 --cidr 0.0.0.0/0",
    )


__all__ = [
    "FAIL",
    "PASS",
    "UNKNOWN",
    "Check",
    "ExecConfig",
    "Status",
    "cluster_checks",
    "egress_check",
    "endpoint_service",
    "network_check",
    "platform_check",
    "route_table_for",
]
