"""The rules every archive member must pass, on the way in and on the way out.

Safety rules, the same on both sides (the in-container script carries its own copy because
it runs where this package is not installed): a member name is relative, has no ``..``
component (a lexical ``a/../b`` and the kernel disagree as soon as ``a`` is a symbolic
link) and appears once; only regular files, directories, symbolic and hard links are
allowed; no member's path passes through a symbolic link of the archive; a symbolic link
must resolve inside the destination, following the archive's other links; a hard link must
name a regular file that comes earlier in the archive. The extract script also follows the
links that already exist in the destination when it decides where a member would land.
Names are bounded as the kernel bounds them: no component over ``NAME_MAX`` (255) bytes,
no name or link target over ``PATH_MAX`` (4095) bytes, so a name that could never be
created is refused before anything is staged, with a reason that a long name cannot hide
(names in messages are elided in the middle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._errors import UnsafeArchiveError
from ._tar_scripts import NAME_MAX, PATH_MAX, UNSAFE_PREFIX

_SAFE_KINDS = frozenset({"file", "dir", "symlink", "hardlink"})
_SPECIAL_KINDS = frozenset({"chr", "blk", "fifo", "device"})
_MAX_LINK_HOPS = 40  # the kernel's own limit on symbolic links followed in one lookup
_SHOWN_HEAD, _SHOWN_TAIL = 60, 30


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _resolve(start: Sequence[str], rest: Sequence[str], links: Mapping[str, str]) -> str | None:
    """Follow ``rest`` from the directory ``start`` like the kernel would, through ``links``.

    Returns the normalised path it ends at, or None if it leaves the root or loops.
    """
    current = list(start)
    todo = list(rest)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return None
            current.pop()
            continue
        current.append(part)
        target = links.get("/".join(current))
        if target is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS or target.startswith("/"):
            return None
        current.pop()
        todo[:0] = target.split("/")
    return "/".join(current)


def shown_name(name: str) -> str:
    """``name`` quoted for a message; a long one keeps its start and end and its length.

    The in-container scripts print names the same way.
    """
    quoted = repr(name)  # escapes make it longer than the name: bound what is shown
    if len(quoted) <= _SHOWN_HEAD + 3 + _SHOWN_TAIL:
        return quoted
    return f"{quoted[:_SHOWN_HEAD]}...{quoted[-_SHOWN_TAIL:]} ({len(name)} characters)"


def _nbytes(text: str) -> int:
    # Names read from an archive carry undecodable bytes as surrogate escapes; count those
    # as the bytes they stand for, and anything else unencodable generously.
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeError:
        return 4 * len(text)


def _too_long(parts: Sequence[str], name: str, kind: str, linkname: str) -> str | None:
    for part in parts:
        if _nbytes(part) > NAME_MAX:
            return f"a name component is {_nbytes(part)} bytes, more than {NAME_MAX}"
    if _nbytes(name) > PATH_MAX:
        return f"name is {_nbytes(name)} bytes, more than {PATH_MAX}"
    if kind in ("symlink", "hardlink") and _nbytes(linkname) > PATH_MAX:
        return f"link target is {_nbytes(linkname)} bytes, more than {PATH_MAX}"
    return None


def _problem(name: str, kind: str, linkname: str) -> str | None:
    if kind in _SPECIAL_KINDS:
        return "device files and FIFOs are not allowed"
    if kind not in _SAFE_KINDS:
        return f"unsupported member type {kind!r}"
    if not name:
        return "empty name"
    if "\0" in name or "\0" in linkname:
        return "NUL character in name"
    if name.startswith("/"):
        return "absolute name"
    parts = _parts(name)
    if ".." in parts:
        return "'..' component in name"
    if not parts:
        return "names the destination itself"
    too_long = _too_long(parts, name, kind, linkname)
    if too_long is not None:
        return too_long
    if kind in ("symlink", "hardlink"):
        if not linkname:
            return "empty link target"
        if linkname.startswith("/"):
            return "absolute link target"
    if kind == "symlink" and _resolve(parts[:-1], linkname.split("/"), {}) is None:
        return "link target escapes the destination"
    if kind == "hardlink" and (".." in _parts(linkname) or not _parts(linkname)):
        return "hard link target escapes the destination"
    return None


def _unsafe(name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{UNSAFE_PREFIX}{shown_name(name)}: {why}")


def check_member(name: str, kind: str, linkname: str = "") -> None:
    """Raise :class:`UnsafeArchiveError` unless one member is safe on its own.

    ``kind`` is ``file``, ``dir``, ``symlink`` or ``hardlink``; ``chr``, ``blk`` and
    ``fifo`` (and anything else) are refused. ``linkname`` is a symbolic link's target
    (relative to the link's directory) or a hard link's target (relative to the root).
    Rules that need the whole archive are in :func:`check_archive` and :func:`build_tar`.
    """
    why = _problem(name, kind, linkname)
    if why is not None:
        raise _unsafe(name, why)


def _check_tree(members: Sequence[tuple[str, str, str]]) -> None:
    """Archive-wide rules over (normalised name, kind, linkname), in archive order."""
    kinds = {name: kind for name, kind, _ in members}
    links = {name: link for name, kind, link in members if kind == "symlink"}
    position = {name: i for i, (name, _, _) in enumerate(members)}
    for index, (name, kind, link) in enumerate(members):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if kinds.get(prefix) == "symlink":
                raise _unsafe(name, f"path passes through symbolic link {shown_name(prefix)}")
            if kinds.get(prefix, "dir") != "dir":
                raise _unsafe(name, f"parent {shown_name(prefix)} is not a directory")
        if kind == "symlink" and _resolve(parts[:-1], link.split("/"), links) is None:
            raise _unsafe(name, "link target escapes the destination through other links")
        if kind == "hardlink":
            target = "/".join(_parts(link))
            if kinds.get(target) != "file" or position[target] >= index:
                raise _unsafe(name, "hard link target is not a file earlier in the archive")


__all__ = ["check_member", "shown_name"]
