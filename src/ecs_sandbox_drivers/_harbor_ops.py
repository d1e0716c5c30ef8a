"""What the Harbor environment decides, without Harbor: path semantics and result mapping.

Harbor's environments copy files as ``docker compose cp`` does, and its trial code relies on
it:

* ``upload_file(src, target)``: the file is written *as* ``target`` (its parents made);
* ``upload_dir(src, target)``: the *contents* of ``src`` are merged into ``target``
  (``cp src/. target``), which is made when missing; files already there are replaced;
* ``download_file(src, target)``: the sandbox's file is written *as* the local ``target``;
* ``download_dir(src, target)``: the *contents* of the sandbox's ``src`` are merged into the
  local ``target`` (made when missing), replacing files of the same name.

ecs-sandbox's own copies have other shapes: ``copy_to_sandbox`` puts a directory's contents,
or a file under its name (or ``container_filename``), into ``container_dir``;
``copy_from_sandbox`` writes the sandbox path *under its base name* into a local directory.
The functions here map one onto the other; :mod:`ecs_sandbox_drivers.harbor_env` only runs
them. Relative sandbox paths resolve against the directory commands start in.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

from ecs_sandbox_core import UsageError
from ecs_sandbox_core._exec_flow import ExecResult


def sandbox_path(path: str, workdir: str) -> str:
    """``path`` made absolute against ``workdir`` and normalised (no ``.``, ``..``, ``//``
    or trailing slash; ``..`` above the root stays at the root, as the kernel resolves it)."""
    if not path:
        raise UsageError("a sandbox path must not be empty")
    joined = posixpath.join(workdir or "/", path)
    normal = posixpath.normpath(joined)
    # POSIX keeps a leading "//" as it came; the kernel treats it as "/".
    return "/" + normal.lstrip("/")


@dataclass(frozen=True, slots=True)
class FilePlacement:
    """Where ``copy_to_sandbox`` puts one file: ``container_dir`` / ``filename``."""

    container_dir: str
    filename: str


def upload_file_placement(target_path: str, workdir: str) -> FilePlacement:
    """The placement that writes a file as ``target_path`` (not into it)."""
    target = sandbox_path(target_path, workdir)
    if target == "/":
        raise UsageError("cannot upload a file as '/': give the file's full path")
    parent, name = posixpath.split(target)
    return FilePlacement(container_dir=parent, filename=name)


def upload_dir_target(target_dir: str, workdir: str) -> str:
    """The ``container_dir`` that receives the source directory's contents."""
    return sandbox_path(target_dir, workdir)


def download_source(source: str, workdir: str) -> tuple[str, str]:
    """The sandbox path to download and the name ``copy_from_sandbox`` writes it under."""
    path = sandbox_path(source, workdir)
    if path == "/":
        raise UsageError("cannot download '/': name a directory below it")
    return path, posixpath.basename(path)


def place_file(downloaded: Path, target: Path) -> None:
    """Move the downloaded file to ``target`` (parents made, a file there replaced)."""
    if not downloaded.is_file() or downloaded.is_symlink():
        raise IsADirectoryError(f"{downloaded.name} is not a regular file in the sandbox")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(f"cannot download a file as {target}: it is a directory")
    os.replace(downloaded, target)


def merge_tree(source: Path, target: Path) -> None:
    """Move the contents of directory ``source`` into ``target``, as ``cp -r source/.``
    does: directories merged, files and links replaced, ``target`` made when missing.

    A file in ``target`` where ``source`` has a directory (or the reverse) is replaced by
    what the sandbox has, as ``docker cp`` does.
    """
    if not source.is_dir() or source.is_symlink():
        raise NotADirectoryError(f"{source.name} is not a directory in the sandbox")
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        dest = target / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                dest.unlink()
            merge_tree(entry, dest)
            continue
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(entry, dest)


def shell_argv(command: str) -> list[str]:
    """The argv that runs Harbor's shell text (Harbor's docker environment uses bash)."""
    return ["bash", "-c", command]


def user_name(user: str | int | None) -> str | None:
    """Harbor's user (a name or a uid) as ecs-sandbox's ``user=`` takes it."""
    if user is None:
        return None
    if isinstance(user, bool):
        raise UsageError(f"user {user!r} is not a user name or uid")
    return str(user)


@dataclass(frozen=True, slots=True)
class HarborResult:
    """An exec result as Harbor's ``ExecResult`` holds it."""

    stdout: str
    stderr: str
    return_code: int


def harbor_result(result: ExecResult) -> HarborResult:
    """``result`` (with separate streams) as text; undecodable bytes replaced."""
    return HarborResult(
        stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"),
        return_code=result.exit_code,
    )


def no_such_user_result(user: str) -> HarborResult:
    """What ``docker exec -u`` answers for an unknown user (exit 126, nothing run)."""
    message = f"unable to find user {user}: no matching entries in passwd file\n"
    return HarborResult(stdout="", stderr=message, return_code=126)


__all__ = [
    "FilePlacement",
    "HarborResult",
    "download_source",
    "harbor_result",
    "merge_tree",
    "no_such_user_result",
    "place_file",
    "sandbox_path",
    "shell_argv",
    "upload_dir_target",
    "upload_file_placement",
]
