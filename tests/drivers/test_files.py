"""The harness side of copies, on the real file system: hostile source trees (FIFOs, sockets,
devices, links to /dev/null, long and non-ASCII names) and downloads that are too large."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import UnsafeArchiveError, UsageError
from ecs_sandbox_core._tar import TarEntry, build_tar, check_archive
from ecs_sandbox_drivers._files import build_upload, write_download

SPECIAL_MODES = {
    "fifo": (stat.S_IFIFO, "a FIFO"),
    "socket": (stat.S_IFSOCK, "a socket"),
    "chr": (stat.S_IFCHR, "a character device"),  # /dev/null's numbers: reads as empty
    "blk": (stat.S_IFBLK, "a block device"),  # a loop device's numbers; never opened
}
DEVICE_NUMBERS = {"chr": os.makedev(1, 3), "blk": os.makedev(7, 0)}


def make_special(path: Path, kind: str) -> None:
    mode, _ = SPECIAL_MODES[kind]
    os.mknod(path, 0o600 | mode, DEVICE_NUMBERS.get(kind, 0))


def unblock_fifos(root: Path) -> None:
    """Give every FIFO under ``root`` a writer that closes at once, so a blocked reader ends."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if stat.S_ISFIFO(path.lstat().st_mode):
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError as exc:  # nobody reading: nothing to unblock
                    assert exc.errno == errno.ENXIO


