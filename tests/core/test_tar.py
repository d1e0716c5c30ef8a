"""Archives: deterministic builds, member checks, and the in-container scripts run for real."""

from __future__ import annotations

import ast
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._errors import EcsExecError, UnsafeArchiveError, UsageError
from ecs_sandbox_core._tar import (
    EXTRACT_SCRIPT,
    PACK_SCRIPT,
    TarEntry,
    arcname,
    build_tar,
    check_archive,
    check_member,
    upload_entries,
)

# --- helpers --------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, object, int]]:
    """Every path under root: (kind, content or link target, permission bits)."""
    tree: dict[str, tuple[str, object, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st_ = full.lstat()
            if stat.S_ISLNK(st_.st_mode):
                tree[rel] = ("symlink", os.readlink(full), 0)
            elif stat.S_ISDIR(st_.st_mode):
                tree[rel] = ("dir", None, stat.S_IMODE(st_.st_mode))
            elif not stat.S_ISREG(st_.st_mode):
                tree[rel] = ("special", None, stat.S_IMODE(st_.st_mode))  # never read a FIFO
            else:
                tree[rel] = ("file", full.read_bytes(), stat.S_IMODE(st_.st_mode))
    return tree


def run_extract(
    archive: bytes, dest: Path, python: str = sys.executable
) -> subprocess.CompletedProcess[bytes]:
    path = dest.parent / "incoming.tgz"
    path.write_bytes(archive)
    try:
        return subprocess.run(
            [python, "-c", EXTRACT_SCRIPT, str(path), str(dest)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        path.unlink()


def raw_tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A gzip tar built with tarfile directly, as a hostile producer would."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def file_(name: str, data: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return member(name), data


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.SYMTYPE, target), b""


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.LNKTYPE, target), b""


def dir_(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.DIRTYPE), b""


# --- check_member ---------------------------------------------------------------------------

SAFE_COMPONENT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"),
    min_size=1,
    max_size=8,
).filter(lambda c: c not in (".", ".."))


@given(st.lists(SAFE_COMPONENT, min_size=1, max_size=5), st.sampled_from(["file", "dir"]))
def test_relative_names_without_dotdot_are_accepted(parts: list[str], kind: str) -> None:
    check_member("/".join(parts), kind)


@given(st.lists(SAFE_COMPONENT, max_size=3), st.lists(SAFE_COMPONENT, max_size=3))
def test_any_dotdot_component_is_rejected(before: list[str], after: list[str]) -> None:
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.' component"):
        check_member("/".join([*before, "..", *after]), "file")


@given(st.lists(SAFE_COMPONENT, min_size=1, max_size=3))
def test_absolute_names_are_rejected(parts: list[str]) -> None:
    with pytest.raises(UnsafeArchiveError, match="absolute name"):
        check_member("/" + "/".join(parts), "file")


@given(st.text(max_size=30), st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]))
def test_check_member_raises_only_unsafe_archive_error(name: str, kind: str) -> None:
    try:
        check_member(name, kind, "x")
    except UnsafeArchiveError as exc:
        assert str(exc).startswith("unsafe archive member: ")


@pytest.mark.parametrize(
    ("name", "kind", "link", "why"),
    [
        ("", "file", "", "empty name"),
        ("a\0b", "file", "", "NUL"),
        (".", "dir", "", "destination itself"),
        ("./", "dir", "", "destination itself"),
        ("dev", "chr", "", "device"),
        ("dev", "blk", "", "device"),
        ("pipe", "fifo", "", "FIFO"),
        ("weird", "socket", "", "unsupported"),
        ("l", "symlink", "/etc/passwd", "absolute link target"),
        ("l", "symlink", "../x", "escapes"),
        ("a/b/l", "symlink", "../../../x", "escapes"),
        ("l", "symlink", "", "empty link target"),
        ("h", "hardlink", "../x", "escapes"),
        ("h", "hardlink", "/etc/shadow", "absolute link target"),
    ],
)
def test_unsafe_members(name: str, kind: str, link: str, why: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=why) as info:
        check_member(name, kind, link)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    ("name", "link"), [("a/b/l", "../../x"), ("l", "./x/../y"), ("a/l", "../a/b")]
)
def test_symlinks_that_stay_inside_are_accepted(name: str, link: str) -> None:
    check_member(name, "symlink", link)


