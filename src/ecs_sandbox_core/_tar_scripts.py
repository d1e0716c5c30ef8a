"""The in-container halves of file transfer: the fetch, extract and pack programs' sources.

The programs are real files in :mod:`ecs_sandbox_drivers._incontainer` (linted,
type-checked, run by tests; outside the core, since they do I/O); their text reaches this
pure module through the generated :mod:`._incontainer_gen`. They
run inside the container with whatever python3 it has (3.8 or newer), where this package
is not installed, so they use nothing newer, import nothing from here and carry their own
copy of the member rules of :mod:`._tar` (the host checks again anyway).

Both end every failure with one short line on stderr and a known exit code, never with a
traceback: a member name is shown elided in the middle when it is long (the reason must
survive any cut of the output), an OS error by its ``strerror`` ("File name too long",
"No space left on device").
"""

from __future__ import annotations

from ._incontainer_gen import EXTRACT_SOURCE, FETCH_SOURCE, PACK_SOURCE

# Exit codes of the in-container scripts, shared with the flows that read them.
EXIT_NO_SUCH_PATH = 2
EXIT_UNSAFE = 3
EXIT_CONFLICT = 4
EXIT_TOO_LARGE = 6
EXIT_FAILED = 7
UNSAFE_PREFIX = "unsafe archive member: "
CONFLICT_PREFIX = "archive conflicts with destination: "
FAILURE_PREFIX = "ecs-sandbox: "
"""Starts the line a script writes when it fails for any other reason."""

NAME_MAX = 255
"""Longest path component in bytes (Linux's NAME_MAX); longer ones cannot be created."""
PATH_MAX = 4095
"""Longest path in bytes (Linux's PATH_MAX, without the NUL); longer ones cannot be used."""

EXTRACT_SCRIPT = EXTRACT_SOURCE
"""Python source run in the container as ``python3 -c "$EXTRACT_SCRIPT" ARCHIVE DEST``.

Generated from :mod:`ecs_sandbox_drivers._incontainer.extract`, whose docstring says what it
does: checks every member before writing any (exit 3 for an unsafe member, 4 for a conflict with the
destination), writes members without following anything already there, exits 1 when the
archive cannot be read and 7 when a member cannot be written.
"""

PACK_SCRIPT = PACK_SOURCE
"""Python source run in the container as ``python3 -c "$PACK_SCRIPT" PATH [MAX_BYTES
[MAX_MEMBERS]]``.

Generated from :mod:`ecs_sandbox_drivers._incontainer.pack`: a gzip tar of PATH on stdout;
exit 2 when PATH does not exist, 4 when it is a special file, 6 past a limit, 1 when reading fails.
"""

FETCH_SCRIPT = FETCH_SOURCE
"""Python source run in the container as ``python3 -c "$FETCH_SCRIPT" URL FILE`` (exit 5
with the HTTP status or the error's type, never the URL, when the fetch fails)."""

__all__ = [
    "CONFLICT_PREFIX",
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_NO_SUCH_PATH",
    "EXIT_TOO_LARGE",
    "EXIT_UNSAFE",
    "EXTRACT_SCRIPT",
    "FAILURE_PREFIX",
    "FETCH_SCRIPT",
    "NAME_MAX",
    "PACK_SCRIPT",
    "PATH_MAX",
    "UNSAFE_PREFIX",
]
