"""What a local task's container is: its ``bwrap`` command line, and ``nsenter``'s into it.

A container is the host's system directories bound read-only (``/usr``, ``/etc`` with its
secrets masked, the ``/bin``-style links of a merged-/usr system re-created as links), a
fresh ``/proc`` and ``/dev``, and a few writable directories bound from the task's own host
directory; its environment is cleared and set from the task definition. Entering it for an
exec joins its mount, pid, uts and ipc namespaces and its root, and starts at ``/``. On a
host running as root, both drop to the capabilities a container's processes have
(:mod:`._isolation`). These are pure functions of their arguments (and of which host paths
exist), so that tests can read the command lines without starting anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._isolation import Mask, capability_args, mask_args, setpriv_prefix

HOSTNAME = "sandbox"
# Writable directories of every container, each bound from its own per-task host directory.
WRITABLE_DIRS = ("/tmp", "/root", "/app", "/tests", "/logs", "/var/tmp")  # noqa: S108
_READ_ONLY = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


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


def bwrap_argv(
    spec: ContainerSpec,
    *,
    fs_root: Path,
    info_fd: int,
    env: Mapping[str, str],
    masks: Sequence[Mask] = (),
    drop_privileges: bool = False,
) -> list[str]:
    """The bwrap command line for ``spec`` with writable dirs under ``fs_root``.

    ``masks`` hide host paths (see :func:`etc_masks`); ``drop_privileges`` (for a host
    running as root) keeps only :data:`._isolation.TASK_CAPABILITIES`.
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
    argv += mask_args(masks)
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


__all__ = ["HOSTNAME", "WRITABLE_DIRS", "ContainerSpec", "bwrap_argv", "nsenter_argv"]
