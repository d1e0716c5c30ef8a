"""What a local task's container is: its ``bwrap`` command line, and ``nsenter``'s into it.

A container is the host's system directories bound read-only (``/usr``, ``/etc`` with its
secrets masked, the ``/bin``-style links of a merged-/usr system re-created as links), a
fresh ``/proc`` and ``/dev``, and a few writable directories bound from the task's own host
directory. ``/etc`` itself is the task's own directory, as an image's is: its entries link
into the host's ``/etc``, bound read-only at ``/.host-etc``, except the user databases
(``passwd``, ``group``, ``shadow``...), which are the task's own files, so that ``adduser``
in a task works there and nowhere else (the host's ``shadow`` is never copied: the task's
starts empty); its environment is cleared and set from the task definition. Entering it for
an exec joins its mount, pid, uts and ipc namespaces and its root, and starts at ``/``. On a
host running as root, both drop to the capabilities a container's processes have
(:mod:`._isolation`). The command lines are pure functions of their arguments (and of which
host paths exist), so that tests can read them without starting anything;
:func:`prepare_etc` writes a task's ``/etc``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._isolation import Mask, capability_args, mask_args, setpriv_prefix

HOSTNAME = "sandbox"
# Writable directories of every container, each bound from its own per-task host directory.
WRITABLE_DIRS = ("/tmp", "/root", "/home", "/run", "/app", "/tests", "/logs", "/var/tmp")  # noqa: S108
_READ_ONLY = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
HOST_ETC = "/etc"
_COPIED = ("passwd", "group", "subuid", "subgid")  # world-readable: the task starts with them
_EMPTY = ("shadow", "gshadow")  # secrets: the task starts with empty ones
# What the shadow tools write next to the databases: backups, new copies, locks. None of the
# host's is bound into a task (where a bound file could not be replaced by a rename).
_USER_FILES = re.compile(r"(passwd|group|shadow|gshadow|subuid|subgid)[-+]?|\.pwd\.lock|.*\.lock")


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What to run for one task: its keep-alive command and the container's environment."""

    task_arn: str
    name: str
    command: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    cluster_arn: str = ""
    container_arn: str = ""
    image: str = ""


def nsenter_argv(
    nsenter: str, init_pid: int, args: Sequence[str], *, drop_privileges: bool | None = None
) -> list[str]:
    """Run ``args`` inside the container whose pid 1 is ``init_pid``, from its root ``/``.

    ``nsenter`` runs as the host's user; when that is root (``drop_privileges``, by default
    whether this process runs as root), the command is started by ``setpriv`` with only
    :data:`._isolation.TASK_CAPABILITIES`, the set the container's own processes have.
    """
    if drop_privileges is None:
        drop_privileges = os.geteuid() == 0
    if drop_privileges:
        args = [*setpriv_prefix(), *args]
    return [
        nsenter,
        f"--target={init_pid}",
        "--mount",
        "--pid",
        "--uts",
        "--ipc",
        "--root",
        # pid 1 is bwrap's init, whose cwd lies outside the container; start at / inside.
        "--wdns=/",
        "--",
        *args,
    ]


HOST_ETC_MOUNT = "/.host-etc"
"""Where a task sees the host's ``/etc`` (read-only); its own ``/etc`` links into it."""


def prepare_etc(etc_dir: Path, host_etc: str = HOST_ETC) -> None:
    """Make ``etc_dir`` a task's own ``/etc``: a link into :data:`HOST_ETC_MOUNT` for each
    of the host's entries (its links copied as they are), but copies of the world-readable
    user databases and empty ``shadow`` files, which the task may then rewrite.

    Links, not a bind mount each: bwrap takes about a millisecond a mount, and ``/etc``
    holds a hundred entries and more."""
    if etc_dir.exists():
        shutil.rmtree(etc_dir)
    etc_dir.mkdir(mode=0o755, parents=True)
    for name in sorted(os.listdir(host_etc)) if os.path.isdir(host_etc) else ():
        source = os.path.join(host_etc, name)
        if _USER_FILES.fullmatch(name):
            if name in _COPIED and os.path.isfile(source) and not os.path.islink(source):
                shutil.copyfile(source, etc_dir / name)
                (etc_dir / name).chmod(0o644)
        elif os.path.islink(source):
            os.symlink(os.readlink(source), etc_dir / name)
        else:
            os.symlink(f"{HOST_ETC_MOUNT}/{name}", etc_dir / name)
    for name in _EMPTY:
        (etc_dir / name).touch(mode=0o640)
        (etc_dir / name).chmod(0o640)


def etc_args(etc_dir: Path, masks: Sequence[Mask], host_etc: str = HOST_ETC) -> list[str]:
    """bwrap arguments giving a task the host's ``/etc`` read-only at :data:`HOST_ETC_MOUNT`
    with ``masks`` over it (but for the user databases, which are the task's own), and
    ``etc_dir`` (see :func:`prepare_etc`) as its ``/etc``."""
    argv = ["--ro-bind", host_etc, HOST_ETC_MOUNT] if os.path.isdir(host_etc) else []
    for mask in masks:
        inside = os.path.relpath(mask.path, host_etc)
        if inside.startswith("..") or _USER_FILES.fullmatch(inside):
            continue
        argv += mask_args([Mask(f"{HOST_ETC_MOUNT}/{inside}", directory=mask.directory)])
    return [*argv, "--bind", str(etc_dir), "/etc"]


def bwrap_argv(
    spec: ContainerSpec,
    *,
    fs_root: Path,
    info_fd: int,
    env: Mapping[str, str],
    masks: Sequence[Mask] = (),
    drop_privileges: bool = False,
) -> list[str]:
    """The bwrap command line for ``spec`` with writable dirs under ``fs_root`` (its ``etc``
    the task's own ``/etc``, see :func:`prepare_etc`).

    ``masks`` hide host paths under ``/etc`` (see :func:`etc_masks`); ``drop_privileges``
    (for a host running as root) keeps only :data:`._isolation.TASK_CAPABILITIES`.
    """
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--share-net",
        "--die-with-parent",
        "--hostname",
        HOSTNAME,
        "--info-fd",
        str(info_fd),
    ]
    for path in _READ_ONLY:
        if os.path.islink(path):
            # Merged-/usr systems: /bin -> usr/bin and friends are links, re-created as links.
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += etc_args(fs_root / "etc", masks)
    if drop_privileges:
        argv += capability_args()
    argv += ["--proc", "/proc", "--dev", "/dev", "--dir", "/var"]
    for path in WRITABLE_DIRS:
        argv += ["--bind", str(fs_root / path.strip("/").replace("/", "-")), path]
    argv += ["--chdir", "/", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", *spec.command]
    return argv


__all__ = [
    "HOSTNAME",
    "HOST_ETC_MOUNT",
    "WRITABLE_DIRS",
    "ContainerSpec",
    "bwrap_argv",
    "etc_args",
    "nsenter_argv",
    "prepare_etc",
]