# --- TarEntry, arcname, upload_entries ------------------------------------------------------


def test_tar_entry_validates() -> None:
    with pytest.raises(UsageError, match="only files carry data"):
        TarEntry("d", "dir", data=b"x")
    with pytest.raises(UsageError, match="only symbolic links"):
        TarEntry("f", "file", target="x")
    with pytest.raises(UsageError, match="kind"):
        TarEntry("f", "fifo")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mode"):
        TarEntry("f", "file", mode=0o10000)
    with pytest.raises(UnsafeArchiveError):
        TarEntry("../f", "file")


def test_arcname() -> None:
    assert arcname("a/./b//c.txt") == "a/b/c.txt"
    assert arcname("local/name.txt", rename="renamed.txt") == "renamed.txt"
    with pytest.raises(UnsafeArchiveError):
        arcname("x", rename="../evil")
    with pytest.raises(UnsafeArchiveError):
        arcname("/abs")


def test_upload_entries_maps_kinds_and_masks_special_bits() -> None:
    entries = upload_entries([("f", b"x", 0o104755)], ["d"], [("l", "f")])
    assert entries == [
        TarEntry("f", "file", data=b"x", mode=0o755),
        TarEntry("d", "dir", mode=0o755),
        TarEntry("l", "symlink", target="f"),
    ]


# --- build_tar ------------------------------------------------------------------------------

NAME = st.sampled_from(["a", "b", "c d", "é", "long" * 30, "x.y"])


@st.composite
def entry_sets(draw: st.DrawFn) -> list[TarEntry]:
    """A consistent tree: every proper prefix of a path is a directory."""
    paths = draw(st.sets(st.lists(NAME, min_size=1, max_size=3).map("/".join), max_size=8))
    prefixes = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    entries = []
    for path in sorted(paths | prefixes):
        # Directories implied by deeper paths may be listed or left implicit.
        if path in prefixes:
            if path not in paths or draw(st.booleans()):
                continue
            entries.append(TarEntry(path, "dir", mode=draw(st.sampled_from([0o755, 0o700]))))
            continue
        kind = draw(st.sampled_from(["file", "dir", "symlink"]))
        if kind == "file":
            data = draw(st.binary(max_size=300))
            entries.append(
                TarEntry(path, "file", data=data, mode=draw(st.sampled_from([0o644, 0o600, 0o755])))
            )
        elif kind == "dir":
            entries.append(TarEntry(path, "dir", mode=0o755))
        else:
            # Targets outside the entry names: no loops, always inside.
            entries.append(TarEntry(path, "symlink", target=draw(st.sampled_from(["t0", "t1/t2"]))))
    return draw(st.permutations(entries))


