"""Output kept on trim: the share of produced lines an agent receives exactly once.

One real tmux pane with ``history-limit`` 200, which tmux trims in chunks of 20 rows. Each
round a command prints 120 numbered lines (fewer than the history that survives a trim),
then our reader and the reference's reader each take one incremental read of the same pane.
A line counts when the reader's outputs contain it exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ecs_sandbox_core._tmux import start_script
from ecs_sandbox_drivers import EcsFargateSandbox

from .baseline import ReferenceSession
from .bytes_per_poll import reference_exec

SESSION = "trim"
HISTORY_LIMIT = 200
ROUNDS = 12
PER_ROUND = 120
_TOKEN = re.compile(r"L\d{7}")


def _kept(texts: list[str], produced: list[str]) -> float:
    seen = Counter(token for text in texts for token in _TOKEN.findall(text))
    return sum(1 for token in produced if seen[token] == 1) / len(produced)


def run(sandbox: EcsFargateSandbox) -> dict[str, Any]:
    sandbox.exec(start_script(SESSION, history_limit=HISTORY_LIMIT))
    session = sandbox.create_session(SESSION)
    reference = ReferenceSession(reference_exec(sandbox), SESSION)
    # Both readers start from the same pane, with something on it.
    session.send_keys(["echo ready", "Enter"], block=True)
    session.get_incremental_output()
    reference.get_incremental_output()
    ours: list[str] = []
    base: list[str] = []
    produced: list[str] = []
    sizes = []
    for i in range(ROUNDS):
        first = i * PER_ROUND + 1
        last = first + PER_ROUND - 1
        session.send_keys([f"seq -f 'L%07g' {first} {last}", "Enter"], block=True)
        produced += [f"L{n:07d}" for n in range(first, last + 1)]
        sizes.append(
            int(
                sandbox.exec_text(
                    ["tmux", "display", "-p", "-t", f"={SESSION}:", "#{history_size}"]
                )
            )
        )
        ours.append(session.get_incremental_output())
        base.append(reference.get_incremental_output())
    return {
        "output_kept_on_trim": {
            "ours": _kept(ours, produced),
            "baseline": _kept(base, produced),
            "history_limit": HISTORY_LIMIT,
            "lines_produced": len(produced),
            "lines_per_poll": PER_ROUND,
            "history_sizes_seen": sizes,
            "baseline_screen_fallbacks": sum(t.startswith("Current Terminal Screen") for t in base),
        }
    }
