"""``python -m benchmarks``: run every benchmark, print the table, write results/latest.json.

``python -m benchmarks NAME...`` runs only those (their raw figures are printed as JSON and
latest.json is left alone: the table and its targets need every benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import (
    agent_scale,
    bytes_per_poll,
    control_plane,
    exec_overhead,
    exec_path,
    multi_harness,
    output_kept_on_trim,
    pane_diff,
    round_trips,
)
from ._util import local_sandbox

RESULTS = Path(__file__).with_name("results") / "latest.json"

Row = tuple[str, str, str, str, str, bool | None]
"""(figure, ours, baseline, ratio, target, met); ``met`` None: a figure reported, no target."""


def _s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _x(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


def rows(r: dict[str, Any]) -> list[Row]:
    """(figure, ours, baseline, ratio, target, met) for every target of the issue."""
    pd, flat, bp = r["pane_diff"], r["pane_diff_flat"], r["bytes_per_poll"]
    trim, rt, cp, ex = (
        r["output_kept_on_trim"],
        r["round_trips"],
        r["control_plane"],
        r["exec_overhead"],
    )
    budget = bp["new_output_bytes"] + 4096
    out: list[Row] = [
        (
            "pane diff, 50k lines, 20 new",
            _s(pd["ours_s"]),
            _s(pd["baseline_s"]),
            _x(pd["speedup"]),
            "≥ 100x",
            pd["speedup"] >= 100,
        ),
        (
            "pane diff ours, 50k vs 1k",
            _s(flat["ours_s_50k"]),
            f"1k: {_s(flat['ours_s_1k'])}",
            _x(flat["ratio_50k_to_1k"]),
            "≤ 2x",
            flat["ratio_50k_to_1k"] <= 2,
        ),
        (
            "bytes per poll, 50k x 160 cols",
            f"{bp['ours']:,} B",
            f"{bp['baseline']:,} B",
            _x(bp["ratio"]),
            f"≤ {budget:,} B, ≥ 500x",
            bp["ours"] <= budget and bp["ratio"] >= 500,
        ),
        (
            "output kept on trim",
            f"{trim['ours']:.1%}",
            f"{trim['baseline']:.1%}",
            "",
            "100 %",
            trim["ours"] == 1.0,
        ),
    ]
    for key, label, base_key in (
        ("session_start", "round trips: session start", "baseline_session_start"),
        ("blocking_send", "round trips: blocking send", "baseline_blocking_send"),
        ("incremental_read", "round trips: incremental read", "baseline_incremental_read"),
        ("step", "round trips: step (send+read)", "baseline_step"),
    ):
        shown = str(rt[base_key])
        if key == "incremental_read":
            shown += f" ({rt['baseline_incremental_read_fallback']} on fallback)"
        out.append((label, str(rt[key]), shown, _x(rt[base_key] / rt[key]), "1", rt[key] == 1))
    out += [
        (
            "control plane: calls/sandbox",
            f"{cp['calls_per_sandbox']:.2f}",
            f"{cp['baseline_calls_per_sandbox']:.2f}",
            _x(cp["baseline_calls_per_sandbox"] / cp["calls_per_sandbox"]),
            "≤ 3",
            cp["calls_per_sandbox"] <= 3,
        ),
        (
            "control plane: sandboxes/s",
            f"{cp['sandboxes_per_s']:.1f}",
            f"{cp['baseline_sandboxes_per_s']:.2f}",
            _x(cp["speedup"]),
            "≥ 15",
            cp["sandboxes_per_s"] >= 15,
        ),
        (
            "control plane: StopTask throttled",
            str(cp["stop_task_throttled"]),
            str(cp["baseline_stop_task_throttled"]),
            "",
            "0",
            cp["stop_task_throttled"] == 0,
        ),
        (
            "control plane: RunTask throttled",
            str(cp["run_task_throttled"]),
            "",
            "",
            "0",
            cp["run_task_throttled"] == 0,
        ),
        *sync_rows(r["control_plane_sync"]),
        (
            "exec overhead (true)",
            _s(ex["local_exec_s"]),
            f"bare: {_s(ex['raw_subprocess_s'])}",
            _x(ex["ratio"]),
            "≤ 1.5x",
            ex["ratio"] <= 1.5,
        ),
    ]
    ep = r["exec_path"]
    out += [
        (
            "exec path: exec(true) latency",
            _s(ep["native_ms"] / 1000),
            f"CLI: {_s(ep['cli_ms'] / 1000)}",
            _x(ep["latency_ratio"]),
            "≥ 100x",
            ep["latency_ratio"] >= 100,
        ),
        (
            "exec path: harness CPU/command",
            f"{ep['native_cpu_ms']:.2f} ms",
            f"CLI: {ep['cli_cpu_ms']:.0f} ms",
            _x(ep["cli_cpu_ms"] / ep["native_cpu_ms"]),
            "≤ 2 ms",
            ep["native_cpu_ms"] <= 2,
        ),
        (
            "exec path: ECS calls/command",
            f"{ep['native_api_calls_per_command']:.3f}",
            f"CLI: {ep['cli_api_calls_per_command']:.2f}",
            "",
            "≤ 0.02",
            ep["native_api_calls_per_command"] <= 0.02,
        ),
    ]
    return out + fleet_rows(r["agent_scale"], r["multi_harness"])


def sync_rows(cs: dict[str, Any]) -> list[Row]:
    """control_plane_sync: sandboxes from many threads through the sync API."""
    label = f"control plane, sync ({cs['threads']} threads)"
    return [
        (
            f"{label}: calls/sandbox",
            f"{cs['calls_per_sandbox']:.2f}",
            "",
            "",
            "≤ 3",
            cs["calls_per_sandbox"] <= 3,
        ),
        (
            f"{label}: sandboxes/s",
            f"{cs['sandboxes_per_s']:.1f}",
            "",
            "",
            "≥ 10",
            cs["sandboxes_per_s"] >= 10,
        ),
    ]


def fleet_rows(ag: dict[str, Any], mh: dict[str, Any]) -> list[Row]:
    """agent_scale and multi_harness: many sandboxes, and several harnesses, on one account."""
    fleet = f"{ag['sandboxes']} x {ag['steps_per_sandbox']}"
    throttled = ", ".join(f"{op} {n}" for op, n in mh["throttled_calls"].items()) or "none"
    # The account's best for this workload: RunTask, ExecuteCommand and StopTask share one
    # bucket (100 burst, 40/s), three tokens per sandbox.
    total = mh["harnesses"] * mh["sandboxes_per_harness"]
    bound = total / max((3 * total - 100) / 40, 1e-9)
    return [
        (
            f"agents: commands/s ({fleet} steps)",
            f"{ag['commands_per_s']:.0f}",
            "",
            "",
            "≥ 200",
            ag["commands_per_s"] >= 200,
        ),
        (
            "agents: ExecuteCommand/sandbox",
            f"{ag['execute_command_per_sandbox']:.2f}",
            "",
            "",
            "≤ 1.2",
            ag["execute_command_per_sandbox"] <= 1.2,
        ),
        (
            "agents: StopTask throttled",
            str(ag["stop_task_throttled"]),
            "",
            "",
            "0",
            ag["stop_task_throttled"] == 0,
        ),
        (
            "agents: wrong exit codes or outputs",
            str(ag["wrong_exit_codes"] + ag["wrong_outputs"]),
            "",
            "",
            "0",
            ag["wrong_exit_codes"] + ag["wrong_outputs"] == 0,
        ),
        (
            "agents: harness CPU/command",
            f"{ag['harness_cpu_ms_per_command']:.2f} ms",
            "",
            "",
            "≤ 5 ms",  # one harness core carrying 200 commands/s
            ag["harness_cpu_ms_per_command"] <= 5,
        ),
        (
            f"{mh['harnesses']} harnesses: StopTask failures",
            str(mh["stop_task_failures"]),
            "",
            "",
            "0",
            mh["stop_task_failures"] == 0,
        ),
        (
            f"{mh['harnesses']} harnesses: throttled calls",
            throttled,
            "",
            "",
            "",
            None,
        ),
        (
            f"{mh['harnesses']} harnesses: sandboxes/s",
            f"{mh['sandboxes_per_s']:.1f}",
            f"bucket: {bound:.1f}",
            "",
            "",
            None,
        ),
    ]


def table(lines: list[Row]) -> str:
    header = ("figure", "ours", "baseline", "ratio", "target", "met?")
    shown = {True: "yes", False: "NO", None: "-"}
    cells = [header, *((*row[:5], shown[row[5]]) for row in lines)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    fmt = " | ".join(f"{{:{w}}}" for w in widths)
    sep = "-|-".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), sep, *(fmt.format(*c) for c in cells[1:])])


def _tmux_version() -> str:
    done = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


STANDALONE = ("control_plane", "control_plane_sync", "exec_path", "agent_scale", "multi_harness")
"""The benchmarks that can run alone (the others share one sandbox and run as "sandbox")."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure ecs-sandbox against the reference module's behaviour on the "
        "embedded local ECS; with no NAME, run them all, print the table of targets and "
        f"write {RESULTS.relative_to(RESULTS.parents[2])} (exit 1 when a target is not met).",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="run only these and print their raw figures as JSON: pane_diff, sandbox "
        "(round trips, exec overhead, output kept on trim, bytes per poll), "
        + ", ".join(STANDALONE),
    )
    args = parser.parse_args(argv)
    known = ["pane_diff", "sandbox", *STANDALONE]
    unknown = [name for name in args.names if name not in known]
    if unknown:  # checked here: argparse checks an empty list against choices (3.11)
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    wanted = set(args.names) or {"pane_diff", "sandbox", *STANDALONE}
    started = time.monotonic()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def step(name: str, fn: Any, *args: Any) -> None:
        t0 = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.update(fn(*args))
        timings[name] = round(time.monotonic() - t0, 2)

    if "pane_diff" in wanted:
        step("pane_diff", pane_diff.run)
    if "sandbox" in wanted:
        with local_sandbox("bench") as (_aws, sandbox):
            step("round_trips", round_trips.run, sandbox)
            step("exec_overhead", exec_overhead.run, sandbox)
            step("output_kept_on_trim", output_kept_on_trim.run, sandbox)
            step("bytes_per_poll", bytes_per_poll.run, sandbox)
    runners = {
        "control_plane": control_plane.run,
        "control_plane_sync": control_plane.run_sync,
        "exec_path": exec_path.run,
        "agent_scale": agent_scale.run,
        "multi_harness": multi_harness.run,
    }
    for name in STANDALONE:
        if name in wanted:
            step(name, runners[name])
    if args.names:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        return 0

    lines = rows(results)
    results["targets_met"] = {row[0]: row[5] for row in lines if row[5] is not None}
    results["all_targets_met"] = all(results["targets_met"].values())
    results["run"] = {
        "total_s": round(time.monotonic() - started, 1),
        "seconds_by_benchmark": timings,
        "python": platform.python_version(),
        "tmux": _tmux_version(),
        "cpus": os.cpu_count(),
        "command": "make bench  (python -m benchmarks)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table(lines))
    print(f"\n{results['run']['total_s']} s; wrote {RESULTS}")
    return 0 if results["all_targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
