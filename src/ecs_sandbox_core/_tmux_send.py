"""Typing a key plan into a pane: the tmux clients that carry it, and the status lines.

:func:`ecs_sandbox_core._tmux.send_script` types a :class:`~ecs_sandbox_core._keys.KeyPlan`
with the shell commands :func:`step_commands` builds (each a tmux client running a
command list; how the plan is cut into clients is the subtle part, told there), waits for
the command, and prints three status lines that :func:`parse_send` reads by position:
they come before any pane content, so pane text can never impersonate them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ._errors import SessionError
from ._keys import ENTER_KEYS, KeyPlan, Paste
from ._terminal import StatusParseError, TerminalStatus, parse_status, reset_state

LIST_BYTES = 8192
"""The most command text one tmux client carries in a command list (tmux refuses a command
line of about 16 KB; see PASTE_THRESHOLD). A command's text is counted as the shell reads
it, quoted, which is never shorter than the arguments tmux receives."""


def step_commands(target: str, plan: KeyPlan) -> list[str]:
    """The plan as shell commands, each one tmux client running a command list.

    Text and the key names after it share one client (an agent's command and its Enter: one
    process and one server connection instead of two) while they stay under LIST_BYTES;
    tmux runs a list in order and stops it at a failed command, as the ``&&`` between
    clients does. Key names end the client's list: what follows an Enter (or C-c, C-d...)
    may be for another program, which must have started, and set its terminal modes,
    before it arrives (the terminal translates input as it comes: ``cat`` typed ahead
    while the shell's line editor had the terminal got a raw CR instead of a newline). A
    paste starts a client of its own, after the ``load-buffer`` that reads its text.
    """
    t = shlex.quote(target)
    clients: list[str] = []
    before = ""  # the client being filled: the shell before its tmux, and its commands
    commands: list[str] = []

    def flush() -> None:
        nonlocal before, commands
        if commands:
            clients.append(f"{before}tmux " + " \\; ".join(commands))
        before, commands = "", []

    for i, step in enumerate(plan.steps):
        # A blocking send forgets the last prompt in the same tmux command list as its
        # final Enter: a prompt reported after that is the command's own.
        reset = [reset_state(target)] if plan.blocks and i == len(plan.steps) - 1 else []
        if isinstance(step, Paste):
            flush()
            buf = f"ecs-sbx-$$-{i}"  # the script's pid: concurrent sends do not collide
            before = f"printf '%s' {shlex.quote(step.text)} | tmux load-buffer -b {buf} - && "
            commands = [*reset, f"paste-buffer -d -b {buf} -t {t}"]
            continue
        if step.literal:
            command = f"send-keys -t {t} -l -- {shlex.quote(_tmux_word(step.keys[0]))}"
        else:
            command = f"send-keys -t {t} " + " ".join(shlex.quote(_tmux_word(k)) for k in step.keys)
        if _list_bytes([*commands, *reset, command]) > LIST_BYTES:
            flush()
        commands += [*reset, command]
        if not step.literal:  # key names end the list
            flush()
    flush()
    return clients


def _list_bytes(commands: list[str]) -> int:
    return sum(len(command.encode()) + len(" \\; ") for command in commands)


def lines_typed(plan: KeyPlan) -> int:
    """How many lines the plan submits (Enter keys and pasted newlines)."""
    count = 0
    for step in plan.steps:
        if isinstance(step, Paste):
            count += step.text.count("\n")
        elif not step.literal:
            count += sum(key in ENTER_KEYS for key in step.keys)
    return count


def _tmux_word(arg: str) -> str:
    """``arg`` as a tmux command-line argument that tmux reads back as ``arg``.

    tmux takes a final ``;`` of an argument as the end of the command (dropping it), and
    a final ``\\;`` as a literal ``;``. So ``ls;`` would type ``ls`` and ``find . -exec rm
    {} \\;`` would lose its backslash; a backslash before the final ``;`` types it as is.
    """
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


@dataclass(frozen=True, slots=True)
class SendStatus:
    """Parsed status lines of :func:`send_script`; ``rest`` is what followed them."""

    typed: bool
    send_status: int
    waited: bool
    timed_out: bool
    terminal: TerminalStatus | None
    rest: str
    session_gone: bool = False


def parse_send(output: str) -> SendStatus:
    """Parse :func:`send_script`'s three status lines by position."""
    first, _, after = output.partition("\n")
    second, _, after = after.partition("\n")
    third, _, rest = after.partition("\n")
    if not (
        first.startswith("S=")
        and first[2:].isascii()
        and first[2:].isdigit()
        and second[2:] in ("-", "0", "124", "3")
        and second.startswith("W=")
        and third.startswith("T=")
    ):
        raise SessionError(f"unexpected send-keys output {output[:200]!r}")
    status = int(first[2:])
    wait = second[2:]
    return SendStatus(
        typed=status == 0,
        send_status=status,
        waited=wait != "-",
        timed_out=wait == "124",
        terminal=_terminal_status(third[2:]),
        rest=rest,
        session_gone=wait == "3",
    )


def _terminal_status(line: str) -> TerminalStatus | None:
    # A status tmux printed in another shape (a tmux older than the tested range lacks
    # some formats) is unknown, not a failed send: the keys were typed.
    try:
        return None if line == "-" else parse_status(line)
    except StatusParseError:
        return None


__all__ = ["LIST_BYTES", "SendStatus", "lines_typed", "parse_send", "step_commands"]
