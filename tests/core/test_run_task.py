"""RunTask starts one task per sandbox: client tokens, ambiguous failures, the last look.

Scripted flows check the exact calls; a Hypothesis model of ECS (a task started or not per
attempt, eventual consistency of ListTasks) checks the invariants for any sequence of
outcomes: one token per distinct request, never two tasks, and a task that was started is
either the sandbox's task or reported at ERROR with the gc command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._config import EcsFargateConfig
from ecs_sandbox_core._effects import AwsCall, AwsError, AwsResult, Log, Random, Sleep, Token
from ecs_sandbox_core._errors import RunTaskError
from ecs_sandbox_core._lifecycle import start_flow
from ecs_sandbox_core._retry import RESPONSE_LOST, is_ambiguous
from ecs_sandbox_core._run_task import SANDBOX_ID_PREFIX, client_token, run_task_flow

HEX = "0123456789abcdef" * 2
SANDBOX = SANDBOX_ID_PREFIX + HEX
CAPACITY = "Capacity is unavailable at this time. Please try again later"
REQUEST = {"cluster": "c", "taskDefinition": "td:1", "count": 1}
GC = "ecs-sandbox gc --run-id r1"


def cfg(retries: int = 4) -> EcsFargateConfig:
    return EcsFargateConfig(
        region="us-east-1",
        cluster="c",
        task_definition="td",
        container_name="main",
        subnets=("subnet-1",),
        security_groups=("sg-1",),
        run_task_max_retries=retries,
    )


def ok(data: dict[str, Any]) -> AwsResult:
    return AwsResult(data=data)


def error(code: str, status: int | None = 400) -> AwsResult:
    return AwsResult(error=AwsError(code=code, message=code, http_status=status))


def started(arn: str) -> AwsResult:
    return ok({"tasks": [{"taskArn": arn}], "failures": []})


NO_CAPACITY = ok({"tasks": [], "failures": [{"reason": CAPACITY}]})
SERVER_ERROR = error("ServerException", 500)
LOST = error(RESPONSE_LOST, None)
THROTTLED = error("ThrottlingException", 400)
DENIED = error("AccessDeniedException", 400)


@dataclass
class Run:
    """Drives run_task_flow with ``answer``; keeps every call, log and recorded ARN."""

    answer: Callable[[AwsCall], AwsResult]
    retries: int = 4
    calls: list[AwsCall] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    unseen: str | None = None

    def task_started(self, task_arn: str) -> None:  # the Tracker protocol
        self.recorded.append(task_arn)
        self.unseen = None

    def may_have_started(self, sandbox_id: str | None) -> None:
        self.unseen = sandbox_id

    def __call__(self) -> str:
        flow = run_task_flow(
            cfg(self.retries), REQUEST, task_id="t1", run_id="r1", tracker=self, gc_hint=GC
        )
        return drive(flow, self._answer)

    def _answer(self, effect: object) -> object:
        if isinstance(effect, Token):
            assert effect == Token(nbytes=16)
            return HEX
        if isinstance(effect, Log):
            self.logs.append(effect)
            return None
        if isinstance(effect, Random):
            return 0.5
        if isinstance(effect, Sleep):
            return None
        assert isinstance(effect, AwsCall) and effect.service == "ecs"
        self.calls.append(effect)
        return self.answer(effect)

    def run_tasks(self) -> list[AwsCall]:
        return [c for c in self.calls if c.operation == "run_task"]

    def lookups(self) -> list[AwsCall]:
        return [c for c in self.calls if c.operation == "list_tasks"]

    def errors(self) -> list[str]:
        return [log.message % log.args for log in self.logs if log.level >= logging.ERROR]


def drive(flow: Generator[Any, Any, str], answer: Callable[[object], object]) -> str:
    effect = next(flow)
    while True:
        try:
            effect = flow.send(answer(effect))
        except StopIteration as stop:
            return str(stop.value)


def scripted(*answers: AwsResult) -> Callable[[AwsCall], AwsResult]:
    queue = list(answers)

    def answer(call: AwsCall) -> AwsResult:
        assert queue, f"unexpected {call!r}"
        return queue.pop(0)

    return answer


def listed(*arns: str) -> AwsResult:
    return ok({"taskArns": list(arns)})


# --- the request ----------------------------------------------------------------------------


def test_an_unanswered_run_task_may_have_started_a_task() -> None:
    run = Run(scripted())
    flow = run_task_flow(cfg(), REQUEST, task_id="t1", run_id="r1", tracker=run, gc_hint=GC)
    assert next(flow) == Token(nbytes=16)
    assert isinstance(flow.send(HEX), Log)
    effect = flow.send(None)
    assert isinstance(effect, AwsCall) and effect.operation == "run_task"
    assert run.unseen == SANDBOX  # an interruption now must look for the task
    flow.close()


def test_a_definite_answer_clears_the_doubt() -> None:
    for answer in (THROTTLED, NO_CAPACITY):
        run = Run(scripted(answer, started("arn:t")))
        assert run() == "arn:t"
        assert run.unseen is None


def test_every_run_task_carries_the_sandboxs_token_and_started_by() -> None:
    run = Run(scripted(started("arn:t")))
    assert run() == "arn:t"
    (call,) = run.run_tasks()
    assert call.params == {**REQUEST, "clientToken": f"{SANDBOX}-0", "startedBy": SANDBOX}
    assert call.api_group == "ecs-run"
    assert run.recorded == ["arn:t"]


@given(st.integers(0, 10**6))
def test_client_tokens_fit_ecs_rules(generation: int) -> None:
    token = client_token(SANDBOX, generation)
    assert len(token) <= 64 and all(33 <= ord(c) <= 126 for c in token)


# --- ambiguous failures ---------------------------------------------------------------------


@pytest.mark.parametrize("failure", [SERVER_ERROR, LOST], ids=["5xx", "response-lost"])
def test_an_ambiguous_failure_is_retried_with_the_same_token(failure: AwsResult) -> None:
    run = Run(scripted(failure, listed(), started("arn:t")))
    assert run() == "arn:t"
    first, second = run.run_tasks()
    assert first.params == second.params  # same token, same parameters: ECS dedupes
    (lookup,) = run.lookups()
    assert lookup.params == {"cluster": "c", "startedBy": SANDBOX}
    assert lookup.api_group == "ecs-describe"


@pytest.mark.parametrize("failure", [SERVER_ERROR, LOST], ids=["5xx", "response-lost"])
def test_a_task_found_after_an_ambiguous_failure_is_the_sandboxs_task(
    failure: AwsResult,
) -> None:
    run = Run(scripted(failure, listed("arn:found")))
    assert run() == "arn:found"
    assert len(run.run_tasks()) == 1  # no second RunTask at all
    assert run.recorded == ["arn:found"]


def test_the_last_look_finds_a_task_that_appeared_late() -> None:
    run = Run(scripted(LOST, listed(), LOST, listed("arn:late")), retries=2)
    assert run() == "arn:late"
    assert run.recorded == ["arn:late"]


def test_giving_up_after_an_ambiguous_failure_says_how_to_reap() -> None:
    run = Run(scripted(SERVER_ERROR, listed(), SERVER_ERROR, listed(), listed()), retries=2)
    with pytest.raises(RunTaskError, match="still failing after 2 attempts"):
        run()
    (message,) = run.errors()
    assert GC in message and SANDBOX in message and "none was found" in message
    assert run.recorded == []


def test_a_failed_lookup_is_no_task_found_but_said_so() -> None:
    run = Run(scripted(LOST, error("AccessDeniedException"), DENIED, error("Throttling")))
    with pytest.raises(RunTaskError, match="AccessDenied"):
        run()
    (message,) = run.errors()
    assert "looking for it failed" in message and GC in message


def test_a_refusal_needs_no_lookup() -> None:
    for refusal in (THROTTLED, DENIED, error("NetworkError", None)):
        assert not is_ambiguous(refusal.error)  # type: ignore[arg-type]
    run = Run(scripted(THROTTLED, started("arn:t")))
    assert run() == "arn:t"
    assert run.lookups() == []
    first, second = run.run_tasks()
    assert first.params["clientToken"] == second.params["clientToken"]


def test_no_capacity_moves_to_the_next_token() -> None:
    run = Run(scripted(NO_CAPACITY, NO_CAPACITY, started("arn:t")))
    assert run() == "arn:t"
    tokens = [c.params["clientToken"] for c in run.run_tasks()]
    assert tokens == [f"{SANDBOX}-0", f"{SANDBOX}-1", f"{SANDBOX}-2"]
    assert {c.params["startedBy"] for c in run.run_tasks()} == {SANDBOX}


# --- any sequence of outcomes, against a model of ECS -------------------------------------


@dataclass
class ModelEcs:
    """RunTask with clientToken semantics, ListTasks that may lag behind.

    Each attempt's fate is drawn: carried out or not, answered or failed (5xx, lost,
    throttled, no capacity). ListTasks sees a task only once ``visible_after`` lookups
    have passed since it started.
    """

    fates: list[str]
    visible_after: int
    tasks: dict[str, str] = field(default_factory=dict)  # token -> task ARN
    started_by: dict[str, str] = field(default_factory=dict)  # ARN -> startedBy
    lookups_since: dict[str, int] = field(default_factory=dict)
    conflicting_params: list[str] = field(default_factory=list)
    params_of: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, call: AwsCall) -> AwsResult:
        if call.operation == "list_tasks":
            return self._list(call.params["startedBy"])
        fate = self.fates.pop(0) if self.fates else "ok"
        token = call.params["clientToken"]
        if token in self.params_of and self.params_of[token] != dict(call.params):
            self.conflicting_params.append(token)
        self.params_of[token] = dict(call.params)
        if fate in ("throttled", "denied"):
            return THROTTLED if fate == "throttled" else DENIED
        if fate == "no-capacity":
            if token not in self.tasks:
                return NO_CAPACITY
            fate = "ok"  # a replayed token answers with its task
        arn = self.tasks.get(token)
        if arn is None:
            arn = self.tasks[token] = f"arn:task/{len(self.tasks)}"
            self.started_by[arn] = call.params["startedBy"]
            self.lookups_since[arn] = 0
        if fate == "5xx":
            return SERVER_ERROR
        if fate == "lost":
            return LOST
        return started(arn)

    def _list(self, started_by: str) -> AwsResult:
        visible = []
        for arn, by in self.started_by.items():
            self.lookups_since[arn] += 1
            if by == started_by and self.lookups_since[arn] > self.visible_after:
                visible.append(arn)
        return listed(*visible)


fates = st.lists(
    st.sampled_from(["ok", "5xx", "lost", "throttled", "no-capacity", "denied"]), max_size=8
)


@settings(max_examples=300)
@given(fates=fates, visible_after=st.integers(0, 3), retries=st.integers(1, 6))
def test_never_two_tasks_and_never_an_untracked_one(
    fates: list[str], visible_after: int, retries: int
) -> None:
    ecs = ModelEcs(list(fates), visible_after)
    run = Run(ecs, retries=retries)
    try:
        arn: str | None = run()
    except RunTaskError:
        arn = None
    assert ecs.conflicting_params == []  # a token is never reused with other parameters
    assert len(ecs.tasks) <= 1 + fates.count("no-capacity")  # one per distinct request...
    started_tasks = set(ecs.tasks.values())
    # ...and in fact at most one, since a no-capacity answer means nothing started.
    assert len(started_tasks) <= 1
    if arn is not None:
        assert arn in started_tasks and run.recorded[-1] == arn
        assert run.unseen is None
    elif started_tasks:
        # Given up with a task out there: it is said at ERROR with the gc command, and the
        # spin-up's clean-up is told to look for it again.
        assert any(GC in message for message in run.errors())
        assert run.unseen == SANDBOX
    else:
        assert run.unseen in (None, SANDBOX)
    # Every attempt after the first in one generation repeats the same request exactly.
    tokens = [c.params["clientToken"] for c in run.run_tasks()]
    assert tokens == sorted(tokens, key=lambda t: int(t.rsplit("-", 1)[1]))


# --- a spin-up interrupted while its RunTask is in flight -----------------------------------


def _spin_up(answer: Callable[[AwsCall], object], logs: list[Log] | None = None) -> None:
    """start_flow for a base definition; ``answer`` may return an exception to throw in."""
    calls: list[AwsCall] = []
    logs = [] if logs is None else logs
    flow = start_flow(
        cfg(),
        task_id="t1",
        trial_name="a",
        run_id="r1",
        owner="o",
        registry=None,
        created_at=1_700_000_000,
    )

    def reply(effect: object) -> object:
        if isinstance(effect, Token):
            return HEX
        if isinstance(effect, Log):
            logs.append(effect)
            return None
        if isinstance(effect, Random):
            return 0.5
        assert isinstance(effect, AwsCall), effect
        calls.append(effect)
        return answer(effect)

    effect = next(flow)
    while True:
        result = reply(effect)
        try:
            effect = flow.throw(result) if isinstance(result, BaseException) else flow.send(result)
        except StopIteration:
            return


def test_ctrl_c_during_run_task_looks_for_the_task_and_stops_it() -> None:
    def answer(call: AwsCall) -> object:
        if call.operation == "run_task":
            return KeyboardInterrupt()  # the answer never reaches the flow
        if call.operation == "list_tasks":
            assert call.params == {"cluster": "c", "startedBy": SANDBOX}
            return listed("arn:started")
        assert call.operation == "stop_task"
        return ok({})

    with pytest.raises(KeyboardInterrupt):
        _spin_up(answer)


@pytest.mark.parametrize(
    "lookup", [listed(), error("AccessDeniedException")], ids=["none", "failed"]
)
def test_ctrl_c_during_run_task_without_a_task_to_find(lookup: AwsResult) -> None:
    calls: list[str] = []
    logs: list[Log] = []

    def answer(call: AwsCall) -> object:
        calls.append(call.operation)
        if call.operation == "run_task":
            return KeyboardInterrupt()
        assert call.operation == "list_tasks"
        return lookup

    with pytest.raises(KeyboardInterrupt):
        _spin_up(answer, logs)
    assert calls == ["run_task", "list_tasks"]  # nothing to stop
    errors = [log.message % log.args for log in logs if log.level >= logging.ERROR]
    if lookup.error is None:
        assert errors == []  # looked, and there is none
    else:
        (message,) = errors  # not known to be absent: said, with the gc command
        assert f"perhaps a task started by {SANDBOX}" in message and GC in message


def test_the_stop_after_an_interrupted_run_task_is_for_the_found_task() -> None:
    stopped: list[str] = []

    def answer(call: AwsCall) -> object:
        if call.operation == "run_task":
            return KeyboardInterrupt()
        if call.operation == "list_tasks":
            return listed("arn:found")
        stopped.append(call.params["task"])
        return ok({})

    with pytest.raises(KeyboardInterrupt):
        _spin_up(answer)
    assert stopped == ["arn:found"]
