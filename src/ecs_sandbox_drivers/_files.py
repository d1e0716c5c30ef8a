"""The harness side of file copies: reading what to upload, writing what came back.

Only regular files, directories and symbolic links are copied. Anything else in what is to be
uploaded (a FIFO, a socket, a device) is refused with one error that names them all, before
any file is read or anything is staged: reading a FIFO blocks until a writer comes, a
device reads as empty (``/dev/null``) or without end (``/dev/zero``), and neither means
anything inside a sandbox. Files are opened without following a final link and without
blocking, and checked to be regular on the open descriptor, so a file swapped for a FIFO
or a link after the listing is refused too rather than hanging the upload.

Downloads are checked whole by the core (:func:`~ecs_sandbox_core._tar.check_archive`:
member rules, uncompressed size and member count) before anything is written.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ecs_sandbox_core import UsageError
from ecs_sandbox_core._limits import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_DOWNLOAD_MEMBERS
from ecs_sandbox_core._tar import arcname, build_tar, check_archive, shown_name, upload_entries

_SHOWN_SPECIALS = 5
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def special_kind(mode: int) -> str | None:
    """What a file of ``mode`` (from ``lstat``) is when it cannot be copied, else None."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _special_error(found: list[tuple[Path, str]]) -> UsageError:
    shown = ", ".join(f"{shown_name(str(path))} ({kind})" for path, kind in found[:_SHOWN_SPECIALS])
    more = len(found) - _SHOWN_SPECIALS
    if more > 0:
        shown += f" and {more} more"
    what = "it is not" if len(found) == 1 else f"{len(found)} paths are not"
    return UsageError(
        f"cannot copy {shown}: {what} a regular file, directory or symbolic link; "
        "nothing was copied",
        remedy="Leave FIFOs, sockets and devices out of what you copy (copy the files you "
        "need one by one, or from a directory without them).",
    )


@dataclass
class _Listing:
    """What an upload holds, listed (with ``lstat``) before any file is read."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    specials: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, rel: str, path: Path, mode: int) -> None:
        if stat.S_ISLNK(mode):
            self.links.append((rel, os.readlink(path)))
        elif stat.S_ISREG(mode):
            self.files.append((rel, path))
        elif stat.S_ISDIR(mode):
            self.dirs.append(rel)
        else:
            self.specials.append((path, special_kind(mode) or "not a regular file"))


def _raise(error: OSError) -> None:
    raise error


def _walk(root: Path, listing: _Listing) -> None:
    # A directory that cannot be listed is an error, not a silent gap in the copy.
    for current, dirnames, filenames in os.walk(root, onerror=_raise):
        base = Path(current)
        for name in sorted(dirnames) + sorted(filenames):
            path = base / name
            listing.add(path.relative_to(root).as_posix(), path, path.lstat().st_mode)


def _read_regular(path: Path) -> tuple[bytes, int]:
    """The content and mode of ``path``, which must (still) be a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise UsageError(
            f"cannot copy {shown_name(str(path))}: it became a symbolic link while the "
            "upload was read; nothing was copied"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _special_error([(path, special_kind(mode) or "not a regular file")])
        return handle.read(), mode


def build_upload(paths: Path | str | Iterable[Path | str], *, rename: str | None = None) -> bytes:
    """A gzip tar of ``paths`` (files go in by name, directories by their contents).

    Each file is read once and added once, however deep it sits (the reference added a
    directory's files once per ancestor). ``rename`` copies a single file under another name.
    Raises :class:`UsageError` before reading anything when ``paths`` holds a FIFO, a socket
    or a device (see the module docstring), or a path that does not exist.
    """
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not items:
        raise UsageError("nothing to copy: paths is empty")
    if rename is not None and (len(items) != 1 or not items[0].is_file()):
        raise UsageError("container_filename needs exactly one file in paths")
    listing = _Listing()
    for item in items:
        try:
            mode = item.lstat().st_mode
        except FileNotFoundError:
            raise UsageError(f"cannot copy {item}: no such file or directory") from None
        if stat.S_ISDIR(mode):
            _walk(item, listing)
        else:
            # A named file or link goes in by its name (or ``rename``).
            listing.add(arcname(item.name, rename=rename), item, mode)
    if listing.specials:
        raise _special_error(listing.specials)
    files = [(rel, *_read_regular(path)) for rel, path in listing.files]
    return build_tar(upload_entries(files, listing.dirs, listing.links))


def _require_extraction_filters() -> None:
    # tarfile's extraction filters came with 3.10.12, 3.11.4 and 3.12; pyproject.toml's
    # requires-python admits no earlier release, but a source checkout can still be run
    # on one, and without the filter extractall would follow links out of ``local_dir``.
    if not hasattr(tarfile, "data_filter"):
        version = ".".join(map(str, sys.version_info[:3]))
        raise UsageError(
            f"copy_from_sandbox needs tarfile's extraction filters, which Python {version} lacks",
            remedy="Use Python 3.10.12 or newer (3.11.4 or newer on 3.11).",
        )


def write_download(
    archive: bytes,
    local_dir: Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_members: int = DEFAULT_MAX_DOWNLOAD_MEMBERS,
) -> list[Path]:
    """Write a checked archive from the sandbox under ``local_dir``; returns the top paths.

    The archive is checked whole first, against ``max_bytes`` (uncompressed) and
    ``max_members`` too, so that nothing is written for an archive that is refused.
    """
    _require_extraction_filters()
    members = check_archive(archive, max_bytes=max_bytes, max_members=max_members)
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        # check_archive refused every escaping member already; the data filter also refuses
        # to follow links that exist locally and point outside ``dest``.
        tar.extractall(dest, filter="data")
    tops = sorted({m.name.split("/", 1)[0] for m in members})
    return [dest / top for top in tops]


__all__ = ["build_upload", "special_kind", "write_download"]
