"""Key plans, script shapes and parsers of ``_tmux``.

What tmux receives is checked two ways: from the plan's steps, and from the real
``send_script`` run by /bin/sh against a stand-in ``tmux`` on PATH that records its argv
(and load-buffer's stdin), so the shell quoting is part of what is tested. The scripts
against a real tmux are in ``test_tmux_real.py``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core._errors import SessionError
from ecs_sandbox_core._pane import CaptureRequest
from ecs_sandbox_core._terminal import hook_channel
from ecs_sandbox_core._tmux import (
    ENTER_KEYS,
    LIST_BYTES,
    PASTE_THRESHOLD,
    TESTED_TMUX,
    KeyPlan,
    Paste,
    SendKeys,
    StartInfo,
    alive_script,
    capture_script,
    check_session_name,
    incremental_script,
    is_key_name,
    parse_send,
    parse_start,
    plan_keys,
    send_script,
    start_script,
    status_script,
    version_warning,
)

Token = tuple[str, str]  # ("key", name) or ("text", text)


# --- what tmux would receive --------------------------------------------------------------


def merged(tokens: Sequence[Token]) -> list[Token]:
    """Adjacent text runs joined, empty text dropped: typing "a" then "b" types "ab"."""
    out: list[Token] = []
    for kind, value in tokens:
        if kind == "text":
            if not value:
                continue
            if out and out[-1][0] == "text":
                out[-1] = ("text", out[-1][1] + value)
                continue
        out.append((kind, value))
    return out


def text_tokens(text: str) -> list[Token]:
    """Text as tmux delivers it: every newline is an Enter."""
    tokens: list[Token] = []
    for i, piece in enumerate(text.split("\n")):
        if i:
            tokens.append(("key", "Enter"))
        tokens.append(("text", piece))
    return tokens


def expected(keys: Sequence[str]) -> list[Token]:
    """The documented transform: key names kept, text typed, '\\n' in text is Enter."""
    tokens: list[Token] = []
    for key in keys:
        if "\n" not in key and is_key_name(key):
            tokens.append(("key", key))
        else:
            tokens.extend(text_tokens(key))
    return merged(tokens)


def delivered(plan: KeyPlan) -> list[Token]:
    """What the plan's steps make tmux deliver (paste-buffer turns '\\n' into Enter)."""
    tokens: list[Token] = []
    for step in plan.steps:
        if isinstance(step, Paste):
            tokens.extend(text_tokens(step.text))
        elif step.literal:
            assert len(step.keys) == 1
            assert "\n" not in step.keys[0]
            tokens.append(("text", step.keys[0]))
        else:
            assert all(is_key_name(k) for k in step.keys)
            tokens.extend(("key", k) for k in step.keys)
    return merged(tokens)


KEY_NAMES = [
    "Enter",
    "C-c",
    "C-d",
    "Up",
    "Tab",
    "BSpace",
    "Escape",
    "M-x",
    "F5",
    "^C",
    "C-m",
    "M-;",
]
text = st.text(alphabet=st.sampled_from([*"ab \n'\"$`()\\;&|*é€-", "😀"]), max_size=30)
big_text = st.builds(
    lambda line, n: "".join(f"{i}:{line}\n" for i in range(n)),
    st.text(alphabet="xyz '$", max_size=20),
    st.integers(1, 40),
)
keys_lists = st.lists(st.one_of(st.sampled_from(KEY_NAMES), text, big_text), max_size=12)


@given(keys_lists, st.integers(1, 200))
def test_every_key_is_delivered_in_order(keys: list[str], threshold: int) -> None:
    plan = plan_keys(keys, paste_threshold=threshold)
    assert delivered(plan) == expected(keys)
    assert not plan.blocks


