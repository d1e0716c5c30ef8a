"""Wrapping a command in per-call markers, and reading the transport's bytes back.

Theory of operation
-------------------
ECS Exec loses the remote exit code (session-manager-plugin always exits 0) and mixes its own
chatter into the session stream, so the command is wrapped in a small POSIX ``sh`` script that
frames its output::

    <<ecsx-NONCE:begin:SECRET>>\\n          printed before the command runs
    ...the command's output...              stdout and stderr, merged as a PTY would merge them
    \\n<<ecsx-NONCE:end:STATUS:SECRET>>\\n   printed once the command has ended

``NONCE`` is random per call and part of the command line, so nothing left from other calls
looks like a marker of this one. It is no secret: anything in the container can read command
lines (``/proc/*/cmdline``), and a command, or a child that outlives it, may print imitations
of this very call's markers. ``SECRET`` is what makes the frame exact. The wrapper draws it in
the container (the kernel's ``/proc/sys/kernel/random/uuid`` through the ``read`` builtin,
``od`` of ``/dev/urandom`` as a fallback), keeps it in an unexported shell variable and prints
it with the ``printf`` builtin: it is in no command line, environment or file, and the begin
marker that carries it is printed before the command exists. The parser takes the first begin
marker (the wrapper's), learns the secret from it and takes the *first* end marker that
repeats it. Imitations before the real end marker cannot carry the secret and stay output;
whatever arrives after it is ignored. So nothing a command or its children print changes the
reported status or output. (A root process that reads the wrapper's memory, or that writes
into the session before the begin marker, is beyond any in-band scheme.)

``STATUS`` is the exit code, or ``timeout`` when the wrapper stopped the command. The newline
in front of the end marker is always printed and always removed, so output without a trailing
newline comes back without one. No begin marker means the command never started (the
transport failed, or ``sh`` is missing); a begin marker without a valid end marker means the
stream was cut off while the command ran, and what arrived so far is returned.

Binary mode sends the command's output through ``base64`` so that any bytes survive the PTY.
POSIX ``sh`` has no ``pipefail``, so the status goes on a separate file descriptor (3, a copy
of the stream) as ``<<ecsx-NONCE:rc:STATUS:SECRET>>``; it can land anywhere in the base64
text, even mid-line, and is found there because ``<``, ``:`` and ``>`` are not in the base64
alphabet. The end marker then carries the encoder's status.

How the command runs
--------------------
The command runs in the wrapper's *foreground* (an asynchronous list would start it with
SIGINT and SIGQUIT ignored, for good), inside a command substitution that prints its own pid
(``/proc/self/stat``) and then ``exec``-s the command with its output sent back to the stream.
The substitution ends at once with the pid but waits for the command, and its status is the
command's. With ``setsid`` in the image (util-linux, busybox) the command gets its own session
and process group, without a controlling terminal (a password prompt fails instead of
waiting), so the wrapper can signal everything the command started:

* When the command ends, its process group gets SIGHUP, as from a terminal's hang-up (which
  is what ECS Exec's PTY did before), but only after 0.1 s when anything is left in it, so
  that a ``nohup cmd &`` forked just before the end has started ignoring SIGHUP. Background
  jobs end with the command; ``nohup``-ed ones survive, and so do processes that started a
  session of their own (``setsid cmd >log 2>&1 &``). Their output cannot reach a text-mode
  result (it comes after the end marker), but a survivor that keeps the command's stdout
  keeps the session open until it lets go (on a PTY, ``nohup`` redirects it), and in binary
  mode holds the frame open (base64 reads to EOF): what it writes until then is output.
* With a timeout, a timer sleeps that long (whole seconds: POSIX ``sleep``), sends SIGTERM to
  the command's process group and SIGKILL ``KILL_GRACE_S`` later; the wrapper reports
  ``timeout``, kills what is left of the group and closes the frame. This holds on every
  transport and whether or not the transport is still there: the timer runs in a session of
  its own and, after its first second, knows the command's pid (the waiting shell's other
  child in ``/proc``), so it stops the command even when the session ended and took the
  wrapper with it. The wrapper stops the timer with SIGTERM when the command ends first; the
  timer exits 1 only if it fired. It stops its own ``sleep`` with SIGKILL (a SIGTERM between
  fork and exec can be lost) and reaps it: no zombie is left for a pid 1 that does not reap
  (the keep-alive ``sleep``).

Without ``setsid`` the command shares the wrapper's process group: only the command's own
process is signalled at the timeout, and nothing at its end. The script is POSIX ``sh`` (dash,
bash, busybox ash) plus Linux's ``/proc``, written tersely because it travels inline with
every exec. It never contains a marker as one literal string (``printf`` joins two pieces),
so a shell that echoes its input cannot print a marker early.

Compatibility: ``wrap_command`` and ``exec_script`` take ``timeout_s`` (keyword, default None:
no timer); ``parse_exec_output`` keeps its signature and may return ``ExecStatus.TIMED_OUT``.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence

from ._errors import UsageError
from ._exec_io import BROKEN, NO_USER, IoPlan, io_plan
from ._frames import (
    TIMEOUT,
    ExecOutcome,
    ExecStatus,
    OutputStream,
    parse_exec_output,
    validate_nonce,
)
from ._sh_command import _check_text, _command

MAX_INLINE_COMMAND = 6000
"""Longest ``--command`` string sent inline; longer scripts are staged through S3.