def call_unblocked(fn: Callable[[], Any], root: Path) -> tuple[Any, BaseException | None]:
    """``fn()``'s value or error; a call that blocks (on a FIFO) fails the test, not hangs it."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)  # a hang guard, not a timing assertion: the call returns in milliseconds
    if thread.is_alive():
        unblock_fifos(root)
        thread.join(60)
        pytest.fail("build_upload blocked reading a FIFO")
    return outcome.get("value"), outcome.get("error")


# --- hostile source trees ---------------------------------------------------------------------

_NAME = st.one_of(
    st.sampled_from(["a", "b c", "é", "日本", "-n", "$(id)", "new\nline", "x" * 255, "é" * 127]),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"),
        min_size=1,
        max_size=12,
    ),
).filter(lambda n: n not in (".", ".."))
_KIND = st.sampled_from(["file", "dir", "link", "devnull-link", "fifo", "socket", "chr", "blk"])


def materialise(root: Path, entries: list[tuple[list[str], str, bytes]]) -> dict[str, str]:
    """Create what can be created of ``entries`` under ``root``; returns {relative path: kind}."""
    made: dict[str, str] = {}
    for parts, kind, data in entries:
        rel = "/".join(parts)
        path = root.joinpath(*parts)
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if any(made.get(p, "dir") != "dir" for p in parents) or rel in made:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        made.update({p: "dir" for p in parents})
        if kind == "file":
            path.write_bytes(data)
        elif kind == "dir":
            path.mkdir()
        elif kind == "link":
            # Relative and inside: a plain link to copy as it is (never to itself: a link
            # that resolves to itself is a loop, which the checker rightly refuses).
            path.symlink_to("a" if parts[-1] != "a" else "b")
        elif kind == "devnull-link":
            path.symlink_to("/dev/null")
        else:
            make_special(path, kind)
        made[rel] = kind
    return made


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(
        st.tuples(st.lists(_NAME, min_size=1, max_size=3), _KIND, st.binary(max_size=64)),
        max_size=8,
    )
)
def test_hostile_trees_are_refused_before_anything_is_read_or_copied_exactly(
    tmp_path: Path, entries: list[tuple[list[str], str, bytes]]
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "src"
    root.mkdir()
    made = materialise(root, entries)
    archive, error = call_unblocked(lambda: build_upload(root), root)
    specials = {rel: kind for rel, kind in made.items() if kind in SPECIAL_MODES}
    if specials:
        assert isinstance(error, UsageError) and not isinstance(error, UnsafeArchiveError), error
        message = error.message
        assert "not a regular file, directory or symbolic link" in message
        assert "nothing was copied" in message
        if len(specials) <= 5:
            for kind in specials.values():
                assert f"({SPECIAL_MODES[kind][1]})" in message
        else:
            assert f"and {len(specials) - 5} more" in message
        return
    if "devnull-link" in made.values():
        assert isinstance(error, UnsafeArchiveError), error
        assert "absolute link target" in error.message
        return
    assert error is None, error
    members = {m.name: m for m in check_archive(archive)}
    kinds = {"file": "file", "dir": "dir", "link": "symlink"}
    assert {name: m.kind for name, m in members.items()} == {
        rel: kinds[kind] for rel, kind in made.items()
    }
    with tarfile.open(fileobj=__import__("io").BytesIO(archive), mode="r:gz") as tar:
        for rel, kind in made.items():
            if kind == "file":
                extracted = tar.extractfile(rel)
                assert extracted is not None
                assert extracted.read() == root.joinpath(rel).read_bytes()


@pytest.mark.parametrize("kind", sorted(SPECIAL_MODES))
def test_a_special_file_named_directly_is_refused_by_its_kind(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing"
    make_special(path, kind)
    _, error = call_unblocked(lambda: build_upload(path), tmp_path)
    assert isinstance(error, UsageError), error
    assert f"'{path}' ({SPECIAL_MODES[kind][1]})" in error.message


def test_a_fifo_in_the_tree_is_refused_without_blocking(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.txt").write_bytes(b"fine")
    os.mkfifo(src / "sub" / "pipe")
    make_special(src / "null", "chr")
    _, error = call_unblocked(lambda: build_upload([src]), src)
    assert isinstance(error, UsageError)
    assert "(a FIFO)" in error.message and "(a character device)" in error.message
    assert "2 paths are not" in error.message


def test_a_file_swapped_for_a_fifo_after_the_listing_is_refused(tmp_path: Path) -> None:
    # The read opens without blocking and checks the open descriptor: what is read is what
    # was checked, whatever happened to the path since it was listed.
    from ecs_sandbox_drivers import _files  # noqa: PLC0415 - the private reader itself

    os.mkfifo(tmp_path / "was-a-file")
    _, error = call_unblocked(lambda: _files._read_regular(tmp_path / "was-a-file"), tmp_path)
    assert isinstance(error, UsageError) and "(a FIFO)" in error.message
    (tmp_path / "now-a-link").symlink_to("/dev/null")
    with pytest.raises(UsageError, match="became a symbolic link"):
        _files._read_regular(tmp_path / "now-a-link")


def test_a_character_device_is_never_uploaded_as_an_empty_file(tmp_path: Path) -> None:
    make_special(tmp_path / "null", "chr")
    (tmp_path / "keep.txt").write_bytes(b"x")
    with pytest.raises(UsageError, match="a character device"):
        build_upload([tmp_path / "keep.txt", tmp_path / "null"])


# --- downloads ----------------------------------------------------------------------------------


def zeros_bomb(unpacked: int) -> bytes:
    """A gzip tar whose one file claims ``unpacked`` zero bytes (whole MiBs), tiny on the wire."""
    info = tarfile.TarInfo("out/zeros")
    info.size = unpacked
    mib = gzip.compress(b"\0" * (1 << 20), 9)
    return gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT)) + mib * (unpacked >> 20)


@pytest.fixture
def local_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "local"
    shutil.rmtree(tmp_path / "local", ignore_errors=True)


def test_a_gzip_bomb_writes_nothing(local_dir: Path) -> None:
    bomb = zeros_bomb(256 << 20)
    assert len(bomb) < 500_000
    with pytest.raises(Exception) as caught:
        write_download(bomb, local_dir, max_bytes=8 << 20)
    assert type(caught.value).__name__ == "DownloadTooLargeError"
    assert "max_download_bytes" in str(caught.value)
    assert not local_dir.exists()


def test_too_many_members_write_nothing(local_dir: Path) -> None:
    archive = build_tar([TarEntry(f"out/{i}", "file", data=b"x") for i in range(50)])
    with pytest.raises(Exception, match="max_download_members") as caught:
        write_download(archive, local_dir, max_members=49)
    assert type(caught.value).__name__ == "DownloadTooLargeError"
    assert not local_dir.exists()
    written = write_download(archive, local_dir, max_members=50)
    assert written == [local_dir / "out"] and len(list((local_dir / "out").iterdir())) == 50


def test_downloads_need_tarfiles_extraction_filters(
    local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No interpreter without the filters can run this package here, so the one fact the
    # guard reads is taken away (the real interpreters are checked against the metadata below).
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(UsageError, match="extraction filters") as caught:
        write_download(build_tar([TarEntry("f", "file")]), local_dir)
    assert "3.10.12" in str(caught.value)
    assert not local_dir.exists()


# --- requires-python admits no interpreter without the filters ---------------------------------


def _requires_python() -> Any:
    from packaging.specifiers import SpecifierSet  # noqa: PLC0415 - pytest's own dependency

    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover
        import tomli as tomllib  # noqa: PLC0415
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return SpecifierSet(tomllib.loads(pyproject.read_text())["project"]["requires-python"])


def test_requires_python_excludes_the_releases_without_extraction_filters() -> None:
    spec = _requires_python()
    # tarfile.data_filter arrived in 3.10.12, 3.11.4 and 3.12.0 (PEP 706).
    missing = [f"3.10.{n}" for n in range(12)] + [f"3.11.{n}" for n in range(4)]
    present = ["3.10.12", "3.10.16", "3.11.4", "3.11.11", "3.12.0", "3.13.1"]
    assert [v for v in missing if spec.contains(v)] == []
    assert [v for v in present if not spec.contains(v)] == []


def _interpreters() -> list[str]:
    """This interpreter and every other CPython 3 installed here (pyenv's, if any)."""
    found = {sys.executable}
    found |= {str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python3")}
    return sorted(found)


@pytest.mark.parametrize("python", _interpreters())
def test_every_admitted_interpreter_here_has_the_filters(python: str) -> None:
    probe = subprocess.run(
        [
            python,
            "-c",
            "import sys, tarfile; print('%d.%d.%d' % sys.version_info[:3], "
            "hasattr(tarfile, 'data_filter'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    version, has_filter = probe.stdout.split()
    if _requires_python().contains(version):
        assert has_filter == "True", version