@given(keys_lists, st.integers(1, 200))
def test_large_text_is_pasted_and_small_text_typed(keys: list[str], threshold: int) -> None:
    plan = plan_keys(keys, paste_threshold=threshold)
    for step in plan.steps:
        if isinstance(step, Paste):
            assert len(step.text.encode()) > threshold
        elif step.literal:
            assert len(step.keys[0].encode()) <= threshold
    # Neighbouring steps of one kind would be one tmux call.
    for before, after in zip(plan.steps, plan.steps[1:], strict=False):
        both_keys = (
            isinstance(before, SendKeys)
            and isinstance(after, SendKeys)
            and not before.literal
            and not after.literal
        )
        assert not both_keys


def test_large_input_stays_between_the_keys_around_it() -> None:
    """Defect 4: a big input used to be pasted before every other key."""
    lines = "".join(f"line {i}\n" for i in range(1000))
    assert len(lines.encode()) > PASTE_THRESHOLD
    plan = plan_keys(["cat > f", "Enter", lines, "C-d", "echo done", "Enter"])
    assert plan.steps == (
        SendKeys(("cat > f",), literal=True),
        SendKeys(("Enter",), literal=False),
        Paste(lines),
        SendKeys(("C-d",), literal=False),
        SendKeys(("echo done",), literal=True),
        SendKeys(("Enter",), literal=False),
    )


def test_small_multiline_text_is_typed_with_enters() -> None:
    plan = plan_keys("echo a\necho b\n")
    assert plan.steps == (
        SendKeys(("echo a",), literal=True),
        SendKeys(("Enter",), literal=False),
        SendKeys(("echo b",), literal=True),
        SendKeys(("Enter",), literal=False),
    )
    assert plan.ends_with_enter


@pytest.mark.parametrize("key", ["Enter", "C-c", "Up", "M-x", "F12", "^C", "C-M-a", "S-Tab"])
def test_key_names(key: str) -> None:
    assert is_key_name(key)


@pytest.mark.parametrize(
    "key", ["ls", "Enter ", " Up", "Enter\n", "C-c\n", "hello world", "C-", "F13", ""]
)
def test_not_key_names(key: str) -> None:
    assert not is_key_name(key)


# --- blocking ---------------------------------------------------------------------------


def ends_with_enter(keys: Sequence[str]) -> bool:
    tokens = expected(keys)
    return bool(tokens) and tokens[-1][0] == "key" and tokens[-1][1] in ENTER_KEYS


@given(keys_lists, st.integers(1, 200))
def test_a_blocking_send_types_exactly_the_keys(keys: list[str], threshold: int) -> None:
    """Issue 14: nothing is added to what the agent typed (a heredoc's terminator, a
    trailing comment or continuation must stay exactly as typed)."""
    plan = plan_keys(keys, block=True, paste_threshold=threshold)
    assert plan.ends_with_enter == ends_with_enter(keys)
    assert plan.blocks == ends_with_enter(keys)
    assert delivered(plan) == expected(keys)


@pytest.mark.parametrize(
    "keys",
    [
        ["sleep 1", "Enter"],
        "sleep 1\n",
        ["sleep 1\n"],
        ["sleep 1", "C-m"],
        ["echo a\necho b", "\n"],
    ],
)
def test_a_final_enter_or_newline_makes_a_blocking_send_wait(keys: str | list[str]) -> None:
    """Defect 3: keys ending in '\\n' used not to count as Enter."""
    plan = plan_keys(keys, block=True)
    assert plan.blocks
    assert plan.ends_with_enter


@pytest.mark.parametrize("keys", [["sleep 1"], "vim", ["ls", "Enter", "C-c"], [], [""]])
def test_without_a_final_enter_nothing_waits(keys: str | list[str]) -> None:
    plan = plan_keys(keys, block=True)
    assert not plan.blocks
    assert " wl " not in send_script("s1", plan, wait_timeout_s=5)


def wait_channels(script: str) -> set[str]:
    """Every channel the script (or a hook it installs) waits on or signals."""
    return set(re.findall(r"wait(?: -S)? '?([A-Za-z0-9_-]+)", script))


