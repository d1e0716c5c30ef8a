"""The doctor's pure verdicts on recorded AWS answers (ECS, VPC, a task's description)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._doctor_checks import (
    FAIL,
    PASS,
    UNKNOWN,
    Check,
    cluster_checks,
    egress_check,
    network_check,
    platform_check,
    route_table_for,
)
from ecs_sandbox_core._doctor_task import exec_blocked_error, task_exec_check
from ecs_sandbox_core._errors import ExecAgentNotConnectedError

REGION = "eu-west-1"
SUBNET = {"SubnetId": "subnet-1", "VpcId": "vpc-1"}
ENDPOINT = {
    "VpcEndpointId": "vpce-1",
    "VpcId": "vpc-1",
    "ServiceName": f"com.amazonaws.{REGION}.ssmmessages",
    "State": "available",
    "PrivateDnsEnabled": True,
}


def table(table_id: str, *, main: bool = False, subnet: str | None = None, **route: str) -> Any:
    assoc: dict[str, Any] = {"Main": main}
    if subnet:
        assoc["SubnetId"] = subnet
    routes = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]
    if route:
        routes.append({"DestinationCidrBlock": "0.0.0.0/0", "State": "active", **route})
    return {"RouteTableId": table_id, "VpcId": "vpc-1", "Associations": [assoc], "Routes": routes}


def net(tables: list[Any], endpoints: list[Any] = [], public: bool = False) -> Check:  # noqa: B006
    return network_check(SUBNET, tables, endpoints, region=REGION, assign_public_ip=public)


@pytest.mark.parametrize(
    ("version", "status"),
    [("LATEST", PASS), ("latest", PASS), ("1.4.0", PASS), ("1.10.0", PASS),
     ("1.3.0", FAIL), ("1.0", FAIL), ("banana", UNKNOWN)],
)  # fmt: skip
def test_platform_versions(version: str, status: str) -> None:
    check = platform_check(version)
    assert check.status == status
    if status == FAIL:
        assert check.fix is not None and "platform_version = LATEST" in check.fix


@given(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)))
def test_platform_versions_compare_as_numbers(parts: tuple[int, int, int]) -> None:
    expected = PASS if parts >= (1, 4, 0) else FAIL
    assert platform_check(".".join(map(str, parts))).status == expected


def test_an_interface_endpoint_with_private_dns_reaches_ssmmessages() -> None:
    assert net([table("rtb-main", main=True)], [ENDPOINT]).status == PASS


def test_an_endpoint_without_private_dns_does_not() -> None:
    check = net([table("rtb-main", main=True)], [{**ENDPOINT, "PrivateDnsEnabled": False}])
    assert check.status == FAIL
    assert check.fix == "aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-1 --private-dns-enabled"


def test_an_endpoint_of_another_vpc_or_service_does_not_count() -> None:
    others = [{**ENDPOINT, "VpcId": "vpc-2"}, {**ENDPOINT, "ServiceName": "com.amazonaws.x.ssm"}]
    check = net([table("rtb-main", main=True)], others)
    assert check.status == FAIL
    assert f"--service-name com.amazonaws.{REGION}.ssmmessages" in (check.fix or "")
    assert "--vpc-id vpc-1" in (check.fix or "")


def test_a_nat_route_reaches_it_and_an_igw_route_only_with_a_public_ip() -> None:
    assert net([table("rtb-main", main=True, NatGatewayId="nat-1")]).status == PASS
    igw = [table("rtb-main", main=True, GatewayId="igw-1")]
    assert net(igw, public=True).status == PASS
    check = net(igw, public=False)
    assert check.status == FAIL
    assert check.fix is not None and check.fix.startswith("Set assign_public_ip = true")


def test_the_explicit_association_wins_over_the_main_table() -> None:
    tables = [
        table("rtb-main", main=True, NatGatewayId="nat-1"),
        table("rtb-own", subnet="subnet-1"),
    ]
    assert route_table_for(SUBNET, tables)["RouteTableId"] == "rtb-own"
    check = net(tables)
    assert check.status == FAIL
    assert "rtb-own has no default route" in check.detail
    assert "--route-table-id rtb-own" in (check.fix or "")


def test_a_route_through_a_transit_gateway_cannot_be_judged() -> None:
    check = net([table("rtb-main", main=True, TransitGatewayId="tgw-1")])
    assert check.status == UNKNOWN and "tgw-1" in check.detail


def test_a_blackhole_route_is_no_route() -> None:
    blackhole = table("rtb-main", main=True, NatGatewayId="nat-gone", State="blackhole")
    assert net([blackhole]).status == FAIL


def sg(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"GroupId": "sg-1", "IpPermissionsEgress": list(rules)}


ANYWHERE = [{"CidrIp": "0.0.0.0/0"}]


@pytest.mark.parametrize(
    ("rules", "status"),
    [
        ([{"IpProtocol": "-1", "IpRanges": ANYWHERE}], PASS),
        ([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": ANYWHERE}], PASS),
        ([{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": ANYWHERE}], PASS),
        ([{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": ANYWHERE}], FAIL),
        ([{"IpProtocol": "udp", "FromPort": 443, "ToPort": 443, "IpRanges": ANYWHERE}], FAIL),
        ([{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}], UNKNOWN),
        ([], FAIL),
    ],
)
def test_security_group_egress(rules: list[dict[str, Any]], status: str) -> None:
    check = egress_check([sg(*rules)])
    assert check.status == status
    if status == FAIL:
        assert check.fix == (
            "aws ec2 authorize-security-group-egress --group-id sg-1 --protocol tcp --port 443 "
            "--cidr 0.0.0.0/0"
        )


def test_cluster_missing_inactive_and_configured() -> None:
    (missing,), needs = cluster_checks("c", {"clusters": [], "failures": [{}]}, None)
    assert missing.status == FAIL and needs is None
    assert "create-cluster --cluster-name c" in (missing.fix or "")
    (inactive,), _ = cluster_checks("c", {"clusters": [{"status": "INACTIVE"}]}, None)
    assert inactive.status == FAIL and "INACTIVE" in inactive.detail
    (unknown,), _ = cluster_checks("c", None, "ecs:describe_clusters failed: AccessDenied")
    assert unknown.status == UNKNOWN and "AccessDenied" in unknown.detail
    config = {
        "executeCommandConfiguration": {
            "kmsKeyId": "key-1",
            "logging": "OVERRIDE",
            "logConfiguration": {"s3BucketName": "logs", "s3KeyPrefix": "exec/"},
        }
    }
    checks, needs = cluster_checks(
        "c", {"clusters": [{"status": "ACTIVE", "configuration": config}]}, None
    )
    assert [c.status for c in checks] == [PASS, PASS]
    assert needs is not None
    assert (needs.kms_key, needs.s3_bucket, needs.s3_prefix, needs.log_group) == (
        "key-1", "logs", "exec/", None,
    )  # fmt: skip


def test_override_logging_without_a_destination_fails() -> None:
    config = {"executeCommandConfiguration": {"logging": "OVERRIDE"}}
    checks, _ = cluster_checks(
        "c", {"clusters": [{"status": "ACTIVE", "configuration": config}]}, None
    )
    assert [c.status for c in checks] == [PASS, FAIL]


def task(
    *, enabled: bool | None = True, agent: dict[str, Any] | None = None, status: str = "RUNNING"
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "main", "lastStatus": status}
    if agent is not None:
        entry["managedAgents"] = [{"name": "ExecuteCommandAgent", **agent}]
    described: dict[str, Any] = {
        "taskArn": "arn:aws:ecs:r:1:task/c/abc",
        "lastStatus": status,
        "containers": [entry],
    }
    if enabled is not None:
        described["enableExecuteCommand"] = enabled
    return described


def test_what_a_task_description_says() -> None:
    assert task_exec_check(task(enabled=False), "main").status == FAIL
    assert task_exec_check(task(agent={"lastStatus": "RUNNING"}), "main").status == PASS
    stopped = task_exec_check(task(agent={"lastStatus": "STOPPED", "reason": "no creds"}), "main")
    assert stopped.status == FAIL and "STOPPED: no creds" in stopped.detail
    assert task_exec_check(task(agent={"lastStatus": "PENDING"}), "main").status == UNKNOWN
    assert task_exec_check(task(agent=None, status="PENDING"), "main").status == UNKNOWN
    assert task_exec_check(task(agent=None), "main").status == FAIL
    assert task_exec_check(task(agent={"lastStatus": "RUNNING"}), "other").status == FAIL
    # A description that does not say (an older emulator) is not read as "disabled".
    assert (
        task_exec_check(task(enabled=None, agent={"lastStatus": "RUNNING"}), "main").status == PASS
    )


GAVE_UP = ExecAgentNotConnectedError("the task's exec agent did not connect within 180 s (X)")


def test_a_task_without_exec_ends_the_wait_at_once_naming_the_flag() -> None:
    error = exec_blocked_error(task(enabled=False), "main", None)
    assert error is not None
    assert "without enableExecuteCommand" in error.message
    assert "enable-execute-command" in error.remedy


def test_a_stopped_agent_ends_the_wait_with_its_reason() -> None:
    error = exec_blocked_error(
        task(agent={"lastStatus": "STOPPED", "reason": "boom"}), "main", None
    )
    assert error is not None and "ExecuteCommandAgent is STOPPED: boom" in error.message


def test_a_starting_agent_keeps_the_wait_going() -> None:
    assert exec_blocked_error(task(agent={"lastStatus": "PENDING"}), "main", None) is None
    assert exec_blocked_error(task(agent=None), "main", None) is None  # may still appear
    assert exec_blocked_error(task(agent={"lastStatus": "RUNNING"}), "main", None) is None


def test_at_the_end_a_running_agent_points_at_the_role_and_network() -> None:
    error = exec_blocked_error(task(agent={"lastStatus": "RUNNING"}), "main", GAVE_UP)
    assert error is not None
    assert error.message.startswith(GAVE_UP.message)
    assert "ExecuteCommandAgent is RUNNING" in error.message
    assert "ecs-sandbox doctor --task-arn arn:aws:ecs:r:1:task/c/abc" in error.remedy


def test_at_the_end_a_missing_agent_is_named_and_an_unknown_keeps_the_error() -> None:
    error = exec_blocked_error(task(agent=None), "main", GAVE_UP)
    assert error is not None and "lists no ExecuteCommandAgent" in error.message
    assert exec_blocked_error(task(agent={"lastStatus": "PENDING"}), "main", GAVE_UP) is None
