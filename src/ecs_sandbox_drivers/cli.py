"""The ``ecs-sandbox`` command line: the parser and the exit status of every outcome.

The subcommands' bodies are in :mod:`._cli_commands`; adding one is a parser in
:func:`_parser` and an entry in ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from ecs_sandbox_core import EcsSandboxError, ExecTimeoutError, UsageError

from . import _cli_commands as commands
from . import _doctor
from ._cli_support import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_TIMEOUT,
    Progress,
    check_local_tools,
    configure_logging,
    error,
    interrupted_exit,
    note,
    termination_as_interrupt,
)

logger = logging.getLogger(__name__)

EPILOG = f"""\
configuration (later sources win):
  1. --local: the embedded local ECS (moto on 127.0.0.1 and bubblewrap sandboxes)
  2. a TOML file: --config FILE, $ECS_SANDBOX_CONFIG, or ./ecs-sandbox.toml, with the
     EcsFargateConfig keys at the top level or in an [ecs_sandbox] table
  3. environment variables ECS_SANDBOX_<KEY>, e.g. ECS_SANDBOX_CLUSTER=evals
  4. --set KEY=VALUE flags (lists take commas: --set subnets=subnet-a,subnet-b)
--local, --config, --set and -v go before or after the subcommand.

required on AWS: cluster, task_definition, container_name, subnets, security_groups
(and s3_bucket to copy files). AWS credentials come from the usual boto3/AWS CLI chain.

a fresh sandbox per call, or one that outlives the calls:
  ecs-sandbox --local exec -- python3 -c 'print(6 * 7)'     a fresh sandbox, then gone
  ID=$(ecs-sandbox up --local)                               start one, print its id
  ecs-sandbox exec --local $ID -- make test                  run in it
  ecs-sandbox cp --local ./project $ID:/app                  copy in (ID:/path, as docker cp)
  ecs-sandbox cp --local $ID:/app/results.json results.json  copy out
  ecs-sandbox shell --local $ID                              a terminal in it
  ecs-sandbox down --local $ID                               stop it (ls lists them)

{EXIT_CODES}"""

_EXEC_DESCRIPTION = """\
Run COMMAND in a sandbox through ECS Exec, print its output and exit with the command's own
exit status. Without ID (COMMAND after --) a fresh sandbox is started and torn down; with ID,
the sandbox `up` started. Options go before ID.

One argument is shell text (exec -- 'make test | tee log'); several are an argv, each
argument passed as it is (exec -- python3 -c 'print(1)'). stderr is merged into stdout, as
ECS Exec delivers them, and stdin is not forwarded. The command is stopped after --timeout
seconds (default: ecs_exec_timeout_sec, 180 s), which exits 124."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit 125, as docker's do (see EXIT_CODES)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_FAILURE, f"{self.prog}: error: {message}\n")


