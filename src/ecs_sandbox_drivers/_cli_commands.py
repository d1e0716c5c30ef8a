"""The bodies of the ``ecs-sandbox`` subcommands (the parser is in :mod:`.cli`).

Each command checks everything the user typed first (so that a typo costs neither a local
ECS start-up nor a task launch), then gets its sandbox: a fresh one that is torn down on the
way out, or with an id one that ``up`` started and that outlives the call.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from ecs_sandbox_core import EcsSandboxError, UsageError
from ecs_sandbox_core._gc_select import parse_duration

from . import _localecs
from ._api import EcsFargateSandbox
from ._cli_sandbox import (
    Backend,
    announce_run,
    attach,
    check_configuration,
    find_sandbox,
    list_sandboxes,
    new_ids,
    note_ignored_image,
    one_shot_backend,
    persistent_backend,
)
from ._cli_support import EXIT_FAILURE, Progress, check_timeout, note
from ._common import USE_CONFIG_DEFAULT, start
from ._gc import collect_garbage, report_lines

FRESH = "sandbox"  # `sandbox:/path` and `exec -- CMD`: a fresh sandbox for this call
UP_RUN_PREFIX = "up-"  # run ids of the sandboxes `up` starts (what `down --all` stops)


def _no_local_ecs() -> EcsSandboxError:
    return UsageError(
        "no persistent local ECS is running, so there is no local sandbox to use",
        remedy="Start one with `ecs-sandbox up --local` (it prints the sandbox's id).",
    )


@contextlib.contextmanager
def sandbox_for(
    args: argparse.Namespace, progress: Progress, ident: str | None
) -> Iterator[tuple[EcsFargateSandbox, Backend]]:
    """The sandbox ``ident`` (started by ``up``), or with None a fresh one for this call."""
    if ident is not None and ident != FRESH:
        backend = persistent_backend(args, progress)
        if backend is None:
            raise _no_local_ecs()
        driver = backend.driver(progress)
        yield attach(driver, find_sandbox(driver, ident)), backend
        return
    task_id, run_id = new_ids(args)
    if not args.local:  # a local one-shot ECS goes with this process: nothing to collect
        announce_run(run_id)
    with one_shot_backend(args, progress) as backend:
        note_ignored_image(args, backend.cfg)
        driver = backend.driver(progress)
        progress.say("starting a sandbox")
        with EcsFargateSandbox.spin_up(
            cfg=backend.cfg, task_id=task_id, trial_name="cli", run_id=run_id, driver=driver
        ) as sandbox:
            progress.say(f"sandbox {task_id} is running")
            try:
                yield sandbox, backend
            finally:
                progress.say("tearing the sandbox down")


def env_pairs(items: Sequence[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` flags as a mapping."""
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--env {item!r} must look like NAME=VALUE")
        env[name] = value
    return env


class _Output:
    """The command's output on stdout as it arrives; remembers how the last line ended."""

    def __init__(self) -> None:
        self.open_line = False

    def __call__(self, chunk: bytes) -> None:
        if chunk:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            self.open_line = not chunk.endswith(b"\n")

    def end_line(self) -> None:
        # A command cut off by its timeout may have its last newline still held back
        # (or have been in mid-line): end the line before the error message.
        if self.open_line:
            sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
            self.open_line = False


def cmd_exec(args: argparse.Namespace, progress: Progress) -> int:
    """``exec [ID] -- CMD``: run CMD, print its output, exit with its code."""
    if not args.words:
        raise UsageError(
            "exec needs a command",
            remedy="e.g. ecs-sandbox exec -- uname -a (a fresh sandbox), or "
            "ecs-sandbox exec ID -- uname -a (one that `up` started)",
        )
    env = env_pairs(args.env)
    check_timeout(args.timeout)
    check_configuration(args)
    command = args.words if len(args.words) > 1 else args.words[0]
    output = _Output()
    with sandbox_for(args, progress, args.target) as (sandbox, _):
        try:
            result = sandbox.exec(
                command,
                timeout_sec=USE_CONFIG_DEFAULT if args.timeout is None else args.timeout,
                env=env or None,
                cwd=args.cwd,
                on_output=output,
            )
        finally:
            output.end_line()
    return result.exit_code


