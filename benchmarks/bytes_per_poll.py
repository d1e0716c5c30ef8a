"""Bytes per poll: what crosses the exec transport for one incremental read.

A real tmux in a sandbox of the embedded local ECS, through the real local transport: a pane
with 50,000 history rows of 160-column text, then a command that prints 20 more such rows.
Ours is the stdout of one read round trip (``driver.stats.exec_bytes_out``); the baseline is
what the reference's read of the same pane pulls (its whole-scrollback capture, plus the
screen when it falls back), counted at the same transport.
"""

from __future__ import annotations

from typing import Any

from ecs_sandbox_core._tmux import start_script
from ecs_sandbox_drivers import EcsFargateSandbox

from ._util import ratio
from .baseline import ReferenceExec, ReferenceSession

HISTORY = 50_000
NEW_LINES = 20
WIDTH = 160
SESSION = "bytes"
_ROWS_PY = (
    "import sys\n"
    "n, seed = int(sys.argv[1]), int(sys.argv[2])\n"
    "w = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '\n"
    "for i in range(n):\n"
    "    head = f'{seed}:{i:07d} '\n"
    "    print((head + w * 3)[:159] + '.')\n"
)


def reference_exec(sandbox: EcsFargateSandbox) -> ReferenceExec:
    driver = sandbox.driver
    return ReferenceExec(driver.transport, sandbox.task_arn, driver.cfg.container_name)


def run(sandbox: EcsFargateSandbox) -> dict[str, Any]:
    stats = sandbox.driver.stats
    created = sandbox.exec(start_script(SESSION, history_limit=HISTORY + 10_000))
    if created.exit_code != 0:
        raise RuntimeError(created.text)
    sandbox.exec(["sh", "-c", f"cat > /tmp/rows.py <<'EOF'\n{_ROWS_PY}EOF"])
    session = sandbox.create_session(SESSION)
    session.send_keys([f"python3 /tmp/rows.py {HISTORY + 40} 1", "Enter"], block=True)
    history = int(
        sandbox.exec_text(["tmux", "display", "-p", "-t", f"={SESSION}:", "#{history_size}"])
    )
    reference = ReferenceSession(reference_exec(sandbox), SESSION)

    session.get_incremental_output()  # both readers start from the same pane
    reference.get_incremental_output()
    session.send_keys([f"python3 /tmp/rows.py {NEW_LINES} 2", "Enter"], block=True)

    before = stats.exec_bytes_out
    ours_text = session.get_incremental_output()
    ours = stats.exec_bytes_out - before
    before_ref = reference.exec.bytes_out
    ref_text = reference.get_incremental_output()
    baseline = reference.exec.bytes_out - before_ref
    new_output = NEW_LINES * (WIDTH + 1)
    for text in (ours_text, ref_text):
        if text.count("2:00000") != NEW_LINES:
            raise AssertionError("a reader missed the new rows")
    return {
        "bytes_per_poll": {
            "history_lines": history,
            "new_lines": NEW_LINES,
            "ours": ours,
            "baseline": baseline,
            "ratio": ratio(baseline, ours),
            "new_output_bytes": new_output,
            "ours_overhead_bytes": ours - new_output,
        }
    }