ECS documents no limit for ExecuteCommand's ``command``; this stays well below the sizes
at which command lines are known to be refused along the way (the CLI, the SSM document
parameter), and a staged script costs only one extra object.
"""
KILL_GRACE_S = 2
"""Seconds between SIGTERM and SIGKILL when the wrapper stops a command at its timeout."""


# The script is sent inline with every exec (MAX_INLINE_COMMAND), so it is written tersely;
# the wrapper's variables are _x<letter> (secret, setsid, waiting shell, timer, command pid,
# status), none of them exported. Before anything else: no option from a login profile may
# export the secret (-a), end the wrapper early (-e, -u) or trace it into the output (-x).
_PROLOGUE = """\
set +aeux
unset _xs _xg _xw _xt _xi _xr _xd;command -v setsid >/dev/null&&_xg=setsid
read -r _xs </proc/sys/kernel/random/uuid||_xs=$(od -An -N16 -tx1 /dev/urandom|tr -dc 0-9a-f)"""

# The timer, ``sh -c TIMER sh WAITER`` in a session of its own (so that killing the wrapper,
# or the transport's whole process group, does not stop it). n sleeps unless stopped (s, on
# SIGTERM) and succeeds only if the whole time passed; it kills its sleep with SIGKILL (a
# SIGTERM between fork and exec can be lost) and reaps it. After one second the timer looks
# the command up, as the waiting shell's child that is not the timer, so that it can stop
# the command even if the wrapper is gone by then. It then sleeps a second at a time and
# also stops the command as soon as the waiting shell is gone or a zombie (pid 1 of a task
# may never reap it): a session that ends under a
# command (a cancelled exec: the agent kills the session's process, the terminal hangs up on
# the wrapper) does not leave the command running until its timeout. It exits 1 only if it
# fired.
_TIMER = (
    'x= z= c= w=$1;s(){ x=1;[ -z "$z" ]||kill -9 $z;};trap s TERM\n'
    'n(){ sleep $1&z=$!;[ -z "$x" ]||kill -9 $z;wait $z;y=$?;wait $z;z=;'
    '[ -z "$x" ]&&[ $y = 0 ];}\n'
    "n 1||exit 0;for f in /proc/[0-9]*/stat;do read -r l <$f||continue;"
    'set -- ${l##*") "};[ $2 = $w ]&&[ $f != /proc/$$/stat ]&&c=${f%/stat}&&c=${c#/proc/};done\n'
    'a(){ read -r l </proc/$w/stat||return 1;set -- ${l##*") "};[ "$1" != Z ];}\n'
    "i=@REST@;while [ $i -gt 0 ];do n 1||exit 0;a||break;i=$((i-1));done\n"
    "kill -TERM -$c||kill -TERM $c;n @GRACE@&&{ kill -9 -$c||kill -9 $c;};exit 1"
)

# After the command: stop the timer and learn whether it fired (then kill what is left of
# the command's process group). Otherwise hang up the group, as a terminal's hang-up would,
# but only after a moment: a ``nohup cmd &`` forked just before the command ended may not
# have started ignoring SIGHUP yet. (``sleep 0.1`` is not POSIX but common; else 1 s.)
_HANG_UP = "kill -0 -$_xi&&{ sleep 0.1||sleep 1;kill -HUP -$_xi;}"
_STOP_TIMER = f"kill $_xt;wait $_xt;if [ $? = 1 ];then _xr=timeout;kill -9 -$_xi;else {_HANG_UP};fi"
# With keep_background (docker exec's semantics): what the command leaves running runs on.
_STOP_TIMER_ONLY = "kill $_xt;wait $_xt;if [ $? = 1 ];then _xr=timeout;kill -9 -$_xi;fi"


def container_timeout(timeout_s: float | None) -> int | None:
    """The timeout the wrapper enforces: ``timeout_s`` rounded up to whole seconds.

    None (or an infinite timeout) means no timer. ``sleep`` takes only whole seconds in
    POSIX, and rounding up never stops a command before its time.
    """
    if timeout_s is None or timeout_s == math.inf:
        return None
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise UsageError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
    return max(1, math.ceil(timeout_s))


def exec_script(
    command: str | Sequence[str],
    *,
    nonce: str,
    binary: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
    user: str | None = None,
    stdin: bytes | None = None,
    separate: bool = False,
    keep_background: bool = False,
) -> str:
    """The ``sh`` script that runs ``command`` between this call's markers.

    A ``str`` command is shell text, run by a fresh ``sh -c``; a sequence is an argv, run
    as is. ``env`` is exported and ``cwd`` entered for the command only, both delivered
    byte for byte. The command's stdin is ``/dev/null`` (nothing can type into an exec) and
    its stderr is merged into its stdout, as a PTY would do, so that the transport's own
    error channel never carries the command's output. With ``timeout_s`` the wrapper stops
    the command's process group after that long (see the module docstring). When the
    command ends its process group is hung up, as a terminal would; ``keep_background``
    leaves what it started running instead, as ``docker exec`` does (a timeout still kills
    the group).
    """
    validate_nonce(nonce)
    seconds = container_timeout(timeout_s)
    plan = io_plan(user=user, stdin=stdin, separate=separate)
    binary = binary and not separate  # a separate frame is always base64
    close = "4>&- 5>&-" if separate else "3>&- 4>&-" if binary else "4>&-"
    body = _command(command, env=env, cwd=cwd, close=close, plan=plan)
    run = _run_block(body, seconds, close, hang_up=not keep_background)
    begin = _printf(nonce, "begin", "$_xs", newline="\\n")
    end = _printf(nonce, "end", "{}", "$_xs", newline="\\n", lead="\\n")
    setup = _setup(plan, end)
    if separate:
        return "\n".join(
            [
                _PROLOGUE,
                "exec 2>&1",
                begin,
                setup,
                # The command's stdout and stderr (and the shell's reports about it) go to
                # files; both are printed, base64-encoded, once it has ended.
                'exec 4>"$_xd/o" 5>"$_xd/e" 2>&5',
                run,
                "exec 2>&1 4>&- 5>&-",
                'base64 <"$_xd/o"',
                _printf(nonce, "mid", "$_xs", newline="\\n", lead="\\n"),
                'base64 <"$_xd/e"',
                'rm -rf "$_xd"',
                end.format("$_xr"),
                "",
            ]
        )
    cleanup = 'rm -rf "$_xd"' if plan.needs_dir else ""
    if not binary:
        parts = [_PROLOGUE, "exec 2>&1 4>&1", begin, setup, run, cleanup, end.format("$_xr")]
        return "\n".join(part for part in parts if part) + "\n"
    status = _printf(nonce, "rc", "$_xr", "$_xs")
    return (
        "\n".join(
            part
            for part in [
                # Checked before the begin marker: without an encoder the command must not run.
                "command -v base64 >/dev/null 2>&1||"
                "{ echo 'ecs-sandbox: binary exec needs base64 in the container' >&2;exit 127;}",
                _PROLOGUE,
                "exec 2>&1",
                begin,
                setup,
                # fd 4 is the base64 pipe for the command, fd 3 the stream for the status; the
                # group's stderr joins the pipe so that the shell's own reports are encoded too.
                "{ { exec 4>&1",
                run,
                f"{status} >&3;}} 2>&1|base64;}} 3>&1",
                f"_xr=$?;{cleanup}" if cleanup else "_xr=$?",
                end.format("$_xr"),
            ]
            if part
        )
        + "\n"
    )


def _setup(plan: IoPlan, end: str) -> str:
    """The plan's set-up, its failure exits filled in (see :mod:`._exec_io`)."""
    fail = f'{{ [ -z "$_xd" ]||rm -rf "$_xd";{end.format(BROKEN)};exit 0;}}'
    nouser = f"{{ {end.format(NO_USER)};exit 0;}}"
    return plan.setup.replace("@FAIL@", fail).replace("@NOUSER@", nouser)


