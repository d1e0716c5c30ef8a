"""``ecs-sandbox doctor`` on the embedded local ECS (moto's IAM, EC2 and ECS behind it).

Each test builds its own set-up (role, task definition, cluster, VPC) under a fresh name:
a correct one passes every check moto lets us decide, and one broken in a single way fails
exactly the matching check, with its fix. moto has no IAM policy simulator, so here the
task role's policies are read and evaluated, and the caller's rights are unknown; the
simulation path is tested on recorded answers in tests/test_doctor_flow.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ecs_sandbox_core import EcsFargateConfig, ExecAgentNotConnectedError
from ecs_sandbox_core._doctor import DoctorReport
from ecs_sandbox_core._doctor_image import image_probe_flow
from ecs_sandbox_core._exec_flow import exec_flow
from ecs_sandbox_drivers import EcsFargateSandbox, cli
from ecs_sandbox_drivers._doctor import diagnose, probe_image
from ecs_sandbox_drivers._sync import SyncDriver
from ecs_sandbox_drivers.local import LocalAws

SSM = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]
CALLER_CHECKS = {
    "caller-exec", "caller-tasks", "caller-staging-bucket", "caller-pass-role", "caller-kms",
    "iam-simulation:caller", "iam-simulation:task-role",
}  # fmt: skip


@dataclass
class SetUp:
    """How to build one set-up; the defaults are a correct one."""

    role: bool = True
    trusted_service: str = "ecs-tasks.amazonaws.com"
    allowed: list[str] = field(default_factory=lambda: [*SSM, "kms:Decrypt"])
    denied: list[str] = field(default_factory=list)
    kms_key: bool = True
    route: str = "endpoint"  # endpoint | igw | nat | none
    private_dns: bool = True
    egress: bool = True
    container: str = "main"


def build(aws: LocalAws, setup: SetUp, **overrides: Any) -> EcsFargateConfig:
    """Create ``setup``'s resources under a fresh name; the configuration that uses them."""
    name = f"doctor-{uuid.uuid4().hex[:8]}"
    iam, ec2, ecs = aws.client("iam"), aws.client("ec2"), aws.client("ecs")
    definition: dict[str, Any] = {
        "family": name,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {"name": setup.container, "image": "x", "memory": 512, "command": ["sleep", "1"]}
        ],
    }
    if setup.role:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": setup.trusted_service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(
            RoleName=name, Path="/ecs/", AssumeRolePolicyDocument=json.dumps(trust)
        )
        statements = (
            [{"Effect": "Deny", "Action": setup.denied, "Resource": "*"}] if setup.denied else []
        )
        # One permission inline, the others in an attached managed policy: both are read.
        iam.put_role_policy(
            RoleName=name,
            PolicyName="inline",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [*statements,
                 {"Effect": "Allow", "Action": setup.allowed[:1] or ["sts:GetCallerIdentity"],
                  "Resource": "*"}]}
            ),
        )  # fmt: skip
        if setup.allowed[1:]:
            allow = {"Effect": "Allow", "Action": setup.allowed[1:], "Resource": "*"}
            policy = iam.create_policy(
                PolicyName=f"{name}-exec",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
            )
            iam.attach_role_policy(RoleName=name, PolicyArn=policy["Policy"]["Arn"])
        definition["taskRoleArn"] = role["Role"]["Arn"]
    ecs.register_task_definition(**definition)
    exec_config: dict[str, Any] = {"logging": "DEFAULT"}
    if setup.kms_key:
        exec_config["kmsKeyId"] = f"{name}-key"
    ecs.create_cluster(clusterName=name, configuration={"executeCommandConfiguration": exec_config})
    octet = int(name[-2:], 16)
    vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=name, Description="doctor", VpcId=vpc)["GroupId"]
    if not setup.egress:
        ec2.revoke_security_group_egress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
    if setup.route == "endpoint":
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            VpcEndpointType="Interface",
            ServiceName=f"com.amazonaws.{aws.region}.ssmmessages",
            SubnetIds=[subnet],
            SecurityGroupIds=[group],
            PrivateDnsEnabled=setup.private_dns,
        )
    elif setup.route in ("igw", "nat"):
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        if setup.route == "igw":
            igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
            ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        else:
            allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
            nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)
            ec2.create_route(
                RouteTableId=table,
                DestinationCidrBlock="0.0.0.0/0",
                NatGatewayId=nat["NatGateway"]["NatGatewayId"],
            )
    values: dict[str, Any] = {
        "cluster": name,
        "task_definition": name,
        "subnets": (subnet,),
        "security_groups": (group,),
    }
    values.update(overrides)
    return aws.config(**values)


