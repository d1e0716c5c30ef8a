"""The doctor flow against recorded AWS answers: the IAM simulation path (which moto lacks),
fallbacks, and failures that must never crash the report."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_core._doctor import DoctorReport, doctor_flow
from ecs_sandbox_core._doctor_iam import SSM_ACTIONS
from ecs_sandbox_core._effects import AwsCall, AwsError, AwsResult

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/svc/sandbox-task"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/harness/session-1"
CALLER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci/harness"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
Answer = Mapping[str, Any] | AwsError | Exception | Callable[[Mapping[str, Any]], Any]


def config(**overrides: Any) -> EcsFargateConfig:
    values: dict[str, Any] = {
        "region": "eu-west-1",
        "cluster": "evals",
        "task_definition": "sandbox:3",
        "container_name": "main",
        "subnets": ("subnet-1",),
        "security_groups": ("sg-1",),
        "s3_bucket": "staging",
    }
    values.update(overrides)
    return EcsFargateConfig(**values)


def simulate_allowing(denied: set[str] = set(), conditional: bool = False) -> Answer:  # noqa: B006
    def answer(params: Mapping[str, Any]) -> dict[str, Any]:
        resource = (params.get("ResourceArns") or ["*"])[0]
        return {
            "EvaluationResults": [
                {
                    "EvalActionName": action,
                    "EvalResourceName": resource,
                    "EvalDecision": "implicitDeny" if action in denied else "allowed",
                }
                for action in params["ActionNames"]
            ]
        }

    return answer


def answers(**changes: Answer) -> dict[str, Answer]:
    """A correct set-up's answers; ``changes`` replace some (by boto3 operation name)."""
    base: dict[str, Answer] = {
        "get_caller_identity": {"Account": ACCOUNT, "Arn": CALLER},
        "get_role": lambda p: {
            "Role": {
                "Arn": CALLER_ROLE if p["RoleName"] == "harness" else ROLE,
                "AssumeRolePolicyDocument": TRUST,
            }
        },
        "describe_clusters": {
            "clusters": [
                {
                    "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/evals",
                    "status": "ACTIVE",
                    "configuration": {"executeCommandConfiguration": {"kmsKeyId": "key-1"}},
                }
            ]
        },
        "describe_task_definition": {
            "taskDefinition": {
                "taskDefinitionArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/sandbox:3",
                "taskRoleArn": ROLE,
                "networkMode": "awsvpc",
                "containerDefinitions": [{"name": "main"}],
            }
        },
        "simulate_principal_policy": simulate_allowing(),
        "describe_subnets": {"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1"}]},
        "describe_route_tables": {
            "RouteTables": [
                {
                    "RouteTableId": "rtb-1",
                    "VpcId": "vpc-1",
                    "Associations": [{"Main": True}],
                    "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1"}],
                }
            ]
        },
        "describe_vpc_endpoints": {"VpcEndpoints": []},
        "describe_security_groups": {
            "SecurityGroups": [
                {
                    "GroupId": "sg-1",
                    "IpPermissionsEgress": [
                        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
                    ],
                }
            ]
        },
    }
    base.update(changes)
    return base


def run(
    flow: Generator[Any, Any, DoctorReport], table: Mapping[str, Answer]
) -> tuple[DoctorReport, list[AwsCall]]:
    """Drive ``flow`` as a driver would, answering every AwsCall from ``table``."""
    calls: list[AwsCall] = []
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            effect = flow.throw(error) if error is not None else flow.send(value)
            error, value = None, None
            assert isinstance(effect, AwsCall), effect
            calls.append(effect)
            answer = table.get(effect.operation)
            if answer is None:
                raise AssertionError(f"unexpected call {effect.service}:{effect.operation}")
            if callable(answer) and not isinstance(answer, Exception):
                answer = answer(effect.params)
            if isinstance(answer, Exception):
                error = answer
            elif isinstance(answer, AwsError):
                value = AwsResult(error=answer)
            else:
                value = AwsResult(data=answer)
    except StopIteration as stop:
        return stop.value, calls


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


DENIED = AwsError(code="AccessDenied", message="not authorized to perform iam:Simulate...")