def _printf(nonce: str, kind: str, *values: str, newline: str = "", lead: str = "") -> str:
    """A ``printf`` of ``<<ecsx-NONCE:KIND:VALUE...>>``, the marker never one literal string."""
    fields = ":%s" * len(values)
    args = " ".join(f'"{value}"' for value in values)
    return f'printf "{lead}%s%s:{kind}{fields}>>{newline}" "<<ecsx-" {nonce} {args}'


def _run_block(command: str, seconds: int | None, close: str, *, hang_up: bool = True) -> str:
    """Run ``command`` (the substitution's body); leave its status in ``_xr``.

    The substitution prints its own pid (the command's, once it ``exec``-s), and its status
    is the command's.
    """
    run = f"_xi=$(read -r _xp _ </proc/self/stat;echo $_xp;{command})\n_xr=$?"
    if seconds is None:
        return f"{run}\n{{ {_HANG_UP};}} 2>/dev/null" if hang_up else run
    timer = _TIMER.replace("@REST@", str(seconds - 1)).replace("@GRACE@", str(KILL_GRACE_S))
    return (
        "read -r _xw _ </proc/self/stat\n"
        f"$_xg sh -c '{timer}' sh $_xw </dev/null >/dev/null 2>&1 {close}&_xt=$!\n"
        f"{run}\n{{ {_STOP_TIMER if hang_up else _STOP_TIMER_ONLY};}} 2>/dev/null"
    )