@given(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True), min_size=2, unique=True))
def test_each_session_has_its_own_channel(names: list[str]) -> None:
    """Defect 5: one shared channel woke every session; each session now has its own."""
    for name in names:
        plan = plan_keys(["make", "Enter"], block=True)
        assert wait_channels(send_script(name, plan, wait_timeout_s=5)) == {hook_channel(name)}
        assert wait_channels(start_script(name)) == {hook_channel(name)}
    assert len({hook_channel(n) for n in names}) == len(names)


def test_non_blocking_script_never_waits() -> None:
    script = send_script("s1", plan_keys(["ls", "Enter"]), wait_timeout_s=5)
    assert "\nwl " not in script and "&& wl" not in script


@pytest.mark.parametrize("keys", ["a\0b", ["ls", "\0"], ["\0"]])
def test_nul_is_refused(keys: str | list[str]) -> None:
    with pytest.raises(SessionError, match="NUL"):
        plan_keys(keys)


def test_keys_must_be_strings() -> None:
    with pytest.raises(SessionError, match="strings"):
        plan_keys(["ls", 3])  # type: ignore[list-item]


# --- session names, start ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "main", "sbx_1-2", "A" * 64, "0"])
def test_session_names_accepted(name: str) -> None:
    assert check_session_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a:b", "a.b", "a b", "A" * 65, "é", "main\n", "a;b", "$(x)", "=main"]
)
def test_session_names_refused(name: str) -> None:
    with pytest.raises(SessionError, match="session name"):
        check_session_name(name)
    with pytest.raises(SessionError):
        alive_script(name)


def test_refused_names_reach_no_script() -> None:
    for make in (
        start_script,
        capture_script,
        lambda n: send_script(n, plan_keys("x"), wait_timeout_s=1),
        lambda n: incremental_script(n, CaptureRequest(first=True)),
    ):
        with pytest.raises(SessionError):
            make("bad name")


def test_start_sets_history_limit_before_new_session_in_one_command() -> None:
    """Defect 6: a limit set after new-session does not apply to its pane."""
    script = start_script("s1", width=100, height=30, history_limit=5000)
    [line] = [line for line in script.splitlines() if "new-session" in line]
    words = shlex.split(line)
    assert words[0] == "tmux"
    commands = [""]  # split at the separate ";" words (the hook's text has its own " ; ")
    for word in words[1:]:
        if word == ";":
            commands.append("")
        else:
            commands[-1] = f"{commands[-1]} {word}".lstrip()
    assert commands[:2] == ["start-server", "set -g history-limit 5000"]
    assert commands[4] == "new-session -d -x 100 -y 30 -s s1"
    # The hook's variables are set on the server only around that new-session (issue 14).
    assert commands[2] == 'set-environment -g ENV "$e"'.replace('"', "")
    assert commands[3].startswith("set-environment -g PROMPT_COMMAND ")
    # Recording starts in the same list, before the pane's program can print anything.
    assert commands[5] == 'pipe-pane -t =s1: exec sh "${TMPDIR:-/tmp}/.ecs-sbx-s1.rec/rec.sh"'
    assert commands[6:] == [
        "set-environment -gu ENV",
        "set-environment -gu PROMPT_COMMAND || exit $?",
    ]


@pytest.mark.parametrize(
    "geometry",
    [
        {"width": 9},
        {"width": 1001},
        {"height": 4},
        {"height": 1001},
        {"history_limit": 99},
        {"history_limit": 10_000_001},
    ],
)
def test_start_refuses_out_of_range_geometry(geometry: dict[str, int]) -> None:
    with pytest.raises(SessionError, match="range"):
        start_script("s1", **geometry)


@pytest.mark.parametrize(
    ("output", "info"),
    [
        ("1 tmux 3.3a\n", StartInfo(created=True, version=(3, 3), raw_version="tmux 3.3a")),
        ("0 tmux 3.0\n", StartInfo(created=False, version=(3, 0), raw_version="tmux 3.0")),
        ("motd\n1 tmux next-3.5\n", StartInfo(True, (3, 5), "tmux next-3.5")),
        ("0 tmux master\n", StartInfo(created=False, version=None, raw_version="tmux master")),
        ("1 tmux 2.9a", StartInfo(created=True, version=(2, 9), raw_version="tmux 2.9a")),
    ],
)
def test_parse_start(output: str, info: StartInfo) -> None:
    assert parse_start(output) == info


