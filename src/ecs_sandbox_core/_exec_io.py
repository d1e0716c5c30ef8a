"""Stdin, users and separate stdout/stderr for the exec wrapper of :mod:`._markers`.

Theory of operation
-------------------
The plain wrapper merges the command's stderr into its stdout (as ECS Exec's PTY does) and
gives it ``/dev/null`` as stdin. Three options change that; each is a few lines of POSIX
``sh`` added to the same wrapper, so the frame, its secret and the timeout work unchanged
and a call stays one round trip.

``user``: after the begin marker the wrapper looks the user up with ``id`` (so NSS users
count as well as ``/etc/passwd`` ones). ``id`` and the switching tool run with the wrapper's
authority (root, usually), so they are taken from the system directories
(:data:`SYSTEM_DIRS`) and never looked up through the image's ``PATH``, where a directory
the target user can write to might come first; the command itself is looked up through the
``PATH`` it runs with. An unknown user ends the frame with the status
``nouser``: the command never ran, and the caller gets a typed error. Otherwise the command is
``exec``-ed through ``setpriv`` (util-linux: it execs the command itself, so the pid the
timer knows stays the command's), else ``runuser -u``, else ``su -s /bin/sh -c``, whichever
the image has, chosen in the container (``runuser`` and ``su`` start the command through
``sh -c 'exec "$0" "$@"'``: they would report a command that is missing or not executable
as 1, where ``sh`` keeps 127 and 126). ``HOME``, ``USER`` and ``LOGNAME`` are set to the
user's (``HOME`` from ``/etc/passwd``), before the caller's ``env``, which may override them.
Asking for the user the wrapper already runs as switches nothing, so this works in images
whose tasks do not run as root.

``stdin``: the bytes travel inside the script as base64 in a quoted here-document (the
delimiter holds ``_``, which base64 never prints, so no line of data can end it), are decoded
into a file of a private temporary directory (``mktemp -d``, mode 0700) and given to the
command as its stdin: exact, binary-safe, empty or without a final newline alike.

``separate``: the command's stdout and stderr go to two files of that directory (the
shell's own complaints about the command, such as ``cd`` failing or ``exec`` not finding
it, count as its stderr). When it has ended (or was stopped at its timeout) the wrapper
prints both, base64-encoded, separated by a ``mid`` marker that carries the secret::

    <<ecsx-NONCE:begin:SECRET>>\\n
    base64(stdout)\\n<<ecsx-NONCE:mid:SECRET>>\\n base64(stderr)
    \\n<<ecsx-NONCE:end:STATUS:SECRET>>\\n

The command cannot reach the session stream (its descriptors are the files), and base64 has
no ``<``, ``:`` or ``>``, so as in binary mode nothing it prints can move a marker. The price:
output arrives only once the command has ended (no live display), the order between the two
streams is not recorded (the merged ``output`` is stdout followed by stderr), and the
container needs a writable temporary directory. A failed set-up (no ``mktemp``, a full disk,
no way to switch users) ends the frame with the status ``broken`` after a one-line reason.
The directory is removed when the command has ended.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass

from ._errors import UsageError

NO_USER = "nouser"
"""The end status when the requested user does not exist in the container."""
BROKEN = "broken"
"""The end status when the wrapper could not set the command up (the reason precedes it)."""

# Names useradd and busybox adduser accept (and numeric ids); nothing a shell would expand.
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?")
_B64_LINE = 76
_EXEC_ARGS = 'exec "$0" "$@"'
SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""Where the wrapper looks for ``id`` and the user-switching tools (see ``io_plan``)."""


