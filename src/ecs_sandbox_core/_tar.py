"""Archives that carry files into and out of a sandbox.

Uploads are gzip tars built here, in memory, from entries the driver read from disk; the
container unpacks them with :data:`EXTRACT_SCRIPT`. Downloads are packed in the container
by :data:`PACK_SCRIPT` and checked here by :func:`check_archive` before the driver writes
anything.

Safety rules, the same on both sides (the in-container script carries its own copy because
it runs where this package is not installed): a member name is relative, has no ``..``
component (a lexical ``a/../b`` and the kernel disagree as soon as ``a`` is a symbolic
link) and appears once; only regular files, directories, symbolic and hard links are
allowed; no member's path passes through a symbolic link of the archive; a symbolic link
must resolve inside the destination, following the archive's other links; a hard link must
name a regular file that comes earlier in the archive. The extract script also follows the
links that already exist in the destination when it decides where a member would land.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ._errors import EcsExecError, UnsafeArchiveError, UsageError

EntryKind = Literal["file", "dir", "symlink"]
MemberKind = Literal["file", "dir", "symlink", "hardlink"]
_ENTRY_KINDS = frozenset({"file", "dir", "symlink"})
_MEMBER_KINDS: dict[str, MemberKind] = {
    "file": "file",
    "dir": "dir",
    "symlink": "symlink",
    "hardlink": "hardlink",
}
_SAFE_KINDS = frozenset(_MEMBER_KINDS)
_SPECIAL_KINDS = frozenset({"chr", "blk", "fifo", "device"})
_MAX_LINK_HOPS = 40  # the kernel's own limit on symbolic links followed in one lookup
_GZIP_LEVEL = 6

# Exit codes of the in-container scripts, shared with the flows that read them.
EXIT_NO_SUCH_PATH = 2
EXIT_UNSAFE = 3
EXIT_CONFLICT = 4
UNSAFE_PREFIX = "unsafe archive member: "
CONFLICT_PREFIX = "archive conflicts with destination: "


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member of an upload archive.

    ``name`` is the path inside the destination (``/``-separated, relative). ``data`` is a
    file's content, ``target`` a symbolic link's target, ``mode`` the permission bits
    (special bits are dropped when the archive is built).
    """

    name: str
    kind: EntryKind
    data: bytes = b""
    target: str = ""
    mode: int = 0o644

    def __post_init__(self) -> None:
        if self.kind not in _ENTRY_KINDS:
            raise UsageError(f"TarEntry kind must be file, dir or symlink, not {self.kind!r}")
        if isinstance(self.mode, bool) or not isinstance(self.mode, int):
            raise UsageError(f"TarEntry mode must be an int, not {self.mode!r}")
        if not 0 <= self.mode <= 0o7777:
            raise UsageError(f"TarEntry mode {self.mode:o} is not a permission mode")
        if self.data and self.kind != "file":
            raise UsageError(f"{self.name!r}: only files carry data")
        if self.target and self.kind != "symlink":
            raise UsageError(f"{self.name!r}: only symbolic links carry a target")
        check_member(self.name, self.kind, self.target)


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """A member of an archive that passed :func:`check_archive` (its name normalised)."""

    name: str
    kind: MemberKind
    size: int
    mode: int
    linkname: str = ""


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _resolve(start: Sequence[str], rest: Sequence[str], links: Mapping[str, str]) -> str | None:
    """Follow ``rest`` from the directory ``start`` like the kernel would, through ``links``.

    Returns the normalised path it ends at, or None if it leaves the root or loops.
    """
    current = list(start)
    todo = list(rest)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return None
            current.pop()
            continue
        current.append(part)
        target = links.get("/".join(current))
        if target is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS or target.startswith("/"):
            return None
        current.pop()
        todo[:0] = target.split("/")
    return "/".join(current)


def _problem(name: str, kind: str, linkname: str) -> str | None:
    if kind in _SPECIAL_KINDS:
        return "device files and FIFOs are not allowed"
    if kind not in _SAFE_KINDS:
        return f"unsupported member type {kind!r}"
    if not name:
        return "empty name"
    if "\0" in name or "\0" in linkname:
        return "NUL character in name"
    if name.startswith("/"):
        return "absolute name"
    parts = _parts(name)
    if ".." in parts:
        return "'..' component in name"
    if not parts:
        return "names the destination itself"
    if kind in ("symlink", "hardlink"):
        if not linkname:
            return "empty link target"
        if linkname.startswith("/"):
            return "absolute link target"
    if kind == "symlink" and _resolve(parts[:-1], linkname.split("/"), {}) is None:
        return "link target escapes the destination"
    if kind == "hardlink" and (".." in _parts(linkname) or not _parts(linkname)):
        return "hard link target escapes the destination"
    return None


