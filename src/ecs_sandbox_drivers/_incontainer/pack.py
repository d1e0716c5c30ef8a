"""Pack a file or directory as a gzip tar on stdout: ``pack.py PATH [MAX_BYTES [MAX_MEMBERS]]``.

Each member once, names relative to PATH's parent (the first member is PATH's base name);
links below PATH are stored as links; sockets, FIFOs and devices below PATH are left out.
Exit 2 with ``no such path: PATH`` on stderr when PATH does not exist, 4 when PATH itself
is a FIFO, socket or device, 6 when the tree goes past MAX_BYTES (estimated unpacked size)
or MAX_MEMBERS (checked before anything is written), 1 with an ``ecs-sandbox: cannot pack
...`` line when reading fails.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from collections.abc import Iterator

from ecs_sandbox_drivers._incontainer.common import fail, reason, short  # pasted

CURRENT = [""]  # the member being handled, named when something fails


def kind_of(mode: int) -> str | None:
    """What a special file is ("a FIFO"...), or None for a file, directory or link."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


def raise_it(exc: OSError) -> None:
    raise exc


def members(real: str, top: str) -> Iterator[tuple[str, str]]:
    """(path on disk, name in the archive) of every member, in a stable order."""
    yield real, top
    if os.path.isdir(real):
        # A directory that cannot be listed is an error, not a silent gap in the copy.
        for dirpath, dirnames, filenames in os.walk(real, onerror=raise_it):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                if kind_of(os.lstat(full).st_mode) is None:
                    yield full, os.path.join(top, os.path.relpath(full, real))


def main(path: str, limits: list[int]) -> None:
    if not os.path.exists(path):
        sys.stderr.write(f"no such path: {path}\n")
        sys.exit(2)
    path = os.path.normpath(path)
    top = os.path.basename(path)
    if not top or top == "..":
        sys.stderr.write(f"cannot pack {path}: name a file or directory below it\n")
        sys.exit(4)
    # The named path itself is followed when it is a link (the caller asked for what it
    # names); links below it are stored as links.
    real = os.path.realpath(path)
    CURRENT[0] = path
    try:
        special = kind_of(os.stat(real).st_mode)
        if special:
            sys.stderr.write(f"cannot pack {short(path)}: it is {special}\n")
            sys.exit(4)
        if limits:
            # Measured before anything is sent, so a tree that is too large fails at once.
            size = 0
            for count, (full, arc) in enumerate(members(real, top), 1):
                CURRENT[0] = arc
                info = os.lstat(full)
                size += 512 + (-(-info.st_size // 512) * 512 if stat.S_ISREG(info.st_mode) else 0)
                if size > limits[0]:
                    fail(
                        6,
                        f"too large to download: {short(path)} unpacks to more than "
                        f"{limits[0]} bytes (max_download_bytes)",
                    )
                if len(limits) > 1 and count > limits[1]:
                    fail(
                        6,
                        f"too large to download: {short(path)} has more than {limits[1]} "
                        "members (max_download_members)",
                    )
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
            for full, arc in members(real, top):
                CURRENT[0] = arc
                tar.add(full, arcname=arc, recursive=False)
        sys.stdout.buffer.flush()
    except Exception as exc:
        fail(1, f"cannot pack {short(CURRENT[0])}: {reason(exc)}")


if __name__ == "__main__":
    main(sys.argv[1], [int(a) for a in sys.argv[2:4]])
