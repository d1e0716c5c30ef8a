"""The Harbor environment's decisions, without Harbor: docker-cp path semantics, results,
and the harness configuration (runs in the main venv; Harbor itself runs in `make peers`)."""

from __future__ import annotations

import importlib
import importlib.util
import posixpath
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import ConfigError, UsageError
from ecs_sandbox_core._exec_flow import ExecResult
from ecs_sandbox_drivers import _harbor_ops as ops
from ecs_sandbox_drivers import _harness
from ecs_sandbox_drivers.local import LocalAws

# --- sandbox paths ------------------------------------------------------------------------

components = st.sampled_from(["a", "b", "dir", ".", "..", "", "x y", "é", "...", ".hidden"])
raw_paths = st.lists(components, max_size=8).map("/".join) | st.lists(
    components, min_size=1, max_size=8
).map(lambda parts: "/" + "/".join(parts))
workdirs = st.sampled_from(["/", "/app", "/app/sub", "/a/b/c"])


def resolve_by_hand(path: str, workdir: str) -> str:
    """The kernel's lexical view of ``path`` from ``workdir`` (no links), component by component."""
    stack: list[str] = [] if path.startswith("/") else [p for p in workdir.split("/") if p]
    for part in path.split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if stack:
                stack.pop()
            continue
        stack.append(part)
    return "/" + "/".join(stack)


@given(raw_paths.filter(bool), workdirs)
def test_sandbox_path_resolves_as_the_kernel_does(path: str, workdir: str) -> None:
    got = ops.sandbox_path(path, workdir)
    assert got == resolve_by_hand(path, workdir)
    assert got.startswith("/") and "//" not in got
    assert got == "/" or not got.endswith("/")
    assert ops.sandbox_path(got, "/elsewhere") == got


def test_sandbox_path_examples() -> None:
    assert ops.sandbox_path("/logs/verifier/", "/") == "/logs/verifier"
    assert ops.sandbox_path("//tests", "/") == "/tests"
    assert ops.sandbox_path("out.txt", "/app") == "/app/out.txt"
    assert ops.sandbox_path("../..", "/app") == "/"
    with pytest.raises(UsageError):
        ops.sandbox_path("", "/app")


@given(raw_paths.filter(bool), workdirs)
def test_an_uploaded_file_lands_as_its_target(path: str, workdir: str) -> None:
    target = ops.sandbox_path(path, workdir)
    if target == "/":
        with pytest.raises(UsageError):
            ops.upload_file_placement(path, workdir)
        return
    place = ops.upload_file_placement(path, workdir)
    assert posixpath.join(place.container_dir, place.filename) == target
    assert "/" not in place.filename and place.filename not in {"", ".", ".."}


@given(raw_paths.filter(bool), workdirs)
def test_a_download_is_written_under_the_sources_base_name(path: str, workdir: str) -> None:
    target = ops.sandbox_path(path, workdir)
    if target == "/":
        with pytest.raises(UsageError):
            ops.download_source(path, workdir)
        return
    source, name = ops.download_source(path, workdir)
    assert source == target
    assert name == posixpath.basename(target) and name not in {"", ".", ".."}


def test_upload_dir_target_is_the_normalised_directory() -> None:
    assert ops.upload_dir_target("/solution/", "/") == "/solution"
    assert ops.upload_dir_target("tests", "/app") == "/app/tests"


# --- local merges: download_dir and download_file --------------------------------------------

names = st.sampled_from(["a", "b", "c"])
# A tree: a name maps to file content (bytes) or to a sub-tree (dict).
trees = st.recursive(
    st.dictionaries(names, st.binary(max_size=3), max_size=3),
    lambda children: st.dictionaries(names, st.binary(max_size=3) | children, max_size=3),
    max_leaves=8,
)