def _unsafe(name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{UNSAFE_PREFIX}{name!r}: {why}")


def check_member(name: str, kind: str, linkname: str = "") -> None:
    """Raise :class:`UnsafeArchiveError` unless one member is safe on its own.

    ``kind`` is ``file``, ``dir``, ``symlink`` or ``hardlink``; ``chr``, ``blk`` and
    ``fifo`` (and anything else) are refused. ``linkname`` is a symbolic link's target
    (relative to the link's directory) or a hard link's target (relative to the root).
    Rules that need the whole archive are in :func:`check_archive` and :func:`build_tar`.
    """
    why = _problem(name, kind, linkname)
    if why is not None:
        raise _unsafe(name, why)


def _check_tree(members: Sequence[tuple[str, str, str]]) -> None:
    """Archive-wide rules over (normalised name, kind, linkname), in archive order."""
    kinds = {name: kind for name, kind, _ in members}
    links = {name: link for name, kind, link in members if kind == "symlink"}
    position = {name: i for i, (name, _, _) in enumerate(members)}
    for index, (name, kind, link) in enumerate(members):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if kinds.get(prefix) == "symlink":
                raise _unsafe(name, f"path passes through symbolic link {prefix!r}")
            if kinds.get(prefix, "dir") != "dir":
                raise _unsafe(name, f"parent {prefix!r} is not a directory")
        if kind == "symlink" and _resolve(parts[:-1], link.split("/"), links) is None:
            raise _unsafe(name, "link target escapes the destination through other links")
        if kind == "hardlink":
            target = "/".join(_parts(link))
            if kinds.get(target) != "file" or position[target] >= index:
                raise _unsafe(name, "hard link target is not a file earlier in the archive")


def _normal(name: str) -> str:
    return "/".join(_parts(name))


def _dir_mode(mode: int) -> int:
    # A directory nobody can enter is never what a copy means: each read bit brings its
    # search bit along (like chmod's "X"), so a file-like 0o644 becomes 0o755.
    mode &= 0o777
    return mode | ((mode & 0o444) >> 2)


def build_tar(entries: Iterable[TarEntry]) -> bytes:
    """A deterministic gzip tar of ``entries``.

    Members are written once each, sorted by name (parents before children, and the bytes
    do not depend on the order the driver walked the disk in), with mtime 0, uid/gid 0,
    empty owner names and a gzip header without time or file name: the same entries always
    give the same bytes. Parent directories need no entries of their own. Raises
    :class:`UsageError` for a name given twice and :class:`UnsafeArchiveError` for entries
    that break the archive-wide rules (a path through a symbolic link, say).
    """
    by_name: dict[str, TarEntry] = {}
    for entry in entries:
        name = _normal(entry.name)
        if name in by_name:
            raise UsageError(f"archive member {name!r} is given more than once")
        by_name[name] = entry
    ordered = sorted(by_name)
    _check_tree([(n, by_name[n].kind, by_name[n].target) for n in ordered])

    buffer = io.BytesIO()
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=_GZIP_LEVEL
        ) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar,
    ):
        for name in ordered:
            entry = by_name[name]
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "file":
                info.type = tarfile.REGTYPE
                info.mode = entry.mode & 0o777
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            elif entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = _dir_mode(entry.mode)
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE
                info.mode = 0o777
                info.linkname = entry.target
                tar.addfile(info)
    return buffer.getvalue()


def arcname(rel: str, *, rename: str | None = None) -> str:
    """The archive name for a local path ``rel`` (``/``-separated, relative to the upload).

    ``rename`` replaces it: a single file copied under another name (``container_filename``).
    The result is normalised and passes :func:`check_member` as a file name.
    """
    name = rel if rename is None else rename
    check_member(name, "file")
    return _normal(name)


def upload_entries(
    files: Sequence[tuple[str, bytes, int]],
    dirs: Sequence[str],
    links: Sequence[tuple[str, str]],
) -> list[TarEntry]:
    """Entries for :func:`build_tar` from what a driver read: (name, data, mode) files,
    directory names (mode 0o755) and (name, target) symbolic links."""
    entries = [TarEntry(name, "file", data=data, mode=mode & 0o777) for name, data, mode in files]
    entries += [TarEntry(name, "dir", mode=0o755) for name in dirs]
    entries += [TarEntry(name, "symlink", target=target) for name, target in links]
    return entries


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr():
        return "chr"
    if info.isblk():
        return "blk"
    if info.isfifo():
        return "fifo"
    return f"type {info.type!r}"