def wrap_command(
    command: str | Sequence[str],
    *,
    nonce: str,
    binary: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
    user: str | None = None,
    stdin: bytes | None = None,
    separate: bool = False,
    keep_background: bool = False,
) -> str:
    """The ECS Exec ``--command`` string: ``sh -lc '<exec_script>'``.

    ECS splits the string shell-style and runs it without a shell, so the script travels
    as one single-quoted word.
    """
    script = exec_script(
        command,
        nonce=nonce,
        binary=binary,
        env=env,
        cwd=cwd,
        timeout_s=timeout_s,
        user=user,
        stdin=stdin,
        separate=separate,
        keep_background=keep_background,
    )
    return f"sh -lc {shlex.quote(script)}"


# Python source that the container runs to fetch a staged script: argv[1] = URL, argv[2] =
# destination. It is text for the container's python3, not code this module runs.
_FETCH_PY = (
    "import pathlib, sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=120) as r:\n"
    "    pathlib.Path(sys.argv[2]).write_bytes(r.read())\n"
)


def staged_script_command(*, url: str, nonce: str, path: str | None = None) -> str:
    """The ``--command`` string that fetches a staged script, runs it with ``sh`` and removes it.

    The staged script is :func:`exec_script` output, so its markers frame the command as
    usual; a failed download prints no begin marker and so reads as "never started". It is
    fetched with python3 when that works, else curl, else wget. ``path`` defaults to a
    per-nonce name under ``/tmp``.
    """
    nonce = validate_nonce(nonce)
    if path is None:
        path = f"/tmp/.ecs-sandbox-{nonce}.sh"  # noqa: S108 - a path inside the container
    _check_text("url", url)
    _check_text("path", path)
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"staged script URL must be http(s), not {url[:40]!r}")
    if not path.startswith("/"):
        raise UsageError(f"staged script path must be absolute, not {path!r}")
    q = shlex.quote
    wrapper = "\n".join(
        [
            # The script may hold environment values: private while it exists, and the
            # command itself runs under the container's usual umask.
            "m=$(umask)",
            "umask 077",
            f"u={q(url)}",
            f"p={q(path)}",
            f'{{ command -v python3 >/dev/null 2>&1 && python3 -c {q(_FETCH_PY)} "$u" "$p"; }} ||',
            '{ command -v curl >/dev/null 2>&1 && curl -fsSL -o "$p" "$u"; } ||',
            '{ command -v wget >/dev/null 2>&1 && wget -q -O "$p" "$u"; } ||',
            "{ echo 'ecs-sandbox: could not fetch the staged script' >&2; "
            'rm -f -- "$p"; exit 127; }',
            'umask "$m"',
            'sh "$p"',
            "rc=$?",
            'rm -f -- "$p"',
            'exit "$rc"',
        ]
    )
    return f"sh -lc {q(wrapper)}"


__all__ = [
    "KILL_GRACE_S",
    "MAX_INLINE_COMMAND",
    "TIMEOUT",
    "ExecOutcome",
    "ExecStatus",
    "OutputStream",
    "container_timeout",
    "exec_script",
    "parse_exec_output",
    "staged_script_command",
    "validate_nonce",
    "wrap_command",
]
