"""Archives that carry files into and out of a sandbox.

Uploads are gzip tars built here, in memory, from entries the driver read from disk; the
container unpacks them with :data:`EXTRACT_SCRIPT`. Downloads are packed in the container
by :data:`PACK_SCRIPT` and checked here by :func:`check_archive` before the driver writes
anything.

The safety rules every member must pass are in :mod:`._tar_rules`.

Downloads are bounded before they are read (see :mod:`._limits`): the uncompressed size
and the member count are checked first, so a gzip bomb costs at most the configured limit.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ._errors import DownloadTooLargeError, EcsExecError, UsageError
from ._limits import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_DOWNLOAD_MEMBERS, inflated_size
from ._tar_rules import _check_tree, _parts, _unsafe, check_member, shown_name
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
_GZIP_LEVEL = 6


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
