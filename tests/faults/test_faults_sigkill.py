"""SIGKILL of a harness process mid-command, then ``ecs-sandbox gc --run-id``.

The harness (``_faults_victim.py``, one per driver mode) runs no clean-up when killed: its
task keeps running, its task definition stays ACTIVE, the script it staged stays in the
bucket. ``gc`` must release exactly those, and nothing that another run or another tool
created in the same cluster and bucket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults_harness import Case, find_secret
from _faults_report import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, FAKE_SESSION_TOKEN

pytestmark = pytest.mark.faults
CATEGORY = "sigkill-gc"
VICTIM = Path(__file__).with_name("_faults_victim.py")


def _decoys(case: Case) -> dict[str, str]:
    """Resources gc must not touch: another run's task and object, a foreign definition,
    a foreign object in the bucket."""
    aws = case.local_aws
    ecs = aws.client("ecs", max_attempts=1)
    s3 = aws.client("s3", max_attempts=1)
    foreign = ecs.register_task_definition(
        family=f"not-ours-{case.n}",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "main", "image": "x", "memory": 512, "command": ["sleep", "600"]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    other_task = ecs.run_task(
        cluster=aws.cluster,
        taskDefinition=aws.task_definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [aws.subnet_id],
                "securityGroups": [aws.security_group_id],
            }
        },
        tags=[{"key": "ecs-sandbox:run-id", "value": "another-run"}],
    )["tasks"][0]["taskArn"]
    other_key = "faults/another-run/t/0123456789abcdef-upload.tar.gz"
    foreign_key = "not-staging/keep-me.txt"
    for key in (other_key, foreign_key):
        s3.put_object(Bucket=aws.bucket, Key=key, Body=b"keep")
    return {"definition": foreign, "task": other_task, "other": other_key, "foreign": foreign_key}


def _release_decoys(case: Case, decoys: dict[str, str]) -> None:
    aws = case.local_aws
    ecs = aws.client("ecs", max_attempts=1)
    s3 = aws.client("s3", max_attempts=1)
    ecs.stop_task(cluster=aws.cluster, task=decoys["task"], reason="decoy done")
    ecs.deregister_task_definition(taskDefinition=decoys["definition"])
    for key in (decoys["other"], decoys["foreign"]):
        s3.delete_object(Bucket=aws.bucket, Key=key)


def test_sigkill_then_gc(case: Case) -> None:
    aws = case.local_aws
    cfg = case.cfg()
    settings = {
        "mode": case.mode,
        "run_id": case.run_id,
        "task_id": case.task_id(),
        "command": case.cmd("victim", "sleep 60"),
        "cfg": {
            "region": cfg.region,
            "cluster": cfg.cluster,
            "task_definition": cfg.task_definition,
            "container_name": cfg.container_name,
            "subnets": list(cfg.subnets),
            "security_groups": list(cfg.security_groups),
            "s3_bucket": cfg.s3_bucket,
            "s3_prefix": cfg.s3_prefix,
            "endpoint_url": cfg.endpoint_url,
            "image_template": cfg.image_template,
            "exec_transport": "aws-cli",
            "probe_image": cfg.probe_image,
        },
        "credentials": {
            "key": FAKE_ACCESS_KEY,
            "secret": FAKE_SECRET_KEY,
            "token": FAKE_SESSION_TOKEN,
        },
        "cli_env": aws.aws_env(),
    }
    ecs = aws.client("ecs", max_attempts=1)
    s3 = aws.client("s3", max_attempts=1)
    decoys = _decoys(case)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    victim = subprocess.Popen(
        [sys.executable, str(VICTIM), json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert victim.stdout is not None
        line = victim.stdout.readline().decode()
        assert line.startswith("TASK "), (line, victim.stderr.read() if victim.poll() else "")
        task_arn = line.split()[1]
        deadline = time.monotonic() + 30
        while case.executions("victim") < 1:  # the staged command is running
            assert time.monotonic() < deadline, "the victim's command never started"
            assert victim.poll() is None, victim.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
    finally:
        if victim.poll() is None:
            victim.kill()
        _, err = victim.communicate(timeout=10)  # reaps it and closes its pipes
    assert victim.returncode == -signal.SIGKILL
    stderr = err.decode(errors="replace")
    for line in stderr.splitlines():
        if find_secret(line):
            case.record.secrets_logged += 1
            case.record.details.append(f"victim stderr: {line}")

    # What the killed harness left: its task, its task definition, its staged script.
    task = ecs.describe_tasks(cluster=aws.cluster, tasks=[task_arn])["tasks"][0]
    assert task["lastStatus"] == "RUNNING"
    definition = task["taskDefinitionArn"]
    staged = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=aws.bucket, Prefix=f"faults/{case.run_id}/").get(
            "Contents", []
        )
    ]
    assert len(staged) == 1 and staged[0].endswith("exec.sh"), staged

    swept = case.gc_run()
    assert "released 1 task(s), 1 task definition(s), 1 object(s)" in swept, swept

    task = ecs.describe_tasks(cluster=aws.cluster, tasks=[task_arn])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    described = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]
    assert described["status"] == "INACTIVE"
    # Untouched: another run's task and object, a foreign definition, a foreign object.
    other = ecs.describe_tasks(cluster=aws.cluster, tasks=[decoys["task"]])["tasks"][0]
    assert other["lastStatus"] == "RUNNING"
    foreign = ecs.describe_task_definition(taskDefinition=decoys["definition"])
    assert foreign["taskDefinition"]["status"] == "ACTIVE"
    for key in (decoys["other"], decoys["foreign"]):
        assert s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read() == b"keep"
    _release_decoys(case, decoys)
    assert case.executions("victim") == 1
    case.record.outcome = "killed; gc released task, definition and object"