def test_a_correct_set_up_passes_every_check_by_simulation() -> None:
    report, calls = run(doctor_flow(config(), region="eu-west-1"), answers())
    assert report.ok
    assert set(statuses(report).values()) == {"pass"}
    assert list(statuses(report)) == [
        "region", "credentials", "cluster", "cluster-exec-config", "caller-exec",
        "caller-tasks", "caller-pass-role", "caller-kms", "caller-staging-bucket",
        "task-definition",
        "task-role", "task-role-trust", "task-role-ssmmessages", "task-role-kms",
        "network:subnet-1", "security-groups", "platform-version",
    ]  # fmt: skip
    simulated = [c.params for c in calls if c.operation == "simulate_principal_policy"]
    # The assumed role is simulated under its IAM ARN, path included.
    assert {p["PolicySourceArn"] for p in simulated} == {CALLER_ROLE, ROLE}
    role_calls = [p for p in simulated if p["PolicySourceArn"] == ROLE]
    assert {a for p in role_calls for a in p["ActionNames"]} == {*SSM_ACTIONS, "kms:Decrypt"}
    kms = next(p for p in role_calls if "kms:Decrypt" in p["ActionNames"])
    assert kms["ResourceArns"] == [f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/key-1"]
    # The caller needs kms:GenerateDataKey on the cluster's exec key.
    caller_kms = next(p for p in simulated if "kms:GenerateDataKey" in p["ActionNames"])
    assert caller_kms["PolicySourceArn"] == CALLER_ROLE
    assert caller_kms["ResourceArns"] == kms["ResourceArns"]
    # Only read-only calls.
    assert all(c.operation.startswith(("get_", "describe_", "simulate_", "list_")) for c in calls)


def test_a_denied_ssmmessages_action_fails_its_check_with_the_exact_statement() -> None:
    table = answers(simulate_principal_policy=simulate_allowing({"ssmmessages:OpenDataChannel"}))
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    assert not report.ok
    assert [c.name for c in report.checks if c.status == "fail"] == ["task-role-ssmmessages"]
    check = report.first_failure
    assert check is not None and "ssmmessages:OpenDataChannel on *" in check.detail
    assert check.fix is not None
    prefix = (
        "aws iam put-role-policy --role-name sandbox-task --policy-name "
        "ecs-sandbox-task-role-ssmmessages --policy-document '"
    )
    assert check.fix.startswith(prefix)
    document = json.loads(check.fix[len(prefix) : -1])
    assert document["Statement"] == [
        {"Effect": "Allow", "Action": "ssmmessages:OpenDataChannel", "Resource": "*"}
    ]


def test_a_conditional_allowance_is_unknown_not_a_pass() -> None:
    role_policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "ssmmessages:*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
        ]
    }  # fmt: skip
    table = answers(
        simulate_principal_policy=DENIED,
        list_attached_role_policies={"AttachedPolicies": []},
        list_role_policies={"PolicyNames": ["exec"]},
        get_role_policy={"PolicyDocument": json.dumps(role_policy)},
    )
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    assert statuses(report)["task-role-ssmmessages"] == "unknown"
    assert statuses(report)["task-role-kms"] == "pass"


def test_without_simulation_the_caller_is_unknown_with_the_statement_it_needs() -> None:
    attached = f"arn:aws:iam::{ACCOUNT}:policy/exec"
    table = answers(
        simulate_principal_policy=DENIED,
        list_attached_role_policies=lambda p: (
            {"AttachedPolicies": [{"PolicyArn": attached}], "IsTruncated": True, "Marker": "m"}
            if "Marker" not in p
            else {"AttachedPolicies": [], "IsTruncated": False}
        ),
        get_policy={"Policy": {"DefaultVersionId": "v2"}},
        get_policy_version=lambda p: (
            {
                "PolicyVersion": {
                    "Document": {
                        "Statement": [
                            {"Effect": "Allow", "Action": "ssmmessages:*", "Resource": "*"},
                            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                        ]
                    }
                }
            }
            if p["VersionId"] == "v2"
            else {}
        ),
        list_role_policies={"PolicyNames": []},
    )
    report, calls = run(doctor_flow(config(), region="eu-west-1"), table)
    found = statuses(report)
    assert {found[n] for n in found if n.startswith("caller-")} == {"unknown"}
    assert found["task-role-ssmmessages"] == found["task-role-kms"] == "pass"
    assert report.ok  # unknown is not a failure
    # Why simulation failed is said once per principal, before the checks it leaves open.
    said = {c.name: c for c in report.checks if c.name.startswith("iam-simulation:")}
    assert list(said) == ["iam-simulation:caller", "iam-simulation:task-role"]
    assert {c.status for c in said.values()} == {"unknown"}
    assert "AccessDenied" in said["iam-simulation:caller"].detail
    exec_check = next(c for c in report.checks if c.name == "caller-exec")
    assert exec_check.fix is not None and '"Action":"ecs:ExecuteCommand"' in exec_check.fix
    role_check = next(c for c in report.checks if c.name == "task-role-ssmmessages")
    assert "read from sandbox-task's policies" in role_check.detail
    assert sum(c.operation == "list_attached_role_policies" for c in calls) == 2  # two pages


