"""The in-container programs: real files, embedded in the core by a generator, kept in step."""

from __future__ import annotations

import ast
import base64
import importlib.util
import os
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import _incontainer_gen, _transfer_flow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src" / "ecs_sandbox_drivers" / "_incontainer"
CORE = ROOT / "src" / "ecs_sandbox_core"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_incontainer", ROOT / "scripts/gen_incontainer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(source: str) -> str:
    return ast.dump(ast.parse(source))


@pytest.mark.parametrize("name", ["FETCH_SOURCE", "EXTRACT_SOURCE", "PACK_SOURCE"])
def test_the_embedded_programs_are_not_stale(name: str) -> None:
    # Syntax trees, not text: another Python version's ast.unparse may space things apart.
    gen = _generator()
    fresh = gen.program(gen.PROGRAMS[name])
    assert _tree(getattr(_incontainer_gen, name)) == _tree(fresh), (
        f"{name} is stale: run python scripts/gen_incontainer.py"
    )


def test_the_staleness_check_sees_a_changed_program(tmp_path: Path) -> None:
    gen = _generator()
    gen.SOURCES = tmp_path
    for path in SOURCES.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    before = gen.program("pack.py")
    text = (tmp_path / "pack.py").read_text().replace('"a FIFO"', '"a named pipe"')
    (tmp_path / "pack.py").write_text(text)
    assert _tree(before) != _tree(gen.program("pack.py"))


@pytest.mark.parametrize("name", ["FETCH_SOURCE", "EXTRACT_SOURCE", "PACK_SOURCE"])
def test_the_embedded_programs_need_only_the_standard_library(name: str) -> None:
    tree = ast.parse(getattr(_incontainer_gen, name))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == set()
    # Nothing of ecs-sandbox, docstrings or annotations travels.
    assert "ecs_sandbox" not in getattr(_incontainer_gen, name)
    assert not any(isinstance(n, ast.AnnAssign) for n in ast.walk(tree))


def test_the_core_never_imports_the_programs() -> None:
    # They do I/O: importing them would make the core impure (test_core_purity scans only
    # the core's own top-level modules).
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "_incontainer" not in (node.module or "").split(".") or (
                    node.module == "_incontainer_gen"
                ), path.name
                assert not any(a.name == "_incontainer" for a in node.names), path.name


@pytest.mark.parametrize("packed", ["_EXTRACT_PACKED", "_FETCH_PACKED", "_PACK_PACKED"])
def test_packing_drops_nothing_but_layout(packed: str) -> None:
    one_liner = getattr(_transfer_flow, packed)
    blob = one_liner.split("b64decode('", 1)[1].split("'", 1)[0]
    code = zlib.decompress(base64.b64decode(blob)).decode()
    source = {
        "_EXTRACT_PACKED": _incontainer_gen.EXTRACT_SOURCE,
        "_FETCH_PACKED": _incontainer_gen.FETCH_SOURCE,
        "_PACK_PACKED": _incontainer_gen.PACK_SOURCE,
    }[packed]
    assert _tree(code) == _tree(source)


def _run(program: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, *program, *args],
        check=False,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@settings(max_examples=15, deadline=None)  # four interpreters per example
@given(
    st.dictionaries(
        st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12),
        st.binary(max_size=300),
        max_size=5,
    )
)
def test_the_files_and_their_embedded_text_do_the_same(files: dict[str, bytes]) -> None:
    # Pack a tree with the real file and extract it with the embedded text, and the other
    # way round: both must give back the tree byte for byte.
    import tempfile  # noqa: PLC0415 - hypothesis runs this many times; tmp_path is per test

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree = base / "tree"
        tree.mkdir()
        for name, data in files.items():
            (tree / name).write_bytes(data)
        by_file = [str(SOURCES / "pack.py")]
        embedded = ["-c", _incontainer_gen.PACK_SOURCE]
        for pack, extract in (
            (by_file, ["-c", _incontainer_gen.EXTRACT_SOURCE]),
            (embedded, [str(SOURCES / "extract.py")]),
        ):
            packed = _run(pack, str(tree), cwd=base)
            assert packed.returncode == 0, packed.stderr
            archive = base / "a.tgz"
            archive.write_bytes(packed.stdout)
            out = base / f"out{len(pack)}"
            done = _run(extract, str(archive), str(out), cwd=base)
            assert done.returncode == 0, done.stderr
            got = {p.name: p.read_bytes() for p in (out / "tree").iterdir()}
            assert got == files