def failed(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.fix or "" for c in report.checks if c.status == "fail"}


def test_a_correct_set_up_passes_every_check_moto_can_decide(local_aws: LocalAws) -> None:
    report = diagnose(build(local_aws, SetUp()))
    found = {c.name: c.status for c in report.checks}
    assert report.ok, report.lines()
    decided = {name: status for name, status in found.items() if name not in CALLER_CHECKS}
    assert set(decided.values()) == {"pass"}, report.lines()
    assert {"task-role-ssmmessages", "task-role-kms", "task-role-trust", "security-groups",
            "platform-version", "cluster-exec-config"} <= set(decided)  # fmt: skip
    # moto cannot simulate policies: the caller's rights are unknown, with what they need.
    assert {found[name] for name in CALLER_CHECKS & set(found)} == {"unknown"}


@pytest.mark.parametrize(
    ("setup", "overrides", "check", "in_fix"),
    [
        (SetUp(role=False), {}, "task-role", "task_role_arn"),
        (SetUp(allowed=["kms:Decrypt", *SSM[:3]]), {}, "task-role-ssmmessages",
         '"Action":"ssmmessages:OpenDataChannel","Resource":"*"'),
        (SetUp(allowed=list(SSM)), {}, "task-role-kms", '"Action":"kms:Decrypt"'),
        (SetUp(denied=["kms:*"]), {}, "task-role-kms", "Remove or narrow the Deny"),
        (SetUp(trusted_service="ec2.amazonaws.com"), {}, "task-role-trust",
         "update-assume-role-policy"),
        (SetUp(route="none"), {}, "network:", "create-vpc-endpoint"),
        (SetUp(private_dns=False), {}, "network:", "--private-dns-enabled"),
        (SetUp(route="igw"), {}, "network:", "assign_public_ip = true"),
        (SetUp(egress=False), {}, "security-groups", "authorize-security-group-egress"),
        (SetUp(), {"platform_version": "1.3.0"}, "platform-version", "platform_version = LATEST"),
        (SetUp(container="app"), {}, "task-definition", "container_name"),
    ],
    ids=["no-role", "no-ssmmessages", "no-kms", "deny-kms", "trust", "no-route",
         "no-private-dns", "igw-without-public-ip", "no-egress", "platform", "container"],
)  # fmt: skip
def test_a_set_up_broken_one_way_fails_exactly_that_check(
    local_aws: LocalAws, setup: SetUp, overrides: dict[str, Any], check: str, in_fix: str
) -> None:
    report = diagnose(build(local_aws, setup, **overrides))
    fails = failed(report)
    assert len(fails) == 1, report.lines()
    ((name, fix),) = fails.items()
    assert name.startswith(check)
    assert in_fix in fix


@pytest.mark.parametrize(("route", "public"), [("igw", True), ("nat", False)])
def test_other_routes_to_ssmmessages_pass(local_aws: LocalAws, route: str, public: bool) -> None:
    report = diagnose(build(local_aws, SetUp(route=route), assign_public_ip=public))
    assert failed(report) == {}, report.lines()


def test_a_missing_cluster_fails_the_cluster_check(local_aws: LocalAws) -> None:
    cfg = build(local_aws, SetUp())
    report = diagnose(aws_config(local_aws, cfg, cluster="no-such-cluster"))
    assert list(failed(report)) == ["cluster"]


def aws_config(aws: LocalAws, cfg: EcsFargateConfig, **changes: Any) -> EcsFargateConfig:
    keep = ("cluster", "task_definition", "subnets", "security_groups")
    return aws.config(**{**{k: getattr(cfg, k) for k in keep}, **changes})


@contextlib.contextmanager
def running_task(aws: LocalAws, *, enabled: bool) -> Iterator[str]:
    cfg = aws.config()
    ecs = aws.client("ecs", max_attempts=1)
    arn: str = ecs.run_task(
        cluster=cfg.cluster,
        taskDefinition=cfg.task_definition,
        launchType="FARGATE",
        enableExecuteCommand=enabled,
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(cfg.subnets),
                "securityGroups": list(cfg.security_groups),
            }
        },
        overrides={"containerOverrides": [{"name": "main", "command": ["sleep", "600"]}]},
    )["tasks"][0]["taskArn"]
    try:
        yield arn
    finally:
        ecs.stop_task(cluster=cfg.cluster, task=arn, reason="test over")


