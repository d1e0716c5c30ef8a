"""The ECS API budget: token arithmetic, the tear-down reserve, the operation table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_sandbox_core._budget import (
    API_GROUPS,
    LAUNCH_GROUP,
    RECOVERY_S,
    TEARDOWN_PRIORITY,
    ApiBudget,
    TokenBucket,
    api_group,
    task_launches,
)


def test_groups_match_the_ecs_throttling_table() -> None:
    assert API_GROUPS["ecs-run"] == (100.0, 40.0)
    assert API_GROUPS["ecs-describe"] == (100.0, 20.0)
    assert API_GROUPS["ecs-register"] == (20.0, 1.0)
    assert API_GROUPS["ecs-describe-taskdef"] == (50.0, 20.0)
    assert API_GROUPS["ecs-tag"] == (20.0, 10.0)


@pytest.mark.parametrize(
    ("operation", "group"),
    [
        ("run_task", "ecs-run"),
        ("stop_task", "ecs-run"),
        ("execute_command", "ecs-run"),
        ("describe_tasks", "ecs-describe"),
        ("list_tasks", "ecs-describe"),
        ("register_task_definition", "ecs-register"),
        ("deregister_task_definition", "ecs-register"),
        ("describe_task_definition", "ecs-describe-taskdef"),
        ("tag_resource", "ecs-tag"),
        ("untag_resource", "ecs-tag"),
        ("create_cluster", ""),
        ("get_caller_identity", ""),
    ],
)
def test_api_group_of_ecs_operations(operation: str, group: str) -> None:
    assert api_group(operation) == group


def test_other_services_are_not_budgeted() -> None:
    assert api_group("tag_resource", "logs") == ""
    assert api_group("run_task", "s3") == ""


def test_full_bucket_grants_burst_minus_reserve_then_asks_to_wait() -> None:
    bucket = TokenBucket(20, 1)
    assert bucket.reserve == 2
    assert [bucket.take(0.0) for _ in range(18)] == [0.0] * 18
    # 2 tokens left, all reserved: a normal call needs a third, one second away at 1/s.
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


def test_waiting_the_returned_delay_is_enough() -> None:
    bucket = TokenBucket(5, 3, reserve=1)
    now = 0.0
    granted = 0
    for _ in range(200):
        delay = bucket.take(now)
        if delay == 0.0:
            granted += 1
        else:
            now += delay
            assert bucket.take(now) == 0.0
            granted += 1
    # 4 unreserved tokens up front, then one per 1/3 s.
    assert now == pytest.approx((200 - 4) / 3)


def test_reserve_keeps_stop_task_going_after_normal_calls_drain() -> None:
    budget = ApiBudget()
    for _ in range(90):
        assert budget.delay_for("execute_command", 0.0) == 0.0
    assert budget.delay_for("execute_command", 0.0) > 0.0
    stops = [budget.delay_for("stop_task", 0.0, TEARDOWN_PRIORITY) for _ in range(10)]
    assert stops == [0.0] * 10
    assert budget.delay_for("stop_task", 0.0, TEARDOWN_PRIORITY) > 0.0


def test_refill_goes_to_the_reserve_first() -> None:
    bucket = TokenBucket(10, 2, reserve=3)
    for _ in range(10):
        bucket.take(0.0, priority=1)
    assert bucket.tokens(0.0) == pytest.approx(0.0)
    # After 1 s two tokens came back: not enough for a normal call, enough for two stops.
    assert bucket.take(1.0) == pytest.approx(1.0)
    assert bucket.take(1.0, priority=1) == 0.0
    assert bucket.take(1.0, priority=1) == 0.0


def test_clock_stepping_back_mints_no_tokens() -> None:
    bucket = TokenBucket(2, 1, reserve=0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0.0
    assert bucket.tokens(9.0) == pytest.approx(0.0)
    assert bucket.tokens(10.5) == pytest.approx(0.5)


def test_unbudgeted_operations_are_never_delayed() -> None:
    budget = ApiBudget()
    assert all(budget.delay_for("get_caller_identity", 0.0) == 0.0 for _ in range(1000))
    assert budget.delay_for_group("", 0.0) == 0.0


def test_share_scales_the_budget() -> None:
    budget = ApiBudget(share=0.5)
    bucket = budget.bucket("ecs-register")
    assert bucket is not None
    assert (bucket.burst, bucket.rate) == (10.0, 0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"burst": 0, "rate": 1},
        {"burst": 5, "rate": 0},
        {"burst": 5, "rate": float("inf")},
        {"burst": 5, "rate": 1, "reserve": 5},
        {"burst": 5, "rate": 1, "reserve": -1},
    ],
)
def test_bucket_rejects_impossible_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)


calls = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=5.0), st.integers(min_value=0, max_value=1)),
    min_size=1,
    max_size=300,
)


@given(
    burst=st.integers(min_value=1, max_value=50),
    rate=st.floats(min_value=0.1, max_value=50.0),
    steps=calls,
)
def test_never_grants_more_than_burst_plus_refill(
    burst: int, rate: float, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(burst, rate)
    grants: list[float] = []
    now = 0.0
    for advance, priority in steps:
        now += advance
        if bucket.take(now, priority) == 0.0:
            grants.append(now)
    # Over every window [grants[i], grants[j]] the count is bounded by the bucket's promise.
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            count = j - i + 1
            assert count <= burst + rate * (grants[j] - grants[i]) + count * 1e-6


@given(
    burst=st.integers(min_value=2, max_value=100),
    rate=st.floats(min_value=0.1, max_value=50.0),
    steps=st.lists(st.floats(min_value=0.0, max_value=2.0), max_size=200),
)
def test_normal_calls_never_touch_the_reserve(burst: int, rate: float, steps: list[float]) -> None:
    bucket = TokenBucket(burst, rate)
    now = 0.0
    for advance in steps:
        now += advance
        bucket.take(now)
        assert bucket.tokens(now) >= bucket.reserve - 1e-6
    # However hard normal calls pressed, tear-down gets the whole reserve at once.
    reserve = int(bucket.reserve)
    assert [bucket.take(now, TEARDOWN_PRIORITY) for _ in range(reserve)] == [0.0] * reserve


@given(
    rate=st.floats(min_value=0.1, max_value=50.0),
    now=st.floats(min_value=0.0, max_value=1e6),
)
def test_a_refused_call_is_told_exactly_when_to_come_back(rate: float, now: float) -> None:
    bucket = TokenBucket(3, rate, reserve=1)
    bucket.take(now)
    bucket.take(now)
    delay = bucket.take(now)
    assert delay > 0.0
    assert bucket.take(now + delay * 0.9) > 0.0
    assert bucket.take(now + delay) == 0.0


def test_jitter_headroom_keeps_the_client_below_ecs() -> None:
    plain, careful = ApiBudget(), ApiBudget(jitter_s=0.1)
    for group, (burst, rate) in API_GROUPS.items():
        assert plain.bucket(group).burst == burst  # type: ignore[union-attr]
        # 40/s * 0.1 s = 4 tokens below ECS's 100; never less than one token.
        assert careful.bucket(group).burst == burst - max(1.0, rate * 0.1)  # type: ignore[union-attr]


# --- adapting to other callers (ThrottlingException) ----------------------------------------


def test_a_throttle_halves_the_rate_and_keeps_only_the_reserve() -> None:
    budget = ApiBudget({"g": (100.0, 40.0)})
    bucket = budget.bucket("g")
    assert bucket is not None
    assert budget.observe("g", "ThrottlingException", 10.0) is True
    assert bucket.rate_at(10.0) == 20.0
    assert bucket.tokens(10.0) == bucket.reserve  # the burst we thought we had is gone
    # Normal calls now wait for tokens above the reserve; tear-down may spend the reserve.
    assert bucket.take(10.0) > 0
    assert bucket.take(10.0, priority=1) == 0.0
    # Linear recovery to the nominal rate.
    assert bucket.rate_at(10.0 + RECOVERY_S / 2) == 20.0 + 40.0 / 2
    assert 20.0 < bucket.rate_at(10.0 + RECOVERY_S / 4) < 40.0
    assert bucket.rate_at(10.0 + RECOVERY_S) == 40.0


def test_one_burst_of_refusals_is_one_cut_and_the_floor_holds() -> None:
    budget = ApiBudget({"g": (100.0, 40.0)})
    bucket = budget.bucket("g")
    assert bucket is not None
    for i in range(50):  # fifty refusals within one second: one cut
        budget.observe("g", "ThrottlingException", 5.0 + i / 100)
    # One cut to 20/s at 5.0; the later refusals did not cut again (only recovery since).
    assert 20.0 <= bucket.rate_at(5.5) < 21.0
    for second in range(40):  # a refusal every second for long: never below 1/20
        budget.observe("g", "ThrottlingException", 10.0 + second * 1.01)
    assert bucket.rate_at(60.0) >= 40.0 / 20


@pytest.mark.parametrize("code", [None, "AccessDeniedException", "ClientException"])
def test_other_outcomes_change_nothing(code: str | None) -> None:
    budget = ApiBudget({"g": (100.0, 40.0)})
    assert budget.observe("g", code, 1.0) is False
    assert budget.observe("ungrouped", "ThrottlingException", 1.0) is False
    bucket = budget.bucket("g")
    assert bucket is not None and bucket.rate_at(1.0) == 40.0


@given(
    events=st.lists(
        st.tuples(st.floats(0, 0.5), st.booleans(), st.booleans()), min_size=1, max_size=200
    )
)
def test_throttled_buckets_never_grant_more_than_the_nominal_rate_allows(
    events: list[tuple[float, bool, bool]],
) -> None:
    bucket = TokenBucket(20.0, 10.0)
    now, granted, throttles = 0.0, 0, 0
    for step, throttled, high in events:
        now += step
        if throttled:
            bucket.slow_down(now)
            throttles += 1
        if bucket.take(now, priority=1 if high else 0) == 0.0:
            granted += 1
    # However throttles interleave, a bucket never grants more than the unthrottled one would.
    assert granted <= 20 + 10.0 * now + 1


# --- Fargate's task-launch quota ------------------------------------------------------------


def test_the_launch_bucket_is_fargates_task_launch_quota() -> None:
    assert API_GROUPS[LAUNCH_GROUP] == (100.0, 20.0)
    launch = ApiBudget().bucket(LAUNCH_GROUP)
    # No operation maps to it, and nothing is kept back: tear-down never launches a task.
    assert launch is not None and launch.reserve == 0.0
    assert LAUNCH_GROUP not in {api_group(op) for op in ("run_task", "stop_task")}


@pytest.mark.parametrize(
    ("operation", "params", "service", "launches"),
    [
        ("run_task", {}, "ecs", 1),
        ("run_task", {"count": 1}, "ecs", 1),
        ("run_task", {"count": 7}, "ecs", 7),
        ("run_task", {"count": 10}, "ecs", 10),
        ("run_task", {"count": 11}, "ecs", 10),  # ECS refuses it; never counted as more
        ("run_task", {"count": 0}, "ecs", 10),  # not a count ECS takes: assume the most
        ("run_task", {"count": "3"}, "ecs", 10),
        ("run_task", {"count": True}, "ecs", 10),
        ("stop_task", {"count": 3}, "ecs", 0),
        ("execute_command", {}, "ecs", 0),
        ("run_task", {"count": 3}, "s3", 0),
    ],
)
def test_task_launches(
    operation: str, params: dict[str, object], service: str, launches: int
) -> None:
    assert task_launches(operation, params, service) == launches


def test_run_task_spends_one_api_token_and_one_launch_token_per_task() -> None:
    budget = ApiBudget()
    run, launch = budget.bucket("ecs-run"), budget.bucket(LAUNCH_GROUP)
    assert run is not None and launch is not None
    assert budget.delay_for("run_task", 0.0, params={"count": 10}) == 0.0
    assert run.tokens(0.0) == pytest.approx(99.0)
    assert launch.tokens(0.0) == pytest.approx(90.0)
    # Without params (no count known) only the API token is spent, as before.
    assert budget.delay_for("run_task", 0.0) == 0.0
    assert launch.tokens(0.0) == pytest.approx(90.0)


def test_launches_past_the_burst_go_at_twenty_tasks_a_second() -> None:
    budget = ApiBudget()
    now, launched = 0.0, 0
    while launched < 300:
        delay = budget.delay_for_group("ecs-run", now, launches=1)
        if delay == 0.0:
            launched += 1
        else:
            now += delay
    # 100 at once, then 20/s: the API bucket (40/s) is never what holds RunTask back.
    assert now == pytest.approx((300 - 100) / 20.0)


def test_a_call_refused_by_either_bucket_takes_from_neither() -> None:
    budget = ApiBudget({"ecs-run": (3.0, 1.0), LAUNCH_GROUP: (5.0, 1.0)})
    run, launch = budget.bucket("ecs-run"), budget.bucket(LAUNCH_GROUP)
    assert run is not None and launch is not None
    assert budget.delay_for_group("ecs-run", 0.0, launches=4) == 0.0
    # Two launch tokens are needed, one is left: refused, and the API token is not spent.
    assert budget.delay_for_group("ecs-run", 0.0, launches=2) == pytest.approx(1.0)
    assert (run.tokens(0.0), launch.tokens(0.0)) == (pytest.approx(2.0), pytest.approx(1.0))
    # The API bucket (reserve 1) now refuses: nothing leaves the launch bucket either.
    assert budget.delay_for_group("ecs-run", 0.0, launches=1) == 0.0
    assert budget.delay_for_group("ecs-run", 0.0, launches=0) > 0.0
    assert launch.tokens(0.0) == pytest.approx(0.0)


def test_a_launch_larger_than_the_bucket_waits_for_a_full_bucket() -> None:
    budget = ApiBudget({LAUNCH_GROUP: (4.0, 2.0)})
    launch = budget.bucket(LAUNCH_GROUP)
    assert launch is not None
    assert budget.delay_for_group("", 0.0, launches=10) == 0.0  # spends all 4, not 10
    assert launch.tokens(0.0) == 0.0
    assert budget.delay_for_group("", 0.0, launches=10) == pytest.approx(2.0)


def test_a_throttled_launch_slows_launches_and_not_tear_down() -> None:
    budget = ApiBudget()
    run, launch = budget.bucket("ecs-run"), budget.bucket(LAUNCH_GROUP)
    assert run is not None and launch is not None
    assert budget.observe("ecs-run", "ThrottlingException", 5.0, launches=1) is True
    assert launch.rate_at(5.0) == 10.0
    assert run.rate_at(5.0) == 40.0
    # A throttled StopTask (no launch) slows its own group.
    assert budget.observe("ecs-run", "ThrottlingException", 5.0) is True
    assert run.rate_at(5.0) == 20.0


def test_a_budget_that_is_not_adaptive_never_slows_down() -> None:
    budget = ApiBudget(adaptive=False)
    assert budget.observe("ecs-run", "ThrottlingException", 5.0) is False
    assert budget.observe("ecs-run", "ThrottlingException", 5.0, launches=1) is False
    assert all(
        bucket.rate_at(5.0) == rate
        for group, (_, rate) in API_GROUPS.items()
        if (bucket := budget.bucket(group)) is not None
    )


def test_share_scales_the_launch_bucket_too() -> None:
    launch = ApiBudget(share=0.25).bucket(LAUNCH_GROUP)
    assert launch is not None and (launch.burst, launch.rate) == (25.0, 5.0)


@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 2.0), st.integers(0, 10), st.integers(0, 1)),
        min_size=1,
        max_size=200,
    )
)
def test_launches_granted_never_exceed_the_launch_quota(
    steps: list[tuple[float, int, int]],
) -> None:
    """However calls with and without launches interleave, the tasks granted over any window
    stay within the launch bucket's burst plus its refill, and a refused call spends nothing."""
    budget = ApiBudget({"ecs-run": (10.0, 4.0), LAUNCH_GROUP: (10.0, 2.0)})
    run, launch = budget.bucket("ecs-run"), budget.bucket(LAUNCH_GROUP)
    assert run is not None and launch is not None
    now = 0.0
    granted: list[tuple[float, int]] = []
    for advance, launches, priority in steps:
        now += advance
        before = (run.tokens(now), launch.tokens(now))
        if budget.delay_for_group("ecs-run", now, priority, launches=launches) == 0.0:
            if launches:
                granted.append((now, launches))
        else:
            assert (run.tokens(now), launch.tokens(now)) == before
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            tasks = sum(n for _, n in granted[i : j + 1])
            window = granted[j][0] - granted[i][0]
            assert tasks <= 10.0 + 2.0 * window + 1e-6 * (j - i + 1)