def _common_options() -> _Parser:
    """The global options, accepted after the subcommand too."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the embedded local ECS",
    )
    common.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML configuration file"
    )
    common.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="sub_assignments",
        help="set one configuration key (repeatable)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, dest="sub_verbose", help="more logging"
    )
    return common


def _version() -> str:
    try:
        return metadata.version("ecs-sandbox")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ecs-sandbox",
        description="Disposable AWS ECS Fargate sandboxes driven through ECS Exec and tmux.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ecs-sandbox {_version()}")
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
    common = [_common_options()]

    def add(name: str, help: str, description: str, **kwargs: object) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=description,
            parents=common,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=kwargs.pop("epilog", EXIT_CODES),  # type: ignore[arg-type]
        )

    add(
        "demo",
        "run the whole life of a sandbox, phase by phase, with timings",
        "Spin up a sandbox, drive a tmux session as an agent would, copy a directory in, run "
        "a test script, copy a result out, tear down and verify that nothing is left. Runs "
        "on the embedded local ECS unless a configuration is given.",
    )

    ex = add("exec", "run one command in a sandbox, exit with its exit status", _EXEC_DESCRIPTION)
    _task_options(ex)
    ex.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before the command is stopped (default: ecs_exec_timeout_sec, 180; "
        "inf: no limit); a timeout exits 124",
    )
    ex.add_argument("--cwd", default=None, help="working directory in the sandbox")
    ex.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="environment variable"
    )
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="[ID] -- COMMAND", help="see above")

    sh = add(
        "shell",
        "an interactive terminal in a sandbox, exit with the shell's exit status",
        "Attach this terminal to an interactive shell in the sandbox ID, or without ID in a "
        "fresh sandbox torn down when the shell exits (starting one takes 10-20 s). Needs "
        "the AWS CLI (and on AWS the session-manager-plugin).",
    )
    _task_options(sh)
    sh.add_argument("target", nargs="?", default=None, metavar="ID", help="a sandbox from `up`")
    sh.add_argument("--shell", default="sh -l", help="the program to run (default: sh -l)")

    cp = add(
        "cp",
        "copy files into or out of a sandbox",
        "Copy SRC to DST, where exactly one of them is ID:/PATH (a sandbox from `up`) or "
        "sandbox:/PATH (a fresh sandbox for this copy). As docker cp: a file copied to a "
        "path that is not a directory gets that name (cp a.txt ID:/app/b.txt writes b.txt); "
        "a local directory goes in by its contents; a sandbox path comes out as DST, or "
        "into DST when DST is a directory.",
    )
    _task_options(cp)
    cp.add_argument("src", help="local path, or ID:/path")
    cp.add_argument("dst", help="local path, or ID:/path")
    cp.add_argument("--then", default=None, metavar="COMMAND", help="run after copying in")

    up = add(
        "up",
        "start a sandbox that outlives this call and print its id",
        "Start a sandbox, print its id on stdout and leave it running for exec, cp, shell "
        "and down. With --local a persistent local ECS runs in the background (its state in "
        "$XDG_RUNTIME_DIR/ecs-sandbox/local or ~/.cache/ecs-sandbox/local) until its last "
        "sandbox is down. On AWS the task runs until `down` or its max_task_lifetime_sec.",
    )
    up.add_argument("--task-id", default=None, help="the sandbox's id (default: a random one)")
    up.add_argument("--image-template", default=None, help="image (overrides config)")

    add("ls", "list the running sandboxes", "List the running sandboxes (ecs-sandbox tags).")

    down = add(
        "down",
        "stop sandboxes that `up` started",
        "Stop the sandboxes ID... (task, registered task definition, staged objects), or "
        "with --all every sandbox `up` started. The persistent local ECS stops with its "
        "last sandbox.",
    )
    down.add_argument("ids", nargs="*", metavar="ID")
    down.add_argument("--all", action="store_true", help="every sandbox `up` started")

    gc = add(
        "gc",
        "release what killed harnesses left behind (tasks, task definitions, objects)",
        "Find what ecs-sandbox created for a run id and/or before an age, and\n"
        "release it: stop its RUNNING/PENDING tasks in the cluster, deregister the task\n"
        "definitions it registered (unless a remaining task still uses one), and delete\n"
        "its staged objects under s3_prefix in s3_bucket.\n\n"
        "Only resources with ecs-sandbox's tags (ecs-sandbox:run-id, ...) or its staging\n"
        "key layout are touched: other runs, your own task definitions and other objects\n"
        "in the bucket are left alone. Given both --run-id and --older-than, a resource\n"
        "must match both. With --local, the persistent local ECS (see up) is searched.",
        epilog="examples:\n"
        "  ecs-sandbox gc --run-id nightly-42 --dry-run\n"
        "  ecs-sandbox --config evals.toml gc --older-than 6h\n"
        "  ecs-sandbox gc --run-id nightly-42 --older-than 30m\n\n"
        f"exit status: 0 when everything selected was released (or in a dry run),\n"
        f"1 when a release failed (run gc again), {EXIT_FAILURE} for a usage, configuration "
        "or AWS error.",
    )
    gc.add_argument("--run-id", default=None, help="release what the run with this id left")
    gc.add_argument(
        "--older-than",
        default=None,
        metavar="DURATION",
        help="release what was created more than DURATION ago: 90s, 30m, 2h, 1d, 1h30m",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be released")

    doctor = add(
        "doctor",
        _doctor.HELP,
        _doctor.DESCRIPTION,
        epilog=f"exit status: 0 when no check failed, 1 when one did, {EXIT_FAILURE} for a "
        "usage or configuration error or when the checks could not run.",
    )
    _doctor.add_arguments(doctor)
    return parser


def _task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-id", default=None, help="task id (default: a random one)")
    parser.add_argument("--run-id", default=None, help="run id tag (default: a random one)")
    parser.add_argument(
        "--image-template", default=None, help="image, may contain {task_id} (overrides config)"
    )


def _split_exec(args: argparse.Namespace, tail: list[str] | None) -> None:
    """exec's ``[ID] [--] COMMAND...`` into ``args.target`` and ``args.command``."""
    head = list(args.cmd)
    if tail is None and "--" in head:
        cut = head.index("--")
        head, tail = head[:cut], head[cut + 1 :]
    if tail is not None:
        if len(head) > 1:
            raise UsageError(f"exec takes one sandbox ID before --, not {head}")
        args.target, args.words = (head[0] if head else None), tail
    else:
        # No --: the first word is a sandbox id (docker exec ID CMD).
        args.target, args.words = (head[0] if head else None), head[1:]


