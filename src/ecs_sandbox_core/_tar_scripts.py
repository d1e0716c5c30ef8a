"""The in-container halves of file transfer: the extract and pack scripts, as Python source.

They run inside the container with whatever python3 it has (3.8 or newer), where this
package is not installed, so they use nothing newer, import nothing from here and carry
their own copy of the member rules of :mod:`._tar` (the host checks again anyway).

Both end every failure with one short line on stderr and a known exit code, never with a
traceback: a member name is shown elided in the middle when it is long (the reason must
survive any cut of the output), an OS error by its ``strerror`` ("File name too long",
"No space left on device").
"""

from __future__ import annotations

# Exit codes of the in-container scripts, shared with the flows that read them.
EXIT_NO_SUCH_PATH = 2
EXIT_UNSAFE = 3
EXIT_CONFLICT = 4
EXIT_TOO_LARGE = 6
EXIT_FAILED = 7
UNSAFE_PREFIX = "unsafe archive member: "
CONFLICT_PREFIX = "archive conflicts with destination: "
FAILURE_PREFIX = "ecs-sandbox: "
"""Starts the line a script writes when it fails for any other reason."""

NAME_MAX = 255
"""Longest path component in bytes (Linux's NAME_MAX); longer ones cannot be created."""
PATH_MAX = 4095
"""Longest path in bytes (Linux's PATH_MAX, without the NUL); longer ones cannot be used."""

# Shared by both scripts (and mirrored by _tar.shown_name on the host).
_COMMON = r"""
import os, sys


def short(name):
    quoted = repr(name)
    if len(quoted) <= 93:
        return quoted
    return "%s...%s (%d characters)" % (quoted[:60], quoted[-30:], len(name))


def nbytes(text):
    try:
        return len(text.encode(sys.getfilesystemencoding(), "surrogateescape"))
    except UnicodeError:
        return 4 * len(text)


def reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


# The line is the last thing written: os._exit skips the clean-up that would append to
# the stream (a half-written archive's trailer) after it.
def fail(code, text):
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write("\necs-sandbox: %s\n" % text)
    sys.stderr.flush()
    os._exit(code)
"""

EXTRACT_SCRIPT = (
    _COMMON
    + r"""
import shutil, tarfile

ARCHIVE, DEST = sys.argv[1], sys.argv[2]
ROOT = os.path.realpath(DEST)
UNDER = ROOT.rstrip("/") + "/"
CURRENT = [""]


def refuse(code, prefix, name, why):
    sys.stderr.write("%s%s: %s\n" % (prefix, short(name), why))
    sys.exit(code)


def parts(path):
    return [p for p in path.split("/") if p not in ("", ".")]


def kind(m):
    for k, test in (("file", m.isreg), ("dir", m.isdir), ("symlink", m.issym),
                    ("hardlink", m.islnk)):
        if test():
            return k
    if m.ischr() or m.isblk() or m.isfifo():
        return "device"
    return "other"


def lexical(name, k, link):
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
            return "a name component is %d bytes, more than 255" % nbytes(p)
    if nbytes(name) > 4095:
        return "name is %d bytes, more than 4095" % nbytes(name)
    if k in ("symlink", "hardlink"):
        if not link:
            return "empty link target"
        if link.startswith("/"):
            return "absolute link target"
        if nbytes(link) > 4095:
            return "link target is %d bytes, more than 4095" % nbytes(link)
    if k == "hardlink" and (".." in parts(link) or not parts(link)):
        return "hard link target escapes the destination"
    return None


def rel(path):
    if path == ROOT:
        return ""
    if path.startswith(UNDER):
        return path[len(UNDER):]
    return None


# Where the kernel lands following steps from ROOT once the archive is extracted: the
# archive's links are followed, its other members replace what is on disk, and the links
# on disk are followed. None when it loops.
def resolve(steps, links, plain):
    cur, todo, hops = ROOT, list(steps), 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, p)
        r = rel(nxt)
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


def inside(path):
    return path is not None and (path == ROOT or path.startswith(UNDER))


def check(members):
    kinds, links, order = {}, {}, {}
    for i, m in enumerate(members):
        CURRENT[0] = m.name
        k = kind(m)
        why = lexical(m.name, k, m.linkname)
        if why:
            refuse(3, "unsafe archive member: ", m.name, why)
        key = "/".join(parts(m.name))
        if key in kinds:
            refuse(3, "unsafe archive member: ", m.name, "appears more than once")
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
                refuse(3, "unsafe archive member: ", m.name,
                       "path passes through symbolic link %s" % short(pre))
            if kinds.get(pre, "dir") != "dir":
                refuse(3, "unsafe archive member: ", m.name,
                       "parent %s is not a directory" % short(pre))
        parent = resolve(ps[:-1], links, plain)
        if not inside(parent):
            refuse(3, "unsafe archive member: ", m.name,
                   "path leads outside the destination through a symbolic link")
        here = os.path.join(parent, ps[-1])
        if k == "symlink":
            if not inside(resolve(ps[:-1] + m.linkname.split("/"), links, plain)):
                refuse(3, "unsafe archive member: ", m.name, "link target escapes the destination")
            cur = list(ps[:-1])
            for p in parts(m.linkname):
                if p != "..":
                    cur.append(p)
                elif not cur:
                    refuse(3, "unsafe archive member: ", m.name,
                           "link target escapes the destination")
                else:
                    cur.pop()
        if k == "hardlink":
            target = "/".join(parts(m.linkname))
            if kinds.get(target) != "file" or order[target] >= i:
                refuse(3, "unsafe archive member: ", m.name,
                       "hard link target is not a file earlier in the archive")
        is_dir = os.path.isdir(here) and not os.path.islink(here)
        if k == "dir" and os.path.lexists(here) and not is_dir and not os.path.islink(here):
            refuse(4, "archive conflicts with destination: ", m.name,
                   "exists and is not a directory")
        if k != "dir" and is_dir:
            refuse(4, "archive conflicts with destination: ", m.name, "exists as a directory")


def extract(tar, members):
    CURRENT[0] = DEST
    os.makedirs(ROOT, exist_ok=True)
    modes = []
    # Shallow members first: a directory member that replaces a link on disk must do so
    # before anything is written beneath it (the checks assumed the archive's view).
    # Hard links last, once every file they can name exists.
    ordered = sorted((m for m in members if not m.islnk()), key=lambda m: len(parts(m.name)))
    for m in ordered + [m for m in members if m.islnk()]:
        CURRENT[0] = m.name
        ps = parts(m.name)
        path = os.path.join(ROOT, *ps)
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
            with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
                shutil.copyfileobj(tar.extractfile(m), out)
            os.chmod(path, m.mode & 0o777)
        elif k == "symlink":
            os.symlink(m.linkname, path)
        else:
            source = os.path.join(ROOT, *parts(m.linkname))
            try:
                os.link(source, path)
            except OSError:
                shutil.copy2(source, path)
    # Deepest first, so that a read-only directory is closed only once it is filled.
    for name, path, mode in sorted(modes, key=lambda npm: -npm[1].count("/")):
        CURRENT[0] = name
        os.chmod(path, mode)


try:
    tar = tarfile.open(ARCHIVE, "r:*")
    members = tar.getmembers()
except Exception as exc:
    fail(1, "cannot read the archive: %s" % reason(exc))
try:
    check(members)
    extract(tar, members)
    tar.close()
except Exception as exc:
    fail(7, "cannot extract %s: %s" % (short(CURRENT[0]), reason(exc)))
"""
)
"""Python source run in the container as ``python3 -c "$EXTRACT_SCRIPT" ARCHIVE DEST``.

It checks every member before it writes anything (exit 3 and ``unsafe archive member:
'<name>': <why>`` on stderr for an unsafe one; exit 4 and ``archive conflicts with
destination: ...`` when a member would replace a directory or needs a file as a parent),
then writes the members itself instead of through ``extractall``: an existing file or
link at a member's path is replaced, never written through; directory modes are applied
last; mtimes are left at the time of extraction. An archive it cannot read exits 1, a
member it cannot write (a full disk, a path too long with the destination in front) exits
7; both with one ``ecs-sandbox: ...`` line that gives the reason.
"""

