"""Pane diff: the client-side work of one poll that brings 20 new lines, by history size.

The pane is simulated exactly as tmux lays it out (history rows, then a 40-row screen whose
last used row holds the cursor), with realistic rows (see ``_util.text_rows``). Per poll:

* ours: build the read script (``PaneTracker.request`` + ``incremental_script``), decode what
  that script prints for this pane (header + the rows from the old cursor row down to the new
  one: exactly what tmux's ``capture-pane -S y -E CY`` gives) and ``PaneTracker.feed`` it;
  the size of that script, which is sent inline with every read, is reported too;
* baseline: decode the full scrollback capture and find the previous capture in it (the
  reference's algorithm, ``baseline.ReferencePaneDiff``), capturing the screen when it says so.

Neither side's marker parsing is counted (the reference's line-by-line parse of the whole
capture would only add to the baseline).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ecs_sandbox_core._pane import EXTRA_ROWS, PaneTracker
from ecs_sandbox_core._tmux import incremental_script

from ._util import PROMPT, WIDTH, ratio, text_rows
from .baseline import ReferencePaneDiff

HEIGHT = 40
HISTORY_LIMIT = 1_000_000  # no trimming here; trims are output_kept_on_trim's subject
NEW_LINES = 20
SESSION = "bench"


class SimPane:
    """Rows of one pane; the last row is the cursor row (a prompt)."""

    def __init__(self, history: int, seed: int) -> None:
        self.rows = [*text_rows(history + HEIGHT - 1, seed=seed), PROMPT]
        self._seed = seed

    def geometry(self) -> tuple[int, int]:
        """(history_size, cursor_y)."""
        history = max(0, len(self.rows) - HEIGHT)
        return history, len(self.rows) - 1 - history

    def screen(self) -> list[str]:
        history, _ = self.geometry()
        return self.rows[history:]

    def run_command(self, poll: int) -> list[str]:
        """Type a command at the prompt, print NEW_LINES rows, show a new prompt."""
        command = f"python3 build.py --step {poll}"
        self.rows[-1] += command
        out = text_rows(NEW_LINES, seed=self._seed * 7919 + poll)
        self.rows.extend([*out, PROMPT])
        return out

    def header(self, kind: str) -> str:
        history, cursor_y = self.geometry()
        return f"{history} {HISTORY_LIMIT} {cursor_y} {HEIGHT} {WIDTH} 0 {kind} 0"

    def first_read(self) -> bytes:
        # The screen and the EXTRA_ROWS rows above it, read at once.
        history, _ = self.geometry()
        rows = self.rows[max(0, history - EXTRA_ROWS) :]
        return (self.header("f") + "\n" + "".join(r + "\n" for r in rows)).encode()

    def read_from(self, first_abs: int) -> bytes:
        rows = self.rows[first_abs:]
        return (self.header("n") + "\n" + "".join(r + "\n" for r in rows)).encode()

    def capture_all(self) -> bytes:
        return "".join(r + "\n" for r in self.rows).encode()

    def capture_screen(self) -> bytes:
        return "".join(r + "\n" for r in self.screen()).encode()


def _ours(history: int, polls: int) -> tuple[float, int]:
    """Median seconds of client work per poll, and the median read script's size."""
    pane = SimPane(history, seed=history)
    tracker = PaneTracker()
    tracker.feed(pane.first_read().decode())
    samples, sizes = [], []
    for poll in range(polls):
        old_cursor = len(pane.rows) - 1
        out = pane.run_command(poll)
        stdout = pane.read_from(old_cursor)
        started = time.perf_counter()
        script = incremental_script(SESSION, tracker.request())
        increment = tracker.feed(stdout.decode("utf-8", errors="replace"))
        samples.append(time.perf_counter() - started)
        sizes.append(len(script.encode()))
        if increment.kind != "new" or increment.text.split("\n")[1:-1] != out:
            raise AssertionError(f"pane tracker lost output at poll {poll}")
    return statistics.median(samples), int(statistics.median(sizes))


def _baseline(history: int, polls: int) -> float:
    pane = SimPane(history, seed=history)
    diff = ReferencePaneDiff()
    diff.read(pane.capture_all().decode(), lambda: pane.capture_screen().decode())
    samples = []
    for poll in range(polls):
        pane.run_command(poll)
        full, screen = pane.capture_all(), pane.capture_screen()
        started = time.perf_counter()
        shown = diff.read(
            full.decode("utf-8", errors="replace"),
            lambda screen=screen: screen.decode("utf-8", errors="replace"),  # type: ignore[misc]
        )
        samples.append(time.perf_counter() - started)
        if not shown.startswith("New Terminal Output:"):
            raise AssertionError("the reference diff fell back without a trim")
    return statistics.median(samples)


def run() -> dict[str, Any]:
    sizes = {"1k": 1_000, "10k": 10_000, "50k": 50_000}
    measured = {name: _ours(n, polls=300) for name, n in sizes.items()}
    ours = {name: seconds for name, (seconds, _) in measured.items()}
    base = {name: _baseline(n, polls=25 if n >= 50_000 else 60) for name, n in sizes.items()}
    return {
        "pane_diff": {
            "history_lines": 50_000,
            "new_lines": NEW_LINES,
            "ours_s": ours["50k"],
            "baseline_s": base["50k"],
            "speedup": ratio(base["50k"], ours["50k"]),
            "by_history": {
                name: {
                    "ours_s": ours[name],
                    "baseline_s": base[name],
                    "speedup": ratio(base[name], ours[name]),
                }
                for name in sizes
            },
        },
        "pane_diff_flat": {
            "ours_s_1k": ours["1k"],
            "ours_s_10k": ours["10k"],
            "ours_s_50k": ours["50k"],
            "ratio_50k_to_1k": ratio(ours["50k"], ours["1k"]),
            "read_script_bytes": measured["50k"][1],
        },
    }
