"""The session's prompt hook, the wait for a command, and the terminal status.

Theory of operation
-------------------
A blocking send must know when the shell has finished what the agent typed, without
typing anything itself (text appended to the agent's line breaks heredocs, trailing
comments, continuation lines and REPL input). So the session's shell reports on its own:

* **The prompt hook.** The session is created with two environment variables (set on the
  tmux server only for the ``new-session`` in the same command list, so nothing is typed
  and nothing shows in the pane): ``PROMPT_COMMAND`` for bash and ``ENV`` (a file read by
  every interactive POSIX ``sh``: dash, busybox ash, bash as ``sh``) that wraps ``PS1`` and
  ``PS2`` in a ``$(...)`` that prints nothing. Both survive ``exec bash`` and reach nested
  shells. Before each primary prompt the hook stores, as the pane's user options, the last
  exit code (``@ecs_rc``), the shell's pid (``@ecs_pid``) and the state ``p`` (``P`` from
  bash, whose hook knows that no typed-ahead line is pending); before a
  continuation prompt (an open quote, a trailing ``|`` or ``\\``, an unfinished heredoc) the
  state ``c``. Then, if a wait is armed (``@ecs_w``), it disarms it and signals the
  session's own tmux wait channel, all in the same tmux command list. bash's hook stays
  quiet while typed-ahead input is pending (``read -t 0``), so only the last line's prompt
  counts.
* **The wait.** The send script clears the state in the same tmux command list as the
  final Enter, then loops: read the state and the pane's foreground process group (from
  ``/proc/<pane_pid>/stat``), decide, else wait on the channel for at most a second. The
  wait arms ``@ecs_w`` and, only if the state is still the one it last saw, waits, in one
  command list, which tmux runs without another client's list in between: so a hook
  signals only a registered waiter, and a report made after the look either wakes the
  wait or keeps it from starting. (A signal nobody waits for is remembered, but a second
  one cancels it, and a wait killed at its time limit stays registered and takes the
  next signal: a hook that signalled at every prompt lost about one wake-up in ten to
  these, each a second's stall.) The state, not the signal, decides:

  ====================  ===========================================================
  state ``P``           done, once the hook's own process (its tmux client, in the
                        shell's process group or its own) has left the foreground
  state ``p`` or ``c``  with the shell in the foreground: done once it sleeps in a
                        terminal read, or a poll for one (``/proc/<pid>/wchan``: then
                        no typed-ahead line is pending); where wchan tells nothing, ``p`` is done
                        at once after one line, and otherwise the state is cleared
                        and, if it stays clear for a moment, done
  state ``p``, another  sh read ahead and started the next line: clear the state
  program in front      and wait on
  no state              the pane's own process idle in the foreground (in a
                        terminal read) for over a second (a shell without the hook,
                        a REPL run with ``exec``, the ``read`` builtin): done
  anything else         wait; past the time limit: timed out (124)
  ====================  ===========================================================

  A program in the foreground that is not the shell (``cat`` reading stdin, a REPL) never
  counts as done: the send returns when its time is up. Everything happens in the send's
  one exec round trip.
* **The status** is the same look, printed as one line: see :func:`parse_status`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ._pane_script import GEOMETRY

HOOK_STATE = "@ecs_st"
HOOK_EXIT = "@ecs_rc"
HOOK_PID = "@ecs_pid"
HOOK_ARMED = "@ecs_w"

SETTLE_S = 0.2
"""How long a continuation prompt must stay the last thing the shell did to count as done
(dash and ash cannot tell whether typed-ahead lines are pending)."""

IDLE_S = 2
"""Seconds (whole seconds of the clock, see :func:`wait_call`, so more than one) the pane's
own process must sit idle in the foreground, without a hook report, to count as done."""

POLL_S = 1
"""The longest a wait on the channel lasts before the state is looked at again."""

QUICK_LOOKS = 100
"""How often (every 20 ms) the wait looks again at a shell that has shown its prompt but is
still busy (finishing its hook, or reading lines typed ahead) before it waits on the
channel instead."""


def hook_channel(session: str) -> str:
    """The tmux wait channel the hook of ``session`` signals (one per session)."""
    return f"ecs-sbx-prompt-{session}"


def _report(channel: str, exit_code: str | None, pid: str, state: str, *, in_subshell: bool) -> str:
    # One tmux client per prompt; the state is set last, after what it vouches for. A
    # continuation prompt leaves the exit code alone: no command has finished. In a prompt's
    # $(...) the subshell becomes the client (exec) instead of forking it: one process less.
    pane = '-t "$TMUX_PANE"'
    # "r" before the code: tmux's #{?...} counts "0" as false.
    code = f"set -p {pane} {HOOK_EXIT} r{exit_code} \\; " if exit_code is not None else ""
    run = "exec tmux" if in_subshell else "tmux"
    # Signal only an armed wait (see the module docstring), and disarm it first.
    armed = f"'#{{{HOOK_ARMED}}}'"
    wake = f'if -F {pane} {armed} "set -pu -t $TMUX_PANE {HOOK_ARMED} ; wait -S {channel}"'
    return (
        f"{run} {code}set -p {pane} {HOOK_PID} {pid}"
        f" \\; set -p {pane} {HOOK_STATE} {state} \\; {wake} >/dev/null 2>&1"
    )


def env_file_text(session: str) -> str:
    """The ``ENV`` file: the hook for interactive POSIX shells (bash has PROMPT_COMMAND).

    ``$$`` in a command substitution is the shell's own pid, and ``$?`` the last status.
    """
    channel = hook_channel(session)
    return "\n".join(
        [
            'if [ -z "${BASH_VERSION-}" ]; then',
            f"__ecs_sbx() {{ {_report(channel, '$1', '$$', 'p', in_subshell=True)}; }}",
            f"__ecs_sbc() {{ {_report(channel, None, '$$', 'c', in_subshell=True)}; }}",
            "PS1='$(__ecs_sbx $?)'\"${PS1-\\$ }\"",
            "PS2='$(__ecs_sbc)'\"${PS2-> }\"",
            "fi",
            "",
        ]
    )


def prompt_command(session: str) -> str:
    """bash's ``PROMPT_COMMAND``: report unless typed-ahead input is pending; wrap PS2 once.

    ``__ecs_e`` hands the command's status back, so ``echo $?`` still shows it (a function,
    not ``(exit $r)``: that subshell was a fork before every prompt).
    """
    channel = hook_channel(session)
    primary = _report(channel, "$__ecs_r", "$$", "P", in_subshell=False)
    secondary = _report(channel, None, "$$", "c", in_subshell=True)  # PS2's $(__ecs_c)
    return (
        f"__ecs_r=$?; read -t 0 2>/dev/null || {primary}; "
        "case $PS2 in *__ecs_c*) ;; *) "
        f"__ecs_c() {{ read -t 0 2>/dev/null || {secondary}; }}; "
        "PS2='$(__ecs_c)'\"${PS2-> }\";; esac; __ecs_e() { return $1; }; __ecs_e $__ecs_r"
    )


# The pane's look, one tmux call: pane_pid, hook pid, state and exit code (or - / 0), the
# alternate screen, the foreground program (backslash-escaped, so it is one word; tmux
# prints control characters as '_' anyway) and, last, the working directory.
_LOOK = (
    "#{pane_pid} #{?@ecs_pid,#{@ecs_pid},0} #{?@ecs_st,#{@ecs_st},-} #{?@ecs_rc,#{@ecs_rc},-}"
    " #{alternate_on} #{q:pane_current_command} #{pane_current_path}"
)


def wait_functions(target: str, session: str) -> str:
    """Shell functions ``nw`` (the clock), ``lk`` (look at the pane) and ``wl`` (wait).

    ``nw`` sets ``n`` to whole seconds since boot from ``/proc/uptime`` (a ``read``, where
    ``date +%s`` cost a process at every look), or to ``date +%s`` where that file cannot
    be read. ``lk`` sets ``st`` (state), ``f`` (1: a shell, or the pane's own process, is
    in the foreground), ``rs`` (that process's run state), ``L`` (the status line, see
    :func:`parse_status`) and ``G`` (the pane's geometry, in the read script's format, so
    that a read right after the look needs no look of its own). ``wl DEADLINE AHEAD``
    (``nw`` seconds, 0 for none: see :func:`wait_call`; AHEAD 1 when the send typed several
    lines, so sh may still have some to read) sets ``w`` to 0 when done, 124 when the
    deadline passed (see the module's table) and 3 when the pane cannot be looked at any
    more (the session ended); ``L`` and ``G`` are then those of its last look.
    """
    t = shlex.quote(target)
    ch = shlex.quote(hook_channel(session))
    reset = f"{{ tmux set -p -t {t} {HOOK_STATE} '' 2>/dev/null; st=-; }}"
    # Arm, and wait only while the state is still the one the last look saw ($st).
    same = f"#{{==:#{{?{HOOK_STATE},#{{{HOOK_STATE}}},-}},$st}}"
    wait = (
        f'tmux set -p -t {t} {HOOK_ARMED} 1 \\; if -F -t {t} "{same}" "wait {ch}"'
        f' "set -pu -t {t} {HOOK_ARMED}"'
    )
    return f"""set -f
G= nl="
"
nw() {{
n=; {{ read -r n _ < /proc/uptime; }} 2>/dev/null; n=${{n%%.*}}
case $n in ''|*[!0-9]*) n=$(date +%s);; esac
}}
lk() {{
o=$(tmux -u display -p -t {t} "{GEOMETRY}" \\; display -p -t {t} '{_LOOK}') || return 1
case $o in *"$nl"*) G=${{o%%"$nl"*}} o=${{o#*"$nl"}};; *) return 1;; esac
set -- $o
[ $# -ge 6 ] || return 1
r=$1 h=$2 st=$3 fg=$6 f=0 rs=- z=- x=
{{ read -r x < /proc/$r/stat; }} 2>/dev/null
x=${{x##*) }}; set -- $x
if [ $# -ge 6 ]; then rs=$1; {{ [ "$6" = "$3" ] || [ "$6" = "$h" ]; }} && f=1; fi
L="${{6:--}} ${{3:--}} $rs $o"
[ $f = 1 ] || return 0
y=$r; [ "$6" = "$h" ] && y=$h
q= x=; {{ read -r q < /proc/$y/wchan; read -r x < /proc/$y/stat; }} 2>/dev/null
x=${{x##*) }}
case $q:${{x%% *}} in
*:R) z=0;; wait_woken:*|n_tty_read:*|poll_schedule_timeout*|do_select:*|do_sys_poll:*) z=1;;
:*|0:*) ;; *) z=0;;
esac
}}
if command -v timeout >/dev/null 2>&1; then
wc() {{ timeout {POLL_S} {wait} >/dev/null 2>&1; }}
else
wc() {{ {wait} >/dev/null 2>&1 & p=$!
( sleep {POLL_S}; kill -9 $p ) >/dev/null 2>&1 & k=$!; wait $p; kill $k 2>/dev/null; }}
fi
wl() {{
w=124 i0= cs= j=0
while :; do
g=
if lk; then
if [ "$st" = P ]; then  # the hook's own processes may still be in the foreground
j=0; while {{ [ $f = 0 ] || [ "$fg" = tmux ]; }} && [ $j -lt 50 ]; do
sleep 0.02 2>/dev/null; lk || break; j=$((j+1)); done
w=0; return
fi
if [ $f = 1 ]; then
case $st in
p|c) if [ $z = 1 ]; then w=0; return
elif [ $z = 0 ]; then j=$((j+1)); [ $j -gt {QUICK_LOOKS} ] || g=1
elif [ $st = p ] && [ "$2" != 1 ]; then w=0; return
else {reset}; sleep {SETTLE_S} 2>/dev/null || sleep 1; cs=2
fi;;
*) [ "$cs" = 1 ] && {{ w=0; return; }}
if [ $z = 1 ] || {{ [ $z = - ] && [ "$rs" = S ]; }}; then nw; i0=${{i0:-$n}}
[ $n -ge $((i0+{IDLE_S})) ] && {{ w=0; return; }}; else i0=; fi;;
esac
else
i0=; [ "$st" = p ] && {reset}
fi
else
w=3; return  # the pane is gone: nothing will ever report
fi
[ "$1" = 0 ] || {{ nw; [ $n -lt "$1" ]; }} || return 0
if [ "$cs" = 2 ]; then cs=1; elif [ -n "$g" ]; then sleep 0.02 2>/dev/null; else cs=; wc; fi
done
}}"""


def wait_call(timeout_s: int | None, *, ahead: bool = False) -> str:
    """The shell command that runs ``wl`` (see :func:`wait_functions`) for at most
    ``timeout_s`` whole seconds (None: no limit)."""
    if timeout_s is None:
        return f"wl 0 {int(ahead)}"
    return f"{{ nw; wl $((n+{timeout_s})) {int(ahead)}; }}"


def reset_state(target: str) -> str:
    """The tmux command (for a ``\\;`` list) that forgets the last prompt."""
    return f"set -p -t {shlex.quote(target)} {HOOK_STATE} ''"


@dataclass(frozen=True, slots=True)
class TerminalStatus:
    """What the session's terminal is doing, from one look at the pane.

    ``exit_code`` is the status of the last command the shell finished (None before the
    hook has reported, or with a shell that has no hook). ``running`` says whether a
    program other than the shell is in the foreground, ``foreground`` names the
    foreground program, ``continuation`` whether the shell waits for the rest of a
    command (an open quote, a heredoc), ``alternate_screen`` whether a full-screen
    program owns the screen, and ``cwd`` is the foreground program's directory.
    """

    exit_code: int | None
    running: bool
    foreground: str
    continuation: bool
    alternate_screen: bool
    cwd: str
    hooked: bool

    def footer(self) -> str:
        """The status as one line, for the end of an agent's observation."""
        code = "-" if self.exit_code is None else str(self.exit_code)
        what = f"running {self.foreground}" if self.running else f"idle in {self.foreground}"
        if self.continuation and not self.running:
            what += " (waiting for the rest of the command)"
        screen = "; full-screen program" if self.alternate_screen else ""
        return f"[terminal: last exit {code}; {what}; cwd {self.cwd}{screen}]"


class StatusParseError(ValueError):
    """A status line that does not have the expected shape."""


def parse_status(line: str) -> TerminalStatus:
    """Parse ``<tpgid> <pgrp> <run state> <pane_pid> <hook pid> <state> <exit> <alternate>
    <command> <path>``: ``-`` for what is unknown, the command backslash-escaped (tmux's
    ``q:``), the path the rest of the line."""
    fields = line.split(" ", 8)
    if len(fields) != 9:
        raise StatusParseError(f"malformed status line {line[:200]!r}")
    tpgid, pgrp, _, pane_pid, hook_pid, state, exit_code, alternate, tail = fields
    command, path = _unescape_word(tail)
    if (
        not all(_is_int(v) or v == "-" for v in (tpgid, pgrp))
        or not all(v.isascii() and v.isdigit() for v in (pane_pid, hook_pid))
        or alternate not in ("0", "1")
        or not (exit_code == "-" or (exit_code[:1] == "r" and _is_int(exit_code[1:])))
        or path is None
    ):
        raise StatusParseError(f"malformed status line {line[:200]!r}")
    idle = tpgid != "-" and tpgid in {pgrp, hook_pid}
    return TerminalStatus(
        exit_code=None if exit_code == "-" else int(exit_code[1:]),
        running=not idle,
        foreground=command,
        continuation=state == "c",
        alternate_screen=alternate == "1",
        cwd=path,
        hooked=hook_pid != "0",
    )


def _unescape_word(text: str) -> tuple[str, str | None]:
    """Split off a backslash-escaped first word: (word, rest after one space) or no rest."""
    word: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            word.append(text[i + 1])
            i += 2
        elif ch == " ":
            return "".join(word), text[i + 1 :]
        else:
            word.append(ch)
            i += 1
    return "".join(word), None


def _is_int(value: str) -> bool:
    digits = value[1:] if value.startswith("-") else value
    return digits.isascii() and digits.isdigit()


__all__ = [
    "HOOK_ARMED",
    "HOOK_EXIT",
    "HOOK_PID",
    "HOOK_STATE",
    "StatusParseError",
    "TerminalStatus",
    "env_file_text",
    "hook_channel",
    "parse_status",
    "prompt_command",
    "reset_state",
    "wait_call",
    "wait_functions",
]
