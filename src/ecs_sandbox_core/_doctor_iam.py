"""The doctor's permission checks: what the caller and the task role must be allowed, and
whether they are (by IAM's policy simulator, or by reading the role's policies)."""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._config import EcsFargateConfig
from ._doctor_checks import FAIL, PASS, UNKNOWN, Check, ExecConfig
from ._doctor_policy import (
    ALLOWED,
    CONDITIONAL,
    EXPLICIT_DENY,
    Decision,
    PolicyParseError,
    Statement,
    allow_document,
    evaluate,
    parse_document,
    simulated_decisions,
)
from ._effects import AwsCall, AwsResult, AwsService, Effect

SSM_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
"""What the exec agent in a task does with the task role's credentials."""

Answer = tuple[Mapping[str, Any] | None, str | None]


def ask(service: AwsService, operation: str, **params: Any) -> Generator[Effect, Any, Answer]:
    """One read-only call: its data, or None and why it failed (errors never raise)."""
    try:
        result: AwsResult = yield AwsCall(service=service, operation=operation, params=params)
    except Exception as exc:  # the driver met something it could not map (moto's 500s)
        return None, _brief(f"{service}:{operation} failed: {type(exc).__name__}: {exc}")
    if result.error is not None:
        error = result.error
        return None, _brief(f"{service}:{operation} failed: {error.code}: {error.message}")
    return result.data, None


MAX_REASON = 240
"""The longest reason quoted in a check: an error can carry a whole HTML page."""


def _brief(reason: str) -> str:
    first = reason.strip().splitlines()[0] if reason.strip() else reason
    return first if len(first) <= MAX_REASON else first[: MAX_REASON - 3] + "..."


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


def permission_checks(
    principal: str, needs: Sequence[Need], *, who: str, role_name: str | None
) -> Generator[Effect, Any, list[Check]]:
    """One check per need: simulated for ``principal`` when IAM lets us, else read from the
    role's policies (``role_name``), else unknown.

    When simulation is unavailable the list starts with one ``iam-simulation:<who>`` check
    that says why, so that the checks after it need not repeat it.
    """
    if not needs:
        return []
    if principal.endswith(":root"):
        return [
            Check(name=n.name, title=n.title, status=PASS, detail="the account root") for n in needs
        ]
    decisions, why = yield from _simulate(principal, needs)
    if decisions is not None:
        return [
            _verdict(n, decisions, how="IAM policy simulation", principal=principal,
                     role_name=role_name)
            for n in needs
        ]  # fmt: skip
    checks = [
        Check(
            name=f"iam-simulation:{who.replace(' ', '-')}",
            title=f"IAM can simulate the {who}'s policies",
            status=UNKNOWN,
            detail=f"{why}; "
            + (
                f"reading {role_name}'s policies instead"
                if role_name is not None
                else f"the {who}'s rights below are unknown"
            ),
            fix=f"Allow iam:SimulatePrincipalPolicy on {principal} to whoever runs doctor, so "
            "that permissions are decided exactly.",
        )
    ]
    if role_name is not None:
        statements, why_read = yield from role_statements(role_name)
        if statements is not None:
            decisions = {
                (action.lower(), resource): evaluate(statements, action, resource)
                for need in needs
                for action, resource in need.requests
            }
            how = f"read from {role_name}'s policies; permission boundaries and SCPs not seen"
            return checks + [
                _verdict(n, decisions, how=how, principal=principal, role_name=role_name)
                for n in needs
            ]
        why = f"reading the role's policies failed: {why_read}"
    else:
        why = "no policy simulation"
    return checks + [
        Check(
            name=n.name,
            title=n.title,
            status=UNKNOWN,
            detail=f"cannot tell ({why})",
            fix=f"Make sure the {who} {principal} is allowed: "
            + _compact(allow_document(n.requests)),
        )
        for n in needs
    ]