@pytest.mark.parametrize("output", ["", "\n", "tmux 3.3a\n", "2 tmux 3.3a", "yes tmux"])
def test_parse_start_refuses_other_output(output: str) -> None:
    with pytest.raises(SessionError, match="start output"):
        parse_start(output)


@pytest.mark.parametrize(
    ("version", "warns"),
    [
        ((3, 0), False),
        ((3, 3), False),
        ((3, 4), False),
        (None, False),
        ((2, 9), True),
        ((3, 5), True),
        ((4, 0), True),
        ((1, 8), True),
    ],
)
def test_version_warning_only_outside_the_tested_range(
    version: tuple[int, int] | None, warns: bool
) -> None:
    warning = version_warning(StartInfo(created=True, version=version, raw_version="tmux X.Y"))
    assert (warning is not None) == warns
    if warning:
        low, high = TESTED_TMUX
        assert "'tmux X.Y'" in warning
        assert f"{low[0]}.{low[1]}-{high[0]}.{high[1]}" in warning


# --- parse_send ---------------------------------------------------------------------------

pane_text = st.text(alphabet=st.sampled_from(list("SW=0124-\n x")), max_size=60)


LOOK = "7 7 S 7 7 P r0 0 bash /root"


@given(pane_text, st.sampled_from(["0", "1", "127"]), st.sampled_from(["0", "124", "-"]))
def test_parse_send_reads_status_lines_by_position(body: str, s: str, w: str) -> None:
    for rest in (body, "S=1\nW=124\nT=-\n" + body, body + "\nS=1\nW=124\n"):
        for look in ("-", LOOK):
            status = parse_send(f"S={s}\nW={w}\nT={look}\n{rest}")
            assert status.typed == (s == "0")
            assert status.send_status == int(s)
            assert status.waited == (w != "-")
            assert status.timed_out == (w == "124")
            assert status.rest == rest
            assert (status.terminal is None) == (look == "-")


@given(st.text(max_size=40))
def test_parse_send_refuses_anything_else_with_a_session_error(output: str) -> None:
    assume(not re.match(r"S=\d+\nW=(0|124|-)\nT=", output))
    with pytest.raises(SessionError):
        parse_send(output)


def test_a_status_line_of_another_shape_is_unknown_not_an_error() -> None:
    status = parse_send("S=0\nW=0\nT=1 2 S 3 0 - - 0 #{q:pane_current_command}\nrest")
    assert status.terminal is None and status.rest == "rest" and not status.timed_out


@pytest.mark.parametrize(
    "output",
    [
        "",
        "S=0",
        "W=0\nS=0\n",
        "S=x\nW=0\nT=-\n",
        "out\nS=0\nW=0\nT=-\n",
        "S=0\nW=1\nT=-\n",
        "S=0\nW=0\n",
    ],
)
def test_parse_send_examples_refused(output: str) -> None:
    with pytest.raises(SessionError):
        parse_send(output)


# --- the scripts under /bin/sh with a stand-in tmux -----------------------------------------

# The stand-in answers `display` (the look at the pane) with FAKE_LOOK: by default bash's
# hook has reported a prompt ("P"), so a blocking send is done at its first look. A look
# lists two displays: the pane's geometry (FAKE_GEOMETRY) comes first. A read's displays
# print FAKE_LOOK too: not a geometry, so the read finds no session.
FAKE_TMUX = r"""#!/bin/sh
[ "$1" = -u ] && shift
n=$(cat "$FAKE_DIR/n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/n"
printf '%s\0' "$@" > "$FAKE_DIR/call.$n"
[ "$1" = load-buffer ] && cat > "$FAKE_DIR/stdin.$n"
[ "$n" = "${FAKE_FAIL_AT:-0}" ] && exit 1
if [ "$1" = display ]; then
case "$*" in *"; display "*"#{pane_pid}"*) echo "${FAKE_GEOMETRY-0 50000 1 40 160 0}";; esac
echo "${FAKE_LOOK-999999999 0 P r3 0 bash /root}"
fi
[ "$1" = wait ] && sleep 0.05
exit 0
"""