def write_tree(root: Path, tree: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, value in tree.items():
        if isinstance(value, dict):
            write_tree(root / name, value)
        else:
            assert isinstance(value, bytes)
            (root / name).write_bytes(value)


def read_tree(root: Path) -> dict[str, object]:
    return {p.name: read_tree(p) if p.is_dir() else p.read_bytes() for p in sorted(root.iterdir())}


def overlay(target: dict[str, object], source: dict[str, object]) -> dict[str, object]:
    """``cp -r source/. target`` where the source wins every conflict of kind."""
    merged = dict(target)
    for name, value in source.items():
        old = merged.get(name)
        if isinstance(value, dict) and isinstance(old, dict):
            merged[name] = overlay(old, value)
        elif isinstance(value, dict):
            merged[name] = overlay({}, value)
        else:
            merged[name] = value
    return merged


@settings(max_examples=60, deadline=None)
@given(trees, trees)
def test_merge_tree_overlays_the_download_on_what_is_there(
    source: dict[str, object], target: dict[str, object]
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        src, dst = Path(scratch, "src"), Path(scratch, "out", "dst")
        write_tree(src, source)
        if target:
            write_tree(dst, target)
        ops.merge_tree(src, dst)
        assert read_tree(dst) == overlay(target, source)


def test_merge_tree_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        ops.merge_tree(tmp_path / "f", tmp_path / "dst")


def test_merge_tree_replaces_a_local_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_tree(src, {"d": {"f": b"new"}})
    dst.mkdir()
    (dst / "d").symlink_to(outside)
    ops.merge_tree(src, dst)
    assert not (dst / "d").is_symlink() and (dst / "d" / "f").read_bytes() == b"new"
    assert list(outside.iterdir()) == []


def test_place_file_writes_as_the_target(tmp_path: Path) -> None:
    got = tmp_path / "staging" / "oracle.txt"
    got.parent.mkdir()
    got.write_bytes(b"\x00out\r\n")
    target = tmp_path / "agent" / "deep" / "renamed.txt"
    ops.place_file(got, target)
    assert target.read_bytes() == b"\x00out\r\n" and not got.exists()
    again = tmp_path / "staging" / "oracle.txt"
    again.write_bytes(b"second")
    ops.place_file(again, target)
    assert target.read_bytes() == b"second"


def test_place_file_refuses_directories(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        ops.place_file(tmp_path / "d", tmp_path / "t")
    (tmp_path / "f").write_text("x")
    (tmp_path / "t").mkdir()
    with pytest.raises(IsADirectoryError):
        ops.place_file(tmp_path / "f", tmp_path / "t")


# --- exec ------------------------------------------------------------------------------------


def test_exec_mapping() -> None:
    assert ops.shell_argv("echo $HOME | wc") == ["bash", "-c", "echo $HOME | wc"]
    assert ops.user_name(None) is None
    assert ops.user_name(1000) == "1000"
    assert ops.user_name("agent") == "agent"
    with pytest.raises(UsageError):
        ops.user_name(True)
    missing = ops.no_such_user_result("ghost")
    assert missing.return_code == 126 and "ghost" in missing.stderr


@given(st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 255))
def test_harbor_result_keeps_the_streams_apart(out: bytes, err: bytes, code: int) -> None:
    result = ExecResult(exit_code=code, output=out + err, streams=(out, err))
    got = ops.harbor_result(result)
    assert got.return_code == code
    assert got.stdout == out.decode("utf-8", errors="replace")
    assert got.stderr == err.decode("utf-8", errors="replace")


# --- the harness configuration -----------------------------------------------------------------


def test_load_reads_the_local_flag_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[ecs_sandbox]\nlocal = true\ncluster = "c1"\necs_exec_timeout_sec = "30"\n')
    assert _harness.load(path) == (True, {"cluster": "c1", "ecs_exec_timeout_sec": 30})
    path.write_text('cluster = "top"\n')
    assert _harness.load(path) == (False, {"cluster": "top"})


@pytest.mark.parametrize(
    "text",
    ['local = "yes"\n', "no_such_key = 1\n", "not toml [", 'ecs_sandbox = "x"\n'],
)
def test_load_refuses_bad_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        _harness.load(path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        _harness.load(tmp_path / "missing.toml")


def test_config_path_precedence(tmp_path: Path) -> None:
    env = {"ECS_SANDBOX_CONFIG": "/from/env.toml"}
    assert _harness.config_path("/named.toml", env, tmp_path) == Path("/named.toml")
    assert _harness.config_path(None, env, tmp_path) == Path("/from/env.toml")
    assert _harness.config_path(None, {}, tmp_path) is None
    (tmp_path / "ecs-sandbox.toml").write_text("")
    assert _harness.config_path(None, {}, tmp_path) == tmp_path / "ecs-sandbox.toml"


def test_the_package_never_imports_harbor() -> None:
    code = (
        "import sys, ecs_sandbox_drivers, ecs_sandbox_drivers.aio, ecs_sandbox_drivers.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'harbor'))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_harbor_env_needs_harbor() -> None:
    """Without Harbor the module fails to import naming it; with it, it loads."""
    if importlib.util.find_spec("harbor") is None:
        with pytest.raises(ModuleNotFoundError, match="harbor"):
            importlib.import_module("ecs_sandbox_drivers.harbor_env")
        return
    module = importlib.import_module("ecs_sandbox_drivers.harbor_env")
    assert module.EcsSandboxEnvironment.type() == "ecs-sandbox"


# --- one harness per configuration file, shared, closed by its last user ----------------------


def test_harnesses_share_one_local_ecs_and_the_last_user_closes_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("local = true\n")

    async def scenario() -> None:
        harnesses = _harness.Harnesses()
        first = await harnesses.acquire(str(config))
        second = await harnesses.acquire(str(config))
        assert first is second and first.users == 2
        endpoint = first.cfg.endpoint_url or ""
        assert LocalAws.running_at(endpoint) is first.local
        await harnesses.release(first)
        assert not first.driver.closed and LocalAws.running_at(endpoint) is first.local
        # The last user's release runs even from a cancelled scope (a trial cancelled
        # while stopping), and closes the driver and the local ECS.
        with anyio.CancelScope() as scope:
            scope.cancel()
            await harnesses.release(second)
        assert first.driver.closed and LocalAws.running_at(endpoint) is None
        third = await harnesses.acquire(str(config))
        assert third is not first
        await harnesses.release(third)
        assert third.driver.closed

    anyio.run(scenario)
