"""Reaping orphans from the drivers: run the core's gc flow with the wall clock."""

from __future__ import annotations

import time

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_core._gc import gc_flow
from ecs_sandbox_core._gc_select import GcReport, Kind, Orphan

from ._sync import SyncDriver

_COUNTED: tuple[tuple[Kind, str], ...] = (
    ("task", "task(s)"),
    ("task-definition", "task definition(s)"),
    ("object", "object(s)"),
)
_VERB = {
    "task": ("stopped task", "would stop task"),
    "task-definition": ("deregistered task definition", "would deregister task definition"),
    "object": ("deleted object", "would delete object"),
}


def collect_garbage(
    cfg: EcsFargateConfig,
    *,
    run_id: str | None = None,
    older_than_s: float | None = None,
    dry_run: bool = False,
    driver: SyncDriver | None = None,
) -> GcReport:
    """Release what ecs-sandbox left for ``run_id`` and/or created over ``older_than_s`` ago.

    The sync counterpart of ``await AsyncDriver(cfg).run(gc_flow(...))``; see
    :func:`ecs_sandbox_core._gc.gc_flow` for what is selected. ``driver`` defaults to a
    new :class:`SyncDriver` for ``cfg``.
    """
    driver = driver if driver is not None else SyncDriver(cfg)
    # The creation-time tags are wall-clock epoch seconds, so the age is measured on it too.
    flow = gc_flow(
        cfg, run_id=run_id, older_than_s=older_than_s, now_epoch=time.time(), dry_run=dry_run
    )
    return driver.run(flow)


def _line(orphan: Orphan, verb: str) -> str:
    return f"{verb} {orphan.ref} (run {orphan.run_id or '?'})"


def report_lines(report: GcReport) -> list[str]:
    """Human-readable lines for ``report``: one per resource, then a summary."""
    lines = [_line(o, _VERB[o.kind][1 if report.dry_run else 0]) for o in report.released]
    lines += [f"kept task definition {o.ref}: a remaining task uses it" for o in report.kept]
    lines += [f"FAILED to release {f.orphan.kind} {f.orphan.ref}: {f.error}" for f in report.failed]
    counts = ", ".join(f"{len(report.of_kind(kind))} {name}" for kind, name in _COUNTED)
    summary = "dry run: would release " if report.dry_run else "released "
    lines.append(summary + counts + (f"; {len(report.failed)} failed" if report.failed else ""))
    return lines


__all__ = ["collect_garbage", "report_lines"]
