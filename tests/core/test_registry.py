"""Task-definition sharing: one registration per content, one deregistration per ARN."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._errors import UsageError
from ecs_sandbox_core._registry import Acquire, TaskDefinitionRegistry


def test_first_caller_registers_others_wait_then_use() -> None:
    reg = TaskDefinitionRegistry()
    assert reg.acquire("d1") == Acquire("register")
    assert reg.acquire("d1") == Acquire("wait")
    assert reg.registering("d1")
    reg.registered("d1", "arn:td/1")
    assert reg.acquire("d1") == Acquire("use", "arn:td/1")
    assert reg.users("d1") == 2
    assert reg.release("d1") is None
    assert reg.release("d1") == "arn:td/1"
    assert reg.users("d1") == 0
    assert reg.outstanding() == []


def test_different_digests_are_independent() -> None:
    reg = TaskDefinitionRegistry()
    assert reg.acquire("a").action == "register"
    assert reg.acquire("b").action == "register"
    reg.registered("b", "arn:b")
    reg.registered("a", "arn:a")
    assert reg.outstanding() == ["arn:a", "arn:b"]


def test_a_failed_registration_passes_the_job_to_the_next_caller() -> None:
    reg = TaskDefinitionRegistry()
    assert reg.acquire("d").action == "register"
    assert reg.acquire("d").action == "wait"
    reg.failed("d")
    assert not reg.registering("d")
    assert reg.acquire("d").action == "register"


def test_content_comes_back_after_release_is_registered_anew() -> None:
    reg = TaskDefinitionRegistry()
    reg.acquire("d")
    reg.registered("d", "arn:1")
    assert reg.release("d") == "arn:1"
    assert reg.acquire("d").action == "register"


def test_misuse_is_refused() -> None:
    reg = TaskDefinitionRegistry()
    with pytest.raises(ValueError):
        reg.release("never")
    with pytest.raises(ValueError):
        reg.registered("never", "arn:x")
    with pytest.raises(ValueError):
        reg.failed("never")
    reg.acquire("d")
    reg.registered("d", "arn:d")
    with pytest.raises(ValueError):
        reg.registered("d", "arn:again")
    assert reg.release("d") == "arn:d"
    with pytest.raises(ValueError):
        reg.release("d")
    with pytest.raises(ValueError):
        Acquire("use")
    with pytest.raises(ValueError):
        Acquire("wait", "arn:x")


def test_close_hands_over_what_is_in_use_exactly_once() -> None:
    reg = TaskDefinitionRegistry()
    reg.acquire("a")
    reg.registered("a", "arn:a")
    reg.acquire("a")
    reg.acquire("b")  # still registering at close
    assert reg.close() == ["arn:a"]
    assert reg.outstanding() == []
    # Late users of a handed-over definition must not deregister it a second time.
    assert reg.release("a") is None
    assert reg.release("a") is None
    # The registration in flight completes and is released by its registrar as usual.
    reg.registered("b", "arn:b")
    assert reg.release("b") == "arn:b"
    with pytest.raises(UsageError):
        reg.acquire("c")


@dataclass
class _Sandbox:
    digest: str
    state: str = "idle"  # idle -> registering | holding -> done


@given(
    digests=st.lists(st.sampled_from("abc"), min_size=1, max_size=8),
    schedule=st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=200),
    close_at=st.one_of(st.none(), st.integers(0, 200)),
)
def test_random_interleavings_keep_the_books_straight(
    digests: list[str], schedule: list[tuple[int, bool]], close_at: int | None
) -> None:
    reg = TaskDefinitionRegistry()
    sandboxes = [_Sandbox(d) for d in digests]
    registered: list[str] = []
    given_back: list[str] = []
    serial = 0

    def step(box: _Sandbox, coin: bool) -> None:
        nonlocal serial
        if box.state == "idle":
            busy_before = reg.users(box.digest) > 0 or reg.registering(box.digest)
            answer = reg.acquire(box.digest)
            if answer.action == "register":
                # Each digest is registered at most once while it is in use or on its way.
                assert not busy_before
                box.state = "registering"
            elif answer.action == "use":
                assert answer.arn is not None
                assert answer.arn in registered
                assert answer.arn not in given_back
                box.state = "holding"
        elif box.state == "registering":
            if coin:
                serial += 1
                new_arn = f"arn:{box.digest}:{serial}"
                registered.append(new_arn)
                reg.registered(box.digest, new_arn)
                box.state = "holding"
            else:
                reg.failed(box.digest)
                box.state = "idle"
        elif box.state == "holding":
            last = reg.release(box.digest)
            if last is not None:
                given_back.append(last)
            box.state = "done"

    for n, (index, coin) in enumerate(schedule):
        if n == close_at:
            given_back.extend(reg.close())
        box = sandboxes[index % len(sandboxes)]
        if box.state == "idle" and close_at is not None and n >= close_at:
            continue  # nobody starts a sandbox on a closed driver
        step(box, coin)
        for d in "abc":
            assert reg.users(d) >= 0
            assert len([b for b in sandboxes if b.digest == d and b.state == "registering"]) <= 1

    # Wind down: registrations in flight finish, every holder releases, the driver closes.
    for box in sandboxes:
        if box.state == "registering":
            step(box, True)
        if box.state == "holding":
            step(box, True)
    given_back.extend(reg.close())

    assert Counter(given_back) == Counter(registered)
    assert all(count == 1 for count in Counter(given_back).values())
