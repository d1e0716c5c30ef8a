"""Command shapes an agent types into its terminal, and what a blocking send must do.

Each shape is a few sends; after each shape a probe (``echo ok-$((n+0))``) must finish and
print ``ok-n``, which proves the shell is back at its prompt (not stuck in a heredoc, a
quote or a REPL). Used by the core test against a real tmux and the local-ECS e2e test.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

DONE = "done"
TIMEOUT = "timeout"
SENT = "sent"  # not blocking


@dataclass(frozen=True)
class Send:
    keys: str | list[str]
    expect: str = DONE
    limit_s: float = 20
    shows: tuple[str, ...] = ()  # rows (stripped) that must be in the pane afterwards
    exit_code: int | None = None
    alternate: bool | None = None


@dataclass(frozen=True)
class Shape:
    name: str
    sends: tuple[Send, ...]
    shells: frozenset[str] = field(default_factory=lambda: frozenset({"bash", "dash", "busybox"}))


def _shapes() -> list[Shape]:
    long_word = "x" * 3000
    shapes = [
        Shape("plain", (Send("echo plain-$((40+2))\n", shows=("plain-42",), exit_code=0),)),
        Shape("failing", (Send("false\n", exit_code=1),)),
        Shape("exit code", (Send("sh -c 'exit 3'\n", exit_code=3),)),
        Shape("keys list", (Send(["echo keys-$((1+1))", "Enter"], shows=("keys-2",)),)),
        Shape(
            "heredoc",
            (Send("cat > hd.txt <<EOF\nheredoc body\nEOF\n"), Send("cat hd.txt\n")),
        ),
        Shape("quoted heredoc", (Send("cat <<'EOF'\n$HOME stays\nEOF\n", shows=("$HOME stays",)),)),
        Shape(
            "heredoc into a pipe",
            (Send("cat <<EOF | wc -l\na\nb\nc\nEOF\n", shows=("3",)),),
        ),
        Shape("here-string", (Send('cat <<< "here-$((2*3))"\n', shows=("here-6",)),), _bash()),
        Shape("trailing comment", (Send("echo comment-ok # a comment\n", shows=("comment-ok",)),)),
        Shape("trailing semicolon", (Send("echo semi-ok;\n", shows=("semi-ok",)),)),
        Shape(
            "trailing pipe",
            (Send("echo pipe-ok |\n"), Send("tr a-z A-Z\n", shows=("PIPE-OK",))),
        ),
        Shape(
            "pipe over two lines at once",
            (Send("echo two-lines |\ntr a-z A-Z\n", shows=("TWO-LINES",)),),
        ),
        Shape(
            "trailing backslash",
            (Send("echo back \\\n"), Send("slash-ok\n", shows=("back slash-ok",))),
        ),
        Shape(
            "open double quote",
            (Send('echo "open\n'), Send('quote"\n', shows=("quote",))),
        ),
        Shape("open single quote", (Send("echo 'one\n"), Send("two'\n", shows=("two",)))),
        Shape("subshell", (Send("(cd / && echo in-$(pwd)root)\n", shows=("in-/root",)),)),
        Shape("group", (Send("{ echo g1; echo g2; }\n", shows=("g1", "g2")),)),
        Shape("for loop", (Send("for i in 1 2 3; do echo loop-$i; done\n", shows=("loop-3",)),)),
        Shape("if over lines", (Send("if true; then\necho yes-if\nfi\n", shows=("yes-if",)),)),
        Shape(
            "function over lines",
            (Send("fn() {\necho in-fn\n}\n"), Send("fn\n", shows=("in-fn",))),
        ),
        Shape("background job", (Send("sleep 30 &\n"),)),
        Shape("sequence", (Send("sleep 1 && echo after-sleep\n", shows=("after-sleep",)),)),
        Shape(
            "typed ahead",
            (Send("sleep 1\necho ahead-$((1+1))\n", shows=("ahead-2",)),),
        ),
        Shape("timeout", (Send("sleep 30\n", expect=TIMEOUT, limit_s=1), Send("C-c", SENT))),
        Shape(
            "reads stdin",
            (
                Send("cat\n", expect=TIMEOUT, limit_s=1),
                Send(["typed into cat", "Enter"], expect=TIMEOUT, limit_s=1),
                Send("C-d", SENT),
            ),
        ),
        Shape("read builtin", (Send("read answer\n"), Send("forty-two\n"))),
        Shape("clear", (Send("clear\n"),)),
        Shape("unicode", (Send("echo é-中-😀\n", shows=("é-中-😀",)),)),
        Shape("no final newline", (Send("printf no-newline\n"),)),
        # busybox's line editor keeps 1024 characters of a line.
        Shape("long line", (Send(f"echo {long_word} | wc -c\n", shows=("3001",)),), _not_busybox()),
        Shape(
            "alternate screen",
            (
                Send("printf '\\033[?1049h'\n", alternate=True),
                Send("printf '\\033[?1049l'\n", alternate=False),
            ),
        ),
        Shape("cd", (Send("cd /\n"), Send("cd - >/dev/null\n"))),
        Shape("nested shell", (Send("sh\n"), Send("echo nested-ok\n"), Send("exit\n"))),
        Shape("exec bash", (Send("exec bash\n"), Send("echo after-exec\n", shows=("after-exec",)))),
        Shape("exec sh", (Send("exec sh\n"), Send("echo after-sh\n", shows=("after-sh",)))),
    ]
    if shutil.which("python3"):
        shapes.append(
            Shape(
                "python REPL",
                (
                    Send("python3 -q\n", expect=TIMEOUT, limit_s=3),
                    Send("print(6*7)\n", expect=TIMEOUT, limit_s=1, shows=("42",)),
                    Send("exit()\n"),
                ),
            )
        )
    return shapes


def _bash() -> frozenset[str]:
    return frozenset({"bash"})


def _not_busybox() -> frozenset[str]:
    return frozenset({"bash", "dash"})


SHAPES = _shapes()
HOOK_JUNK = ("__ecs", "@ecs_", "ecs-sbx", "tmux set", "tmux wait")


def typed_rows(keys: str | list[str]) -> list[str]:
    """The non-blank lines of literal text in ``keys`` (what the pane must show typed)."""
    items = [keys] if isinstance(keys, str) else keys
    rows = []
    for item in items:
        if item in ("Enter", "C-c", "C-d"):
            continue
        rows.extend(line.strip() for line in item.split("\n") if line.strip())
    return rows
