"""What a local task can reach of the host, and the bwrap/setpriv arguments that set it.

See also the README's "What the local ECS isolates, and what it does not".

* Files: ``/usr``, ``/etc`` and the library directories, read-only; no ``/home``, host
  ``/root``, ``/var``, ``/run`` or host ``/tmp``. Each file or directory under ``/etc`` that is
  not world-readable (``/etc/shadow``, ``/etc/gshadow``, ``/etc/sudoers``, SSH host keys,
  ``/etc/ssl/private``...) is masked, found by :func:`etc_masks` when the host starts: a file
  by a read-only bind of ``/dev/null`` (bwrap binds with ``nodev``, so opening it fails with
  EACCES, as for a user without the right), a directory by an empty read-only tmpfs.
* Privileges: a task runs as uid 0 (images expect root) but, when the host runs as root, with
  only :data:`TASK_CAPABILITIES`, Docker's default set less ``CAP_MKNOD`` (there is no device
  cgroup here) and ``CAP_NET_RAW`` (the network is the host's): no ``CAP_SYS_ADMIN``, so the
  masks cannot be unmounted. Execs are entered with ``nsenter`` by the host's root and drop to
  the same set with ``setpriv`` before running the command.
* Processes: own pid namespace and ``/proc``; host processes are not visible. Environment:
  only what the task definition gives (``--clearenv``).
* Not isolated: the kernel, the network namespace (every host service on 127.0.0.1, the local
  AWS endpoint included: it checks signatures, and tasks hold no credentials), resources (no
  cgroup limits).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

# Docker's default capabilities less CAP_MKNOD and CAP_NET_RAW (see the module docstring).
TASK_CAPABILITIES = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)


@dataclass(frozen=True, slots=True)
class Mask:
    """A host path under ``/etc`` hidden from tasks (``directory``: hidden by an empty tmpfs)."""

    path: str
    directory: bool


def etc_masks(etc: str = "/etc") -> tuple[Mask, ...]:
    """The files and directories under ``etc`` that not everyone may read, outermost only.

    A directory needs world read and search permission to stay visible; symbolic links are
    left alone (their targets are either under a read-only root checked the same way or not
    in the container at all).
    """
    masks: list[Mask] = []
    for top, dirs, files in os.walk(etc, followlinks=False):
        for name in sorted(dirs):
            path = os.path.join(top, name)
            if not os.path.islink(path) and not _world_can(path, stat.S_IROTH | stat.S_IXOTH):
                masks.append(Mask(path, directory=True))
        dirs[:] = sorted(d for d in dirs if Mask(os.path.join(top, d), directory=True) not in masks)
        for name in sorted(files):
            path = os.path.join(top, name)
            if not os.path.islink(path) and not _world_can(path, stat.S_IROTH):
                masks.append(Mask(path, directory=False))
    return tuple(masks)


def _world_can(path: str, bits: int) -> bool:
    try:
        return os.lstat(path).st_mode & bits == bits
    except OSError:
        return True  # gone since the walk listed it: nothing to hide


def mask_args(masks: Sequence[Mask]) -> list[str]:
    """bwrap arguments hiding ``masks`` (after the read-only binds they lie in)."""
    argv: list[str] = []
    for mask in masks:
        if mask.directory:
            argv += ["--tmpfs", mask.path, "--remount-ro", mask.path]
        else:
            argv += ["--ro-bind", "/dev/null", mask.path]
    return argv


def capability_args() -> list[str]:
    """bwrap arguments keeping only :data:`TASK_CAPABILITIES` (meaningful as root only)."""
    argv = ["--cap-drop", "ALL"]
    for cap in TASK_CAPABILITIES:
        argv += ["--cap-add", cap]
    return argv


def setpriv_prefix() -> list[str]:
    """The ``setpriv`` command that drops an exec (entered by root) to the task's set."""
    bounding = ",".join(
        ["-all", *(f"+{cap.removeprefix('CAP_').lower()}" for cap in TASK_CAPABILITIES)]
    )
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]


__all__ = [
    "TASK_CAPABILITIES",
    "Mask",
    "capability_args",
    "etc_masks",
    "mask_args",
    "setpriv_prefix",
]
