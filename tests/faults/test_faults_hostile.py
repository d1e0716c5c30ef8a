"""Hostile input against the real sandboxes: archives that try to escape, names and values
built to be interpreted by a shell, NUL, non-ASCII. Each is refused with a clear error or
delivered exactly; nothing is ever written outside the destination."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from _faults_harness import Case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import EcsExecError, SessionError, UnsafeArchiveError, UsageError

pytestmark = pytest.mark.faults
CATEGORY = "hostile-input"

PROPERTY = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SENTINEL = b"faults-escape-payload"

Member = tuple[str, str, str]  # (name, kind, link target)


def make_tar(members: Iterable[Member]) -> bytes:
    """A gzip tar with exactly these members, hostile or not (no checks on this side)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, kind, link in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            data = b""
            if kind == "file":
                data = SENTINEL
                info.size = len(data)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, link
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "blk":
                info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 7, 0
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under ``root`` (the container's writable dirs on the host) with its type
    bits and, for files, content; links are not followed."""
    found: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st_mode = full.lstat().st_mode
            content = full.read_bytes() if full.is_file() and not full.is_symlink() else b""
            found[str(full.relative_to(root))] = (st_mode & 0o170000, content)
    return found


def outside_changes(before: dict[str, Any], after: dict[str, Any], dest: str) -> list[str]:
    """Paths that appeared or changed outside ``dest`` (host-relative, e.g. ``app/d``)."""
    changed = [p for p in after if after[p] != before.get(p)]
    return [p for p in changed if p != dest and not p.startswith(dest + "/")]


# Each archive is refused as a whole; the comment says how it tries to get out.
HOSTILE_ARCHIVES: dict[str, list[Member]] = {
    "absolute-name": [("ok.txt", "file", ""), ("/tmp/faults-abs", "file", "")],
    "dotdot-name": [("../faults-dotdot", "file", "")],
    "dotdot-inside": [("a/", "dir", ""), ("a/../../faults-dd", "file", "")],
    "absolute-symlink": [("etc", "symlink", "/etc")],
    "escaping-symlink": [("up", "symlink", "../../..")],
    "write-through-symlink": [("d", "symlink", "."), ("d/faults-through", "file", "")],
    "link-chain-escape": [
        ("a", "symlink", "b/.."),
        ("b", "symlink", ".."),
        ("x", "symlink", "a/a"),
    ],
    "escaping-hardlink": [("hl", "hardlink", "../../etc/passwd")],
    "absolute-hardlink": [("hl", "hardlink", "/etc/passwd")],
    "char-device": [("null", "chr", "")],
    "block-device": [("loop", "blk", "")],
    "fifo": [("pipe", "fifo", "")],
}


@pytest.mark.parametrize("kind", list(HOSTILE_ARCHIVES))
def test_hostile_upload_is_refused(case: Case, kind: str) -> None:
    api = case.api()
    archive = make_tar(HOSTILE_ARCHIVES[kind])

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            fs = case.local_aws.container(sandbox.task_arn).root / "fs"
            before = tree(fs)
            with case.expect(UnsafeArchiveError, "unsafe archive member"):
                await sandbox._run(sandbox._flows.upload(archive, "/app/dst"))
            after = tree(fs)
            assert outside_changes(before, after, "app/dst") == []
            assert not any(content == SENTINEL for _, content in after.values())

    case.run(scenario)
    assert not Path("/tmp/faults-abs").exists()


def test_upload_through_a_link_already_in_the_destination(case: Case) -> None:
    """The destination holds a link to /root; a plain member under that link is refused."""
    api = case.api()
    archive = make_tar([("evil/faults-pwned", "file", "")])

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            await sandbox.exec(case.cmd("prep", "mkdir -p /app/dst && ln -s /root /app/dst/evil"))
            fs = case.local_aws.container(sandbox.task_arn).root / "fs"
            before = tree(fs)
            with case.expect(UnsafeArchiveError, "outside the destination"):
                await sandbox._run(sandbox._flows.upload(archive, "/app/dst"))
            assert outside_changes(before, tree(fs), "app/dst") == []

    case.run(scenario)


def test_refusals_name_their_reason_briefly(case: Case, tmp_path: Path) -> None:
    """A 6,000-character member, a path too long once the destination is put in front, and
    a FIFO and a device in a local tree: each fails with one short message that keeps its
    reason (the reference cut such errors to their last characters, or hung on the FIFO)."""
    api = case.api()
    overlong = make_tar([("x" * 6000, "file", "")])
    too_deep = make_tar([("/".join(["d" * 200] * 19 + ["e" * 250]), "file", "")])
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine.txt").write_bytes(b"fine")
    os.mkfifo(src / "pipe")
    os.mknod(src / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            fs = case.local_aws.container(sandbox.task_arn).root / "fs"
            before = tree(fs)
            with case.expect(
                UnsafeArchiveError, "a name component is 6000 bytes, more than 255"
            ) as caught:
                await sandbox._run(sandbox._flows.upload(overlong, "/app/dst"))
            assert len(caught["error"].message) < 250  # type: ignore[attr-defined]
            with case.expect(EcsExecError, "File name too long", exit_code=7) as caught:
                await sandbox._run(sandbox._flows.upload(too_deep, "/app/dst/" + "p" * 60))
            assert "Traceback" not in str(caught["error"])
            assert len(caught["error"].message) < 400  # type: ignore[attr-defined]
            with case.expect(UsageError, "(a FIFO)", "(a character device)"):
                await sandbox.copy_to_sandbox(paths=[src], container_dir="/app/dst")
            assert outside_changes(before, tree(fs), "app/dst") == []

    case.run(scenario)


_SEGMENTS = st.sampled_from(["a", "b", "c", "..", ".", "", "x y", "é", "$(id)"])
_NAMES = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join) | st.sampled_from(
    ["/tmp/faults-abs", "/a", "../x", "a/../../x"]
)
_TARGETS = _NAMES | st.sampled_from(["/etc/passwd", "/root", "../../../..", "a", "a/b"])
_MEMBERS = st.lists(
    st.tuples(
        _NAMES, st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "chr"]), _TARGETS
    ),
    min_size=1,
    max_size=6,
)


def test_random_archives_never_write_outside(case: Case) -> None:
    """Property: any archive is refused or lands wholly inside its destination."""
    api = case.api()
    outcomes: dict[str, int] = {}

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            fs = case.local_aws.container(sandbox.task_arn).root / "fs"

            @PROPERTY
            @given(members=_MEMBERS)
            def lands_inside_or_is_refused(members: list[Member]) -> None:
                dest = f"app/p{sum(outcomes.values())}"
                before = tree(fs)
                flow = sandbox._flows.upload(make_tar(members), "/" + dest)
                try:
                    api.blocking(sandbox._run, flow)
                    outcome = "extracted"
                except UnsafeArchiveError as exc:
                    assert "unsafe archive member" in str(exc)
                    outcome = "refused"
                except UsageError as exc:  # conflicts with itself (a file under a file)
                    assert "conflicts with destination" in str(exc), exc
                    outcome = "conflict"
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                assert outside_changes(before, tree(fs), dest) == [], members

            await api.in_worker(lands_inside_or_is_refused)

    case.run(scenario)
    assert outcomes.get("refused", 0) > 0, outcomes
    case.record.outcome = f"ok {outcomes}"


def test_hostile_download_is_refused(case: Case, tmp_path: Path) -> None:
    """The sandbox offers a tree whose links point outside; nothing is written locally."""
    api = case.api()
    local = tmp_path / "out"

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            await sandbox.exec(
                case.cmd(
                    "prep",
                    "mkdir -p /app/out && echo ok > /app/out/fine.txt && "
                    "ln -s /etc/passwd /app/out/passwd && mkfifo /app/out/pipe",
                )
            )
            with case.expect(UnsafeArchiveError, "absolute link target"):
                await sandbox.copy_from_sandbox("/app/out", local)
            # Without the escaping link, the FIFO is left out and the rest arrives.
            await sandbox.exec(case.cmd("fix", "rm /app/out/passwd"))
            written = await sandbox.copy_from_sandbox("/app/out", local)
            assert [p.name for p in written] == ["out"]

    case.run(scenario)
    assert sorted(p.name for p in (local / "out").iterdir()) == ["fine.txt"]
    assert (local / "out" / "fine.txt").read_text() == "ok\n"


_SHELLY = st.sampled_from(
    [
        "'",
        '"',
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "$HOME",
        "\\",
        "\n",
        "\r\n",
        ";",
        "é",
        "日本",
        "\t",
        "--",
        "-n",
        "%s",
        "!",
        "*",
        "~",
    ]
)
_VALUES = st.lists(
    _SHELLY | st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=6), max_size=6
).map("".join)


def test_values_are_delivered_exactly(case: Case) -> None:
    """Property: argv elements, environment values and working directories with quotes,
    $(), backticks, newlines and non-ASCII arrive exactly as given; NUL and unusable
    environment names are refused before anything runs."""
    api = case.api()
    examples: list[str] = []

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:

            @PROPERTY
            @given(value=_VALUES)
            def delivered_exactly(value: str) -> None:
                examples.append(value)
                tag = f"v{len(examples)}"
                argv = api.blocking(
                    sandbox.exec,
                    ["sh", "-c", case.cmd(tag, 'printf %s "$1"'), "sh", value],
                    binary=True,
                )
                assert argv.output == value.encode()
                env = api.blocking(
                    sandbox.exec, 'printf %s "$V"', env={"V": value, "W": value}, binary=True
                )
                assert env.output == value.encode()
                path = "/tmp/d-" + value.replace("/", "_")
                api.blocking(sandbox.exec, ["mkdir", "-p", "--", path])
                cwd = api.blocking(sandbox.exec, "pwd -P; printf .", cwd=path, binary=True)
                assert cwd.output == path.encode() + b"\n."

            await api.in_worker(delivered_exactly)
            for bad in [{"V": "a\0b"}, {"A B": "x"}, {"$(id)": "x"}, {"": "x"}, {"1A": "x"}]:
                with pytest.raises(UsageError) as refused:
                    await sandbox.exec("true", env=bad)
                assert "NUL" in str(refused.value) or "name" in str(refused.value)
                case.seen(refused.value)
            with pytest.raises(UsageError, match="NUL"):
                await sandbox.exec(["printf", "a\0b"])
            with pytest.raises(UsageError):
                await sandbox.exec("true", cwd="/tmp/a\0b")
            pwned = await sandbox.exec("test -e /tmp/pwned && echo PWNED; true")
            assert pwned.output == b""

    case.run(scenario)
    for i in range(1, len(examples) + 1):
        assert case.executions(f"v{i}") == 1


HOSTILE_SESSION_NAMES = [
    "a'b",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "x\ny",
    "é",
    "a b",
    "a:b",
    "a.b",
    "",
    "-t",
    "a\0b",
    "=agent",
]


def test_session_names_and_keys(case: Case) -> None:
    """Hostile session names are refused with a clear error before anything runs; hostile
    keys are typed exactly, never interpreted by the shell that drives tmux."""
    api = case.api()
    text = 'it\'s $(touch /tmp/pwned) `touch /tmp/pwned` "q" \\ é 日本 ; $HOME'

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            accepted = []
            for name in HOSTILE_SESSION_NAMES:
                try:
                    other = await sandbox.create_session(name)
                except SessionError as exc:
                    assert "invalid tmux session name" in str(exc)
                    continue
                assert await other.is_session_alive()
                accepted.append(name)
            session = await sandbox.create_session("agent_1-x")
            assert await session.is_session_alive()
            listed = await sandbox.exec("tmux list-sessions -F '#{session_name}'")
            # What was accepted exists under exactly its own name; nothing else was made.
            assert sorted(listed.output.decode().splitlines()) == sorted([*accepted, "agent_1-x"])
            assert set(accepted) <= {"-t"}, accepted
            await session.send_keys(["cat > /tmp/keys.txt", "Enter"], block=False)
            await session.send_keys([text, "Enter", "second line\n", "C-d"], block=False)
            await session.send_keys(["sync", "Enter"], block=True, max_timeout_sec=20)
            typed = await sandbox.exec(["cat", "/tmp/keys.txt"], binary=True)
            assert typed.output == (text + "\nsecond line\n").encode()
            with pytest.raises(SessionError, match="NUL"):
                await session.send_keys(["a\0b"])
            pwned = await sandbox.exec("test -e /tmp/pwned && echo PWNED; true")
            assert pwned.output == b""

    case.run(scenario)
