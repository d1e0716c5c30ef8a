"""How the wrapper starts a command: argv or shell text, environment, directory, user.

The command runs as the body of the wrapper's command substitution (see :mod:`._markers`):
this module writes that body, checking every piece of text first (strings only, no NUL,
valid UTF-8, environment names that are shell identifiers), quoting each argument, and
passing shell text too long for one ``exec`` argument as a here-document instead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from ._errors import UsageError
from ._exec_io import IoPlan

_MAX_ARGUMENT = 100_000  # below Linux's MAX_ARG_STRLEN (128 KiB) for one exec argument
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise UsageError(
            f"{what} contains a NUL character",
            remedy="NUL cannot be passed in a command line; send such data as a file.",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not encodable as UTF-8 (lone surrogate?)") from None
    return value


def _command(
    command: str | Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: str | None,
    close: str,
    plan: IoPlan | None = None,
) -> str:
    """Set up ``env`` and ``cwd``, then ``exec`` ``command`` (in its own session if we can).

    Runs as the body of the command substitution: stdin ``/dev/null``, stdout back to the
    stream (fd 4), the wrapper's descriptors closed.
    """
    q = shlex.quote
    stdin = plan.stdin if plan is not None else "</dev/null"
    stderr = f" {plan.stderr}" if plan is not None and plan.stderr else ""
    redirect = f"{stdin} >&4{stderr} {close}"
    if isinstance(command, str):
        _check_text("command", command)
        argv = ["sh", "-c", command]
    elif isinstance(command, Sequence) and not isinstance(command, (bytes, bytearray)):
        argv = [_check_text("command argument", arg) for arg in command]
        if not argv:
            raise UsageError("command is an empty argument list")
    else:
        raise UsageError(f"command must be a string or a list of strings, not {command!r}")
    steps = [plan.prefix] if plan is not None and plan.prefix else []
    switch = f"{plan.switch} " if plan is not None and plan.switch else ""
    if env:
        pairs = []
        for name, value in env.items():
            _check_text("environment variable name", name)
            if not _ENV_NAME.fullmatch(name):
                raise UsageError(
                    f"environment variable name {name!r} is not a shell identifier",
                    remedy="Use letters, digits and underscores, not starting with a digit.",
                )
            pairs.append(f"{name}={q(_check_text(f'value of {name}', value))}")
        steps.append("export " + " ".join(pairs))
    if cwd is not None:
        # CDPATH emptied so that cd never prints the directory into the output.
        steps.append(f"CDPATH= cd -- {q(_check_text('cwd', cwd))}")
    if isinstance(command, str) and len(command.encode()) > _MAX_ARGUMENT:
        steps.append(_long_text(command, redirect, switch))
    else:
        steps.append(f"exec $_xg {switch}{' '.join(q(arg) for arg in argv)} {redirect}")
    return "&&".join(steps)


def _long_text(text: str, redirect: str, switch: str = "") -> str:
    """Run shell text too long for one ``sh -c`` argument (Linux caps each at 128 KiB).

    The text arrives on stdin as a quoted here-document, is read whole (the ``.`` keeps
    trailing newlines, the here-document's own last one is cut) and evaluated by the
    ``sh`` that ``exec`` started, after its stdin is switched to ``/dev/null``.
    """
    lines = set(text.split("\n"))
    delimiter = "ECSX_END"
    while delimiter in lines:
        delimiter += "_"
    if redirect.startswith("</dev/null "):
        run = '_xc=$(cat;echo .);exec </dev/null;eval "${_xc%??}"'
        redirect = redirect.replace("</dev/null ", "")
    else:  # the command's stdin waits on fd 6 while the text arrives on stdin
        run = '_xc=$(cat;echo .);exec <&6 6<&-;eval "${_xc%??}"'
        redirect = "6" + redirect
    return f"exec $_xg {switch}sh -c '{run}' sh {redirect} <<'{delimiter}'\n{text}\n{delimiter}\n"
