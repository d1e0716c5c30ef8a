"""The image probe: one exec round trip that says which tools ecs-sandbox needs an image lacks.

A sandbox's image is the user's, and a missing tool shows up late and obscurely (a tmux
session that cannot start, a copy that fails with "python3: not found"). On the first start
of each image, :func:`image_probe_flow` runs :data:`PROBE_SCRIPT` (POSIX ``sh``: ``command
-v`` for each tool, and python's version) and :func:`parse_probe` reads one line per tool
back, ``ecs-sandbox-probe:<tool>:<yes|no>``, whatever else the stream holds. The probe only
reports; whether a missing tool matters depends on what the harness will use.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ._doctor_checks import FAIL, PASS, UNKNOWN, Check
from ._effects import Effect
from ._sandbox import SandboxContext, command_flow


@dataclass(frozen=True, slots=True)
class Tool:
    """A program ecs-sandbox runs in the container, and what goes wrong without it."""

    name: str
    needed_for: str
    alternatives: tuple[str, ...] = ()


TOOLS = (
    Tool("base64", "binary exec output, downloads and command-loop sessions"),
    Tool("stty", "command-loop sessions (exec_sessions_per_sandbox > 0)"),
    Tool("tmux", "tmux sessions (create_session, send_keys)"),
    Tool(
        "python3>=3.8",
        "copy_to_sandbox / copy_from_sandbox (tar extract and pack)",
        alternatives=("python>=3.8",),
    ),
    Tool(
        "fetch",
        "commands too long to send inline (fetched from S3 with python3, curl or wget)",
    ),
    Tool("setsid", "stopping a timed-out command's whole process tree"),
    Tool("sleep", "exec timeouts enforced in the container"),
)
"""What the probe looks for; ``sh`` itself is proven by the probe running at all."""

_PREFIX = "ecs-sandbox-probe"
_PY = "import sys; sys.exit(sys.version_info < (3, 8))"
PROBE_SCRIPT = "; ".join(
    [
        f'r() {{ if "$@" >/dev/null 2>&1; then a=yes; else a=no; fi; echo "{_PREFIX}:$t:$a"; }}',
        *(f"t={name}; r command -v {name}" for name in ("base64", "stty", "tmux", "setsid")),
        "t=sleep; r command -v sleep",
        f"t='python3>=3.8'; r python3 -c '{_PY}'",
        f"t='python>=3.8'; r python -c '{_PY}'",
        "t=fetch; r sh -c 'command -v python3 || command -v curl || command -v wget'",
    ]
)
"""POSIX sh printing ``ecs-sandbox-probe:<tool>:yes|no`` for every tool (and alternative)."""

_LINE = re.compile(rf"{_PREFIX}:([A-Za-z0-9_.>=]+):(yes|no)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReport:
    """What the probe found: the tools missing (none when the image has everything)."""

    missing: tuple[Tool, ...]
    unanswered: tuple[str, ...] = ()
    """Tools the output said nothing about (a cut-off or unusual stream)."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unanswered

    def message(self, image: str) -> str:
        """One sentence per problem, for a log line."""
        parts = [f"{t.name} (needed for {t.needed_for})" for t in self.missing]
        text = f"image {image} lacks " + "; ".join(parts) if parts else f"image {image} is fine"
        if self.unanswered:
            text += f"; the probe said nothing about {', '.join(self.unanswered)}"
        return text


def parse_probe(output: str) -> ImageReport:
    """Read the probe's lines out of ``output`` (other text, ``\\r\\n`` line ends allowed)."""
    answers = {name: answer == "yes" for name, answer in _LINE.findall(output)}
    missing, unanswered = [], []
    for tool in TOOLS:
        names = (tool.name, *tool.alternatives)
        if any(answers.get(name) for name in names):
            continue
        if all(name in answers for name in names):
            missing.append(tool)
        else:
            unanswered.append(tool.name)
    return ImageReport(missing=tuple(missing), unanswered=tuple(unanswered))


def image_check(report: ImageReport, image: str) -> Check:
    """The probe's report as a doctor check (``fail`` when a tool is missing)."""
    title = f"image {image} has the tools ecs-sandbox uses"
    status = FAIL if report.missing else UNKNOWN if report.unanswered else PASS
    names = ", ".join(t.name for t in report.missing)
    return Check(
        name="image",
        title=title,
        status=status,
        detail=report.message(image)
        if status != PASS
        else "sh " + ", ".join(t.name for t in TOOLS),
        fix=f"Install {names} in the image (e.g. apk add / apt-get install), or do not use "
        "what needs them."
        if report.missing
        else None,
    )


PROBE_TIMEOUT_S = 30.0


def image_probe_flow(
    ctx: SandboxContext, *, search_path: str | None = None
) -> Generator[Effect, Any, ImageReport]:
    """Probe the sandbox's image in one exec round trip.

    ``search_path`` replaces the container's PATH for the probe alone (the exec wrapper
    around it keeps the image's): tests use it to stand for an image with fewer tools.
    """
    script = PROBE_SCRIPT
    if search_path is not None:
        script = f"PATH={shlex.quote(search_path)}; {script}"
    result = yield from command_flow(ctx, script, timeout_s=PROBE_TIMEOUT_S)
    return parse_probe(result.output.decode("utf-8", errors="replace"))


__all__ = [
    "PROBE_SCRIPT",
    "TOOLS",
    "ImageReport",
    "Tool",
    "image_check",
    "image_probe_flow",
    "parse_probe",
]
