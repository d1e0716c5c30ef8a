"""``ecs-sandbox doctor`` on the drivers' side: run the core's doctor flow with boto3."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import uuid
from typing import TextIO

from ecs_sandbox_core import EcsFargateConfig, EcsSandboxError
from ecs_sandbox_core._doctor import DoctorReport, doctor_flow
from ecs_sandbox_core._doctor_checks import UNKNOWN, Check
from ecs_sandbox_core._doctor_image import ImageReport, image_check, image_probe_flow

from ._common import SandboxFlows
from ._runtime import default_session
from ._sync import SyncDriver


def diagnose(
    cfg: EcsFargateConfig, *, task_arn: str | None = None, driver: SyncDriver | None = None
) -> DoctorReport:
    """Check every ECS Exec prerequisite of ``cfg`` (read-only AWS calls); the report.

    ``task_arn`` adds what that task's own description says. ``driver`` defaults to a new
    :class:`SyncDriver` for ``cfg``, closed afterwards.
    """
    if driver is not None:
        region = cfg.region or driver.aws.client("sts").meta.region_name
        return driver.run(doctor_flow(cfg, region=region, task_arn=task_arn))
    session = default_session(cfg)
    with SyncDriver(cfg, session=session) as own:
        flow = doctor_flow(cfg, region=cfg.region or session.region_name, task_arn=task_arn)
        return own.run(flow)


def image_name(cfg: EcsFargateConfig, task_id: str) -> str:
    """How a report names the image a sandbox of ``cfg`` with ``task_id`` runs."""
    return cfg.image_for(task_id) or f"of task definition {cfg.task_definition}"


def probe_flows(driver: SyncDriver, flows: SandboxFlows) -> ImageReport:
    """Probe a started sandbox's image in one exec round trip (see ``_doctor_image``)."""
    return driver.run(image_probe_flow(flows.ctx))


def probe_image(cfg: EcsFargateConfig) -> Check:
    """Start a sandbox of ``cfg``, probe its image's tools, tear it down; the check.

    Unlike the other checks this one creates a task (and, with ``image_template``, a task
    definition): ``doctor`` runs it only when asked (``--probe-image``). The spin-up itself
    probes a new image (``probe_image``); only when it did not is the probe run here.
    """
    from ._api import EcsFargateSandbox  # noqa: PLC0415 - _api imports much

    task_id = f"doctor-{uuid.uuid4().hex[:8]}"
    image = image_name(cfg, task_id)
    try:
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id=task_id, trial_name="doctor", run_id=task_id
        ) as sandbox:
            image = sandbox._flows.image
            report = sandbox.image_report or probe_flows(sandbox.driver, sandbox._flows)
    except EcsSandboxError as exc:
        message = str(exc).splitlines()[0]
        return Check(
            name="image",
            title=f"image {image} has the tools ecs-sandbox uses",
            status=UNKNOWN,
            detail=f"the probe could not run: {type(exc).__name__}: {message}",
        )
    return image_check(report, image)


DESCRIPTION = (
    "Check, with read-only AWS calls, what ECS Exec needs: credentials and region; the "
    "caller's rights (exec, run/stop tasks, task definitions, the staging bucket, passing "
    "the roles); the cluster's exec configuration; the task role (trust, ssmmessages, KMS, "
    "exec logging); each subnet's route to ssmmessages; the security groups' egress; the "
    "platform version; and, with --task-arn, the task's own exec agent. Each check passes, "
    "fails (with the exact fix) or is unknown (with why)."
)
HELP = "check every ECS Exec prerequisite and say how to fix what fails"


def add_arguments(doctor: argparse.ArgumentParser) -> None:
    """Add the ``doctor`` subcommand's options to its parser."""
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--task-arn", default=None, help="also check this running task")
    doctor.add_argument(
        "--probe-image",
        action="store_true",
        help="also start a sandbox and check that its image has sh, base64, stty, tmux, "
        "python3 and the rest (creates and tears down a task)",
    )


def command(args: argparse.Namespace, cfg: EcsFargateConfig, out: TextIO | None = None) -> int:
    """Run ``ecs-sandbox doctor``: print the report; 0 when nothing failed, else 1."""
    out = out if out is not None else sys.stdout
    report = diagnose(cfg, task_arn=args.task_arn)
    if getattr(args, "probe_image", False):
        checks = (*report.checks, probe_image(cfg))
        report = dataclasses.replace(report, checks=checks)
    if args.json:
        json.dump(report.as_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(report.lines()) + "\n")
    return 0 if report.ok else 1


__all__ = [
    "DESCRIPTION",
    "HELP",
    "add_arguments",
    "command",
    "diagnose",
    "image_name",
    "probe_flows",
    "probe_image",
]