class FakeTmux:
    """A directory with a recording ``tmux`` first on PATH."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.calls = root / "calls"
        self.bin.mkdir()
        self.calls.mkdir()
        tmux = self.bin / "tmux"
        tmux.write_text(FAKE_TMUX)
        tmux.chmod(0o755)

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        for old in self.calls.iterdir():
            old.unlink()
        return subprocess.run(
            ["/bin/sh", "-c", script],
            env={
                "PATH": f"{self.bin}:{os.environ['PATH']}",
                "FAKE_DIR": str(self.calls),
                **env,
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def recorded(self) -> list[tuple[list[str], str | None]]:
        """(argv, stdin for load-buffer) of every tmux call, in order."""
        count = int((self.calls / "n").read_text()) if (self.calls / "n").exists() else 0
        out = []
        for n in range(1, count + 1):
            argv = (self.calls / f"call.{n}").read_bytes().decode().split("\0")[:-1]
            stdin = self.calls / f"stdin.{n}"
            out.append((argv, stdin.read_bytes().decode() if stdin.exists() else None))
        return out


@pytest.fixture(scope="module")
def fake_tmux(tmp_path_factory: pytest.TempPathFactory) -> FakeTmux:
    return FakeTmux(tmp_path_factory.mktemp("fake-tmux"))


def commands(calls: list[tuple[list[str], str | None]]) -> list[tuple[list[str], str | None]]:
    """The recorded tmux calls split into single commands as tmux reads its arguments: a
    final ``;`` ends a command, unless a backslash before it makes it a literal ``;``."""
    out: list[tuple[list[str], str | None]] = []
    for argv, stdin in calls:
        command: list[str] = []
        for arg in argv:
            if not arg.endswith(";"):
                command.append(arg)
            elif arg.endswith("\\;"):
                command.append(arg[:-2] + ";")
            else:
                if arg[:-1]:
                    command.append(arg[:-1])
                out.append((command, stdin))
                command = []
        out.append((command, stdin))
    return out


def received(calls: list[tuple[list[str], str | None]], target: str) -> list[Token]:
    """What tmux would deliver to ``target`` for the recorded send-keys and paste calls."""
    tokens: list[Token] = []
    buffers: dict[str, str] = {}
    for argv, stdin in commands(calls):
        if argv[0] == "send-keys":
            assert argv[1:3] == ["-t", target]
            if argv[3] == "-l":
                assert argv[4] == "--"
                [literal] = argv[5:]
                tokens.append(("text", literal))
            else:
                tokens.extend(("key", k) for k in argv[3:])
        elif argv[0] == "load-buffer":
            assert argv[1] == "-b"
            assert argv[3] == "-"
            assert stdin is not None
            buffers[argv[2]] = stdin
        elif argv[0] == "paste-buffer":
            assert argv[1:3] == ["-d", "-b"]
            assert argv[4:] == ["-t", target]
            tokens.extend(text_tokens(buffers.pop(argv[3])))
    assert buffers == {}
    return merged(tokens)


SHELL = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SHELL
@given(keys_lists, st.sampled_from([20, 200, PASTE_THRESHOLD]))
def test_send_script_types_every_key_exactly_once_in_order(
    fake_tmux: FakeTmux, keys: list[str], threshold: int
) -> None:
    plan = plan_keys(keys, paste_threshold=threshold)
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=5))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("S=0\nW=-\nT=")
    assert received(fake_tmux.recorded(), "=s1:") == expected(keys)


RESET = ["set", "-p", "-t", "=s1:", "@ecs_st", ""]


long_line = st.text(alphabet=st.sampled_from([*"ab '$;\\", "é", "😀"]), min_size=300, max_size=700)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(KEY_NAMES), long_line), min_size=1, max_size=40))
def test_steps_share_clients_under_the_command_line_limit(
    fake_tmux: FakeTmux, keys: list[str]
) -> None:
    """Text and the key names after it share one tmux client, under LIST_BYTES of arguments
    (tmux refuses about 16 KB); key names end a client's list (what follows an Enter must
    reach the program it started, in that program's terminal modes), and every key still
    arrives once, in order."""
    plan = plan_keys(keys)
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=5))
    assert (proc.returncode, proc.stderr) == (0, "")
    recorded = fake_tmux.recorded()
    assert received(recorded, "=s1:") == expected(keys)
    calls = [call for call in recorded if call[0][0] in ("send-keys", "paste-buffer")]
    for argv, _ in calls:
        if ";" in argv:  # a list: within the budget (one step alone may exceed it)
            assert sum(len(arg.encode()) + 1 for arg in argv) <= LIST_BYTES
    assert sum(len(commands([call])) for call in calls) == len(plan.steps)
    for call in calls:
        listed = [argv for argv, _ in commands([call])]
        # Only text (typed or pasted) before the last command.
        assert all(argv[0] == "paste-buffer" or argv[3] == "-l" for argv in listed[:-1])
    # A new client after key names and for a paste, else only where the one before could
    # not take the next step: two clients in a row then hold more than LIST_BYTES.
    ends = sum(isinstance(step, Paste) or not step.literal for step in plan.steps)
    text = sum(len(shlex.join(argv).encode()) for argv, _ in calls)
    assert len(calls) <= 2 + ends + 2 * text // LIST_BYTES


def test_an_agent_step_types_with_one_client(fake_tmux: FakeTmux) -> None:
    """The command and its Enter (with the reset between) go in one tmux call, which the
    wait's look follows."""
    plan = plan_keys(["echo $((3 * 3 + 1))", "Enter"], block=True)
    fake_tmux.run(send_script("s1", plan, wait_timeout_s=5))
    calls = [argv for argv, _ in fake_tmux.recorded()]
    assert calls[0] == [
        *["send-keys", "-t", "=s1:", "-l", "--", "echo $((3 * 3 + 1))", ";"],
        *[*RESET, ";", "send-keys", "-t", "=s1:", "Enter"],
    ]
    assert {argv[0] for argv in calls[1:]} == {"display"}