PACK_SCRIPT = (
    _COMMON
    + r"""
import stat, tarfile

path = sys.argv[1]
limits = [int(a) for a in sys.argv[2:4]]
if not os.path.exists(path):
    sys.stderr.write("no such path: %s\n" % path)
    sys.exit(2)
path = os.path.normpath(path)
top = os.path.basename(path)
if not top or top == "..":
    sys.stderr.write("cannot pack %s: name a file or directory below it\n" % path)
    sys.exit(4)
# The named path itself is followed when it is a link (the caller asked for what it names);
# links below it are stored as links.
real = os.path.realpath(path)
CURRENT = [path]


def kind_of(mode):
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


def raise_it(exc):
    raise exc


def members():
    yield real, top
    if os.path.isdir(real):
        # A directory that cannot be listed is an error, not a silent gap in the copy.
        for dirpath, dirnames, filenames in os.walk(real, onerror=raise_it):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                if kind_of(os.lstat(full).st_mode) is None:
                    yield full, os.path.join(top, os.path.relpath(full, real))


try:
    special = kind_of(os.stat(real).st_mode)
    if special:
        sys.stderr.write("cannot pack %s: it is %s\n" % (short(path), special))
        sys.exit(4)
    if limits:
        # Measured before anything is sent, so a tree that is too large fails at once.
        size, count = 0, 0
        for full, arc in members():
            CURRENT[0] = arc
            info = os.lstat(full)
            count += 1
            size += 512 + (-(-info.st_size // 512) * 512 if stat.S_ISREG(info.st_mode) else 0)
            if size > limits[0]:
                fail(6, "too large to download: %s unpacks to more than %d bytes "
                     "(max_download_bytes)" % (short(path), limits[0]))
            if len(limits) > 1 and count > limits[1]:
                fail(6, "too large to download: %s has more than %d members "
                     "(max_download_members)" % (short(path), limits[1]))
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
        for full, arc in members():
            CURRENT[0] = arc
            tar.add(full, arcname=arc, recursive=False)
    sys.stdout.buffer.flush()
except Exception as exc:
    fail(1, "cannot pack %s: %s" % (short(CURRENT[0]), reason(exc)))
"""
)
"""Python source run in the container as ``python3 -c "$PACK_SCRIPT" PATH [MAX_BYTES
[MAX_MEMBERS]]``.

Writes a gzip tar of PATH to stdout, each member once, names relative to PATH's parent (the
first member is PATH's base name); links below PATH are stored as links, sockets, FIFOs and
devices are left out. Exit 2 with ``no such path: PATH`` on stderr when PATH does not exist,
4 when PATH itself is a FIFO, socket or device, 6 when the tree goes past MAX_BYTES
(estimated unpacked size) or MAX_MEMBERS (checked before anything is written), 1 with an
``ecs-sandbox: cannot pack ...`` line when reading fails.
"""

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
]