def check_archive(data: bytes) -> list[ArchiveMember]:
    """Check a gzip tar that came back from a sandbox before anything is written locally.

    Every member must pass :func:`check_member`, appear once and satisfy the archive-wide
    rules (see the module docstring). Links that already exist where the driver writes
    are the driver's to respect. Raises :class:`UnsafeArchiveError`, or
    :class:`EcsExecError` when the bytes are not a gzip tar at all.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz", encoding="utf-8") as tar:
            infos = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EcsExecError(
            f"the archive from the sandbox is not a readable gzip tar ({exc})",
            remedy="The download was probably cut off; try again.",
        ) from None
    members: list[ArchiveMember] = []
    seen: set[str] = set()
    for info in infos:
        kind = _kind(info)
        check_member(info.name, kind, info.linkname)
        name = _normal(info.name)
        if name in seen:
            raise _unsafe(info.name, "appears more than once")
        seen.add(name)
        members.append(
            ArchiveMember(
                name=name,
                kind=_MEMBER_KINDS[kind],
                size=info.size,
                mode=info.mode & 0o7777,
                linkname=info.linkname,
            )
        )
    _check_tree([(m.name, m.kind, m.linkname) for m in members])
    return members


# The scripts below run inside the container with whatever python3 it has (3.8 or newer),
# so they use nothing newer and import nothing from this package.

EXTRACT_SCRIPT = r"""
import os, shutil, sys, tarfile

ARCHIVE, DEST = sys.argv[1], sys.argv[2]
ROOT = os.path.realpath(DEST)
UNDER = ROOT.rstrip("/") + "/"


def refuse(code, prefix, name, why):
    sys.stderr.write("%s%r: %s\n" % (prefix, name, why))
    sys.exit(code)


def parts(path):
    return [p for p in path.split("/") if p not in ("", ".")]


def kind(m):
    for k, test in (("file", m.isreg), ("dir", m.isdir), ("symlink", m.issym),
                    ("hardlink", m.islnk)):
        if test():
            return k
    if m.ischr() or m.isblk() or m.isfifo():
        return "device"
    return "other"


def lexical(name, k, link):
    if k == "device":
        return "device files and FIFOs are not allowed"
    if k == "other":
        return "unsupported member type"
    if not name:
        return "empty name"
    if name.startswith("/"):
        return "absolute name"
    if ".." in parts(name):
        return "'..' component in name"
    if not parts(name):
        return "names the destination itself"
    if k in ("symlink", "hardlink"):
        if not link:
            return "empty link target"
        if link.startswith("/"):
            return "absolute link target"
    if k == "hardlink" and (".." in parts(link) or not parts(link)):
        return "hard link target escapes the destination"
    return None


def rel(path):
    if path == ROOT:
        return ""
    if path.startswith(UNDER):
        return path[len(UNDER):]
    return None


# Where the kernel lands following steps from ROOT once the archive is extracted: the
# archive's links are followed, its other members replace what is on disk, and the links
# on disk are followed. None when it loops.
def resolve(steps, links, plain):
    cur, todo, hops = ROOT, list(steps), 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, p)
        r = rel(nxt)
        if r is not None and r in links:
            target = links[r]
        elif (r is None or r not in plain) and os.path.islink(nxt):
            target = os.readlink(nxt)
        else:
            cur = nxt
            continue
        hops += 1
        if hops > 40:
            return None
        if target.startswith("/"):
            cur = "/"
        todo[:0] = target.split("/")
    return cur


def inside(path):
    return path is not None and (path == ROOT or path.startswith(UNDER))


def check(members):
    kinds, links, order = {}, {}, {}
    for i, m in enumerate(members):
        k = kind(m)
        why = lexical(m.name, k, m.linkname)
        if why:
            refuse(3, "unsafe archive member: ", m.name, why)
        key = "/".join(parts(m.name))
        if key in kinds:
            refuse(3, "unsafe archive member: ", m.name, "appears more than once")
        kinds[key], order[key] = k, i
        if k == "symlink":
            links[key] = m.linkname
    plain = set(kinds) - set(links)
    for i, m in enumerate(members):
        ps, k = parts(m.name), kinds["/".join(parts(m.name))]
        for depth in range(1, len(ps)):
            pre = "/".join(ps[:depth])
            if kinds.get(pre) == "symlink":
                refuse(3, "unsafe archive member: ", m.name,
                       "path passes through symbolic link %r" % pre)
            if kinds.get(pre, "dir") != "dir":
                refuse(3, "unsafe archive member: ", m.name, "parent %r is not a directory" % pre)
        parent = resolve(ps[:-1], links, plain)
        if not inside(parent):
            refuse(3, "unsafe archive member: ", m.name,
                   "path leads outside the destination through a symbolic link")
        here = os.path.join(parent, ps[-1])
        if k == "symlink":
            if not inside(resolve(ps[:-1] + m.linkname.split("/"), links, plain)):
                refuse(3, "unsafe archive member: ", m.name, "link target escapes the destination")
            cur = list(ps[:-1])
            for p in parts(m.linkname):
                if p != "..":
                    cur.append(p)
                elif not cur:
                    refuse(3, "unsafe archive member: ", m.name,
                           "link target escapes the destination")
                else:
                    cur.pop()
        if k == "hardlink":
            target = "/".join(parts(m.linkname))
            if kinds.get(target) != "file" or order[target] >= i:
                refuse(3, "unsafe archive member: ", m.name,
                       "hard link target is not a file earlier in the archive")
        is_dir = os.path.isdir(here) and not os.path.islink(here)
        if k == "dir" and os.path.lexists(here) and not is_dir and not os.path.islink(here):
            refuse(4, "archive conflicts with destination: ", m.name,
                   "exists and is not a directory")
        if k != "dir" and is_dir:
            refuse(4, "archive conflicts with destination: ", m.name, "exists as a directory")


