"""Generated modules are in step with their sources (see each generator's docstring)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _generator(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sync_api_is_generated_from_the_async_one() -> None:
    gen = _generator("gen_sync")
    assert len(gen.PAIRS) == 2
    for pair in gen.PAIRS:
        assert pair[1].read_text(encoding="utf-8") == gen.render(pair), (
            f"{pair[1]} is stale: run python scripts/gen_sync.py"
        )


def test_the_generator_sees_a_change_to_the_async_api(tmp_path: Path) -> None:
    gen = _generator("gen_sync")
    changed = tmp_path / "aio.py"
    changed.write_text(
        gen.SOURCE.read_text(encoding="utf-8").replace(
            "async def exec_text(", "async def exec_text_renamed("
        )
    )
    gen.SOURCE = changed
    assert "def exec_text_renamed(" in gen.render()
    assert "async" not in gen.unasync(changed.read_text()).split('"""', 2)[2].replace(
        "asynchronous", ""
    )


def test_the_generated_modules_say_so_in_their_first_lines() -> None:
    for source, target in (("aio.py", "_api.py"), ("_aio_session.py", "_api_session.py")):
        first = (ROOT / "src/ecs_sandbox_drivers" / target).read_text().splitlines()[0]
        assert first.startswith(f"# Generated from {source} by scripts/gen_sync.py")


def test_every_public_method_exists_in_both_flavours() -> None:
    from ecs_sandbox_drivers import _api, aio  # noqa: PLC0415

    for name in ("EcsFargateSandbox", "EcsFargateTmuxSession", "_Container"):
        sync_names = {n for n in dir(getattr(_api, name)) if not n.startswith("__")}
        async_names = {n for n in dir(getattr(aio, name)) if not n.startswith("__")}
        assert sync_names == async_names, name
