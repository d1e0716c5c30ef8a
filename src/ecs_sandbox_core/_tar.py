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
Names are bounded as the kernel bounds them: no component over ``NAME_MAX`` (255) bytes,
no name or link target over ``PATH_MAX`` (4095) bytes, so a name that could never be
created is refused before anything is staged, with a reason that a long name cannot hide
(names in messages are elided in the middle).

Downloads are bounded before they are read (see :mod:`._limits`): the uncompressed size
and the member count are checked first, so a gzip bomb costs at most the configured limit.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ._errors import DownloadTooLargeError, EcsExecError, UnsafeArchiveError, UsageError
from ._limits import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_DOWNLOAD_MEMBERS, inflated_size
from ._tar_scripts import (
    CONFLICT_PREFIX,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NO_SUCH_PATH,
    EXIT_TOO_LARGE,
    EXIT_UNSAFE,
    EXTRACT_SCRIPT,
    FAILURE_PREFIX,
    NAME_MAX,
    PACK_SCRIPT,
    PATH_MAX,
    UNSAFE_PREFIX,
)

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
_SHOWN_HEAD, _SHOWN_TAIL = 60, 30


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


def shown_name(name: str) -> str:
    """``name`` quoted for a message; a long one keeps its start and end and its length.

    The in-container scripts print names the same way.
    """
    quoted = repr(name)  # escapes make it longer than the name: bound what is shown
    if len(quoted) <= _SHOWN_HEAD + 3 + _SHOWN_TAIL:
        return quoted
    return f"{quoted[:_SHOWN_HEAD]}...{quoted[-_SHOWN_TAIL:]} ({len(name)} characters)"


def _nbytes(text: str) -> int:
    # Names read from an archive carry undecodable bytes as surrogate escapes; count those
    # as the bytes they stand for, and anything else unencodable generously.
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeError:
        return 4 * len(text)


def _too_long(parts: Sequence[str], name: str, kind: str, linkname: str) -> str | None:
    for part in parts:
        if _nbytes(part) > NAME_MAX:
            return f"a name component is {_nbytes(part)} bytes, more than {NAME_MAX}"
    if _nbytes(name) > PATH_MAX:
        return f"name is {_nbytes(name)} bytes, more than {PATH_MAX}"
    if kind in ("symlink", "hardlink") and _nbytes(linkname) > PATH_MAX:
        return f"link target is {_nbytes(linkname)} bytes, more than {PATH_MAX}"
    return None


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
    too_long = _too_long(parts, name, kind, linkname)
    if too_long is not None:
        return too_long
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
    return UnsafeArchiveError(f"{UNSAFE_PREFIX}{shown_name(name)}: {why}")


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
                raise _unsafe(name, f"path passes through symbolic link {shown_name(prefix)}")
            if kinds.get(prefix, "dir") != "dir":
                raise _unsafe(name, f"parent {shown_name(prefix)} is not a directory")
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
            raise UsageError(f"archive member {shown_name(name)} is given more than once")
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


def check_archive(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_members: int = DEFAULT_MAX_DOWNLOAD_MEMBERS,
) -> list[ArchiveMember]:
    """Check a gzip tar that came back from a sandbox before anything is written locally.

    First its size: the archive must unpack to at most ``max_bytes`` bytes and hold at most
    ``max_members`` members (:class:`DownloadTooLargeError` otherwise, found at the cost
    of inflating ``max_bytes`` into nothing, whatever the archive claims). Then every
    member must pass :func:`check_member`, appear once and satisfy the archive-wide rules
    (see the module docstring). Links that already exist where the driver writes are the
    driver's to respect. Raises :class:`UnsafeArchiveError`, or :class:`EcsExecError`
    when the bytes are not a gzip tar at all.
    """
    if inflated_size(data, max_bytes) > max_bytes:
        raise DownloadTooLargeError(
            f"the download unpacks to more than {max_bytes} bytes (max_download_bytes); "
            "nothing was written",
            limit=max_bytes,
            setting="max_download_bytes",
        )
    infos: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz", encoding="utf-8") as tar:
            for info in tar:
                infos.append(info)
                if len(infos) > max_members:
                    raise DownloadTooLargeError(
                        f"the download has more than {max_members} members "
                        "(max_download_members); nothing was written",
                        limit=max_members,
                        setting="max_download_members",
                    )
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


__all__ = [
    "CONFLICT_PREFIX",
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_NO_SUCH_PATH",
    "EXIT_TOO_LARGE",
    "EXIT_UNSAFE",
    "EXTRACT_SCRIPT",
    "FAILURE_PREFIX",
    "NAME_MAX",
    "PACK_SCRIPT",
    "PATH_MAX",
    "UNSAFE_PREFIX",
    "ArchiveMember",
    "TarEntry",
    "arcname",
    "build_tar",
    "check_archive",
    "check_member",
    "shown_name",
    "upload_entries",
]
