"""Key plans: an agent's key list as ordered tmux steps, typing exactly what was given.

Key names (``Enter``, ``C-c``, ``Up``...) are sent as keys and everything else as literal
text; long text is pasted whole through a tmux buffer (see :mod:`ecs_sandbox_core._tmux`
for the scripts that carry the plans out).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import SessionError

ENTER_KEYS = frozenset({"Enter", "C-m", "KPEnter", "C-j", "^M", "^J"})
"""Keys that submit a line; a blocking send waits for the command they submit."""

# Names tmux's send-keys looks up as keys (anything else is typed literally, with -l).
_NAMED = (
    "Enter|Escape|Tab|BTab|Space|BSpace|Up|Down|Left|Right|Home|End|PageUp|PgUp|PPage"
    "|PageDown|PgDn|NPage|IC|Insert|DC|Delete|F[1-9]|F1[0-2]|KP[A-Za-z0-9]+|Any"
)
_KEY_NAME = re.compile(rf"^(?:[CMS]-)*(?:{_NAMED})$|^(?:[CMS]-)+\S$|^\^\S$")
PASTE_THRESHOLD = 2048
"""Literal text longer than this (UTF-8 bytes) is pasted through a tmux buffer in one piece:
send-keys arguments are limited (about 16 KB on the tmux command line) and slow to type."""


def is_key_name(key: str) -> bool:
    """Whether tmux's send-keys would read ``key`` as a key name rather than text."""
    return bool(_KEY_NAME.fullmatch(key))


@dataclass(frozen=True, slots=True)
class SendKeys:
    """One ``send-keys`` call: key names, or (``literal``) text typed as is."""

    keys: tuple[str, ...]
    literal: bool


@dataclass(frozen=True, slots=True)
class Paste:
    """Text pasted whole through a tmux buffer (``load-buffer`` + ``paste-buffer``)."""

    text: str


Step = SendKeys | Paste


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """Ordered tmux steps for a key list; ``blocks`` when the send waits for the command."""

    steps: tuple[Step, ...]
    blocks: bool
    ends_with_enter: bool


def plan_keys(
    keys: str | Sequence[str],
    *,
    block: bool = False,
    paste_threshold: int = PASTE_THRESHOLD,
) -> KeyPlan:
    """Turn an agent's key list into ordered tmux steps, typing exactly what was given.

    Key names (``Enter``, ``C-c``, ``Up``...) are sent as keys, everything else as literal
    text; a newline inside text is an Enter. With ``block`` and a final Enter the send
    waits for the shell's prompt hook (see :mod:`ecs_sandbox_core._terminal`); nothing is
    added to what is typed. Without a final Enter there is nothing to wait for, so the plan
    does not block.
    """
    tokens = _tokens(keys)
    ends_with_enter = bool(tokens) and (
        tokens[-1] == _NEWLINE or (not tokens[-1][0] and tokens[-1][1] in ENTER_KEYS)
    )
    return KeyPlan(
        steps=tuple(_batch(tokens, paste_threshold)),
        blocks=block and ends_with_enter,
        ends_with_enter=ends_with_enter,
    )


# A newline inside text: an Enter key, or pasted along with the text around it (paste-buffer
# turns each "\n" into "\r", which is what Enter sends).
_NEWLINE = (True, "\n")


def _tokens(keys: str | Sequence[str]) -> list[tuple[bool, str]]:
    """(literal?, text) tokens in order; a text newline is the literal token "\n"."""
    if isinstance(keys, str):
        keys = [keys]
    tokens: list[tuple[bool, str]] = []
    for key in keys:
        if not isinstance(key, str):
            raise SessionError(f"keys must be strings, got {type(key).__name__}")
        if "\0" in key:
            raise SessionError("keys cannot contain NUL", remedy="Remove the NUL characters.")
        if not key:
            continue
        if is_key_name(key):
            tokens.append((False, key))
            continue
        pieces = key.split("\n")
        for i, piece in enumerate(pieces):
            if i:
                tokens.append(_NEWLINE)
            if piece:
                tokens.append((True, piece))
    return tokens


def _batch(tokens: list[tuple[bool, str]], paste_threshold: int) -> list[Step]:
    steps: list[Step] = []
    i = 0
    while i < len(tokens):
        literal = tokens[i][0]
        j = i
        while j < len(tokens) and tokens[j][0] == literal:
            j += 1
        run = [text for _, text in tokens[i:j]]
        if literal and len("".join(run).encode()) > paste_threshold:
            # Multi-line text too: typing it line by line costs one tmux call per line.
            steps.append(Paste("".join(run)))
        elif literal:
            for n, piece in enumerate("".join(run).split("\n")):
                if n:
                    _add_keys(steps, "Enter")
                if piece:
                    steps.append(SendKeys((piece,), literal=True))
        else:
            for key in run:
                _add_keys(steps, key)
        i = j
    return steps


def _add_keys(steps: list[Step], key: str) -> None:
    last = steps[-1] if steps else None
    if isinstance(last, SendKeys) and not last.literal:
        steps[-1] = SendKeys((*last.keys, key), literal=False)
    else:
        steps.append(SendKeys((key,), literal=False))


__all__ = [
    "ENTER_KEYS",
    "PASTE_THRESHOLD",
    "KeyPlan",
    "Paste",
    "SendKeys",
    "Step",
    "is_key_name",
    "plan_keys",
]