@SHELL
@given(keys_lists.filter(ends_with_enter), st.sampled_from([20, PASTE_THRESHOLD]))
def test_blocking_send_script_types_exactly_then_waits(
    fake_tmux: FakeTmux, keys: list[str], threshold: int
) -> None:
    """Issue 14: the keys arrive exactly as given; the last prompt is forgotten in the same
    tmux command list as the final Enter, and then the script looks at the pane."""
    plan = plan_keys(keys, block=True, paste_threshold=threshold)
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=5))
    assert proc.stdout == "S=0\nW=0\nT=- - -\t999999999 0 P r3 0 bash /root\n".replace("\t", " ")
    calls = fake_tmux.recorded()
    assert received(calls, "=s1:") == expected(keys)
    typing = [call for call in calls if call[0][0] in ("send-keys", "paste-buffer", "set")]
    # The last client's list ends with the reset and then the final Enter (or paste).
    last_list = [argv for argv, _ in commands([typing[-1]])]
    assert last_list[-2] == RESET
    assert last_list[-1][0] in ("send-keys", "paste-buffer")
    assert sum(argv.count("@ecs_st") for argv, _ in calls) == 1
    # After the typing only the wait looks: its first look, then 50 more for the hook's
    # processes to leave the foreground (the stand-in's pane pid does not exist); the status
    # line is its last look, not one more.
    typed = max(i for i, (argv, _) in enumerate(calls) if "@ecs_st" in argv)
    assert [argv[0] for argv, _ in calls[typed + 1 :]] == ["display"] * (1 + 50)