def _pre_split(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Cut exec's command off at the first ``--`` before argparse sees it (argparse's
    handling of ``--`` with REMAINDER differs between Python versions)."""
    if "--" in argv:
        cut = argv.index("--")
        if "exec" in argv[:cut]:
            return argv[:cut], argv[cut + 1 :]
    return argv, None


def _one_line(exc: EcsSandboxError) -> str:
    """The error's message and remedy on one line; details beyond the first line (a
    traceback from inside the sandbox, say) only in the log, with -v."""
    first, _, rest = exc.message.strip().partition("\n")
    if rest:
        logger.info("%s: details:\n%s", type(exc).__name__, rest)
    return f"{first} (how to fix: {exc.remedy})" if exc.remedy else first


_COMMANDS: dict[str, Callable[[argparse.Namespace, Progress], int]] = {
    "exec": commands.cmd_exec,
    "shell": commands.cmd_shell,
    "cp": commands.cmd_cp,
    "up": commands.cmd_up,
    "ls": commands.cmd_ls,
    "down": commands.cmd_down,
    "gc": commands.cmd_gc,
    "doctor": commands.cmd_doctor,
}


def _merge_common(args: argparse.Namespace) -> None:
    args.local = bool(getattr(args, "local", False))
    args.config = getattr(args, "config", None)
    args.verbose = args.verbose + getattr(args, "sub_verbose", 0)
    args.target = getattr(args, "target", None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ecs-sandbox``; returns the process exit status (see EXIT_CODES)."""
    head, tail = _pre_split(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(head)
    _merge_common(args)
    configure_logging(args.verbose)
    progress = Progress(verbose=args.verbose)
    try:
        with termination_as_interrupt():
            if args.command == "exec":
                _split_exec(args, tail)
            if args.command == "demo":
                from ._demo import run_demo  # noqa: PLC0415

                local = args.local or not args.config
                if local:
                    check_local_tools()
                return run_demo(local=local)
            return _COMMANDS[args.command](args, progress)
    except ExecTimeoutError as exc:
        error(_one_line(exc))
        return EXIT_TIMEOUT
    except EcsSandboxError as exc:
        error(_one_line(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt as exc:
        note(f"interrupted ({exc or 'SIGINT'}); what the sandbox held was released")
        return interrupted_exit(exc)
    except Exception as exc:
        # A bug, not a user error: one line, the traceback in the log with -v.
        logger.info("unexpected error", exc_info=True)
        error(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