def cmd_shell(args: argparse.Namespace, progress: Progress) -> int:
    """``shell [ID]``: an interactive terminal; exits with the shell's exit status."""
    check_configuration(args)
    if args.target in (None, FRESH):
        took = "" if args.local else " (on AWS usually 10-20 s)"
        note(f"starting a sandbox for the shell{took}; it goes when the shell exits")
    # ECS Exec does not report a command's exit status: the shell's goes to a file, read after.
    status_file = f"/tmp/.ecs-sandbox-shell-{uuid.uuid4().hex[:12]}"  # noqa: S108 - in the sandbox
    script = f"{args.shell}; echo $? > {status_file}"
    with sandbox_for(args, progress, args.target) as (sandbox, backend):
        transport = backend.cli_transport()
        transport.check_available()
        prepared = transport.prepare(
            task_arn=sandbox.task_arn,
            container=backend.cfg.container_name,
            command=f"sh -c {shlex.quote(script)}",
        )
        note(f"attaching a terminal to {sandbox.task_arn.rsplit('/', 1)[-1]} (ECS Exec) ...")
        # The terminal is the user's: stdin, stdout and stderr are inherited as they are.
        subprocess.call(prepared.argv, env=prepared.env)
        status = sandbox.exec(f"cat {status_file}; rm -f {status_file}")
    text = status.text.strip()
    if not text.isdigit():
        note("the shell's exit status is unknown (the session ended before the shell did)")
        return EXIT_FAILURE
    return int(text)


def _location(text: str) -> tuple[str | None, str]:
    """``ID:/path`` -> (ID, path); a local path -> (None, path). As docker cp: a colon
    before the first slash marks a sandbox."""
    head, sep, tail = text.partition(":")
    if sep and head and "/" not in head:
        return head, tail
    return None, text


def cmd_cp(args: argparse.Namespace, progress: Progress) -> int:
    """``cp SRC DST``: copy into or out of a sandbox, docker cp style."""
    (src_id, src), (dst_id, dst) = _location(args.src), _location(args.dst)
    if (src_id is None) == (dst_id is None):
        raise UsageError("exactly one of SRC and DST must be a sandbox path, ID:/PATH")
    if dst_id is not None and not Path(src).exists():
        raise UsageError(f"cp: {src} does not exist")
    if src_id is not None and args.then:
        raise UsageError("--then runs after copying in; it cannot follow a copy out")
    if not (src if src_id is not None else dst).startswith("/"):
        raise UsageError("a sandbox path must be absolute: ID:/PATH")
    check_configuration(args)
    with sandbox_for(args, progress, src_id or dst_id) as (sandbox, _):
        if dst_id is not None:
            _copy_in(sandbox, Path(src), dst, progress)
            print(f"copied {args.src} to {args.dst}", file=sys.stderr)
            if args.then:
                result = sandbox.exec(args.then, binary=True)
                sys.stdout.buffer.write(result.output)
                sys.stdout.flush()
                return result.exit_code
        else:
            written = _copy_out(sandbox, src, Path(dst), progress)
            print(f"copied {args.src} to {written}", file=sys.stderr)
    return 0


def _copy_in(sandbox: EcsFargateSandbox, src: Path, dst: str, progress: Progress) -> None:
    progress.say(f"copying {src} in")
    if src.is_dir() or dst.endswith("/"):
        # A directory goes in by its contents; a file into a directory named with a '/'.
        sandbox.copy_to_sandbox(paths=[src], container_dir=dst)
        return
    # docker cp: a file to an existing directory goes into it, otherwise it becomes DST.
    if sandbox.exec(["test", "-d", dst]).exit_code == 0:
        sandbox.copy_to_sandbox(paths=[src], container_dir=dst)
    else:
        sandbox.copy_to_sandbox(
            paths=[src],
            container_dir=posixpath.dirname(dst) or "/",
            container_filename=posixpath.basename(dst),
        )


