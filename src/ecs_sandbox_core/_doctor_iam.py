"""The doctor's permission checks: whether the caller and the task role are allowed what
they need (:mod:`._doctor_needs`), by IAM's policy simulator, or by reading the role's
policies.

Theory of operation
-------------------
The policy simulator is exact (it sees boundaries, SCPs and conditions) but needs
iam:SimulatePrincipalPolicy, which a harness often lacks. So each principal is tried in that
order: simulate every need's requests, grouped by resource; failing that, read the role's
attached and inline policies and evaluate them here (:mod:`._doctor_policy`), saying that
boundaries and SCPs were not seen; failing that too, report each need as unknown with the
policy that would allow it. A missing permission fails, with the policy (or for a role the
command) that grants it; an allow that holds only under conditions is unknown, not pass.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from ._doctor_checks import FAIL, PASS, UNKNOWN, Check
from ._doctor_needs import SSM_ACTIONS, Need, caller_needs, role_needs
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
