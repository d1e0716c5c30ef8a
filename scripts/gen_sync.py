"""Generate the sync public API (``_api.py``, ``_api_session.py``) from the async one
(``aio.py``, ``_aio_session.py``).

The public classes (the sandbox and its docker-like container shim in ``aio.py``, the tmux
session in ``_aio_session.py``) are written once, as coroutines, under
``src/ecs_sandbox_drivers/``. Everything that differs
between the flavours is policy that lives in the drivers (``AsyncDriver``/``SyncDriver``:
``shared``, ``tear_down``, ``in_thread``, ``run``), so the sync text is the async text with
``async``/``await`` removed and a few names mapped, as the ``unasync`` tool does for trio's
projects and psycopg 3's generator does for its sync classes. The result is sorted and
formatted with ruff, so that it passes the linters like hand-written code.

Run ``python scripts/gen_sync.py`` (``make generate``) after changing either source;
``tests/test_generated.py`` fails while a generated module is stale.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ecs_sandbox_drivers"

_API_DOCSTRING = '''"""The sync public API: ``EcsFargateSandbox.spin_up(...)`` and tmux sessions.

Names and semantics follow the reference module, so a harness written for it switches by
changing an import. Every method builds one core flow and runs it on the sandbox's driver.
The same classes, as coroutines, are :mod:`ecs_sandbox_drivers.aio` (this module is
generated from that one).
"""'''

_SESSION_DOCSTRING = '''"""The sync tmux session class: an agent's terminal in the sandbox.

:class:`EcsFargateTmuxSession` is created by ``EcsFargateSandbox.create_session``; every
call is one exec round trip, and it carries Terminal-Bench's ``TmuxSession`` names with
its meanings. Generated from ``_aio_session.py``, the same class as coroutines.
"""'''

# (async source, sync target, the target's docstring)
PAIRS = [
    (PACKAGE / "aio.py", PACKAGE / "_api.py", _API_DOCSTRING),
    (PACKAGE / "_aio_session.py", PACKAGE / "_api_session.py", _SESSION_DOCSTRING),
]
SOURCE, TARGET, DOCSTRING = PAIRS[0]  # the main pair, as tests name it


def header(source: Path) -> str:
    """The first lines of a generated module: where it comes from, how to regenerate it."""
    return (
        f"# Generated from {source.name} by scripts/gen_sync.py: do not edit.\n"
        f"# Change {source.name} and run `make generate`; tests/test_generated.py fails "
        "while this is stale.\n"
    )


# Whole words, in this order: the async spelling on the left, the sync one on the right.
NAMES = [
    ("AsyncIterator", "Iterator"),
    ("asynccontextmanager", "contextmanager"),
    ("AsyncDriver", "SyncDriver"),
    ("AsyncSessionNames", "SessionNames"),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("aclose", "close"),
]
MODULES = [
    ("from ._async import", "from ._sync import"),
    ("from ._aio_session import", "from ._api_session import"),
    ("from .aio import", "from ._api import"),
]


def _ruff(args: list[str], text: str, target: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on the generated text:\n{done.stderr}")
    return done.stdout


def unasync(text: str, source: Path | None = None, docstring: str | None = None) -> str:
    """The sync text of async ``text`` (from ``source``), before sorting and formatting."""
    source = SOURCE if source is None else source
    body = text[text.index('"""', 3) + 3 :]  # without the module docstring
    body = re.sub(r"\basync (def|with|for) ", r"\1 ", body)
    body = re.sub(r"\bawait ", "", body)
    for old, new in MODULES:
        body = body.replace(old, new)
    for old, new in NAMES:
        body = re.sub(rf"\b{old}\b", new, body)
    leftover = re.search(r"\b(async|await|anyio|trio|asyncio)\b", body)
    if leftover:
        line = body.count("\n", 0, leftover.start()) + 1
        raise SystemExit(f"{source.name} line ~{line}: {leftover.group()!r} has no sync spelling")
    return header(source) + (DOCSTRING if docstring is None else docstring) + body


def render(pair: tuple[Path, Path, str] | None = None) -> str:
    """The whole text of one generated module (the main one by default), sorted and
    formatted."""
    source, target, docstring = (SOURCE, TARGET, DOCSTRING) if pair is None else pair
    text = unasync(source.read_text(encoding="utf-8"), source, docstring)
    fixes = ["check", "--fix", "--select", "I,F401,RUF022", "--quiet", "--exit-zero"]
    text = _ruff(fixes, text, target)
    return _ruff(["format"], text, target)


def main() -> int:
    stale = 0
    for pair in PAIRS:
        target = pair[1]
        text = render(pair)
        if "--check" in sys.argv[1:]:
            if target.read_text(encoding="utf-8") != text:
                print(f"{target} is stale: run python scripts/gen_sync.py", file=sys.stderr)
                stale = 1
            continue
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")
    return stale


if __name__ == "__main__":
    raise SystemExit(main())
