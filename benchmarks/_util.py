"""Shared helpers: realistic terminal text, timing, and a sandbox on the embedded local ECS."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver
from ecs_sandbox_drivers.local import LocalAws

WIDTH = 160
PROMPT = "root@sandbox:/app# "

_WORDS = (
    "error",
    "warning",
    "info",
    "debug",
    "compiling",
    "linking",
    "test",
    "passed",
    "failed",
    "collecting",
    "module",
    "import",
    "from",
    "return",
    "value",
    "None",
    "True",
    "False",
    "self",
    "config",
    "build",
    "target",
    "src",
    "lib",
    "usr",
    "bin",
    "python3",
    "pytest",
    "make",
    "gcc",
    "cargo",
    "npm",
    "install",
    "requirement",
)


def text_rows(count: int, *, seed: int = 1, full_width: bool = False) -> list[str]:
    """``count`` pane rows as an agent's terminal shows them: prompts and commands, output
    lines up to 160 columns, runs of repeated lines and blank lines.

    ``full_width`` makes every row exactly 160 columns (the worst case for bytes).
    """
    rng = random.Random(seed)
    rows: list[str] = []
    while len(rows) < count:
        if full_width:
            rows.append(_line(rng, WIDTH, exact=True))
            continue
        roll = rng.random()
        if roll < 0.08:
            rows.append(PROMPT + " ".join(rng.choices(_WORDS, k=rng.randint(1, 6))))
        elif roll < 0.15:
            rows.append("")
        elif roll < 0.22:
            line = _line(rng, rng.randint(10, WIDTH))
            rows.extend([line] * rng.randint(2, 8))  # progress lines, repeated log lines
        else:
            rows.append(_line(rng, rng.randint(1, WIDTH)))
    return rows[:count]


def _line(rng: random.Random, width: int, *, exact: bool = False) -> str:
    words: list[str] = []
    size = 0
    while size < width:
        word = rng.choice(_WORDS) if rng.random() < 0.8 else f"{rng.randint(0, 99999):05d}"
        words.append(word)
        size += len(word) + 1
    line = " ".join(words)[:width]
    if exact:
        line = line[:-1] + "."  # tmux drops trailing blanks; end in a visible character
    return line.rstrip() or "x"


def median_time(fn: Callable[[], Any], *, repeat: int, warmup: int = 2) -> float:
    """The median wall time of ``fn()`` over ``repeat`` runs, in seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@contextmanager
def local_sandbox(task_id: str) -> Iterator[tuple[LocalAws, EcsFargateSandbox]]:
    """One sandbox (sync driver, nsenter transport) on a fresh embedded local ECS."""
    with LocalAws() as aws:
        # These benchmarks measure the library's own overhead on the nsenter path; the
        # native exec path is measured by exec_path (and agent_scale) on its own.
        cfg = aws.config(exec_transport="nsenter")
        driver = SyncDriver(cfg)
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=task_id, trial_name="bench", run_id="bench", driver=driver
        ) as sandbox:
            yield aws, sandbox


def ratio(a: float, b: float) -> float:
    """``a / b`` (infinite when ``b`` is 0)."""
    return a / b if b else float("inf")