def test_a_wait_that_sees_no_prompt_times_out(fake_tmux: FakeTmux) -> None:
    plan = plan_keys("make\n", block=True)
    look = "999999999 0 - - 0 make /root"
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=1), FAKE_LOOK=look)
    status = parse_send(proc.stdout)
    assert status.timed_out
    assert status.terminal is not None and status.terminal.running
    # The wait arms and waits on the session's channel while the state is still none.
    waits = [argv for argv, _ in fake_tmux.recorded() if "@ecs_w" in argv]
    assert waits
    assert waits[0][:8] == ["set", "-p", "-t", "=s1:", "@ecs_w", "1", ";", "if"]
    assert waits[0][-3:] == [
        "#{==:#{?@ecs_st,#{@ecs_st},-},-}",
        f"wait {hook_channel('s1')}",
        "set -pu -t =s1: @ecs_w",
    ]


def test_a_wait_ends_when_the_pane_is_gone(fake_tmux: FakeTmux) -> None:
    """Without this, a wait without limit would look at a dead session forever."""
    plan = plan_keys("make\n", block=True)
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=None), FAKE_LOOK="")
    status = parse_send(proc.stdout)
    assert status.session_gone and not status.timed_out and status.terminal is None


def test_a_failed_step_stops_the_rest_and_skips_the_wait(fake_tmux: FakeTmux) -> None:
    plan = plan_keys(["ls", "Enter", "x" * 3000, "Enter"], block=True)
    assert len(plan.steps) == 4
    proc = fake_tmux.run(send_script("s1", plan, wait_timeout_s=5), FAKE_FAIL_AT="2")
    status = parse_send(proc.stdout)
    assert (status.typed, status.send_status, status.waited) == (False, 1, False)
    # "ls" and Enter share the first client; the second, load-buffer, fails: no paste, no
    # Enter, no wait, and a look for the status line.
    calls = fake_tmux.recorded()
    assert [argv[0] for argv, _ in calls] == ["send-keys", "load-buffer", "display"]
    assert calls[0][0] == [
        "send-keys",
        "-t",
        "=s1:",
        "-l",
        "--",
        "ls",
        ";",
        "send-keys",
        "-t",
        "=s1:",
        "Enter",
    ]


def test_settle_and_read_follow_the_status_lines(fake_tmux: FakeTmux) -> None:
    request = CaptureRequest(first=True)
    script = send_script("s1", plan_keys("ls\n"), wait_timeout_s=5, read=request, settle_s=0.25)
    assert "sleep 0.250" in script
    assert script.endswith(incremental_script("s1", request))
    proc = fake_tmux.run(script, FAKE_LOOK="")
    # The stand-in prints no geometry, so the read part reports a missing session.
    assert proc.stdout == "S=0\nW=-\nT=-\n"
    assert (proc.returncode, proc.stderr) == (3, "tmux: no such session\n")


def test_status_script(fake_tmux: FakeTmux) -> None:
    proc = fake_tmux.run(status_script("s1"))
    assert proc.stdout == "- - - 999999999 0 P r3 0 bash /root\n"
    proc = fake_tmux.run(status_script("s1"), FAKE_LOOK="")
    assert (proc.returncode, proc.stderr) == (3, "tmux: no such session\n")


def test_capture_and_alive_scripts(fake_tmux: FakeTmux) -> None:
    fake_tmux.run(capture_script("s1"))
    assert fake_tmux.recorded() == [(["capture-pane", "-p", "-t", "=s1:"], None)]
    fake_tmux.run(capture_script("s1", entire=True))
    assert fake_tmux.recorded() == [(["capture-pane", "-p", "-S", "-", "-t", "=s1:"], None)]
    proc = fake_tmux.run(alive_script("s1"))
    assert proc.stdout == "1\n"
    assert fake_tmux.recorded() == [(["has-session", "-t", "=s1"], None)]
    assert fake_tmux.run(alive_script("s1"), FAKE_FAIL_AT="1").stdout == "0\n"


def test_start_script_without_tmux_exits_127(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["/bin/sh", "-c", start_script("s1")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (127, "", "tmux: not found\n")
