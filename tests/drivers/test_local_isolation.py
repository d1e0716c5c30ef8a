"""What a local task can reach: host secrets, host privileges and the local control plane.

Each test runs real commands inside a real bubblewrap task of the shared LocalAws, entered the
way every exec is (nsenter), and talks to the real endpoint over 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_local_aws import run

from ecs_sandbox_drivers.local import LocalAws
from ecs_sandbox_drivers.local._containers import ContainerSpec, bwrap_argv, nsenter_argv
from ecs_sandbox_drivers.local._isolation import Mask, etc_masks

_FETCH = """
import json, sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1], data=sys.argv[3].encode() or None,
                                 method=sys.argv[2], headers=json.loads(sys.argv[4]))
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""


def fetch_inside(
    local_aws: LocalAws,
    arn: str,
    url: str,
    *,
    method: str = "GET",
    body: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """An HTTP request made by python3 inside the task: (status, body)."""
    argv = ["python3", "-c", _FETCH, url, method, body, json.dumps(headers or {})]
    result = run(local_aws, arn, shlex.join(argv))
    assert result.returncode == 0, result.stdout
    status, _, text = result.stdout.decode().strip().partition(" ")
    return int(status), text


def sh(local_aws: LocalAws, arn: str, script: str) -> Any:
    """Run shell text inside the task (stderr merged into stdout)."""
    return run(local_aws, arn, shlex.join(["sh", "-c", script]))


StartTask = Callable[..., str]


@pytest.fixture
def task(start_task: StartTask) -> str:
    return start_task()


@pytest.mark.skipif(not os.path.exists("/etc/shadow"), reason="no /etc/shadow on this host")
def test_host_secrets_under_etc_are_masked(local_aws: LocalAws, task: str) -> None:
    masked = [m.path for m in etc_masks() if not m.directory]
    assert "/etc/shadow" in masked
    script = "; ".join(f"cat {shlex.quote(p)} >/dev/null 2>&1 && echo READ {p}" for p in masked)
    result = sh(local_aws, task, script + "; true")
    assert b"READ" not in result.stdout, result.stdout
    for mask in etc_masks():
        if mask.directory:
            listed = sh(local_aws, task, f"ls -A {shlex.quote(mask.path)}")
            assert listed.stdout.strip() == b"", listed.stdout


def test_masks_cannot_be_lifted(local_aws: LocalAws, task: str) -> None:
    """No CAP_SYS_ADMIN, in the container's own processes or in an exec: no umount."""
    result = sh(
        local_aws, task, "umount /etc/shadow 2>&1; mount -t tmpfs none /mnt 2>&1; echo done"
    )
    assert result.stdout.strip().endswith(b"done")
    shadow = sh(local_aws, task, "cat /etc/shadow >/dev/null 2>&1 && echo READ; true")
    assert b"READ" not in shadow.stdout
    caps = sh(local_aws, task, "grep CapEff /proc/self/status; grep CapEff /proc/1/status")
    if os.geteuid() == 0:
        for line in caps.stdout.decode().splitlines():
            effective = int(line.split()[1], 16)
            assert not effective & (1 << 21), line  # CAP_SYS_ADMIN
            assert not effective & (1 << 27), line  # CAP_MKNOD


def test_ordinary_things_still_work(local_aws: LocalAws, task: str) -> None:
    result = sh(
        local_aws,
        task,
        "id -u && getent passwd nobody | cut -d: -f1 && python3 -c 'print(6*7)' && "
        "tmux -V >/dev/null && echo tmux && touch /app/f && chown nobody /app/f && echo chown",
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.split() == [b"0", b"nobody", b"42", b"tmux", b"chown"]


def test_host_is_out_of_sight(local_aws: LocalAws, task: str) -> None:
    result = sh(local_aws, task, "ls -A /home /var/lib 2>&1; ls /proc | grep -c '^[0-9]'; env")
    text = result.stdout.decode()
    assert "No such file or directory" in text  # no /home, no host /var/lib
    secret = local_aws.credentials[1]
    assert secret not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text


def test_unsigned_calls_to_the_endpoint_are_refused(
    local_aws: LocalAws, task: str, ecs: Any
) -> None:
    url = local_aws.endpoint_url
    status, body = fetch_inside(local_aws, task, f"{url}/{local_aws.bucket}?list-type=2")
    assert status == 403 and "<Code>AccessDenied</Code>" in body
    stop = json.dumps({"cluster": local_aws.cluster, "task": task})
    target = {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.StopTask"}
    status, body = fetch_inside(local_aws, task, url, method="POST", body=stop, headers=target)
    assert status == 400 and "MissingAuthenticationTokenException" in body
    now = time.gmtime()
    for key, code in (
        # A key id nobody registered (other tests add theirs with accept_credentials).
        ("AKIA" + uuid.uuid4().hex[:16].upper(), "UnrecognizedClientException"),
        (local_aws.credentials[0], "InvalidSignatureException"),  # key ids are not secret
    ):
        forged = {
            **target,
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", now),
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/"
            f"{time.strftime('%Y%m%d', now)}/{local_aws.region}/ecs/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        }
        status, body = fetch_inside(local_aws, task, url, method="POST", body=stop, headers=forged)
        assert (status, json.loads(body)["__type"]) == (400, code)
    status, _ = fetch_inside(local_aws, task, f"{url}/moto-api/reset", method="POST")
    assert status == 403
    described = ecs.describe_tasks(cluster=local_aws.cluster, tasks=[task])["tasks"][0]
    assert described["lastStatus"] in ("PENDING", "RUNNING")


def test_wrong_key_from_the_host_is_refused(local_aws: LocalAws) -> None:
    import boto3  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415

    ecs = boto3.client(
        "ecs",
        region_name=local_aws.region,
        endpoint_url=local_aws.endpoint_url,
        aws_access_key_id=local_aws.credentials[0],
        aws_secret_access_key="wrong",
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ecs.list_tasks(cluster=local_aws.cluster)
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    sts = boto3.client(
        "sts",
        region_name=local_aws.region,
        endpoint_url=local_aws.endpoint_url,
        aws_access_key_id="AKIDUNKNOWN",
        aws_secret_access_key="x",
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sts.get_caller_identity()
    assert raised.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_presigned_urls_work_inside(local_aws: LocalAws, task: str) -> None:
    s3 = local_aws.client("s3")
    s3.put_object(Bucket=local_aws.bucket, Key="isolation/in.txt", Body=b"staged")
    get = s3.generate_presigned_url(
        "get_object", Params={"Bucket": local_aws.bucket, "Key": "isolation/in.txt"}
    )
    assert fetch_inside(local_aws, task, get) == (200, "staged")
    put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": local_aws.bucket, "Key": "isolation/out.txt"}
    )
    status, _ = fetch_inside(
        local_aws, task, put, method="PUT", body="result", headers={"Content-Type": ""}
    )
    assert status == 200
    got = s3.get_object(Bucket=local_aws.bucket, Key="isolation/out.txt")["Body"].read()
    assert got == b"result"


def test_a_signed_content_length_verifies(local_aws: LocalAws) -> None:
    """botocore does not sign Content-Length, other SDKs do: the endpoint must see it."""
    import urllib.request  # noqa: PLC0415

    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415
    from botocore.credentials import Credentials  # noqa: PLC0415

    body = json.dumps({"cluster": local_aws.cluster}).encode()
    request = AWSRequest(
        method="POST",
        url=local_aws.endpoint_url + "/",
        data=body,
        headers={
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListTasks",
            "Content-Type": "application/x-amz-json-1.1",
            "Content-Length": str(len(body)),
        },
    )
    SigV4Auth(Credentials(*local_aws.credentials), "ecs", local_aws.region).add_auth(request)
    assert "content-length" in request.headers["Authorization"]
    sent = urllib.request.Request(
        request.url, data=body, method="POST", headers=dict(request.headers.items())
    )
    with urllib.request.urlopen(sent, timeout=10) as answer:
        assert answer.status == 200
        assert "taskArns" in json.loads(answer.read())


def test_moto_admin_api_needs_the_token(local_aws: LocalAws) -> None:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(f"{local_aws.endpoint_url}/moto-api/reset", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert local_aws.client("s3").head_bucket(Bucket=local_aws.bucket)  # nothing was reset


def test_etc_masks_finds_what_not_everyone_may_read(tmp_path: Any) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "shadow").write_text("root:hash\n")
    (tmp_path / "shadow").chmod(0o640)
    private = tmp_path / "ssl" / "private"
    private.mkdir(parents=True)
    (private / "key.pem").write_text("secret")  # world-readable, but its directory is not
    private.chmod(0o700)
    (tmp_path / "sudoers.d").mkdir()
    (tmp_path / "sudoers.d" / "admins").write_text("x")
    (tmp_path / "sudoers.d" / "admins").chmod(0o440)
    (tmp_path / "link").symlink_to(tmp_path / "shadow")  # links are left alone
    found = etc_masks(str(tmp_path))
    assert sorted(found, key=lambda m: m.path) == [
        Mask(str(tmp_path / "shadow"), directory=False),
        Mask(str(tmp_path / "ssl" / "private"), directory=True),
        Mask(str(tmp_path / "sudoers.d" / "admins"), directory=False),
    ]


def test_masks_come_after_the_binds_they_cover() -> None:
    spec = ContainerSpec(task_arn="arn:x/task/t", name="main", command=("true",))
    masks = (Mask("/etc/shadow", directory=False), Mask("/etc/ssl/private", directory=True))
    argv = bwrap_argv(
        spec, fs_root=Path("/r"), info_fd=3, env={}, masks=masks, drop_privileges=True
    )
    etc = argv.index("/etc")
    assert argv.index("/etc/shadow") > etc and argv.index("/etc/ssl/private") > etc
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "CAP_SYS_ADMIN" not in argv and "CAP_MKNOD" not in argv
    entered = nsenter_argv("nsenter", 42, ["id"], drop_privileges=True)
    assert entered[entered.index("--") + 1] == "setpriv"
    assert entered[-2:] == ["--", "id"]
    assert "setpriv" not in nsenter_argv("nsenter", 42, ["id"], drop_privileges=False)


def test_a_configured_image_is_said_to_be_ignored(
    local_aws: LocalAws, ecs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    image = f"python:3.12-{os.getpid()}"  # a fresh image name: the warning is once per image
    registered = ecs.register_task_definition(
        family=f"{local_aws.task_definition_family}-image",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "main", "image": image, "memory": 512, "command": ["sleep", "60"]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    cfg = local_aws.config()
    network = {
        "awsvpcConfiguration": {
            "subnets": list(cfg.subnets),
            "securityGroups": list(cfg.security_groups),
        }
    }
    with caplog.at_level("WARNING", logger="ecs_sandbox_drivers.local._containers"):
        arns = [
            ecs.run_task(
                cluster=cfg.cluster,
                taskDefinition=registered,
                launchType="FARGATE",
                networkConfiguration=network,
            )["tasks"][0]["taskArn"]
            for _ in range(2)
        ]
    for arn in arns:
        ecs.stop_task(cluster=cfg.cluster, task=arn)
    said = [r.getMessage() for r in caplog.records if image in r.getMessage()]
    assert len(said) == 1 and "no container images" in said[0]
