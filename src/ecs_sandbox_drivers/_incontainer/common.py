"""Helpers pasted into each in-container script in place of its import of this module.

Everything from the marker line down is pasted, so it must stand alone.
"""

# --- pasted into each script from here on ---
import contextlib
import os
import sys
from typing import NoReturn


def short(name: str) -> str:
    """``name`` quoted, elided in the middle when long: the reason after it must survive."""
    quoted = repr(name)
    if len(quoted) <= 93:
        return quoted
    return f"{quoted[:60]}...{quoted[-30:]} ({len(name)} characters)"


def nbytes(text: str) -> int:
    """Bytes ``text`` takes as a file name (what NAME_MAX and PATH_MAX count)."""
    try:
        return len(text.encode(sys.getfilesystemencoding(), "surrogateescape"))
    except UnicodeError:
        return 4 * len(text)


def reason(exc: BaseException) -> str:
    """A short reason: an OS error's ``strerror``, else the exception's type and text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# The line is the last thing written: os._exit skips the clean-up that would append to
# the stream (a half-written archive's trailer) after it.
def fail(code: int, text: str) -> NoReturn:
    """End the script with exit ``code`` and one ``ecs-sandbox: <text>`` line on stderr."""
    # stdout may be a closed pipe; the reason matters more than what was left in it.
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.stderr.write(f"\necs-sandbox: {text}\n")
    sys.stderr.flush()
    os._exit(code)