def _copy_out(sandbox: EcsFargateSandbox, src: str, dst: Path, progress: Progress) -> Path:
    progress.say(f"copying {src} out")
    name = posixpath.basename(src.rstrip("/"))
    if dst.is_dir() or str(dst).endswith(os.sep) or not name:
        sandbox.copy_from_sandbox(src, dst)
        return dst / name
    # docker cp: DST that is not a directory is the copy's own name.
    parent = dst.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ecs-sandbox-cp-", dir=parent))
    try:
        sandbox.copy_from_sandbox(src, staging)
        os.replace(staging / name, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dst


def cmd_up(args: argparse.Namespace, progress: Progress) -> int:
    """``up``: start a sandbox that outlives the call; print its id on stdout."""
    check_configuration(args)
    backend = persistent_backend(args, progress, start=True)
    assert backend is not None
    note_ignored_image(args, backend.cfg)
    task_id, _ = new_ids(args)
    run_id = f"{UP_RUN_PREFIX}{uuid.uuid4().hex[:8]}"
    announce_run(run_id)
    driver = backend.driver(progress)
    driver.preflight()
    progress.say("starting a sandbox")
    driver.run(start(driver, task_id=task_id, trial_name="cli", run_id=run_id))
    print(task_id, flush=True)
    return 0


def cmd_ls(args: argparse.Namespace, progress: Progress) -> int:
    """``ls``: the running sandboxes."""
    check_configuration(args)
    backend = persistent_backend(args, progress)
    rows = [] if backend is None else list_sandboxes(backend.driver())
    print(f"{'ID':<20} {'STATUS':<10} {'RUN ID':<20} TASK")
    for info in rows:
        print(f"{info.task_id:<20} {info.status:<10} {info.run_id:<20} {info.task_arn}")
    return 0


def cmd_down(args: argparse.Namespace, progress: Progress) -> int:
    """``down ID... | --all``: stop sandboxes; the local ECS stops with its last one."""
    if bool(args.ids) == bool(args.all):
        raise UsageError("down needs sandbox ids or --all (not both)")
    check_configuration(args)
    backend = persistent_backend(args, progress)
    if backend is None:
        if args.all:
            note("no persistent local ECS is running: nothing to stop")
            return 0
        raise _no_local_ecs()
    driver = backend.driver(progress)
    if args.all:
        targets = [
            info
            for info in list_sandboxes(driver)
            if args.local or info.run_id.startswith(UP_RUN_PREFIX)
        ]
    else:
        targets = [find_sandbox(driver, ident) for ident in args.ids]
    ok = True
    for info in targets:
        # Each `up` sandbox has its own run id: collecting the run releases the task, a
        # task definition registered for it and any staged object, as gc would.
        report = collect_garbage(backend.cfg, run_id=info.run_id, driver=driver)
        ok = ok and report.ok
        print(info.task_id if report.ok else f"{info.task_id}: tear-down failed, run gc again")
    if backend.local_state is not None and (args.all or not list_sandboxes(driver)):
        _localecs.stop(_localecs.state_dir())
        note("stopped the persistent local ECS (no sandbox left)")
    return 0 if ok else EXIT_FAILURE


def cmd_gc(args: argparse.Namespace, progress: Progress) -> int:
    """``gc``: release what killed runs left behind."""
    if args.run_id is None and args.older_than is None:
        raise UsageError(
            "gc needs --run-id or --older-than",
            remedy="e.g. ecs-sandbox gc --run-id ID, or ecs-sandbox gc --older-than 2h",
        )
    older_than_s = parse_duration(args.older_than) if args.older_than is not None else None
    check_configuration(args)
    backend = persistent_backend(args, progress)
    if backend is None:
        note("no persistent local ECS is running: nothing to collect")
        return 0
    report = collect_garbage(
        backend.cfg,
        run_id=args.run_id,
        older_than_s=older_than_s,
        dry_run=args.dry_run,
        driver=backend.driver(),
    )
    for line in report_lines(report):
        print(line)
    return 0 if report.ok else 1


def cmd_doctor(args: argparse.Namespace, progress: Progress) -> int:
    """``doctor``: check every ECS Exec prerequisite; 0 when no check failed, else 1."""
    from . import _doctor  # noqa: PLC0415 - IAM/EC2 checks load only when asked for

    check_configuration(args)
    with one_shot_backend(args, progress) as backend:
        return _doctor.command(args, backend.cfg)


__all__ = [
    "cmd_cp",
    "cmd_doctor",
    "cmd_down",
    "cmd_exec",
    "cmd_gc",
    "cmd_ls",
    "cmd_shell",
    "cmd_up",
]
