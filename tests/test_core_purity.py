"""The core stays pure: no I/O, clock, randomness or environment reads (checked on its AST)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "ecs_sandbox_core"
FORBIDDEN_MODULES = {
    "subprocess", "socket", "threading", "asyncio", "anyio", "trio", "boto3", "botocore",
    "urllib", "http", "requests", "time", "random", "secrets", "shutil", "tempfile", "select",
    "selectors", "multiprocessing", "signal", "datetime", "uuid", "pathlib",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}
FORBIDDEN_OS = {"environ", "getenv", "system", "popen", "urandom", "getcwd", "listdir", "walk",
                "remove", "unlink", "makedirs", "mkdir", "getpid", "uname"}  # fmt: skip
# Pure value types of otherwise forbidden modules: uuid.UUID holds the data channel's
# message ids (the core derives them from a seed; uuid1/uuid4 would read a clock or entropy).
ALLOWED_FROM = {"uuid": {"UUID"}}
# Every module below the core, subpackages included (a program the core only carries as
# text lives outside it, in the drivers).
MODULES = sorted(CORE.rglob("*.py"))


def violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            allowed = ALLOWED_FROM.get(node.module, set())
            if not all(alias.name in allowed for alias in node.names):
                names = [node.module]
        found += [f"imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if call and node.func.id in FORBIDDEN_CALLS:  # type: ignore[attr-defined]
            found.append(f"calls {node.func.id}()")  # type: ignore[attr-defined]
        attr = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if attr and node.value.id == "os" and node.attr in FORBIDDEN_OS:  # type: ignore[attr-defined]
            found.append(f"uses os.{node.attr}")  # type: ignore[attr-defined]
    return found


def test_the_core_has_modules() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    assert violations(path) == []


def test_the_checker_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os, time\nimport subprocess\nprint(os.environ['X'], open('f'))\n"
        "from uuid import UUID\nfrom uuid import uuid4\nimport uuid\n"
    )
    assert sorted(violations(bad)) == [
        "calls open()",
        "calls print()",
        "imports subprocess",
        "imports time",
        "imports uuid",
        "imports uuid",
        "uses os.environ",
    ]
