"""Check the Harbor environment's contract on the embedded local ECS (run by ``make peers``).

A trial with the oracle touches only part of ``BaseEnvironment``; this drives the rest
directly, through Harbor's own classes: exec (stdout and stderr apart, exit codes, ``user``
by name and uid, an unknown user, ``timeout_sec=None``, ``cwd``, ``env``, background
processes surviving), and docker-cp path semantics for ``upload_file``, ``upload_dir``
(merged into an existing directory), ``download_file`` (written as the target) and
``download_dir`` (merged into an existing local directory), on bytes that are not text.
Exits 1 naming every check that failed.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from harbor.models.task.config import EnvironmentConfig
from harbor.models.trial.paths import TrialPaths

from ecs_sandbox_drivers.harbor_env import EcsSandboxEnvironment

HERE = Path(__file__).resolve().parent
BINARY = bytes(range(256)) + b"\r\n\x00"


def read(path: Path) -> bytes | None:
    """The file's bytes, or None when it is missing (a failed check, not a crash)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def check(self, name: str, ok: bool, detail: object = "") -> None:
        if ok:
            self.passed += 1
        else:
            self.failed.append(f"{name}: {detail}")
            print(f"FAILED {name}: {detail}", file=sys.stderr)


async def exec_checks(env: EcsSandboxEnvironment, c: Checks) -> None:
    r = await env.exec("echo out; echo err >&2; exit 3", timeout_sec=None)
    c.check("exec streams", (r.stdout, r.stderr, r.return_code) == ("out\n", "err\n", 3), r)
    r = await env.exec("id -un; id -u", user="nobody")
    c.check("exec user by name", r.stdout == "nobody\n65534\n", r)
    r = await env.exec("id -u", user=65534)
    c.check("exec user by uid", r.stdout == "65534\n", r)
    r = await env.exec("true", user="no-such-user-here")
    c.check("exec unknown user", r.return_code == 126 and "no-such-user-here" in r.stderr, r)
    r = await env.exec("pwd; echo $GREETING", cwd="/tmp", env={"GREETING": "hi there"})
    c.check("exec cwd and env", r.stdout == "/tmp\nhi there\n", r)
    r = await env.exec("nosuchcommand-xyz")
    c.check("exec missing command", r.return_code == 127, r)
    await env.exec("(sleep 30 & echo $! > /tmp/bg.pid)")
    r = await env.exec('kill -0 "$(cat /tmp/bg.pid)" && echo alive')
    c.check("exec background survives", r.stdout == "alive\n", r)
    # Harbor's verifier runs as default_user with no timeout: default_user applies.
    with env.with_default_user("nobody"):
        r = await env.exec("id -un", timeout_sec=None)
    c.check("exec default_user", r.stdout == "nobody\n", r)


async def file_checks(env: EcsSandboxEnvironment, local: Path, c: Checks) -> None:
    src = local / "src"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "bin.dat").write_bytes(BINARY)
    (src / "deep" / "er" / "x.txt").write_text("x\n")
    (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (src / "run.sh").chmod(0o755)

    await env.upload_file(src / "bin.dat", "/tmp/new/parents/renamed.dat")
    r = await env.exec("wc -c < /tmp/new/parents/renamed.dat")
    c.check("upload_file as target", r.stdout.strip() == str(len(BINARY)), r)
    await env.upload_file(src / "deep" / "er" / "x.txt", "/tmp/new/parents/renamed.dat")
    r = await env.exec("cat /tmp/new/parents/renamed.dat")
    c.check("upload_file replaces", r.stdout == "x\n", r)

    await env.exec("mkdir -p /app/merge && echo keep > /app/merge/keep.txt")
    await env.upload_dir(src, "/app/merge")
    r = await env.exec("cd /app/merge && find . -type f | sort && ./run.sh")
    want = "./bin.dat\n./deep/er/x.txt\n./keep.txt\n./run.sh\nran\n"
    c.check("upload_dir merges contents", r.stdout == want, r)
    await env.upload_dir(src / "deep", "/app/fresh/made/")
    r = await env.exec("find /app/fresh -type f")
    c.check("upload_dir makes target", r.stdout == "/app/fresh/made/er/x.txt\n", r)

    target = local / "down" / "as-this-name.bin"
    await env.download_file("/app/merge/bin.dat", target)
    c.check("download_file as target", read(target) == BINARY, target)
    await env.download_file("/app/merge/keep.txt", target)
    c.check("download_file replaces", read(target) == b"keep\n")

    out = local / "out"
    (out / "deep").mkdir(parents=True)
    (out / "local-only.txt").write_text("mine")
    (out / "keep.txt").write_text("stale")
    await env.download_dir("/app/merge/", out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    want_files = ["bin.dat", "deep/er/x.txt", "keep.txt", "local-only.txt", "run.sh"]
    c.check("download_dir merges contents", files == want_files, files)
    c.check("download_dir replaces", read(out / "keep.txt") == b"keep\n")
    c.check("download_dir bytes", read(out / "bin.dat") == BINARY)
    c.check("download_dir no staging left", not list((local).glob(".ecs-sandbox-*")))

    async def expect(name: str, call: Callable[[], object], error: type[BaseException]) -> None:
        try:
            await call()  # type: ignore[misc]
        except error:
            c.passed += 1
        except Exception as exc:
            c.check(name, False, repr(exc))
        else:
            c.check(name, False, "no error")

    await expect(
        "download_file of a directory",
        lambda: env.download_file("/app/merge", local / "f"),
        IsADirectoryError,
    )
    await expect(
        "download_dir of a file",
        lambda: env.download_dir("/app/merge/keep.txt", local / "d"),
        NotADirectoryError,
    )


async def main() -> int:
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="ecs-sandbox-harbor-env-") as scratch:
        root = Path(scratch)
        config = root / "ecs-sandbox.toml"
        config.write_text("local = true\n")
        trial = TrialPaths(trial_dir=root / "trial")
        trial.mkdir()
        env = EcsSandboxEnvironment(
            environment_dir=HERE / "harbor_task" / "environment",
            environment_name="harbor-env-check",
            session_id="harbor-env-check__env",
            trial_paths=trial,
            task_env_config=EnvironmentConfig(),
            config=str(config),
        )
        await env.start(force_build=False)
        try:
            await exec_checks(env, c)
            (root / "local").mkdir()
            await file_checks(env, root / "local", c)
        finally:
            await env.stop(delete=True)
    if c.failed:
        print(f"FAIL: {len(c.failed)} of {len(c.failed) + c.passed} environment checks failed")
        return 1
    print(f"PASS: {c.passed} environment checks (exec, users, files) on the local ECS")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
