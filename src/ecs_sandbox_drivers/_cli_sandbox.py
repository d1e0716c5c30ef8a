"""Where the command line's sandboxes come from: a configuration, a driver, a task by id.

A *backend* is what the commands run against: AWS with the resolved configuration, an
embedded local ECS started in this process for one command (``exec -- CMD``, ``cp
sandbox:/...``), or the persistent local ECS (``--local`` with a sandbox id) that
``ecs-sandbox up --local`` started in the background and later calls find again.

Everything the user typed is checked before a backend starts (:func:`check_configuration`),
so that a typo costs neither a local ECS start-up nor a paid task launch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from ecs_sandbox_core import EcsFargateConfig, UsageError
from ecs_sandbox_core._gc import _list_tasks
from ecs_sandbox_core._gc_select import RUN_ID_TAG, TASK_ID_TAG
from ecs_sandbox_core._lifecycle import TaskHandle

from . import _cliconfig, _localecs
from ._api import EcsFargateSandbox
from ._cli_support import Progress, check_local_tools, note
from ._sync import SyncDriver
from ._transport import AwsCliTransport, ExecTransport, SsmTransport

# Stand-in values for the fields the local ECS fills in, so that the user's own keys can be
# validated (types, Fargate sizes, unknown names) before the local ECS is started.
_LOCAL_PLACEHOLDER: dict[str, Any] = {
    "cluster": "local",
    "task_definition": "local",
    "container_name": "main",
    "subnets": ("subnet-local",),
    "security_groups": ("sg-local",),
    "s3_bucket": "local",
    "endpoint_url": "http://127.0.0.1:1",
    "exec_transport": "ssm",
}


def overrides(args: argparse.Namespace) -> list[str]:
    """The --set assignments, from before and after the subcommand, plus --image-template."""
    items = [*args.assignments, *getattr(args, "sub_assignments", [])]
    if getattr(args, "image_template", None):
        items.append(f"image_template={args.image_template}")
    return items


def check_configuration(args: argparse.Namespace) -> EcsFargateConfig:
    """Resolve the configuration without starting anything; raises ConfigError on a typo.

    For --local, the fields the local ECS provides are stand-ins here; the real ones come
    when it runs (:func:`backend`).
    """
    if args.local:
        check_local_tools()
        base = dict(_LOCAL_PLACEHOLDER)
        return _cliconfig.resolve(config_file=args.config, assignments=overrides(args), base=base)
    return _cliconfig.resolve(config_file=args.config, assignments=overrides(args))


@dataclass
class Backend:
    """A resolved configuration and how to reach its AWS: a session, an exec transport."""

    cfg: EcsFargateConfig
    session: boto3.session.Session | None = None
    # The AWS CLI's environment for `shell` (the local ECS's credentials and plugin).
    cli_env: Mapping[str, str] | None = None
    local_state: _localecs.LocalEcsState | None = None

    def driver(self, progress: Progress | None = None) -> SyncDriver:
        """A new driver for this backend."""
        transport: ExecTransport | None = SsmTransport() if self.local_state else None
        return SyncDriver(self.cfg, session=self.session, transport=transport, progress=progress)

    def cli_transport(self) -> AwsCliTransport:
        """The AWS CLI transport an interactive terminal needs."""
        return AwsCliTransport(
            cluster=self.cfg.cluster,
            region=self.cfg.region,
            endpoint_url=self.cfg.endpoint_url,
            env=self.cli_env,
        )


def _local_values(values: Mapping[str, Any]) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(EcsFargateConfig)]
    return {name: values[name] for name in names if name in values}


@contextlib.contextmanager
def one_shot_backend(args: argparse.Namespace, progress: Progress) -> Iterator[Backend]:
    """The backend of a command that starts and tears down its own sandbox.

    With --local, an embedded local ECS lives in this process for the command's duration.
    """
    if not args.local:
        yield Backend(_cliconfig.resolve(config_file=args.config, assignments=overrides(args)))
        return
    from .local import LocalAws  # noqa: PLC0415 - only local runs start moto

    progress.say("starting the embedded local ECS")
    with LocalAws() as local:
        base = _local_values(
            {f.name: getattr(local.config(), f.name) for f in dataclasses.fields(EcsFargateConfig)}
        )
        cfg = _cliconfig.resolve(config_file=args.config, assignments=overrides(args), base=base)
        yield Backend(cfg, cli_env=local.aws_env())


def persistent_backend(
    args: argparse.Namespace, progress: Progress, *, start: bool = False
) -> Backend | None:
    """The backend of the sandboxes that outlive a call (``up``, ``exec ID``, ``down``).

    With --local that is the persistent local ECS: started when ``start`` (``up``),
    otherwise found, or None when none is running.
    """
    if not args.local:
        return Backend(_cliconfig.resolve(config_file=args.config, assignments=overrides(args)))
    directory = _localecs.state_dir()
    state = (
        _localecs.ensure_running(directory, say=progress.say)
        if start
        else _localecs.find(directory)
    )
    if state is None:
        return None
    base = _local_values(state.config)
    cfg = _cliconfig.resolve(config_file=args.config, assignments=overrides(args), base=base)
    return Backend(cfg, session=state.boto3_session(), cli_env=state.aws_env, local_state=state)


def note_ignored_image(args: argparse.Namespace, cfg: EcsFargateConfig) -> None:
    """Say so when a local sandbox is asked for an image: the local ECS has no images."""
    if args.local and cfg.image_template:
        note(
            f"the local ECS ignores image_template {cfg.image_template!r}: its sandboxes run "
            "this machine's own programs (read-only), not container images"
        )


def new_ids(args: argparse.Namespace) -> tuple[str, str]:
    """A sandbox's task id and run id: the flags', or fresh random ones."""
    task_id = getattr(args, "task_id", None) or f"sbx-{uuid.uuid4().hex[:8]}"
    run_id = getattr(args, "run_id", None) or f"cli-{uuid.uuid4().hex[:8]}"
    return task_id, run_id


def announce_run(run_id: str) -> None:
    """Say the run id first, so that ``gc --run-id`` can always find what a killed run left."""
    note(f"run id {run_id} (if this is killed: ecs-sandbox gc --run-id {run_id})")


@dataclass(frozen=True)
class SandboxInfo:
    """One running sandbox as ``ls`` shows it."""

    task_id: str
    run_id: str
    task_arn: str
    status: str
    created: str


def list_sandboxes(driver: SyncDriver) -> list[SandboxInfo]:
    """The live tasks in the cluster that carry ecs-sandbox's tags."""
    found = []
    for task in driver.run(_list_tasks(driver.cfg)):
        tags = {t.get("key"): t.get("value") for t in task.get("tags") or ()}
        if RUN_ID_TAG not in tags:
            continue
        found.append(
            SandboxInfo(
                task_id=str(tags.get(TASK_ID_TAG, "")),
                run_id=str(tags[RUN_ID_TAG]),
                task_arn=str(task.get("taskArn", "")),
                status=str(task.get("lastStatus", "")),
                created=str(task.get("createdAt", "")),
            )
        )
    return found