def check_user(user: object) -> str:
    """``user`` if it is a plausible user name or numeric id, else raise UsageError."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise UsageError(
            f"user {user!r} is not a valid user name",
            remedy="Pass a user name (letters, digits, '.', '_', '-') or a numeric uid.",
        )
    return user


@dataclass(frozen=True, slots=True)
class IoPlan:
    """The wrapper lines for one call's ``user``, ``stdin`` and ``separate`` options.

    ``setup`` runs after the begin marker (``@FAIL@`` in it stands for the code that ends
    the frame as ``broken``, ``@NOUSER@`` for the one that ends it as ``nouser``);
    ``prefix`` runs in the command's subshell just before its ``exec`` and leaves the user
    switch in ``"$@"``; ``stdin`` and ``stderr`` are the command's redirections.
    """

    setup: str
    prefix: str
    stdin: str
    stderr: str
    switch: str
    separate: bool

    @property
    def needs_dir(self) -> bool:
        return "$_xd" in self.setup


def io_plan(*, user: str | None, stdin: bytes | None, separate: bool) -> IoPlan:
    """What the wrapper adds for these options (see the module docstring)."""
    setup: list[str] = []
    prefix = ""
    switch = ""
    if user is not None:
        q = shlex.quote(check_user(user))
        dirs = " ".join(SYSTEM_DIRS)
        setup += [
            # The tools that run with root's authority before the switch are taken from the
            # system directories only, never through the image's PATH (a directory the user
            # can write to could come first there).
            f'_xf(){{ for _a in {dirs};do [ -x "$_a/$1" ]&&echo "$_a/$1"&&return 0;done;'
            "return 1;}",
            "_xI=$(_xf id)||{ echo 'ecs-sandbox: no id command in the system directories';@FAIL@;}",
            f'_xU=$("$_xI" -u {q} 2>/dev/null)&&_xG=$("$_xI" -g {q} 2>/dev/null)||@NOUSER@',
            # Nothing to switch when the wrapper already runs as that user.
            '[ "$_xU" = "$("$_xI" -u)" ]&&_xk=||if _xm=$(_xf setpriv);then _xk=p;'
            "elif _xm=$(_xf runuser);then _xk=r;elif _xm=$(_xf su);then _xk=s;"
            "else printf 'ecs-sandbox: cannot run as user %s: the image has no "
            f"setpriv, runuser or su\\n' {q};@FAIL@;fi",
        ]
        prefix = (
            f'_xh=/;while IFS=: read -r _a _ _ _ _ _b _;do [ "$_a" = {q} ]&&_xh=$_b&&break;'
            f'done </etc/passwd;export HOME="$_xh" USER={q} LOGNAME={q}\n'
            'case $_xk in p)set -- "$_xm" --reuid=$_xU --regid=$_xG --init-groups --;;'
            f"r)set -- \"$_xm\" -u {q} -- sh -c '{_EXEC_ARGS}';;"
            f"s)set -- \"$_xm\" -s /bin/sh -c '{_EXEC_ARGS}' {q};;"
            "*)set --;;esac"
        )
        switch = '"$@"'
    redirect_in = "</dev/null"
    if stdin is not None or separate:
        setup.append(
            "command -v base64 >/dev/null 2>&1||{ echo 'ecs-sandbox: input and separate "
            "stderr need base64 in the container';@FAIL@;}"
        )
        setup.append(
            "_xd=$(mktemp -d 2>/dev/null)||{ echo 'ecs-sandbox: mktemp -d failed: the "
            "container needs a writable temporary directory';@FAIL@;}"
        )
    if stdin is not None:
        if not isinstance(stdin, bytes | bytearray | memoryview):
            raise UsageError(f"input must be bytes, not {type(stdin).__name__}")
        setup.append(
            "base64 -d >\"$_xd/i\" <<'ECSX_IN'||{ echo 'ecs-sandbox: could not write the "
            "input into the container';@FAIL@;}\n" + _base64_lines(bytes(stdin)) + "ECSX_IN"
        )
        redirect_in = '<"$_xd/i"'
    return IoPlan(
        setup="\n".join(setup),
        prefix=prefix,
        stdin=redirect_in,
        stderr="2>&5" if separate else "",
        switch=switch,
        separate=separate,
    )


def _base64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[at : at + _B64_LINE] + "\n" for at in range(0, len(encoded), _B64_LINE))


# --- reading a separate frame back ----------------------------------------------------------

_WHITESPACE = re.compile(rb"\s+")


def split_streams(region: bytes, mid_at: int | None, mid_end: int) -> tuple[bytes, bytes] | None:
    """Decode ``region`` (the frame's body, markers removed around it) into stdout and
    stderr at the ``mid`` marker; None when it is not what the wrapper prints."""
    if mid_at is None:
        return None
    try:
        out = base64.b64decode(_WHITESPACE.sub(b"", region[:mid_at]), validate=True)
        err = base64.b64decode(_WHITESPACE.sub(b"", region[mid_end:]), validate=True)
    except binascii.Error:
        return None
    return out, err


__all__ = ["BROKEN", "NO_USER", "IoPlan", "check_user", "io_plan", "split_streams"]
