"""Running the real ``ecs-sandbox`` console script as a subprocess, as users and CI do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import ecs_sandbox_drivers

# The sources under test, first on the path (the console script itself may belong to another
# checkout's editable install).
SRC = str(Path(ecs_sandbox_drivers.__file__).resolve().parents[1])


def console_script() -> str:
    """The ``ecs-sandbox`` script installed next to this interpreter."""
    found = shutil.which("ecs-sandbox", path=str(Path(sys.executable).parent))
    assert found is not None, "ecs-sandbox is not installed in this environment"
    return found


def cli_env(extra: Mapping[str, str] | None = None, **kwargs: str) -> dict[str, str]:
    """os.environ without ECS_SANDBOX_* settings, the sources first, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECS_SANDBOX_")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    env.update(kwargs)
    return env


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``ecs-sandbox ARGS`` to completion; text stdout and stderr."""
    return subprocess.run(
        [console_script(), *args],
        env=dict(env) if env is not None else cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def popen_cli(
    args: Sequence[str], *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``ecs-sandbox ARGS`` with piped stdout and stderr."""
    return subprocess.Popen(
        [console_script(), *args],
        env=dict(env) if env is not None else cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_with(text: str) -> list[int]:
    """Pids of the processes on this machine whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found
