"""The image probe: one exec round trip that says which tools ecs-sandbox needs an image lacks.

A sandbox's image is the user's, and a missing tool shows up late and obscurely (a tmux
session that cannot start, a copy that fails with "python3: not found"). On the first start
of each image, :func:`image_probe_flow` runs :data:`PROBE_SCRIPT` (POSIX ``sh``: ``command
-v`` for each tool, and python's version) and :func:`parse_probe` reads one line per tool
back, ``ecs-sandbox-probe:<tool>:<yes|no>``, whatever else the stream holds. The probe only
reports; whether a missing tool matters depends on what the harness will use.

Theory of operation (the probe at spin-up)
------------------------------------------
``ecs-sandbox doctor --probe-image`` runs the probe on demand; :func:`probe_on_start_flow`
runs it by itself, at the end of a sandbox's spin-up (the driver passes it to
``start_flow`` as ``after_running``), once per image and driver (``cfg.probe_image``).
Which images a driver has probed, and what each probe found, is :class:`ImageProbes`, pure
bookkeeping the driver shares among its sandboxes: the first sandbox of an image *claims*
it and probes; the others skip the round trip and read the report once it is there. A probe
that cannot run (the exec fails or times out) is logged at INFO and does not fail the
spin-up; it gives its claim back, so the next sandbox of that image tries again. The
exceptions are the failures that say no command will ever reach the sandbox (its exec agent
did not connect within ``exec_connect_timeout_sec``, or the task stopped): those fail the
spin-up, which stops the task, rather than hand back a sandbox whose first command would
wait out the same timeout again. An interruption
(cancellation, Ctrl-C) gives the claim back, closes the exec channel the probe may have
opened and propagates: ``start_flow`` then tears the task down.

Missing tools are logged in one WARNING naming the image, each tool and what it breaks.
Later, an operation that fails for want of one (:func:`name_missing_tools_flow`: a tmux
session's start, a transfer) has its error say that the image lacks it.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Collection, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from ._config import EcsFargateConfig
from ._doctor_checks import FAIL, PASS, UNKNOWN, Check
from ._effects import CloseChannels, Effect, Log
from ._errors import EcsSandboxError, ExecAgentNotConnectedError, TaskStoppedError
from ._lifecycle import TaskHandle
from ._sandbox import SandboxContext, command_flow

T = TypeVar("T")


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

    def lacking(self, names: Collection[str]) -> tuple[Tool, ...]:
        """The missing tools among ``names``."""
        return tuple(t for t in self.missing if t.name in names)

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


# --- the probe at spin-up -------------------------------------------------------------------


class ImageProbes:
    """Which images a driver has probed and what each probe found (bookkeeping, no effects).

    Keys are :func:`image_label` strings. A threaded driver makes every method atomic (see
    the drivers' ``SharedImageProbes``); under one event loop nothing runs between them.
    """

    __slots__ = ("_claimed", "_reports")

    def __init__(self) -> None:
        self._claimed: set[str] = set()
        self._reports: dict[str, ImageReport] = {}

    def claim(self, image: str) -> bool:
        """True for the first caller for ``image`` (it probes), False for the rest."""
        if image in self._claimed:
            return False
        self._claimed.add(image)
        return True

    def found(self, image: str, report: ImageReport | None) -> None:
        """Record the claimed probe's ``report``; None (it could not run) gives the claim back."""
        if report is None:
            self._claimed.discard(image)
        else:
            self._reports[image] = report

    def report(self, image: str) -> ImageReport | None:
        """What the probe of ``image`` found; None before it has (or when it could not run)."""
        return self._reports.get(image)


def image_label(cfg: EcsFargateConfig, handle: TaskHandle) -> str:
    """How logs and errors name the image of ``handle``'s task (and the key it is probed by)."""
    return handle.image or f"of task definition {cfg.task_definition}"


def probe_on_start_flow(
    ctx: SandboxContext, probes: ImageProbes
) -> Generator[Effect, Any, ImageReport | None]:
    """Probe the image of a sandbox that just started, unless its driver already has.

    Returns the report, None when the probe is off, in flight for another sandbox, or could
    not run. Swallows what the exec raises (see the module docstring) except what says no
    command can reach the sandbox at all (:class:`ExecAgentNotConnectedError`, after
    ``exec_connect_timeout_sec``, and :class:`TaskStoppedError`); what is thrown in (a
    cancellation) propagates too.
    """
    image = image_label(ctx.cfg, ctx.handle)
    if not ctx.cfg.probe_image:
        return None
    if not probes.claim(image):
        return probes.report(image)
    try:
        report = yield from image_probe_flow(ctx)
    except (ExecAgentNotConnectedError, TaskStoppedError):
        # Not the probe's failure but the sandbox's: no command will ever reach it. Failing
        # the spin-up here (which stops the task) says so once, instead of handing back a
        # sandbox whose first command waits out the same connect timeout again.
        probes.found(image, None)
        raise
    except Exception as exc:
        probes.found(image, None)
        first = str(exc).splitlines()[0] if str(exc) else ""
        yield _probe_log(
            logging.INFO,
            "could not probe image %s for the tools ecs-sandbox uses (%s: %s); going on",
            image,
            type(exc).__name__,
            first,
        )
        return None
    except BaseException as exc:
        probes.found(image, None)
        # The probe may have opened the sandbox's exec channel; close() allows no yield.
        if ctx.cfg.loop_sessions and not isinstance(exc, GeneratorExit):
            yield CloseChannels(task_arn=ctx.handle.task_arn)
        raise
    probes.found(image, report)
    if report.missing:
        yield _probe_log(logging.WARNING, "%s", report.message(image))
    elif report.unanswered:
        yield _probe_log(logging.INFO, "%s", report.message(image))
    else:
        yield _probe_log(logging.INFO, "image %s has every tool ecs-sandbox uses", image)
    return report


def _probe_log(level: int, message: str, *args: object) -> Log:
    return Log(level=level, message=message, args=args, phase="probe")


SESSION_TOOLS = ("tmux",)
"""What a tmux session's start needs."""
UPLOAD_TOOLS = ("python3>=3.8",)
"""What ``copy_to_sandbox`` needs in the container (the extract program)."""
DOWNLOAD_TOOLS = ("python3>=3.8", "base64")
"""What ``copy_from_sandbox`` needs (the pack program, and base64 for the stream)."""


def name_missing_tools_flow(
    flow: Generator[Effect, Any, T],
    report: ImageReport | None,
    image: str,
    needs: Collection[str],
) -> Generator[Effect, Any, T]:
    """Run ``flow``; when it fails and ``report`` says the image lacks one of ``needs``, the
    error (same type, same attributes) says so first and its remedy is to install it."""
    try:
        return (yield from flow)
    except EcsSandboxError as exc:
        lacking = report.lacking(needs) if report is not None else ()
        if lacking:
            names = ", ".join(t.name for t in lacking)
            uses = "; ".join(f"{t.name} is needed for {t.needed_for}" for t in lacking)
            exc.message = (
                f"image {image} lacks {names} (the image probe found it missing when the "
                f"sandbox started; {uses}): {exc.message}"
            )
            exc.args = (exc.message, *exc.args[1:])
            exc.remedy = (
                f"Install {names} in image {image} (e.g. apt-get install -y / apk add in its "
                "Dockerfile), or do not use what needs it."
            )
        raise


__all__ = [
    "DOWNLOAD_TOOLS",
    "PROBE_SCRIPT",
    "SESSION_TOOLS",
    "TOOLS",
    "UPLOAD_TOOLS",
    "ImageProbes",
    "ImageReport",
    "Tool",
    "image_check",
    "image_label",
    "image_probe_flow",
    "name_missing_tools_flow",
    "parse_probe",
    "probe_on_start_flow",
]
