"""Reading IAM answers for ``ecs-sandbox doctor``: policy documents and simulation results.

Theory of operation
-------------------
The doctor asks whether a principal may make a list of (action, resource) requests. The best
witness is IAM's own policy simulator (``iam:SimulatePrincipalPolicy``), whose answers
:func:`simulated_decisions` reads. Where the caller may not simulate (or the local AWS cannot),
the doctor reads the role's identity policies itself and :func:`evaluate` applies the core of
IAM's evaluation logic to them:

* a request matches a statement when its action matches ``Action`` (or not ``NotAction``) and
  its resource matches ``Resource`` (or not ``NotResource``); ``*`` matches any run of
  characters and ``?`` any one character (:func:`wildcard_match`); actions compare without
  regard to case, resources with it;
* a matching ``Deny`` wins over everything, then a matching ``Allow`` allows, and nothing
  matching is an implicit deny.

What reading cannot see is said, never guessed: a statement with a ``Condition`` may or may
not apply, so a decision that depends on one is :data:`CONDITIONAL` (the doctor reports it as
unknown); permission boundaries, session policies, SCPs and resource policies are outside the
documents read, which the doctor's check says in its detail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Decision = Literal["allowed", "explicitDeny", "implicitDeny", "conditional"]
ALLOWED: Decision = "allowed"
EXPLICIT_DENY: Decision = "explicitDeny"
IMPLICIT_DENY: Decision = "implicitDeny"
CONDITIONAL: Decision = "conditional"


class PolicyParseError(ValueError):
    """A policy document that is not the JSON shape IAM stores."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """One statement of an identity policy, with its lists normalised to tuples."""

    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] | None = None
    conditional: bool = False

    def matches(self, action: str, resource: str) -> bool:
        """Whether the request (``action`` on ``resource``) is within this statement."""
        if self.not_actions is not None:
            if any(wildcard_match(p, action, ignore_case=True) for p in self.not_actions):
                return False
        elif not any(wildcard_match(p, action, ignore_case=True) for p in self.actions):
            return False
        if self.not_resources is not None:
            return not any(wildcard_match(p, resource) for p in self.not_resources)
        return any(wildcard_match(p, resource) for p in self.resources)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters (none too), ``?`` exactly one."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    parts = [".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern]
    return re.fullmatch("".join(parts), value, flags=re.DOTALL) is not None


def parse_document(document: str | Mapping[str, Any]) -> list[Statement]:
    """The statements of a policy document as IAM APIs return it.

    boto3 gives documents as dicts; the raw API (and some local AWSs) gives a JSON string,
    URL-encoded or not. Raises :class:`PolicyParseError` for anything else.
    """
    data: Any = document
    if isinstance(document, str):
        text = document.strip()
        if not text.startswith("{"):
            text = _percent_decode(text)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PolicyParseError(f"policy document is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise PolicyParseError("policy document is not a JSON object")
    raw = data.get("Statement", [])
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list):
        raise PolicyParseError("Statement is neither an object nor a list")
    return [_statement(item) for item in items]


def _percent_decode(text: str) -> str:
    """Undo URL encoding (``%XX`` as UTF-8 bytes; ``+`` stays, as IAM's encoding has none)."""
    raw = bytearray()
    i = 0
    while i < len(text):
        hexdigits = text[i + 1 : i + 3]
        if text[i] == "%" and len(hexdigits) == 2 and all(c in _HEX for c in hexdigits):
            raw.append(int(hexdigits, 16))
            i += 3
        else:
            raw += text[i].encode()
            i += 1
    return raw.decode("utf-8", errors="replace")


_HEX = frozenset("0123456789abcdefABCDEF")


def _strings(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyParseError(f"{key} must be a string or a list of strings")


def _statement(item: object) -> Statement:
    if not isinstance(item, Mapping):
        raise PolicyParseError("a statement is not a JSON object")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyParseError(f"Effect must be Allow or Deny, not {effect!r}")
    if ("Action" in item) == ("NotAction" in item):
        raise PolicyParseError("a statement needs exactly one of Action and NotAction")
    if ("Resource" in item) == ("NotResource" in item):
        raise PolicyParseError("a statement needs exactly one of Resource and NotResource")
    return Statement(
        effect=effect,
        actions=_strings(item["Action"], "Action") if "Action" in item else (),
        not_actions=_strings(item["NotAction"], "NotAction") if "NotAction" in item else None,
        resources=_strings(item["Resource"], "Resource") if "Resource" in item else (),
        not_resources=(
            _strings(item["NotResource"], "NotResource") if "NotResource" in item else None
        ),
        conditional=bool(item.get("Condition")),
    )


def evaluate(statements: Iterable[Statement], action: str, resource: str) -> Decision:
    """IAM's decision for one request under ``statements`` (see the module docstring)."""
    allowed = conditional_allow = conditional_deny = False
    for statement in statements:
        if not statement.matches(action, resource):
            continue
        if statement.effect == "Deny":
            if not statement.conditional:
                return EXPLICIT_DENY
            conditional_deny = True
        elif statement.conditional:
            conditional_allow = True
        else:
            allowed = True
    if allowed:
        return CONDITIONAL if conditional_deny else ALLOWED
    return CONDITIONAL if conditional_allow else IMPLICIT_DENY


def simulated_decisions(data: Mapping[str, Any]) -> dict[tuple[str, str], Decision]:
    """``(action, resource) -> decision`` from a SimulatePrincipalPolicy response.

    Actions are lower-cased (IAM compares them so). A result that names no resource is
    keyed by ``"*"``; per-resource results (``ResourceSpecificResults``) are keyed by theirs.
    """
    found: dict[tuple[str, str], Decision] = {}
    for result in data.get("EvaluationResults") or []:
        action = str(result.get("EvalActionName", "")).lower()
        decision = _decision(result.get("EvalDecision"))
        found[(action, str(result.get("EvalResourceName") or "*"))] = decision
        for specific in result.get("ResourceSpecificResults") or []:
            key = (action, str(specific.get("EvalResourceName") or "*"))
            found[key] = _decision(specific.get("EvalResourceDecision"))
    return found


def _decision(value: object) -> Decision:
    if value == "allowed":
        return ALLOWED
    if value == "explicitDeny":
        return EXPLICIT_DENY
    return IMPLICIT_DENY


def allow_document(requests: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The policy document that allows every ``(action, resource)`` of ``requests``: a fix.

    Requests on the same resources share a statement; order is kept.
    """
    by_resource: dict[str, list[str]] = {}
    for action, resource in requests:
        actions = by_resource.setdefault(resource, [])
        if action not in actions:
            actions.append(action)
    grouped: dict[tuple[str, ...], list[str]] = {}
    for resource, actions in by_resource.items():
        grouped.setdefault(tuple(actions), []).append(resource)
    statements = [
        {
            "Effect": "Allow",
            "Action": list(actions) if len(actions) > 1 else actions[0],
            "Resource": resources if len(resources) > 1 else resources[0],
        }
        for actions, resources in grouped.items()
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def trusts_ecs_tasks(document: str | Mapping[str, Any]) -> bool | None:
    """Whether a role's trust policy lets ECS tasks assume it (None: it has conditions)."""
    trusted = False
    for statement in _trust_statements(document):
        if statement.get("Effect") != "Allow":
            continue
        actions = _strings(statement.get("Action", []), "Action")
        if not any(wildcard_match(a, "sts:AssumeRole", ignore_case=True) for a in actions):
            continue
        principal = statement.get("Principal")
        services: tuple[str, ...] = ()
        if isinstance(principal, Mapping) and "Service" in principal:
            services = _strings(principal["Service"], "Service")
        if "ecs-tasks.amazonaws.com" in services or principal == "*":
            if statement.get("Condition"):
                return None
            trusted = True
    return trusted


def _trust_statements(document: str | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data: Any = document
    if isinstance(document, str):
        text = document if document.strip().startswith("{") else _percent_decode(document)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PolicyParseError(f"trust policy is not JSON: {exc}") from None
    raw = data.get("Statement", []) if isinstance(data, Mapping) else []
    items = [raw] if isinstance(raw, Mapping) else raw
    return [item for item in items if isinstance(item, Mapping)]


__all__ = [
    "ALLOWED",
    "CONDITIONAL",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "Decision",
    "PolicyParseError",
    "Statement",
    "allow_document",
    "evaluate",
    "parse_document",
    "simulated_decisions",
    "trusts_ecs_tasks",
]