def read_back(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        infos = tar.getmembers()
        for info in infos:
            if info.isreg():
                extracted = tar.extractfile(info)
                assert extracted is not None
                info.pax_headers = {"data": extracted.read().hex()}
    return infos


@given(entry_sets())
def test_build_tar_round_trips_each_entry_once(entries: list[TarEntry]) -> None:
    data = build_tar(entries)
    infos = read_back(data)
    assert [i.name for i in infos] == sorted(e.name for e in entries)
    by_name = {e.name: e for e in entries}
    for info in infos:
        entry = by_name[info.name]
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        if entry.kind == "file":
            assert info.isreg()
            assert info.pax_headers["data"] == entry.data.hex()
            assert info.mode == entry.mode
        elif entry.kind == "dir":
            assert info.isdir()
            assert info.mode == entry.mode
        else:
            assert info.issym()
            assert info.linkname == entry.target
    assert [m.name for m in check_archive(data)] == [i.name for i in infos]


@given(entry_sets(), st.randoms())
def test_build_tar_is_deterministic_whatever_the_order(
    entries: list[TarEntry], rnd: object
) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    first = build_tar(entries)
    assert build_tar(shuffled) == first
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_build_tar_rejects_duplicates_and_paths_through_links() -> None:
    with pytest.raises(UsageError, match="more than once"):
        build_tar([TarEntry("a/b", "file"), TarEntry("a//b", "file")])
    with pytest.raises(UnsafeArchiveError, match="through symbolic link 'l'"):
        build_tar([TarEntry("l", "symlink", target="d"), TarEntry("l/x", "file")])
    with pytest.raises(UnsafeArchiveError, match="not a directory"):
        build_tar([TarEntry("f", "file"), TarEntry("f/x", "file")])
    # Each link alone stays inside; followed through the other it escapes.
    with pytest.raises(UnsafeArchiveError, match="through other links"):
        build_tar([TarEntry("b", "symlink", target="."), TarEntry("a", "symlink", target="b/..")])


def test_directory_modes_keep_search_bits() -> None:
    (info,) = read_back(build_tar([TarEntry("d", "dir", mode=0o640)]))
    assert info.mode == 0o750


# --- hostile archives: rejected here and by the real extract script --------------------------

Hostile = Callable[[Path], list[tuple[tarfile.TarInfo, bytes]]]

HOSTILE: dict[str, tuple[Hostile, str]] = {
    "absolute name": (lambda out: [file_(str(out / "abs"))], "absolute name"),
    "dotdot escape": (lambda out: [file_("../outside/evil")], "'..'"),
    "inner dotdot escape": (lambda out: [dir_("a"), file_("a/../../outside/evil")], "'..'"),
    "absolute symlink": (lambda out: [sym("l", str(out))], "absolute link target"),
    "escaping symlink": (lambda out: [sym("l", "../outside")], "escapes"),
    "link then write through it": (
        lambda out: [sym("l", "../outside"), file_("l/evil")],
        "escapes",
    ),
    "inside link then write through it": (
        lambda out: [dir_("d"), sym("l", "d"), file_("l/evil")],
        "through symbolic link",
    ),
    "link chain escape": (lambda out: [sym("b", "."), sym("a", "b/..")], "escapes"),
    "escaping hardlink": (lambda out: [hard("h", "../outside/secret")], "escapes"),
    "absolute hardlink": (lambda out: [hard("h", str(out / "secret"))], "absolute"),
    "hardlink to a later member": (
        lambda out: [hard("h", "f"), file_("f")],
        "earlier in the archive",
    ),
    "char device": (lambda out: [(member("null", tarfile.CHRTYPE), b"")], "device"),
    "block device": (lambda out: [(member("sda", tarfile.BLKTYPE), b"")], "device"),
    "fifo": (lambda out: [(member("pipe", tarfile.FIFOTYPE), b"")], "FIFO"),
    "duplicate": (lambda out: [file_("x", b"1"), file_("x", b"2")], "more than once"),
    "safe first member then hostile": (
        lambda out: [file_("fine", b"ok"), file_("../outside/evil")],
        "'..'",
    ),
}


@pytest.fixture
def sandbox_dirs(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    return tmp_path / "dest", outside


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_rejected_everywhere(case: str, sandbox_dirs: tuple[Path, Path]) -> None:
    dest, outside = sandbox_dirs
    build, why = HOSTILE[case]
    data = raw_tar(build(outside))
    with pytest.raises(UnsafeArchiveError, match=why):
        check_archive(data)

    before = snapshot(dest.parent)
    result = run_extract(data, dest)
    assert result.returncode == 3, result.stderr
    line = result.stderr.decode()
    assert line.startswith("unsafe archive member: ") and line.count("\n") == 1
    assert why in line
    assert snapshot(dest.parent) == before  # nothing written, not even dest


def test_existing_link_in_dest_pointing_outside_is_not_followed(
    sandbox_dirs: tuple[Path, Path],
) -> None:
    dest, outside = sandbox_dirs
    dest.mkdir()
    (dest / "pre").symlink_to(outside)
    before = snapshot(dest.parent)
    result = run_extract(build_tar([TarEntry("pre/evil", "file", data=b"x")]), dest)
    assert result.returncode == 3
    assert b"outside the destination" in result.stderr
    assert snapshot(dest.parent) == before


def test_existing_inside_link_cannot_turn_a_relative_target_outward(
    sandbox_dirs: tuple[Path, Path],
) -> None:
    dest, _ = sandbox_dirs
    dest.mkdir()
    (dest / "up").symlink_to(".")  # dest/up is dest itself, so up/l's ".." is dest's parent
    before = snapshot(dest.parent)
    archive = build_tar([TarEntry("up/l", "symlink", target="../outside")])
    check_archive(archive)  # fine on its own: only the destination makes it escape
    result = run_extract(archive, dest)
    assert result.returncode == 3, result.stderr
    assert snapshot(dest.parent) == before


def test_existing_link_at_a_member_path_is_replaced_not_written_through(
    sandbox_dirs: tuple[Path, Path],
) -> None:
    dest, outside = sandbox_dirs
    dest.mkdir()
    (dest / "f").symlink_to(outside / "secret")
    (dest / "d").symlink_to(outside)
    archive = build_tar(
        [
            TarEntry("f", "file", data=b"new"),
            TarEntry("d/x", "file", data=b"y"),
            TarEntry("d", "dir"),
        ]
    )
    result = run_extract(archive, dest)
    assert result.returncode == 0, result.stderr
    assert (outside / "secret").read_bytes() == b"secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"new"
    assert not (dest / "d").is_symlink() and (dest / "d" / "x").read_bytes() == b"y"


def test_member_that_would_replace_a_directory_is_a_conflict(
    sandbox_dirs: tuple[Path, Path],
) -> None:
    dest, _ = sandbox_dirs
    (dest / "x").mkdir(parents=True)
    before = snapshot(dest.parent)
    result = run_extract(build_tar([TarEntry("a", "file"), TarEntry("x", "file")]), dest)
    assert result.returncode == 4
    assert result.stderr.startswith(b"archive conflicts with destination: 'x'")
    assert snapshot(dest.parent) == before


def test_unreadable_archive_fails_cleanly(tmp_path: Path) -> None:
    result = run_extract(b"not a tar", tmp_path / "dest")
    assert result.returncode == 1
    assert b"cannot read the archive" in result.stderr
    with pytest.raises(EcsExecError, match="not a readable gzip tar"):
        check_archive(b"not a tar")


# --- safe archives extract byte for byte -----------------------------------------------------

SAFE = [
    TarEntry("top.bin", "file", data=bytes(range(256)) * 3, mode=0o600),
    TarEntry("bin/run.sh", "file", data=b"#!/bin/sh\necho hi\n", mode=0o755),
    TarEntry("bin", "dir", mode=0o750),
    TarEntry("deep/er/still/empty.txt", "file", data=b"", mode=0o644),
    TarEntry("locked", "dir", mode=0o500),
    TarEntry("locked/inside.txt", "file", data=b"ro", mode=0o444),
    TarEntry("ünïcode name.txt", "file", data="é".encode(), mode=0o640),
    TarEntry("links/to-bin", "symlink", target="../bin/run.sh"),
    TarEntry("links/dangling", "symlink", target="nowhere"),
]


def expected_tree(entries: list[TarEntry]) -> dict[str, tuple[str, object, int]]:
    tree: dict[str, tuple[str, object, int]] = {}
    for e in entries:
        if e.kind == "file":
            tree[e.name] = ("file", e.data, e.mode)
        elif e.kind == "dir":
            tree[e.name] = ("dir", None, e.mode)
        else:
            tree[e.name] = ("symlink", e.target, 0)
    return tree


def implied_dirs_removed(
    tree: dict[str, tuple[str, object, int]], entries: list[TarEntry]
) -> dict[str, tuple[str, object, int]]:
    names = {e.name for e in entries}
    return {k: v for k, v in tree.items() if k in names}


def interpreters() -> list[str]:
    """This interpreter, plus a Python 3.8 when one runs here (the oldest the scripts support)."""
    found = [sys.executable]
    for candidate in (os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python3"), "python3.8"):
        path = shutil.which(candidate)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == b"(3, 8)":
            found.append(path)
            break
    return found


@pytest.mark.parametrize("python", interpreters())
def test_safe_archive_extracts_exactly(tmp_path: Path, python: str) -> None:
    dest = tmp_path / "dest"
    result = run_extract(build_tar(SAFE), dest, python=python)
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == b""
    tree = snapshot(dest)
    assert implied_dirs_removed(tree, SAFE) == expected_tree(SAFE)
    assert set(tree) - {e.name for e in SAFE} == {"deep", "deep/er", "deep/er/still", "links"}
    os.chmod(dest / "locked", 0o700)  # let pytest clean up


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=entry_sets())
def test_generated_archives_extract_exactly(tmp_path: Path, entries: list[TarEntry]) -> None:
    dest = tmp_path / f"dest{len(os.listdir(tmp_path))}"
    result = run_extract(build_tar(entries), dest)
    assert result.returncode == 0, result.stderr
    assert implied_dirs_removed(snapshot(dest), entries) == expected_tree(entries)


def test_extract_script_is_python38_source() -> None:
    for script in (EXTRACT_SCRIPT, PACK_SCRIPT):
        ast.parse(script, feature_version=(3, 8))


# --- the pack script, run for real -----------------------------------------------------------


def run_pack(path: Path | str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", PACK_SCRIPT, str(path)], capture_output=True, timeout=60, check=False
    )


def make_tree(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a" / "b" / "c" / "blob.bin").write_bytes(os.urandom(70_000))
    (root / "a" / "text.txt").write_text("hello\n")
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("a/text.txt")
    (root / "dirlink").symlink_to("a")
    (root / "dangling").symlink_to("missing")
    os.link(root / "a" / "text.txt", root / "hard.txt")
    os.mkfifo(root / "fifo")


def test_pack_round_trips_a_tree(tmp_path: Path) -> None:
    src = tmp_path / "work"
    src.mkdir()
    make_tree(src)
    result = run_pack(src)
    assert result.returncode == 0, result.stderr
    members = check_archive(result.stdout)
    names = [m.name for m in members]
    assert len(names) == len(set(names))
    assert names[0] == "work"
    assert "work/fifo" not in names
    kinds = {m.name: m.kind for m in members}
    assert kinds["work/link"] == kinds["work/dirlink"] == "symlink"
    assert "work/dirlink/text.txt" not in names  # links are stored, not followed

    out = tmp_path / "copy"
    extracted = run_extract(result.stdout, out)
    assert extracted.returncode == 0, extracted.stderr
    expected = snapshot(src)
    del expected["fifo"]
    assert snapshot(out / "work") == expected
    assert snapshot(out)["work"][2] == stat.S_IMODE(src.stat().st_mode)


def test_pack_single_file_and_trailing_slash(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_bytes(b"x")
    single = check_archive(run_pack(tmp_path / "d" / "f.txt").stdout)
    assert [(m.name, m.kind, m.size) for m in single] == [("f.txt", "file", 1)]
    slashed = check_archive(run_pack(f"{tmp_path / 'd'}/").stdout)
    assert [m.name for m in slashed] == ["d", "d/f.txt"]


def test_pack_follows_the_named_link_only(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    (tmp_path / "alias").symlink_to("real")
    members = check_archive(run_pack(tmp_path / "alias").stdout)
    assert [(m.name, m.kind) for m in members] == [("alias", "dir"), ("alias/f", "file")]


def test_pack_missing_path_exits_2(tmp_path: Path) -> None:
    result = run_pack(tmp_path / "nope")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr == f"no such path: {tmp_path / 'nope'}\n".encode()


# --- long names, and failures that name their reason briefly ---------------------------------

LONG_COMPONENT = "x" * 6000
DEEP = "/".join(["d" * 200] * 30)  # 6029 characters, every component allowed on its own


@pytest.mark.parametrize(
    ("name", "kind", "link", "why"),
    [
        (LONG_COMPONENT, "file", "", "a name component is 6000 bytes, more than 255"),
        (DEEP, "dir", "", "name is 6029 bytes, more than 4095"),
        ("é" * 128, "file", "", "a name component is 256 bytes, more than 255"),
        ("l", "symlink", "a/" * 2100, "link target is 4200 bytes, more than 4095"),
    ],
)
def test_overlong_names_are_refused_with_the_reason_and_a_short_name(
    name: str, kind: str, link: str, why: str
) -> None:
    with pytest.raises(UnsafeArchiveError) as caught:
        check_member(name, kind, link)
    message = caught.value.message
    assert why in message
    assert len(message) < 200
    if len(name) > 91:
        quoted = repr(name)
        assert f"{quoted[:60]}...{quoted[-30:]} ({len(name)} characters)" in message


# Lengths drawn evenly (Hypothesis favours short text), characters of 1 to 4 UTF-8 bytes.
_ANY_COMPONENT = (
    st.integers(1, 300)
    .flatmap(
        lambda n: st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0")
            | st.sampled_from("aé日😀"),
            min_size=n,
            max_size=n,
        )
    )
    .filter(lambda c: c not in (".", ".."))
)


@given(st.lists(_ANY_COMPONENT, min_size=1, max_size=25))
def test_names_are_refused_exactly_when_the_kernel_would_refuse_them(parts: list[str]) -> None:
    name = "/".join(parts)
    fits = all(len(p.encode()) <= 255 for p in parts) and len(name.encode()) <= 4095
    try:
        check_member(name, "file")
    except UnsafeArchiveError as exc:
        assert not fits
        assert "bytes, more than" in exc.message
        assert len(exc.message) < 250
    else:
        assert fits


def test_build_tar_refuses_an_overlong_name_before_anything_is_built() -> None:
    with pytest.raises(UnsafeArchiveError, match="more than 255"):
        build_tar([TarEntry(LONG_COMPONENT, "file", data=b"x")])


def assert_one_brief_line(stderr: bytes, *fragments: str) -> None:
    text = stderr.decode()
    assert "Traceback" not in text, text[:2000]
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == 1, text[:2000]
    assert len(lines[0]) < 300, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (LONG_COMPONENT, "a name component is 6000 bytes, more than 255"),
        (DEEP, "name is 6029 bytes, more than 4095"),
    ],
)
def test_extract_script_refuses_overlong_names_in_one_line(
    tmp_path: Path, name: str, why: str
) -> None:
    result = run_extract(raw_tar([file_(name)]), tmp_path / "dest")
    assert result.returncode == 3
    assert_one_brief_line(result.stderr, "unsafe archive member: ", why, "characters)")
    assert not (tmp_path / "dest").exists()


def test_extract_script_names_an_os_error_instead_of_a_traceback(tmp_path: Path) -> None:
    # Every component and the name fit, but not once the destination is put in front.
    name = "/".join(["d" * 200] * 19 + ["e" * 250])
    dest = tmp_path / "dest"
    assert len(str(dest)) + 1 + len(name) > 4095
    result = run_extract(raw_tar([file_(name)]), dest)
    assert result.returncode == 7
    assert_one_brief_line(
        result.stderr, "ecs-sandbox: cannot extract ", "File name too long", "(4069 characters)"
    )


def test_extract_into_a_file_names_the_reason(tmp_path: Path) -> None:
    (tmp_path / "dest").write_bytes(b"in the way")
    result = run_extract(raw_tar([file_("f")]), tmp_path / "dest")
    assert result.returncode == 7
    assert_one_brief_line(result.stderr, "cannot extract ", "dest", "File exists")


_HOSTILE_NAME = st.one_of(
    st.lists(_ANY_COMPONENT, min_size=1, max_size=3).map("/".join),
    st.integers(1, 40).map(lambda n: "/".join(["n" * 200] * n)),
    st.integers(250, 7000).map(lambda n: "x" * n),
    st.sampled_from(["../x", "/abs", "a/../../b", "ünï/cødé", "sp ace/$(id)"]),
)
_HOSTILE_MEMBER = st.tuples(
    _HOSTILE_NAME,
    st.sampled_from(
        [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
    ),
    st.sampled_from(["", "a", "../..", "/etc", "x" * 5000]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.lists(_HOSTILE_MEMBER, min_size=1, max_size=4))
def test_extract_script_never_lets_a_traceback_out(
    tmp_path: Path, members: list[tuple[str, bytes, str]]
) -> None:
    dest = tmp_path / f"dest{len(os.listdir(tmp_path))}"
    archive = raw_tar(
        [(member(n, k, link), b"x" if k == tarfile.REGTYPE else b"") for n, k, link in members]
    )
    result = run_extract(archive, dest)
    if result.returncode != 0:
        assert result.returncode in (3, 4, 7), result.stderr[:2000]
        assert_one_brief_line(result.stderr)


# --- the pack script's limits and refusals ----------------------------------------------------


def run_pack_limited(
    path: Path, max_bytes: int, max_members: int
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", PACK_SCRIPT, str(path), str(max_bytes), str(max_members)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_pack_refuses_a_tree_over_the_byte_limit_before_sending_anything(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "f").write_bytes(b"\0" * 100_000)
    result = run_pack_limited(tmp_path / "big", 50_000, 100)
    assert (result.returncode, result.stdout) == (6, b"")
    assert_one_brief_line(result.stderr, "too large to download", "max_download_bytes")
    fits = run_pack_limited(tmp_path / "big", 200_000, 100)
    assert fits.returncode == 0, fits.stderr
    assert [m.name for m in check_archive(fits.stdout, max_bytes=200_000)] == ["big", "big/f"]


def test_pack_refuses_a_tree_over_the_member_limit(tmp_path: Path) -> None:
    (tmp_path / "many").mkdir()
    for i in range(10):
        (tmp_path / "many" / str(i)).write_bytes(b"")
    result = run_pack_limited(tmp_path / "many", 1 << 20, 10)
    assert (result.returncode, result.stdout) == (6, b"")
    assert_one_brief_line(result.stderr, "more than 10 members", "max_download_members")
    assert run_pack_limited(tmp_path / "many", 1 << 20, 11).returncode == 0


def test_pack_refuses_a_named_fifo_and_a_dangling_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    result = run_pack(tmp_path / "pipe")
    assert (result.returncode, result.stdout) == (4, b"")
    assert_one_brief_line(result.stderr, "it is a FIFO")
    (tmp_path / "dangling").symlink_to("missing")
    assert run_pack(tmp_path / "dangling").returncode == 2


@given(st.text(max_size=400))
def test_names_are_shown_bounded_and_alike_on_both_sides(name: str) -> None:
    from ecs_sandbox_core._tar import shown_name  # noqa: PLC0415
    from ecs_sandbox_drivers._incontainer.common import short  # noqa: PLC0415 - scripts' helper

    shown = shown_name(name)
    assert shown == short(name)
    assert len(shown) <= 93 + len(f" ({len(name)} characters)")
    if len(repr(name)) <= 93:
        assert shown == repr(name)