def find_sandbox(driver: SyncDriver, ident: str) -> SandboxInfo:
    """The sandbox whose task id, ECS task id or task ARN is ``ident``."""
    for info in list_sandboxes(driver):
        if ident in (info.task_id, info.task_arn, info.task_arn.rsplit("/", 1)[-1]):
            return info
    raise UsageError(
        f"no running sandbox {ident!r}",
        remedy="`ecs-sandbox ls` lists them (give --local for the local ECS); to run a "
        "command in a fresh sandbox instead, put it after --: ecs-sandbox exec -- CMD",
    )


def attach(driver: SyncDriver, info: SandboxInfo) -> EcsFargateSandbox:
    """A sandbox object for a task that another call started (nothing is torn down)."""
    handle = TaskHandle(
        task_arn=info.task_arn,
        cluster=driver.cfg.cluster,
        task_definition_arn=None,
        digest=None,
        task_id=info.task_id,
        run_id=info.run_id,
        started_at=0.0,
    )
    return EcsFargateSandbox(driver=driver, handle=handle, trial_name="cli")


__all__ = [
    "Backend",
    "SandboxInfo",
    "announce_run",
    "attach",
    "check_configuration",
    "find_sandbox",
    "list_sandboxes",
    "new_ids",
    "note_ignored_image",
    "one_shot_backend",
    "persistent_backend",
]
