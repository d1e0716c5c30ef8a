"""Check and extract an archive: ``extract.py ARCHIVE DEST``.

Every member is checked before anything is written (exit 3 and ``unsafe archive member:
'<name>': <why>`` on stderr for an unsafe one; exit 4 and ``archive conflicts with
destination: ...`` when a member would replace a directory or needs a file as a parent).
Then the members are written one by one instead of through ``extractall``: an existing
file or link at a member's path is replaced, never written through; directory modes are
applied last; mtimes are left at the time of extraction. An archive that cannot be read
exits 1, a member that cannot be written (a full disk, a path too long once the
destination is in front) exits 7; both with one ``ecs-sandbox: ...`` line giving the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from typing import NoReturn

from ecs_sandbox_drivers._incontainer.common import fail, nbytes, reason, short  # pasted

UNSAFE = "unsafe archive member: "
CONFLICT = "archive conflicts with destination: "
CURRENT = [""]  # the member being handled, named when something fails


def refuse(code: int, prefix: str, name: str, why: str) -> NoReturn:
    sys.stderr.write(f"{prefix}{short(name)}: {why}\n")
    sys.exit(code)


def parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def kind(m: tarfile.TarInfo) -> str:
    for k, test in (
        ("file", m.isreg),
        ("dir", m.isdir),
        ("symlink", m.issym),
        ("hardlink", m.islnk),
    ):
        if test():
            return k
    if m.ischr() or m.isblk() or m.isfifo():
        return "device"
    return "other"


def lexical(name: str, k: str, link: str) -> str | None:
    """Why ``name`` is unsafe from its text alone, or None."""
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
    for p in parts(name):
        if nbytes(p) > 255:
            return f"a name component is {nbytes(p)} bytes, more than 255"
    if nbytes(name) > 4095:
        return f"name is {nbytes(name)} bytes, more than 4095"
    if k in ("symlink", "hardlink"):
        if not link:
            return "empty link target"
        if link.startswith("/"):
            return "absolute link target"
        if nbytes(link) > 4095:
            return f"link target is {nbytes(link)} bytes, more than 4095"
    if k == "hardlink" and (".." in parts(link) or not parts(link)):
        return "hard link target escapes the destination"
    return None


class Destination:
    """The directory extracted into, and where paths in it lead."""

    def __init__(self, dest: str) -> None:
        self.root = os.path.realpath(dest)
        self.under = self.root.rstrip("/") + "/"

    def rel(self, path: str) -> str | None:
        if path == self.root:
            return ""
        if path.startswith(self.under):
            return path[len(self.under) :]
        return None

    def inside(self, path: str | None) -> bool:
        return path is not None and (path == self.root or path.startswith(self.under))

    # Where the kernel lands following steps from the root once the archive is extracted:
    # the archive's links are followed, its other members replace what is on disk, and the
    # links on disk are followed. None when it loops.
    def resolve(self, steps: list[str], links: dict[str, str], plain: set[str]) -> str | None:
        cur, todo, hops = self.root, list(steps), 0
        while todo:
            p = todo.pop(0)
            if p in ("", "."):
                continue
            if p == "..":
                cur = os.path.dirname(cur)
                continue
            nxt = os.path.join(cur, p)
            r = self.rel(nxt)
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

    def check(self, members: list[tarfile.TarInfo]) -> None:
        """Exit 3 or 4 at the first member that is unsafe or conflicts; else return."""
        kinds: dict[str, str] = {}
        links: dict[str, str] = {}
        order: dict[str, int] = {}
        for i, m in enumerate(members):
            CURRENT[0] = m.name
            k = kind(m)
            why = lexical(m.name, k, m.linkname)
            if why:
                refuse(3, UNSAFE, m.name, why)
            key = "/".join(parts(m.name))
            if key in kinds:
                refuse(3, UNSAFE, m.name, "appears more than once")
            kinds[key], order[key] = k, i
            if k == "symlink":
                links[key] = m.linkname
        plain = set(kinds) - set(links)
        for i, m in enumerate(members):
            CURRENT[0] = m.name
            ps, k = parts(m.name), kinds["/".join(parts(m.name))]
            for depth in range(1, len(ps)):
                pre = "/".join(ps[:depth])
                if kinds.get(pre) == "symlink":
                    refuse(3, UNSAFE, m.name, f"path passes through symbolic link {short(pre)}")
                if kinds.get(pre, "dir") != "dir":
                    refuse(3, UNSAFE, m.name, f"parent {short(pre)} is not a directory")
            parent = self.resolve(ps[:-1], links, plain)
            if parent is None or not self.inside(parent):
                refuse(
                    3, UNSAFE, m.name, "path leads outside the destination through a symbolic link"
                )
            here = os.path.join(parent, ps[-1])
            if k == "symlink":
                if not self.inside(self.resolve(ps[:-1] + m.linkname.split("/"), links, plain)):
                    refuse(3, UNSAFE, m.name, "link target escapes the destination")
                cur = list(ps[:-1])
                for p in parts(m.linkname):
                    if p != "..":
                        cur.append(p)
                    elif not cur:
                        refuse(3, UNSAFE, m.name, "link target escapes the destination")
                    else:
                        cur.pop()
            if k == "hardlink":
                target = "/".join(parts(m.linkname))
                if kinds.get(target) != "file" or order[target] >= i:
                    refuse(
                        3, UNSAFE, m.name, "hard link target is not a file earlier in the archive"
                    )
            is_dir = os.path.isdir(here) and not os.path.islink(here)
            if k == "dir" and os.path.lexists(here) and not is_dir and not os.path.islink(here):
                refuse(4, CONFLICT, m.name, "exists and is not a directory")
            if k != "dir" and is_dir:
                refuse(4, CONFLICT, m.name, "exists as a directory")

    def extract(self, tar: tarfile.TarFile, members: list[tarfile.TarInfo]) -> None:
        """Write the (checked) members."""
        os.makedirs(self.root, exist_ok=True)
        modes: list[tuple[str, str, int]] = []
        # Shallow members first: a directory member that replaces a link on disk must do so
        # before anything is written beneath it (the checks assumed the archive's view).
        # Hard links last, once every file they can name exists.
        ordered = sorted((m for m in members if not m.islnk()), key=lambda m: len(parts(m.name)))
        for m in ordered + [m for m in members if m.islnk()]:
            CURRENT[0] = m.name
            ps = parts(m.name)
            path = os.path.join(self.root, *ps)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            k = kind(m)
            if k == "dir":
                if os.path.islink(path):
                    os.unlink(path)
                if not os.path.isdir(path):
                    os.mkdir(path, 0o700)
                modes.append((m.name, path, m.mode & 0o777))
                continue
            # Never write through whatever was there: a link could point anywhere.
            if os.path.lexists(path):
                os.unlink(path)
            if k == "file":
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                source = tar.extractfile(m)
                if source is None:  # a regular member always has data; be explicit anyway
                    raise OSError(f"no data for {m.name}")
                with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(path, m.mode & 0o777)
            elif k == "symlink":
                os.symlink(m.linkname, path)
            else:
                target = os.path.join(self.root, *parts(m.linkname))
                try:
                    os.link(target, path)
                except OSError:
                    shutil.copy2(target, path)
        # Deepest first, so that a read-only directory is closed only once it is filled.
        for name, path, mode in sorted(modes, key=lambda npm: -npm[1].count("/")):
            CURRENT[0] = name
            os.chmod(path, mode)


def main(archive: str, dest: str) -> None:
    where = Destination(dest)
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed below, after extraction
        members = tar.getmembers()
    except Exception as exc:
        fail(1, f"cannot read the archive: {reason(exc)}")
    try:
        where.check(members)
        CURRENT[0] = dest
        where.extract(tar, members)
        tar.close()
    except Exception as exc:
        fail(7, f"cannot extract {short(CURRENT[0])}: {reason(exc)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