def _compact(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _verdict(
    need: Need,
    decisions: Mapping[tuple[str, str], Decision],
    *,
    how: str,
    principal: str,
    role_name: str | None,
) -> Check:
    seen = {
        (action, resource): decisions.get(
            (action.lower(), resource), decisions.get((action.lower(), "*"), "implicitDeny")
        )
        for action, resource in need.requests
    }
    denied = [request for request, decision in seen.items() if decision not in (ALLOWED,)]
    if not denied:
        return Check(name=need.name, title=need.title, status=PASS, detail=f"allowed ({how})")
    explicit = [f"{a} on {r}" for (a, r), d in seen.items() if d == EXPLICIT_DENY]
    conditional = [f"{a} on {r}" for (a, r), d in seen.items() if d == CONDITIONAL]
    missing = [f"{a} on {r}" for (a, r) in denied]
    document = _compact(allow_document(denied))
    if role_name is not None:
        fix = (
            f"aws iam put-role-policy --role-name {role_name} --policy-name "
            f"ecs-sandbox-{need.name} --policy-document '{document}'"
        )
    else:
        fix = f"Attach this policy to {principal}: {document}"
    if explicit:
        fix = f"Remove or narrow the Deny statement(s) that match {', '.join(explicit)}; " + fix
    if conditional and len(conditional) == len(denied):
        return Check(
            name=need.name,
            title=need.title,
            status=UNKNOWN,
            detail=f"allowed only under conditions ({how}): {', '.join(conditional)}",
            fix=fix,
        )
    return Check(
        name=need.name,
        title=need.title,
        status=FAIL,
        detail=f"not allowed ({how}): {', '.join(missing)}",
        fix=fix,
    )


def _simulate(
    principal: str, needs: Sequence[Need]
) -> Generator[Effect, Any, tuple[dict[tuple[str, str], Decision] | None, str | None]]:
    by_resource: dict[str, list[str]] = {}
    for need in needs:
        for action, resource in need.requests:
            actions = by_resource.setdefault(resource, [])
            if action not in actions:
                actions.append(action)
    decisions: dict[tuple[str, str], Decision] = {}
    for resource, actions in by_resource.items():
        params: dict[str, Any] = {"PolicySourceArn": principal, "ActionNames": actions}
        if resource != "*":
            params["ResourceArns"] = [resource]
        data, why = yield from ask("iam", "simulate_principal_policy", **params)
        if data is None:
            return None, why
        for (action, name), decision in simulated_decisions(data).items():
            decisions[(action, resource if name in ("*", resource) else name)] = decision
    return decisions, None


def role_statements(
    role_name: str,
) -> Generator[Effect, Any, tuple[list[Statement] | None, str | None]]:
    """Every statement of the role's attached (default versions) and inline policies."""
    attached, why = yield from _listed("list_attached_role_policies", role_name, "AttachedPolicies")
    if attached is None:
        return None, why
    inline, why = yield from _listed("list_role_policies", role_name, "PolicyNames")
    if inline is None:
        return None, why
    documents: list[Any] = []
    for item in attached:
        arn = item.get("PolicyArn") if isinstance(item, Mapping) else None
        policy, why = yield from ask("iam", "get_policy", PolicyArn=arn)
        if policy is None:
            return None, why
        version_id = policy.get("Policy", {}).get("DefaultVersionId")
        version, why = yield from ask(
            "iam", "get_policy_version", PolicyArn=arn, VersionId=version_id
        )
        if version is None:
            return None, why
        documents.append(version.get("PolicyVersion", {}).get("Document"))
    for name in inline:
        data, why = yield from ask("iam", "get_role_policy", RoleName=role_name, PolicyName=name)
        if data is None:
            return None, why
        documents.append(data.get("PolicyDocument"))
    statements: list[Statement] = []
    try:
        for document in documents:
            statements += parse_document(document or {})
    except PolicyParseError as exc:
        return None, f"a policy of {role_name} could not be read: {exc}"
    return statements, None


def _listed(
    operation: str, role_name: str, key: str
) -> Generator[Effect, Any, tuple[list[Any] | None, str | None]]:
    items: list[Any] = []
    marker: str | None = None
    while True:
        params: dict[str, Any] = {"RoleName": role_name}
        if marker:
            params["Marker"] = marker
        data, why = yield from ask("iam", operation, **params)
        if data is None:
            return None, why
        items += list(data.get(key) or [])
        marker = data.get("Marker")
        if not data.get("IsTruncated") or not marker:
            return items, None


__all__ = [
    "SSM_ACTIONS",
    "Need",
    "ask",
    "caller_needs",
    "permission_checks",
    "role_needs",
    "role_statements",
]
