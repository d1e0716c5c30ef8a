"""Resizes against the pane model: the real resize script, a model tmux (``_pane_model``).

Short unique rows are written, read and the pane resized in any order; the increments,
concatenated, must be the pane's whole transcript, and every read after the first must be
``new``: a resize never costs the agent a screen or a row.
"""

from __future__ import annotations

from _pane_model import FakeTmux, Pane
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._tmux import incremental_script, parse_resize, resize_script

Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 25)),
        st.tuples(st.just("read"), st.just(0)),
        st.tuples(st.just("resize"), st.integers(5, 30)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(5, 20), ops)
def test_reads_stay_exact_across_resizes(height: int, steps: list[Op]) -> None:
    pane = Pane(height=height, history_limit=1000, width=80)
    fake = FakeTmux(pane)
    tracker = PaneTracker()
    try:
        texts = [tracker.feed(fake.run(incremental_script("s", tracker.request())))]
        for n, (kind, value) in enumerate(steps):
            if kind == "write":
                pane.write("".join(f"r{n}-{i}\n" for i in range(value)))
            elif kind == "read":
                texts.append(tracker.feed(fake.run(incremental_script("s", tracker.request()))))
            else:
                out = fake.run(resize_script("s", 80, value, tracker.request()))
                tracker.rebase(*parse_resize(out.encode()))
                assert pane.height == value
        texts.append(tracker.feed(fake.run(incremental_script("s", tracker.request()))))
    finally:
        fake.close()
    assert [t.kind for t in texts[1:]] == ["new"] * (len(texts) - 1)
    assert "".join(t.text for t in texts) == pane.text_from(0)
