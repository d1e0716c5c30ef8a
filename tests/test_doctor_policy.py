"""Reading IAM policies for the doctor: wildcard matching, parsing, evaluation, fixes."""

from __future__ import annotations

import json
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._doctor_policy import (
    ALLOWED,
    CONDITIONAL,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    PolicyParseError,
    Statement,
    allow_document,
    evaluate,
    parse_document,
    simulated_decisions,
    trusts_ecs_tasks,
    wildcard_match,
)

# Characters that are special somewhere (regex, fnmatch, ARNs, JSON, URL encoding).
ALPHABET = "ab*?:/.[]()^$\\%+-_ \"'é"
texts = st.text(alphabet=ALPHABET, max_size=12)
literals = st.text(alphabet=ALPHABET.replace("*", "").replace("?", ""), max_size=12)


def reference_match(pattern: str, value: str) -> bool:
    """IAM's wildcard semantics by dynamic programming (no regular expressions)."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        if pattern[i] == "*":
            return match(i + 1, j) or (j < len(value) and match(i, j + 1))
        if j == len(value):
            return False
        return (pattern[i] == "?" or pattern[i] == value[j]) and match(i + 1, j + 1)

    return match(0, 0)


@given(texts, texts)
def test_wildcard_match_agrees_with_a_reference_matcher(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) == reference_match(pattern, value)


@given(literals, st.integers(0, 12), st.integers(0, 12))
def test_a_value_matches_itself_with_any_slice_replaced_by_a_star(
    value: str, start: int, length: int
) -> None:
    pattern = value[:start] + "*" + value[start + length :]
    assert wildcard_match(pattern, value)
    assert wildcard_match(value, value)
    assert wildcard_match("*", value)


@given(texts)
def test_brackets_and_backslashes_are_literal(value: str) -> None:
    # fnmatch would read [ab] as a class; IAM does not.
    assert not wildcard_match("[ab]", "a")
    assert wildcard_match("[ab]", "[ab]")
    assert wildcard_match("a\\*", "a\\anything")


def test_actions_ignore_case_resources_do_not() -> None:
    statement = Statement(effect="Allow", actions=("SSMMessages:Open*",), resources=("arn:X",))
    assert statement.matches("ssmmessages:OpenDataChannel", "arn:X")
    assert not statement.matches("ssmmessages:OpenDataChannel", "arn:x")


statements = st.builds(
    Statement,
    effect=st.sampled_from(["Allow", "Deny"]),
    actions=st.lists(texts, min_size=1, max_size=3).map(tuple),
    resources=st.lists(texts, min_size=1, max_size=3).map(tuple),
    conditional=st.booleans(),
)


def as_json(statement: Statement) -> dict[str, object]:
    item: dict[str, object] = {
        "Effect": statement.effect,
        "Action": list(statement.actions),
        "Resource": list(statement.resources),
    }
    if statement.conditional:
        item["Condition"] = {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}
    return item


def url_encode(text: str) -> str:
    return "".join(
        c if c.isalnum() and c.isascii() else f"%{b:02X}" for c in text for b in c.encode()
    )


@given(st.lists(statements, max_size=4), st.sampled_from(["dict", "json", "url"]))
def test_documents_parse_back_to_their_statements_in_every_form(
    parsed: list[Statement], form: str
) -> None:
    document = {"Version": "2012-10-17", "Statement": [as_json(s) for s in parsed]}
    text = json.dumps(document, ensure_ascii=False)
    given_as = {"dict": document, "json": text, "url": url_encode(text)}[form]
    assert parse_document(given_as) == parsed


def test_a_single_statement_object_and_string_lists_parse() -> None:
    doc = {"Statement": {"Effect": "Deny", "NotAction": "s3:*", "NotResource": ["a", "b"]}}
    (statement,) = parse_document(doc)
    assert statement.not_actions == ("s3:*",) and statement.not_resources == ("a", "b")
    assert statement.matches("ecs:RunTask", "c")
    assert not statement.matches("s3:GetObject", "c")
    assert not statement.matches("ecs:RunTask", "a")


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[1, 2]",
        {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]},
        {"Statement": "nope"},
    ],
)
def test_malformed_documents_are_refused_with_a_reason(document: object) -> None:
    with pytest.raises(PolicyParseError):
        parse_document(document)  # type: ignore[arg-type]


@given(st.lists(statements, max_size=5), literals, texts)
def test_an_unconditional_matching_deny_always_wins(
    others: list[Statement], action: str, resource: str
) -> None:
    deny = Statement(effect="Deny", actions=(action,), resources=("*",))
    assert evaluate([*others, deny], action, resource) == EXPLICIT_DENY


@given(st.lists(statements, max_size=5), texts, texts)
def test_the_decision_follows_iams_order(
    listed: list[Statement], action: str, resource: str
) -> None:
    matching = [s for s in listed if s.matches(action, resource)]
    decision = evaluate(listed, action, resource)
    if any(s.effect == "Deny" and not s.conditional for s in matching):
        assert decision == EXPLICIT_DENY
    elif not any(s.effect == "Allow" for s in matching):
        assert decision == IMPLICIT_DENY
    elif any(s.effect == "Deny" for s in matching) or not any(
        s.effect == "Allow" and not s.conditional for s in matching
    ):
        assert decision == CONDITIONAL
    else:
        assert decision == ALLOWED


requests = st.lists(st.tuples(literals, literals), min_size=1, max_size=6)


@given(requests)
def test_the_fix_document_allows_every_request_it_was_made_for(
    wanted: list[tuple[str, str]],
) -> None:
    # A fix is only a fix if the same evaluation then allows each request.
    fixed = parse_document(json.dumps(allow_document(wanted)))
    for action, resource in wanted:
        assert evaluate(fixed, action, resource) == ALLOWED


def test_simulation_answers_are_read_per_action_and_resource() -> None:
    recorded = {
        "EvaluationResults": [
            {
                "EvalActionName": "ssmmessages:CreateControlChannel",
                "EvalResourceName": "*",
                "EvalDecision": "allowed",
            },
            {
                "EvalActionName": "kms:Decrypt",
                "EvalResourceName": "arn:aws:kms:us-east-1:1:key/k",
                "EvalDecision": "explicitDeny",
            },
            {
                "EvalActionName": "s3:PutObject",
                "EvalResourceName": "*",
                "EvalDecision": "implicitDeny",
                "ResourceSpecificResults": [
                    {"EvalResourceName": "arn:aws:s3:::b/p/*", "EvalResourceDecision": "allowed"}
                ],
            },
        ],
        "IsTruncated": False,
    }
    assert simulated_decisions(recorded) == {
        ("ssmmessages:createcontrolchannel", "*"): ALLOWED,
        ("kms:decrypt", "arn:aws:kms:us-east-1:1:key/k"): EXPLICIT_DENY,
        ("s3:putobject", "*"): IMPLICIT_DENY,
        ("s3:putobject", "arn:aws:s3:::b/p/*"): ALLOWED,
    }


@pytest.mark.parametrize(
    ("principal", "condition", "expected"),
    [
        ({"Service": "ecs-tasks.amazonaws.com"}, None, True),
        ({"Service": ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"]}, None, True),
        ({"Service": "ec2.amazonaws.com"}, None, False),
        ({"AWS": "arn:aws:iam::1:root"}, None, False),
        ({"Service": "ecs-tasks.amazonaws.com"}, {"ArnLike": {"aws:SourceArn": "x"}}, None),
    ],
)
def test_trust_policies(principal: object, condition: object, expected: bool | None) -> None:
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    document = {"Version": "2012-10-17", "Statement": [statement]}
    assert trusts_ecs_tasks(document) is expected
    assert trusts_ecs_tasks(url_encode(json.dumps(document))) is expected
