"""The ``ecs-sandbox`` command line."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ecs_sandbox_core import EcsFargateConfig, EcsSandboxError, UsageError

from . import _cliconfig, _doctor
from ._api import EcsFargateSandbox
from ._common import USE_CONFIG_DEFAULT
from ._transport import PreparedRun

EPILOG = """\
configuration (later sources win):
  1. --local: the embedded local ECS (moto on 127.0.0.1 and bubblewrap sandboxes)
  2. a TOML file: --config FILE, $ECS_SANDBOX_CONFIG, or ./ecs-sandbox.toml, with the
     EcsFargateConfig keys at the top level or in an [ecs_sandbox] table
  3. environment variables ECS_SANDBOX_<KEY>, e.g. ECS_SANDBOX_CLUSTER=evals
  4. --set KEY=VALUE flags (lists take commas: --set subnets=subnet-a,subnet-b)

required on AWS: cluster, task_definition, container_name, subnets, security_groups
(and s3_bucket to copy files). AWS credentials come from the usual boto3/AWS CLI chain.

examples:
  ecs-sandbox demo --local
  ecs-sandbox --local exec -- python3 -c 'print(6 * 7)'
  ecs-sandbox --config evals.toml exec --image-template 'repo/img:{task_id}' -- make test
  ecs-sandbox --local cp ./project sandbox:/app --then 'ls -R /app'
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-sandbox",
        description="Disposable AWS ECS Fargate sandboxes driven through ECS Exec and tmux.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--local", action="store_true", help="use the embedded local ECS")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="assignments",
        help="set one configuration key (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the whole life of a sandbox, phase by phase, with timings",
        description="Spin up a sandbox, drive a tmux session as an agent would, copy a "
        "directory in, run a test script, copy a result out, tear down and verify that "
        "nothing is left. Runs on the embedded local ECS unless a configuration is given.",
    )
    demo.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the embedded local ECS (the default when no configuration is given)",
    )

    ex = sub.add_parser(
        "exec",
        help="spin up a sandbox, run one command, print its output, exit with its code",
        description="Spin up a sandbox (or use --task-arn), run COMMAND in it through "
        "ECS Exec, print its output and exit with the command's own exit code.",
    )
    _task_options(ex)
    ex.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before giving up (default: ecs_exec_timeout_sec; inf: no limit)",
    )
    ex.add_argument("--cwd", default=None, help="working directory in the sandbox")
    ex.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="environment variable"
    )
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")

    sh = sub.add_parser(
        "shell",
        help="an interactive terminal in a sandbox",
        description="Spin up a sandbox (or use --task-arn) and attach this terminal to an "
        "interactive shell in it; the sandbox is torn down when the shell exits.",
    )
    _task_options(sh)
    sh.add_argument("--shell", default="sh -l", help="the program to run (default: sh -l)")

    cp = sub.add_parser(
        "cp",
        help="copy files into or out of a sandbox",
        description="Copy SRC to DST, where exactly one of them is sandbox:/PATH. A local "
        "directory goes in by its contents; a sandbox path comes out as itself under the "
        "local directory DST. Without "
        "--task-arn a sandbox is spun up for the copy (use --then to run a command after "
        "copying in) and torn down afterwards.",
    )
    _task_options(cp)
    cp.add_argument("src", help="local path, or sandbox:/path")
    cp.add_argument("dst", help="local directory, or sandbox:/directory")
    cp.add_argument("--then", default=None, metavar="COMMAND", help="run after copying in")

    gc = sub.add_parser(
        "gc",
        help="release what killed harnesses left behind (tasks, task definitions, objects)",
        description="Find what ecs-sandbox created for a run id and/or before an age, and\n"
        "release it: stop its RUNNING/PENDING tasks in the cluster, deregister the task\n"
        "definitions it registered (unless a remaining task still uses one), and delete\n"
        "its staged objects under s3_prefix in s3_bucket.\n\n"
        "Only resources with ecs-sandbox's tags (ecs-sandbox:run-id, ...) or its staging\n"
        "key layout are touched: other runs, your own task definitions and other objects\n"
        "in the bucket are left alone. Given both --run-id and --older-than, a resource\n"
        "must match both.",
        epilog="examples:\n"
        "  ecs-sandbox gc --run-id nightly-42 --dry-run\n"
        "  ecs-sandbox --config evals.toml gc --older-than 6h\n"
        "  ecs-sandbox gc --run-id nightly-42 --older-than 30m\n\n"
        "exit status: 0 when everything selected was released (or in a dry run),\n"
        "1 when a release failed (run gc again), 2 for a usage or configuration error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gc.add_argument("--run-id", default=None, help="release what the run with this id left")
    gc.add_argument(
        "--older-than",
        default=None,
        metavar="DURATION",
        help="release what was created more than DURATION ago: 90s, 30m, 2h, 1d, 1h30m",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be released")
    gc.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the embedded local ECS",
    )
    _doctor.add_parser(sub)
    return parser


def _task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-id", default=None, help="task id (default: a random one)")
    parser.add_argument("--run-id", default=None, help="run id tag (default: a random one)")
    parser.add_argument(
        "--image-template", default=None, help="image, may contain {task_id} (overrides config)"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the embedded local ECS",
    )


@contextlib.contextmanager
def _configuration(args: argparse.Namespace) -> Iterator[EcsFargateConfig]:
    overrides = list(args.assignments)
    if getattr(args, "image_template", None):
        overrides.append(f"image_template={args.image_template}")
    if not args.local:
        yield _cliconfig.resolve(config_file=args.config, assignments=overrides)
        return
    from .local import LocalAws  # noqa: PLC0415 - only local runs start moto

    with LocalAws() as local:
        base = {
            f.name: getattr(local.config(), f.name) for f in dataclasses.fields(EcsFargateConfig)
        }
        yield _cliconfig.resolve(config_file=args.config, assignments=overrides, base=base)


@contextlib.contextmanager
def _sandbox(args: argparse.Namespace, cfg: EcsFargateConfig) -> Iterator[EcsFargateSandbox]:
    task_id = args.task_id or f"cli-{uuid.uuid4().hex[:8]}"
    run_id = args.run_id or f"cli-{uuid.uuid4().hex[:8]}"
    with EcsFargateSandbox.spin_up(
        cfg=cfg, task_id=task_id, trial_name="cli", run_id=run_id
    ) as sandbox:
        yield sandbox


def _env_pairs(items: Sequence[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env {item!r} must look like NAME=VALUE")
        env[name] = value
    return env


def _cmd_exec(args: argparse.Namespace, cfg: EcsFargateConfig) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("exec needs a command, e.g. ecs-sandbox exec -- uname -a")
    env = _env_pairs(args.env)

    def show(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()

    with _sandbox(args, cfg) as sandbox:
        result = sandbox.exec(
            command if len(command) > 1 else command[0],
            timeout_sec=USE_CONFIG_DEFAULT if args.timeout is None else args.timeout,
            env=env or None,
            cwd=args.cwd,
            on_output=show,
        )
    return result.exit_code


def _cmd_shell(args: argparse.Namespace, cfg: EcsFargateConfig) -> int:
    with _sandbox(args, cfg) as sandbox:
        transport = sandbox.driver.transport
        prepared = transport.prepare(
            task_arn=sandbox.task_arn, container=cfg.container_name, command=args.shell
        )
        if not isinstance(prepared, PreparedRun):
            message = prepared.stderr.decode("utf-8", "replace").strip()
            raise EcsSandboxError(f"cannot attach a terminal: {message}")
        # The terminal is the user's: stdin, stdout and stderr are inherited as they are.
        return subprocess.call(prepared.argv, env=prepared.env)


def _cmd_cp(args: argparse.Namespace, cfg: EcsFargateConfig) -> int:
    src_remote = args.src.startswith("sandbox:")
    dst_remote = args.dst.startswith("sandbox:")
    if src_remote == dst_remote:
        raise UsageError("exactly one of SRC and DST must be sandbox:/PATH")
    with _sandbox(args, cfg) as sandbox:
        if dst_remote:
            sandbox.copy_to_sandbox(
                paths=[Path(args.src)], container_dir=args.dst[len("sandbox:") :]
            )
            print(f"copied {args.src} to {args.dst}")
            if args.then:
                result = sandbox.exec(args.then, binary=True)
                sys.stdout.buffer.write(result.output)
                return result.exit_code
        else:
            written = sandbox.copy_from_sandbox(args.src[len("sandbox:") :], Path(args.dst))
            for path in written:
                print(f"copied to {path}")
    return 0


def _cmd_gc(args: argparse.Namespace, cfg: EcsFargateConfig) -> int:
    from ecs_sandbox_core._gc import parse_duration  # noqa: PLC0415

    from ._gc import collect_garbage, report_lines  # noqa: PLC0415

    if args.run_id is None and args.older_than is None:
        raise UsageError(
            "gc needs --run-id or --older-than",
            remedy="e.g. ecs-sandbox gc --run-id ID, or ecs-sandbox gc --older-than 2h",
        )
    older_than_s = parse_duration(args.older_than) if args.older_than is not None else None
    report = collect_garbage(
        cfg, run_id=args.run_id, older_than_s=older_than_s, dry_run=args.dry_run
    )
    for line in report_lines(report):
        print(line)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ecs-sandbox``; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers: dict[str, Any] = {
        "exec": _cmd_exec,
        "shell": _cmd_shell,
        "cp": _cmd_cp,
        "gc": _cmd_gc,
        "doctor": _doctor.command,
    }
    try:
        if args.command == "demo":
            from ._demo import run_demo  # noqa: PLC0415

            return run_demo(local=args.local or not args.config)
        with _configuration(args) as cfg:
            code: int = handlers[args.command](args, cfg)
            return code
    except EcsSandboxError as exc:
        print(f"ecs-sandbox: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("ecs-sandbox: interrupted (resources were released)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
