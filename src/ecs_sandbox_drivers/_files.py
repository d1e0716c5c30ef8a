"""The harness side of file copies: reading what to upload, writing what came back."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from ecs_sandbox_core import UsageError
from ecs_sandbox_core._tar import arcname, build_tar, check_archive, upload_entries


def build_upload(paths: Path | str | Iterable[Path | str], *, rename: str | None = None) -> bytes:
    """A gzip tar of ``paths`` (files go in by name, directories by their contents).

    Each file is read once and added once, however deep it sits (the reference added a
    directory's files once per ancestor). ``rename`` copies a single file under another name.
    """
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not items:
        raise UsageError("nothing to copy: paths is empty")
    if rename is not None and (len(items) != 1 or not items[0].is_file()):
        raise UsageError("container_filename needs exactly one file in paths")
    files: list[tuple[str, bytes, int]] = []
    dirs: list[str] = []
    links: list[tuple[str, str]] = []
    for item in items:
        if item.is_symlink():
            links.append((arcname(item.name, rename=rename), os.readlink(item)))
        elif item.is_file():
            files.append(
                (arcname(item.name, rename=rename), item.read_bytes(), item.stat().st_mode)
            )
        elif item.is_dir():
            _walk(item, files, dirs, links)
        else:
            raise UsageError(f"cannot copy {item}: no such file or directory")
    return build_tar(upload_entries(files, dirs, links))


def _walk(
    root: Path,
    files: list[tuple[str, bytes, int]],
    dirs: list[str],
    links: list[tuple[str, str]],
) -> None:
    for current, dirnames, filenames in os.walk(root):
        base = Path(current)
        for name in sorted(dirnames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                links.append((rel, os.readlink(path)))
            else:
                dirs.append(rel)
        for name in sorted(filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                links.append((rel, os.readlink(path)))
            else:
                files.append((rel, path.read_bytes(), path.stat().st_mode))


def write_download(archive: bytes, local_dir: Path | str) -> list[Path]:
    """Write a checked archive from the sandbox under ``local_dir``; returns the top paths."""
    members = check_archive(archive)
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        # check_archive refused every escaping member already; the data filter also refuses
        # to follow links that exist locally and point outside ``dest``.
        tar.extractall(dest, filter="data")
    tops = sorted({m.name.split("/", 1)[0] for m in members})
    return [dest / top for top in tops]


__all__ = ["build_upload", "write_download"]
