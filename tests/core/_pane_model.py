"""A pure model of a tmux pane, served to the real read script as a fake ``tmux``.

``Pane`` keeps what tmux keeps (``grid.c``): ``hsize`` history rows, then ``height``
screen rows, the cursor on screen row ``cy``; before a row scrolls into a full history the
oldest ``max(1, limit // 10)`` rows are dropped. It also keeps the *transcript*: every row
ever started, in order, including rows tmux has dropped or a clear erased. Absolute row
``a`` (0 = oldest held row) is ``transcript[base + a]`` up to the cursor; rows below the
cursor are blank. A read is exact when its increments join to the transcript.

``FakeTmux`` runs a read script with ``/bin/sh`` after defining a shell function ``tmux``
that hands its arguments to this process over two FIFOs and prints the answer, so the
script under test is the real one and only the tmux binary is replaced. ``display`` and
``capture-pane`` behave as in tmux 3.3a (``cmd-capture-pane.c``: clamping, swapping, right
trimming); a ``cmd ; cmd`` list is answered at once, and the test may change the pane
between two invocations (``between``), as output arriving during a read does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ecs_sandbox_core._pane import CaptureRequest, Increment, PaneTracker
from ecs_sandbox_core._tmux import incremental_script


@dataclass
class Pane:
    height: int
    history_limit: int
    width: int = 80
    transcript: list[str] = field(default_factory=lambda: [""])
    base: int = 0  # transcript index of absolute row 0
    hsize: int = 0
    cy: int = 0
    alternate: list[str] | None = None  # the alternate screen's rows while it is on

    @property
    def cursor(self) -> int:
        return self.hsize + self.cy

    @property
    def cursor_index(self) -> int:
        return self.base + self.cursor

    def row(self, a: int) -> str:
        """Absolute row ``a`` as capture-pane prints it (trailing spaces trimmed)."""
        return self.transcript[self.base + a].rstrip(" ") if a <= self.cursor else ""

    def _collect(self) -> None:
        if self.hsize >= self.history_limit:
            dropped = min(self.hsize, max(1, self.history_limit // 10))
            self.base += dropped
            self.hsize -= dropped

    def _newline(self) -> None:
        if self.cy < self.height - 1:
            self.cy += 1
        else:
            self._collect()
            self.hsize += 1
        self.transcript.append("")

    def write(self, text: str) -> None:
        """Output without control characters other than newlines."""
        for i, piece in enumerate(text.split("\n")):
            if i:
                self._newline()
            self.transcript[-1] += piece

    def rewrite(self, text: str) -> None:
        """A carriage return and a redraw of the cursor row."""
        self.transcript[-1] = text

    def clear(self) -> None:
        """``clear`` in a shell: the screen and the history emptied, the cursor home."""
        self.transcript.append("")
        self.base, self.hsize, self.cy = len(self.transcript) - 1, 0, 0

    def clear_history(self) -> None:
        """``tmux clear-history``: the history goes, the screen stays."""
        self.base += self.hsize
        self.hsize = 0

    def clear_screen(self) -> None:
        """Ctrl-L (``ESC [H ESC [2J``): tmux scrolls the used rows into history first.

        The cursor row must be in use (a prompt), as it is in a shell.
        """
        assert self.transcript[-1], "the model clears the screen only below a prompt"
        for _ in range(self.cy + 1):
            self._collect()
            self.hsize += 1
        self.cy = 0
        self.transcript.append("")

    def resize(self, width: int, height: int) -> None:
        """tmux's ``screen_resize_y`` for rows no wider than the pane (so none reflows):
        shrinking drops blank rows below the cursor, then scrolls top rows into the
        history; growing pulls rows back from the history."""
        assert all(len(row) <= width for row in self.transcript[self.base :])
        if height < self.height:
            need = self.height - height
            need -= min(self.height - 1 - self.cy, need)
            for _ in range(need):
                self._collect()
                self.hsize += 1
            self.cy -= need
        else:
            pull = min(height - self.height, self.hsize)
            self.hsize -= pull
            self.cy += pull
        self.width, self.height = width, height

    def text_from(self, index: int) -> str:
        """The transcript from ``index`` to the cursor, rows right-trimmed."""
        return "\n".join(row.rstrip(" ") for row in self.transcript[index:])

    # --- tmux's side ---------------------------------------------------------------------

    def display(self) -> str:
        if self.alternate is not None:
            return f"0 {self.history_limit} 0 {self.height} {self.width} 1"
        return f"{self.hsize} {self.history_limit} {self.cy} {self.height} {self.width} 0"

    def capture(self, start: str | None, end: str | None) -> str:
        hsize = 0 if self.alternate is not None else self.hsize
        last = hsize + self.height - 1

        def line(flag: str | None, absent: int, dash: int) -> int:
            if flag is None or flag == "-":
                return absent if flag is None else dash
            n = int(flag)
            return min(0 if n < 0 and -n > hsize else hsize + n, last)

        top, bottom = line(start, hsize, 0), line(end, last, last)
        top, bottom = min(top, bottom), max(top, bottom)
        if self.alternate is not None:
            return "".join(self.alternate[a].rstrip(" ") + "\n" for a in range(top, bottom + 1))
        return "".join(self.row(a) + "\n" for a in range(top, bottom + 1))


# The fake tmux: arguments one per line (the read script passes none with a newline).
_PRELUDE = """tmux() {
  printf '%s\\n' "$@" > "$FAKE_DIR/req"
  cat "$FAKE_DIR/resp"
}
"""


class FakeTmux:
    """Serves ``pane`` to read scripts; counts the tmux invocations of the last run."""

    def __init__(self, pane: Pane, shell: tuple[str, ...] = ("/bin/sh",)) -> None:
        self.pane = pane
        self.shell = shell
        self.calls = 0
        self.invocations: list[list[str]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="faketmux"))
        os.mkfifo(self._dir / "req")
        os.mkfifo(self._dir / "resp")

    def close(self) -> None:
        for name in ("req", "resp"):
            (self._dir / name).unlink()
        self._dir.rmdir()

    def answer(self, args: list[str]) -> str:
        out: list[str] = []
        command: list[str] = []
        for arg in [*args, ";"]:
            if arg != ";":
                command.append(arg)
                continue
            name, opts = command[0], _options(command[1:])
            if name in ("display", "display-message") and opts.get("fmt") == ".":
                out.append(".\n")  # the read script's end-of-output line
            elif name in ("display", "display-message"):
                assert "-p" in opts and opts.get("fmt", "").startswith("#{history_size}")
                out.append(self.pane.display() + "\n")
            elif name == "resize-window":
                self.pane.resize(int(opts["-x"]), int(opts["-y"]))
            elif name == "capture-pane":
                assert "-p" in opts
                out.append(self.pane.capture(opts.get("-S"), opts.get("-E")))
            else:
                raise AssertionError(f"unexpected tmux command {command}")
            command = []
        return "".join(out)

    def run(self, script: str, between: Callable[[int], None] | None = None) -> str:
        """Run ``script``; ``between(n)`` runs before the n-th tmux invocation (from 0)."""
        self.calls = 0
        self.invocations = []
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                while True:
                    with open(self._dir / "req") as req:
                        args = req.read().split("\n")[:-1]
                    if args == ["QUIT"]:
                        return
                    if between is not None:
                        between(self.calls)
                    self.calls += 1
                    self.invocations.append(args)
                    try:
                        reply = self.answer(args)
                    except BaseException as exc:  # reported after the script ends
                        errors.append(exc)
                        reply = ""
                    with open(self._dir / "resp", "w") as resp:
                        resp.write(reply)
            except BaseException as exc:
                errors.append(exc)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            proc = subprocess.run(
                [*self.shell, "-c", _PRELUDE + script],
                env={"FAKE_DIR": str(self._dir), "PATH": os.environ["PATH"]},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            self._stop(server)
        if errors:
            raise errors[0]
        assert (proc.returncode, proc.stderr) == (0, ""), (proc.returncode, proc.stderr)
        return proc.stdout

    def _stop(self, server: threading.Thread) -> None:
        # Non-blocking: a server that died must not leave the test waiting for a reader.
        while server.is_alive():
            try:
                fd = os.open(self._dir / "req", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                server.join(0.01)
                continue
            with os.fdopen(fd, "w") as req:
                req.write("QUIT\n")
            server.join(10)


def _options(args: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i] in ("-t", "-S", "-E", "-x", "-y"):
            opts[args[i]] = args[i + 1]
            i += 2
        elif args[i].startswith("-"):
            opts[args[i]] = ""
            i += 1
        else:
            opts["fmt"] = args[i]
            i += 1
    return opts


class Reader:
    """A tracker reading a model pane through the real script, checked after every read.

    A ``new`` read must continue the transcript exactly from the last screen (and send only
    the new rows and the old cursor row); a ``screen`` read must show held rows from some
    row at or above the screen's top down to the cursor, and reading restarts there.
    """

    def __init__(
        self,
        pane: Pane,
        tracker: PaneTracker | None = None,
        shell: tuple[str, ...] = ("/bin/sh",),
    ) -> None:
        self.pane = pane
        self.fake = FakeTmux(pane, shell)
        self.tracker = tracker or PaneTracker()
        self.start = 0  # transcript index where the last screen's text begins
        self.texts: list[str] = []
        self.cursor_index = 0
        self.shown_from = 0  # absolute row the last screen started at
        self.kinds: list[str] = []
        self.blind = 0  # new reads after a reset the pane gave no sign of

    def close(self) -> None:
        self.fake.close()

    def read(
        self, between: Callable[[int], None] | None = None, *, reset: bool = False
    ) -> Increment:
        """One read. After a ``reset`` (clear, clear-history) a ``new`` read is excused only
        when the pane shows exactly the remembered rows where they were: no reader that
        looks at the pane can tell that state from the old one."""
        request = self.tracker.request()
        out = self.fake.run(incremental_script("s", request), between)
        increment = self.tracker.feed(out)
        pane = self.pane
        if pane.alternate is not None:
            return increment
        self.kinds.append(increment.kind)
        if increment.kind == "new":
            self.texts.append(increment.text)
            if "".join(self.texts) != pane.text_from(self.start):
                assert reset and self.indistinguishable(request), (increment, out)
                self.blind += 1
                self.start, self.texts = pane.cursor_index, [pane.row(pane.cursor)]
            else:
                # Cost: the new rows and the old cursor row, never the scrollback.
                body = out.partition("\n")[2]
                assert body.count("\n") == pane.cursor_index - self.cursor_index + 1
        else:
            first = pane.cursor + 1 - len(increment.text.split("\n"))
            assert 0 <= first <= pane.hsize, (increment, out)
            assert increment.text == "\n".join(pane.row(a) for a in range(first, pane.cursor + 1))
            self.start, self.texts, self.shown_from = pane.base + first, [increment.text], first
        self.cursor_index = pane.cursor_index
        return increment

    def indistinguishable(self, request: CaptureRequest) -> bool:
        pane = self.pane
        limit = pane.history_limit
        return (
            request.history_size <= pane.hsize <= limit - max(1, limit // 10)
            and request.cursor <= pane.cursor
            and all(pane.row(request.anchor_top + i) == row for i, row in enumerate(request.anchor))
            and (request.deep_top < 0 or pane.row(request.deep_top) == request.deep)
        )
