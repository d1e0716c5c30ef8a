"""Generate the sync public API (``_api.py``) from the async one (``aio.py``).

The public classes (the sandbox, its tmux sessions, the docker-like container shim) are
written once, as coroutines, in ``src/ecs_sandbox_drivers/aio.py``. Everything that differs
between the flavours is policy that lives in the drivers (``AsyncDriver``/``SyncDriver``:
``shared``, ``tear_down``, ``in_thread``, ``run``), so the sync text is the async text with
``async``/``await`` removed and a few names mapped, as the ``unasync`` tool does for trio's
projects and psycopg 3's generator does for its sync classes. The result is sorted and
formatted with ruff, so that it passes the linters like hand-written code.

Run ``python scripts/gen_sync.py`` (``make generate``) after changing ``aio.py``;
``tests/test_generated.py`` fails while ``_api.py`` is stale.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "ecs_sandbox_drivers" / "aio.py"
TARGET = ROOT / "src" / "ecs_sandbox_drivers" / "_api.py"

HEADER = """\
# Generated from aio.py by scripts/gen_sync.py: do not edit. Change aio.py and run
# `make generate`; tests/test_generated.py fails while this file is stale.
"""

DOCSTRING = '''"""The sync public API: ``EcsFargateSandbox.spin_up(...)`` and its tmux sessions.

Names and semantics follow the reference module, so a harness written for it switches by
changing an import. Every method builds one core flow and runs it on the sandbox's driver.
The same classes, as coroutines, are :mod:`ecs_sandbox_drivers.aio` (this module is
generated from that one).
"""'''

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
MODULES = [("from ._async import", "from ._sync import")]


def _ruff(args: list[str], text: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on the generated text:\n{done.stderr}")
    return done.stdout


def unasync(text: str) -> str:
    """The sync text of async ``text``, before sorting and formatting."""
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
        raise SystemExit(f"aio.py line ~{line}: {leftover.group()!r} has no sync spelling")
    return HEADER + DOCSTRING + body


def render() -> str:
    """The whole text of the generated module, sorted and formatted."""
    text = unasync(SOURCE.read_text(encoding="utf-8"))
    text = _ruff(["check", "--fix", "--select", "I,F401,RUF022", "--quiet", "--exit-zero"], text)
    return _ruff(["format"], text)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run python scripts/gen_sync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