def test_the_local_ecs_describes_exec_as_ecs_does(local_aws: LocalAws) -> None:
    ecs = local_aws.client("ecs", max_attempts=1)
    for enabled in (True, False):
        with running_task(local_aws, enabled=enabled) as arn:
            (task,) = ecs.describe_tasks(cluster=local_aws.cluster, tasks=[arn])["tasks"]
            assert task["enableExecuteCommand"] is enabled
            agents = task["containers"][0].get("managedAgents")
            assert (agents is not None) is enabled
            if not enabled:
                with pytest.raises(ecs.exceptions.InvalidParameterException, match="not enabled"):
                    ecs.execute_command(
                        cluster=local_aws.cluster, task=arn, container="main",
                        command="true", interactive=True,
                    )  # fmt: skip


def test_doctor_reads_a_tasks_own_description(local_aws: LocalAws) -> None:
    cfg = local_aws.config()
    with running_task(local_aws, enabled=False) as arn:
        check = diagnose(cfg, task_arn=arn).checks[-1]
        assert (check.name, check.status) == ("task-exec", "fail")
        assert "without enableExecuteCommand" in check.detail
    with running_task(local_aws, enabled=True) as arn:
        check = diagnose(cfg, task_arn=arn).checks[-1]
        assert (check.name, check.status) == ("task-exec", "pass")


def test_an_exec_into_a_task_without_exec_fails_at_once_naming_the_flag(
    local_aws: LocalAws,
) -> None:
    cfg = local_aws.config(exec_connect_timeout_sec=600.0)
    with running_task(local_aws, enabled=False) as arn, SyncDriver(cfg) as driver:
        flow = exec_flow(
            task_arn=arn,
            container="main",
            command="true",
            timeout_s=30.0,
            connect_timeout_s=cfg.exec_connect_timeout_sec,
            cluster=cfg.cluster,
            native=True,
        )
        with pytest.raises(ExecAgentNotConnectedError, match="without enableExecuteCommand"):
            driver.run(flow)
        # One ExecuteCommand, not 600 s of them.
        assert driver.aws.calls["ecs:execute_command"] == 1


def test_the_cli_prints_the_report_and_exits_by_it(
    local_aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = build(local_aws, SetUp())
    keys = ("region", "endpoint_url", "cluster", "task_definition", "container_name", "s3_bucket")
    flags = [f"--set={k}={getattr(cfg, k)}" for k in keys]
    flags += [f"--set=subnets={cfg.subnets[0]}", f"--set=security_groups={cfg.security_groups[0]}"]
    assert cli.main([*flags, "doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert {c["status"] for c in report["checks"]} == {"pass", "unknown"}
    assert cli.main([*flags, "--set=platform_version=1.3.0", "doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL   ] Fargate platform version" in out
    assert "fix: Set platform_version = LATEST" in out


def test_command_writes_to_the_given_stream(local_aws: LocalAws) -> None:
    out = io.StringIO()
    args = cli._parser().parse_args(["doctor", "--json"])
    assert cli._doctor.command(args, build(local_aws, SetUp(egress=False)), out) == 1
    assert json.loads(out.getvalue())["ok"] is False


def test_the_image_probe_on_a_local_sandbox(local_aws: LocalAws) -> None:
    cfg = local_aws.config()
    check = probe_image(cfg)
    assert (check.name, check.status) == ("image", "pass"), check
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id="probe-path", trial_name="doctor", run_id="probe-path"
    ) as sandbox:
        # An image with only a few tools: the probe runs with a PATH that has only those.
        sandbox.exec(
            "mkdir -p /tmp/few && for t in sh base64 stty sleep; do "
            'ln -s "$(command -v $t)" /tmp/few/$t; done'
        )
        flow = image_probe_flow(sandbox._flows.ctx, search_path="/tmp/few")
        report = sandbox.driver.run(flow)
    assert {t.name for t in report.missing} == {"tmux", "python3>=3.8", "fetch", "setsid"}
    assert report.unanswered == ()


def test_the_doctors_probe_is_the_spin_ups_own(local_aws: LocalAws) -> None:
    # The spin-up probes a new image by itself; the doctor reads that report rather than
    # spending a second round trip on the same question.
    cfg = local_aws.config(s3_prefix="doctor-probe-once")  # a driver of its own
    check = probe_image(cfg)
    assert (check.name, check.status) == ("image", "pass"), check
    assert SyncDriver.shared(cfg).stats.exec_round_trips == 1


def test_probe_image_on_the_cli(local_aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = local_aws.config()
    keys = ("region", "endpoint_url", "cluster", "task_definition", "container_name", "s3_bucket")
    flags = [f"--set={k}={getattr(cfg, k)}" for k in keys]
    flags += [f"--set=subnets={cfg.subnets[0]}", f"--set=security_groups={cfg.security_groups[0]}"]
    cli.main([*flags, "doctor", "--json", "--probe-image"])
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert checks[-1]["name"] == "image" and checks[-1]["status"] == "pass"