def extract(tar, members):
    os.makedirs(ROOT, exist_ok=True)
    modes = []
    # Shallow members first: a directory member that replaces a link on disk must do so
    # before anything is written beneath it (the checks assumed the archive's view).
    # Hard links last, once every file they can name exists.
    ordered = sorted((m for m in members if not m.islnk()), key=lambda m: len(parts(m.name)))
    for m in ordered + [m for m in members if m.islnk()]:
        ps = parts(m.name)
        path = os.path.join(ROOT, *ps)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        k = kind(m)
        if k == "dir":
            if os.path.islink(path):
                os.unlink(path)
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            modes.append((path, m.mode & 0o777))
            continue
        # Never write through whatever was there: a link could point anywhere.
        if os.path.lexists(path):
            os.unlink(path)
        if k == "file":
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
                shutil.copyfileobj(tar.extractfile(m), out)
            os.chmod(path, m.mode & 0o777)
        elif k == "symlink":
            os.symlink(m.linkname, path)
        else:
            source = os.path.join(ROOT, *parts(m.linkname))
            try:
                os.link(source, path)
            except OSError:
                shutil.copy2(source, path)
    # Deepest first, so that a read-only directory is closed only once it is filled.
    for path, mode in sorted(modes, key=lambda pm: -pm[0].count("/")):
        os.chmod(path, mode)


try:
    tar = tarfile.open(ARCHIVE, "r:*")
    members = tar.getmembers()
except (tarfile.TarError, OSError, EOFError) as exc:
    sys.stderr.write("cannot read the archive: %s\n" % (exc,))
    sys.exit(1)
check(members)
extract(tar, members)
tar.close()
"""
"""Python source run in the container as ``python3 -c "$EXTRACT_SCRIPT" ARCHIVE DEST``.

It checks every member before it writes anything (exit 3 and ``unsafe archive member:
'<name>': <why>`` on stderr for an unsafe one; exit 4 and ``archive conflicts with
destination: ...`` when a member would replace a directory or needs a file as a parent),
then writes the members itself instead of through ``extractall``: an existing file or
link at a member's path is replaced, never written through; directory modes are applied
last; mtimes are left at the time of extraction.
"""

PACK_SCRIPT = r"""
import os, stat, sys, tarfile

path = sys.argv[1]
if not os.path.lexists(path):
    sys.stderr.write("no such path: %s\n" % path)
    sys.exit(2)
path = os.path.normpath(path)
top = os.path.basename(path)
if not top or top == "..":
    sys.stderr.write("cannot pack %s: name a file or directory below it\n" % path)
    sys.exit(4)
# The named path itself is followed when it is a link (the caller asked for what it names);
# links below it are stored as links.
real = os.path.realpath(path)


def wanted(full):
    mode = os.lstat(full).st_mode
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


with tarfile.open(fileobj=sys.stdout.buffer, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
    tar.add(real, arcname=top, recursive=False)
    if os.path.isdir(real):
        for dirpath, dirnames, filenames in os.walk(real):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                if wanted(full):
                    arc = os.path.join(top, os.path.relpath(full, real))
                    tar.add(full, arcname=arc, recursive=False)
sys.stdout.buffer.flush()
"""
"""Python source run in the container as ``python3 -c "$PACK_SCRIPT" PATH``.

Writes a gzip tar of PATH to stdout, each member once, names relative to PATH's parent (the
first member is PATH's base name); links below PATH are stored as links, sockets, FIFOs and
devices are left out. Exit 2 with ``no such path: PATH`` on stderr when PATH does not exist.
"""

__all__ = [
    "CONFLICT_PREFIX",
    "EXIT_CONFLICT",
    "EXIT_NO_SUCH_PATH",
    "EXIT_UNSAFE",
    "EXTRACT_SCRIPT",
    "PACK_SCRIPT",
    "UNSAFE_PREFIX",
    "ArchiveMember",
    "TarEntry",
    "arcname",
    "build_tar",
    "check_archive",
    "check_member",
    "upload_entries",
]
