"""``resize`` against a real tmux: incremental reads stay exact across resizes.

Output is written straight to a pane's tty (short rows, so no width wraps them) between
reads and resizes chosen by Hypothesis; the increments, concatenated, must be exactly
what was written, whatever the sizes did to the rows (tmux reflows them, pushes them
into the history when the pane shrinks and pulls them back when it grows).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from _tmux_server import Server, poll, private_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._errors import SessionError
from ecs_sandbox_core._pane import PaneTracker
from ecs_sandbox_core._tmux import incremental_script, parse_resize, resize_script

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SHELLS = ["/bin/sh", "bash"] + (["busybox"] if shutil.which("busybox") else [])


def run(server: Server, script: str, shell: str) -> subprocess.CompletedProcess[bytes]:
    argv = [shell, "sh", "-c", script] if shell == "busybox" else [shell, "-c", script]
    return subprocess.run(
        argv, env=server.env, cwd=server.root, capture_output=True, check=False, timeout=60
    )


Op = tuple[str, int, int]  # ("write", rows, read after it?) or ("resize", cols, rows)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 30), st.integers(0, 1)),
        st.tuples(st.just("resize"), st.integers(20, 120), st.integers(5, 40)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.sampled_from(SHELLS))
def test_increments_stay_exact_across_resizes(steps: list[Op], shell: str) -> None:
    with private_server() as server:
        server.tmux(
            "start-server", ";", "set", "-g", "history-limit", "1000", ";",
            "new-session", "-d", "-x", "80", "-y", "10", "-s", "r", "sleep 100000",
        )  # fmt: skip
        tty = server.display("r", "#{pane_tty}")
        tracker = PaneTracker()
        texts = [tracker.feed(run(server, incremental_script("r", tracker.request()), shell)
                              .stdout.decode())]  # fmt: skip
        written = ""
        for n, (kind, a, b) in enumerate(steps):
            if kind == "write":
                text = "".join(f"w{n}-{i}\n" for i in range(a))
                with open(tty, "w") as out:
                    out.write(text)
                written += text
                last = f"w{n}-{a - 1}"
                poll(
                    lambda last=last: (
                        last in server.tmux("capture-pane", "-p", "-t", "=r:") or None
                    ),
                    what="the rows to show",
                )
                if b:
                    out = run(server, incremental_script("r", tracker.request()), shell)
                    texts.append(tracker.feed(out.stdout.decode()))
            else:
                proc = run(server, resize_script("r", a, b, tracker.request()), shell)
                assert proc.returncode == 0, proc.stderr
                tracker.rebase(*parse_resize(proc.stdout))
                assert server.display("r", "#{pane_width} #{pane_height}") == f"{a} {b}"
        out = run(server, incremental_script("r", tracker.request()), shell)
        texts.append(tracker.feed(out.stdout.decode()))
    assert texts[0].kind == "screen" and texts[0].text == ""
    assert [t.kind for t in texts[1:]] == ["new"] * (len(texts) - 1)
    assert "".join(t.text for t in texts) == written


@pytest.mark.parametrize("size", [(9, 20), (20, 4), (1001, 20), (20, 1001)])
def test_sizes_out_of_range_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(SessionError, match="out of range"):
        resize_script("r", *size, PaneTracker().request())


@pytest.mark.parametrize("output", [b"", b"x\n", b"12\nshort"])
def test_malformed_resize_output(output: bytes) -> None:
    with pytest.raises(SessionError):
        parse_resize(output)
