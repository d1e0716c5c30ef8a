"""What the inspect_ai provider does, without inspect_ai: file scripts and error mapping.

inspect_ai's ``SandboxEnvironment`` reports failures as Python's own exceptions
(``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ``TimeoutError``) and
exec results as text. The provider (:mod:`ecs_sandbox_drivers.inspect_provider`) is a thin
class over the public async API; everything it decides lives here so that it is tested
whether or not inspect_ai is installed. Each file operation is one exec round trip: the
content travels as the command's stdin (writes) or its stdout (reads), byte for byte.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ecs_sandbox_core._exec_flow import ExecResult

# Exit codes the file scripts use to say what went wrong (errno-like, above 1 so that they
# are told apart from a plain failure).
NOT_FOUND = 66
NOT_ALLOWED = 77
IS_DIRECTORY = 78
TOO_LARGE = 79

WRITE_SCRIPT = f"""f=$1
[ -d "$f" ]&&{{ echo "Is a directory: $f" >&2;exit {IS_DIRECTORY};}}
d=$(dirname -- "$f")
mkdir -p -- "$d" 2>/dev/null||{{ echo "Permission denied: $d" >&2;exit {NOT_ALLOWED};}}
{{ cat >"$f";}} 2>/dev/null||{{ echo "Permission denied: $f" >&2;exit {NOT_ALLOWED};}}
"""
"""``sh -c WRITE_SCRIPT sh PATH`` with the content on stdin: parents created, then written."""

READ_SCRIPT = f"""f=$1
[ -d "$f" ]&&{{ echo "Is a directory: $f" >&2;exit {IS_DIRECTORY};}}
[ -e "$f" ]||{{ echo "No such file or directory: $f" >&2;exit {NOT_FOUND};}}
[ -r "$f" ]||{{ echo "Permission denied: $f" >&2;exit {NOT_ALLOWED};}}
n=$(wc -c <"$f" 2>/dev/null)||{{ echo "Permission denied: $f" >&2;exit {NOT_ALLOWED};}}
[ "$n" -le "$2" ]||{{ echo "$n bytes" >&2;exit {TOO_LARGE};}}
cat -- "$f"
"""
"""``sh -c READ_SCRIPT sh PATH LIMIT``: the file's bytes on stdout, or an exit code above."""


def resolve_path(path: str, workdir: str) -> str:
    """``path`` made absolute against the sample's working directory."""
    return path if path.startswith("/") else posixpath.join(workdir, path)


@dataclass(frozen=True, slots=True)
class TextResult:
    """An exec result as inspect_ai gives it: text, with a success flag."""

    success: bool
    returncode: int
    stdout: str
    stderr: str


def text_result(result: ExecResult) -> TextResult:
    """``result`` decoded as UTF-8 (undecodable bytes replaced)."""
    return TextResult(
        success=result.exit_code == 0,
        returncode=result.exit_code,
        stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"),
    )


def no_such_user_result(user: str) -> TextResult:
    """What inspect's checks expect for an unknown user (docker's message, not run)."""
    message = f"unable to find user {user}: no matching entries in passwd file\n"
    return TextResult(success=False, returncode=126, stdout=message, stderr=message)


def exec_error(result: ExecResult) -> PermissionError | None:
    """The exception inspect expects instead of ``result``: a command that exists but
    cannot be executed (exit 126 with permission denied) is a ``PermissionError``."""
    if result.exit_code == 126 and b"ermission denied" in result.stderr:
        return PermissionError(result.stderr.decode("utf-8", errors="replace").strip())
    return None


def stream_over(result: ExecResult, limit: int) -> bytes | None:
    """The first stream of ``result`` longer than ``limit`` (cut to ``limit``), or None."""
    for stream in (result.stdout, result.stderr):
        if len(stream) > limit:
            return stream[:limit]
    return None


def file_error(result: ExecResult, path: str) -> OSError | None:
    """The exception for a file script's failure, or None when it succeeded."""
    if result.exit_code == 0:
        return None
    why = result.stderr.decode("utf-8", errors="replace").strip() or f"exit {result.exit_code}"
    if result.exit_code == NOT_FOUND:
        return FileNotFoundError(f"File not found: {path}")
    if result.exit_code == NOT_ALLOWED:
        return PermissionError(f"Permission denied: {path}")
    if result.exit_code == IS_DIRECTORY:
        return IsADirectoryError(f"Is a directory: {path}")
    return OSError(f"{path}: {why}")


__all__ = [
    "READ_SCRIPT",
    "TOO_LARGE",
    "WRITE_SCRIPT",
    "TextResult",
    "exec_error",
    "file_error",
    "no_such_user_result",
    "resolve_path",
    "stream_over",
    "text_result",
]
