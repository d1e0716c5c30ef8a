"""What every ``ecs-sandbox`` command shares: exit codes, signals, logging and progress.

Exit codes follow ``docker run``: the command's own code passes through, and the codes a
command rarely uses on purpose say what happened to ecs-sandbox itself (see ``EXIT_CODES``).
SIGTERM and SIGHUP (what CI runners, ``timeout`` and a closed terminal send) are turned into
:class:`Terminated`, a ``KeyboardInterrupt``, so that they take the same tear-down path as
Ctrl-C; the process then exits with 128 + the signal's number, as a shell reports it.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from ecs_sandbox_core import ConfigError, UsageError

EXIT_TIMEOUT = 124
EXIT_FAILURE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 128 + signal.SIGINT

EXIT_CODES = f"""\
exit status (as docker run):
  0-123, 128+   the command's own exit status, passed through (exec, cp --then, shell)
  {EXIT_TIMEOUT}           the command did not finish within --timeout (as coreutils timeout)
  {EXIT_FAILURE}           ecs-sandbox itself failed: a usage or configuration error, AWS, the
                sandbox could not start; the command did not run, or its status is unknown
  {EXIT_CANNOT_EXECUTE}/{EXIT_NOT_FOUND}       the command could not run / was not found (as sh)
  130/143/129   interrupted by Ctrl-C / SIGTERM / SIGHUP, after the sandbox was torn down
"""

# botocore's DEBUG records dump whole signed requests (the Authorization header, the
# session token): its loggers are never let below INFO, whatever -v asks for.
_WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "awscrt")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; handled like Ctrl-C (tear-down runs, then exit)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    previous = {
        signum: signal.signal(signum, _raise_terminated)
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interrupted_exit(exc: KeyboardInterrupt) -> int:
    """128 + the signal that ended the run (SIGINT for a plain Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


def configure_logging(verbose: int) -> None:
    """WARNING by default, INFO with -v, DEBUG with -vv, but never wire dumps (see above)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def error(message: str) -> None:
    """Print ``ecs-sandbox: error: message`` on stderr (a remedy goes on following lines)."""
    print(f"ecs-sandbox: error: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """Print an informational ``ecs-sandbox: message`` line on stderr."""
    print(f"ecs-sandbox: {message}", file=sys.stderr, flush=True)


# A task ARN reads as its last part (the task id) in a progress line.
_TASK_ARN = re.compile(r"arn:aws[\w-]*:ecs:[\w-]+:\d+:task/[\w-]+/([\w-]+)")


class Progress:
    """Phases with elapsed time on stderr, when stderr is a terminal (quiet otherwise).

    Used as the drivers' ``progress`` callback and for the CLI's own phases. Quiet as well
    when logging is verbose: the log records say the same.
    """

    def __init__(self, *, verbose: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = verbose == 0 and bool(isatty and isatty())
        self.start = time.monotonic()

    def __call__(self, phase: str, message: str) -> None:
        message = _TASK_ARN.sub(r"task \1", message.replace("task arn:", "arn:"))
        self.say(f"{phase}: {message}" if phase else message)

    def say(self, message: str) -> None:
        """One progress line: ``[  3.1s] message``."""
        if self.enabled:
            elapsed = time.monotonic() - self.start
            print(f"[{elapsed:5.1f}s] {message}", file=self.stream, flush=True)


def check_timeout(value: float | None) -> None:
    """A --timeout is positive seconds or ``inf``."""
    if value is not None and (math.isnan(value) or value <= 0):
        raise UsageError(
            f"--timeout must be a positive number of seconds, not {value:g}",
            remedy="Give e.g. --timeout 600, or --timeout inf for no limit.",
        )


def check_local_tools() -> None:
    """The embedded local ECS runs its tasks with bubblewrap and enters them with nsenter."""
    for tool, package in (("bwrap", "bubblewrap"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise ConfigError(
                f"--local needs {tool!r} on PATH, which pip cannot install",
                remedy=f"Install the {package} package with the system's package manager "
                f"(sudo apt-get install {package}, sudo dnf install {package}, ...) and retry.",
            )


__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_TIMEOUT",
    "Progress",
    "Terminated",
    "check_local_tools",
    "check_timeout",
    "configure_logging",
    "interrupted_exit",
    "termination_as_interrupt",
]