def test_an_explicit_deny_in_the_role_fails_and_the_fix_says_to_remove_it() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:*", "Resource": "*"},
        ]
    }
    table = answers(
        simulate_principal_policy=DENIED,
        list_attached_role_policies={"AttachedPolicies": []},
        list_role_policies={"PolicyNames": ["all"]},
        get_role_policy={"PolicyDocument": policy},
    )
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    assert [c.name for c in report.checks if c.status == "fail"] == ["task-role-kms"]
    fix = report.first_failure.fix if report.first_failure else ""
    assert fix is not None and fix.startswith("Remove or narrow the Deny statement(s)")


def test_no_credentials_stops_after_saying_so() -> None:
    table = answers(get_caller_identity=AwsError(code="NoCredentials", message="none found"))
    report, calls = run(doctor_flow(config(), region="eu-west-1"), table)
    assert statuses(report) == {"region": "pass", "credentials": "fail"}
    assert len(calls) == 1
    assert "NoCredentials: none found" in report.checks[1].detail


def test_an_unexpected_failure_of_a_call_becomes_unknown_not_a_crash() -> None:
    table = answers(
        describe_subnets=RuntimeError("boom\n<!doctype html>" + "x" * 5000),
        describe_clusters=AwsError(code="ThrottlingException", message="Rate exceeded"),
    )
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    found = statuses(report)
    assert found["cluster"] == "unknown" and found["network:subnet-1"] == "unknown"
    detail = next(c.detail for c in report.checks if c.name.startswith("net"))
    # The reason is quoted briefly: its first line, never a whole error page.
    assert detail == "ec2:describe_subnets failed: RuntimeError: boom"


def test_unknown_subnets_and_groups_fail_with_the_config_keys_to_set() -> None:
    table = answers(
        describe_subnets=AwsError(code="InvalidSubnetID.NotFound", message="no subnet-1"),
        describe_security_groups=AwsError(code="InvalidGroup.NotFound", message="no sg-1"),
    )
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    fails = {c.name: c.fix for c in report.checks if c.status == "fail"}
    assert fails == {
        "network:subnet-1": "Set subnets to subnets of this account and region.",
        "security-groups": "Set security_groups to groups of this account and region.",
    }


def test_no_region_fails_and_names_the_fallback() -> None:
    report, calls = run(doctor_flow(config(region=None), region=None), answers())
    assert report.checks[0].status == "fail" and "us-east-1" in report.checks[0].detail
    simulated = [c.params for c in calls if c.operation == "simulate_principal_policy"]
    assert any(
        r.startswith("arn:aws:ecs:us-east-1:") for p in simulated for r in p.get("ResourceArns", [])
    )


@pytest.mark.parametrize(
    ("definition", "failing"),
    [
        ({"taskDefinitionArn": "x", "containerDefinitions": [{"name": "main"}]}, "task-role"),
        ({"taskDefinitionArn": "x", "taskRoleArn": ROLE, "containerDefinitions": [{"name": "app"}]},
         "task-definition"),
    ],
)  # fmt: skip
def test_task_definition_problems(definition: dict[str, Any], failing: str) -> None:
    table = answers(describe_task_definition={"taskDefinition": definition})
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    assert [c.name for c in report.checks if c.status == "fail"] == [failing]


def test_a_task_arn_adds_the_tasks_own_verdict() -> None:
    arn = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/evals/abc"
    described = {"taskArn": arn, "lastStatus": "RUNNING", "enableExecuteCommand": False}
    table = answers(describe_tasks={"tasks": [described]})
    report, _ = run(doctor_flow(config(), region="eu-west-1", task_arn=arn), table)
    assert report.checks[-1].name == "task-exec" and report.checks[-1].status == "fail"
    table = answers(describe_tasks={"tasks": [], "failures": [{"arn": arn, "reason": "MISSING"}]})
    report, _ = run(doctor_flow(config(), region="eu-west-1", task_arn=arn), table)
    assert report.checks[-1].status == "fail" and "no task" in report.checks[-1].detail


def test_the_report_reads_as_lines_and_json() -> None:
    table = answers(simulate_principal_policy=simulate_allowing({"ecs:ExecuteCommand"}))
    report, _ = run(doctor_flow(config(), region="eu-west-1"), table)
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["ok"] is False
    failed = [c for c in as_json["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["caller-exec"]
    lines = report.lines()
    assert lines[-1].startswith(f"{len(report.checks)} checks: 1 failed, 0 unknown")
    assert any(
        line.startswith("          fix: Attach this policy to " + CALLER_ROLE) for line in lines
    )
