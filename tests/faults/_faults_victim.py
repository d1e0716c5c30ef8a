"""A harness process for the SIGKILL case: spins up a sandbox and blocks in a long command.

Run as ``python _faults_victim.py SETTINGS_JSON``. It prints ``TASK <arn>`` once the
sandbox runs, then starts a command long enough to be staged through S3 (so a task, a
task definition and a staged object all exist) that sleeps; the test kills this process
with SIGKILL while the command runs. Logs go to stderr at DEBUG for the secret scan.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio
import boto3

from ecs_sandbox_core import EcsFargateConfig
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers._transport import AwsCliTransport


def main() -> None:
    settings: dict[str, Any] = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    cfg = EcsFargateConfig(**settings["cfg"])
    creds = settings["credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["key"],
        aws_secret_access_key=creds["secret"],
        aws_session_token=creds["token"],
        region_name=cfg.region,
    )
    transport = AwsCliTransport(
        cluster=cfg.cluster,
        region=cfg.region,
        endpoint_url=cfg.endpoint_url,
        env=settings["cli_env"],
    )
    # Longer than ECS Exec takes inline, so the script is staged as an S3 object.
    command = settings["command"] + "\n: " + "x" * 7000
    args = {
        "cfg": cfg,
        "task_id": settings["task_id"],
        "trial_name": "victim",
        "run_id": settings["run_id"],
    }
    mode = settings["mode"]
    if mode == "sync":
        driver = SyncDriver(cfg, transport=transport, session=session)
        with EcsFargateSandbox.spin_up(driver=driver, **args) as sandbox:
            print("TASK", sandbox.task_arn, flush=True)
            sandbox.exec(command)
        return

    async def run() -> None:
        driver = aio.AsyncDriver(cfg, transport=transport, session=session, poll_tick_s=0.05)
        async with aio.EcsFargateSandbox.spin_up(driver=driver, **args) as sandbox:
            print("TASK", sandbox.task_arn, flush=True)
            await sandbox.exec(command)

    anyio.run(run, backend=mode)


if __name__ == "__main__":
    main()
