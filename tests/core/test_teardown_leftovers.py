"""What a tear-down that gives up leaves behind, said at ERROR with the gc command.

Scripted flows: a tear-down whose steps fail, one cut short by an interruption, a spin-up
clean-up interrupted twice; and the gc command for any run id, quoted for a shell.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._effects import AwsCall, AwsError, AwsResult, Log, Random
from ecs_sandbox_core._lifecycle import (
    TaskHandle,
    abandoned_teardown_log,
    gc_command,
    teardown_flow,
    teardown_leftovers,
)
from ecs_sandbox_core._registry import TaskDefinitionRegistry

TASK = "arn:aws:ecs:us-east-1:1:task/c/abc"
DEFINITION = "arn:aws:ecs:us-east-1:1:task-definition/ecs-sandbox-x:1"


def handle(**overrides: Any) -> TaskHandle:
    values: dict[str, Any] = {
        "task_arn": TASK,
        "cluster": "c",
        "task_definition_arn": DEFINITION,
        "digest": None,
        "task_id": "t1",
        "run_id": "run 1; rm -rf /",
        "started_at": 0.0,
    }
    values.update(overrides)
    return TaskHandle(**values)


def text(log: Log) -> str:
    return log.message % log.args


class Stepper:
    """Answers a flow's effects from a function; collects its Log records."""

    def __init__(self, flow: Generator[Any, Any, Any]) -> None:
        self.flow = flow
        self.logs: list[Log] = []

    def run(self, answer: Any) -> Any:
        effect = next(self.flow)
        while True:
            if isinstance(effect, Log):
                self.logs.append(effect)
                effect = self.flow.send(None)
                continue
            result = answer(effect)
            effect = (
                self.flow.throw(result)
                if isinstance(result, BaseException)
                else self.flow.send(result)
            )

    def errors(self) -> list[str]:
        return [text(log) for log in self.logs if log.level >= logging.ERROR]


def refuse(effect: Any) -> Any:
    if isinstance(effect, AwsCall):
        return AwsResult(error=AwsError(code="AccessDeniedException", message="no"))
    if isinstance(effect, Random):
        return 0.5
    raise AssertionError(effect)


@given(st.text(min_size=1))
def test_the_gc_command_survives_any_run_id(run_id: str) -> None:
    if "\0" in run_id:
        return  # no shell argument can hold a NUL; shlex quotes everything else
    assert shlex.split(gc_command(run_id)) == ["ecs-sandbox", "gc", "--run-id", run_id]


def test_failed_steps_name_what_is_left_and_how_to_reap_it() -> None:
    h = handle()
    stepper = Stepper(teardown_flow(h, registry=None))
    with pytest.raises(Exception, match="AccessDenied"):
        stepper.run(refuse)
    final = stepper.errors()[-1]
    assert f"task {TASK}" in final and f"task definition {DEFINITION}" in final
    assert gc_command(h.run_id) in final
    assert teardown_leftovers(h) == [
        f"task {TASK} (running until its keep-alive ends)",
        f"task definition {DEFINITION}",
    ]


def test_an_interrupted_tear_down_still_gives_back_its_registry_share() -> None:
    registry = TaskDefinitionRegistry()
    assert registry.acquire("d").action == "register"
    registry.registered("d", DEFINITION)
    assert registry.acquire("d").action == "use"  # a second sandbox shares it
    mine = handle(digest="d")
    stepper = Stepper(teardown_flow(mine, registry=registry))
    with pytest.raises(KeyboardInterrupt):
        stepper.run(lambda effect: KeyboardInterrupt())  # Ctrl-C at StopTask
    # The other sandbox is now the only user: its tear-down deregisters the definition.
    assert registry.users("d") == 1
    record = abandoned_teardown_log(mine, "interrupted")
    assert record is not None and record.level == logging.ERROR
    assert f"task {TASK}" in text(record) and "task definition" not in text(record)


def test_nothing_is_left_after_a_complete_tear_down() -> None:
    h = handle()
    with pytest.raises(StopIteration):
        Stepper(teardown_flow(h, registry=None)).run(lambda effect: AwsResult(data={}))
    assert teardown_leftovers(h) == []
    assert abandoned_teardown_log(h, "deadline") is None


def test_a_tear_down_that_never_ran_leaves_the_task_and_its_own_definition() -> None:
    assert len(teardown_leftovers(handle())) == 2
    # A shared definition is the registry's to release (close() deregisters it).
    assert teardown_leftovers(handle(digest="d")) == [
        f"task {TASK} (running until its keep-alive ends)"
    ]
