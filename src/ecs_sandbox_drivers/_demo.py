"""``ecs-sandbox demo``: the life of one sandbox, phase by phase, with timings."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ecs_sandbox_core import EcsFargateConfig

from ._api import EcsFargateSandbox
from ._sync import SyncDriver

_TEST_SCRIPT = """\
#!/bin/sh
# A tiny test suite: each check prints PASS/FAIL; the exit code counts the failures.
cd "$(dirname "$0")"
failed=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; failed=$((failed + 1)); fi; }
check "data file arrived" '[ -f data/numbers.txt ]'
check "sum is 5050" '[ "$(awk "{s+=\\$1} END {print s}" data/numbers.txt)" = 5050 ]'
check "python runs" 'python3 -c "import sys; sys.exit(0)"'
printf '{"passed": %d, "failed": %d}\\n' $((3 - failed)) "$failed" > results.json
exit "$failed"
"""


class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.mark = self.start

    def lap(self) -> float:
        now = time.monotonic()
        lap, self.mark = now - self.mark, now
        return lap

    def total(self) -> float:
        return time.monotonic() - self.start


def _say(text: str = "") -> None:
    print(text, flush=True)


def _phase(title: str) -> None:
    _say(f"\n== {title}")


def _indent(text: str, prefix: str = "   | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def _write_project(root: Path) -> Path:
    project = root / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "numbers.txt").write_text("".join(f"{i}\n" for i in range(1, 101)))
    (project / "data" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    script = project / "run_tests.sh"
    script.write_text(_TEST_SCRIPT)
    script.chmod(0o755)
    return project


def _agent_session(sandbox: EcsFargateSandbox, clock: _Clock) -> None:
    _phase("agent session (tmux): every call below is one exec round trip")
    before = sandbox.driver.stats.exec_round_trips
    session = sandbox.create_session("agent")
    _say(f"   create_session('agent')                      {clock.lap():6.2f}s")
    first = session.get_incremental_output()
    _say(f"   get_incremental_output()  (first read)       {clock.lap():6.2f}s")
    _say(_indent(first))
    steps: list[list[str]] = [
        ["echo 'hello from the agent'", "Enter"],
        ["for i in 1 2 3; do echo line $i; done\n"],
        ["python3 -c 'import platform; print(platform.python_version())'", "Enter"],
    ]
    for keys in steps:
        output = session.step(keys, block=True, max_timeout_sec=30)
        _say(f"   step({keys!r:.60})  {clock.lap():6.2f}s")
        _say(_indent(output))
    trips = sandbox.driver.stats.exec_round_trips - before
    _say(f"   exec round trips for {2 + len(steps)} session operations: {trips}")


def _verify_teardown(
    local: Any, cfg: EcsFargateConfig, task_arn: str, family_arns: set[str]
) -> bool:
    ecs = local.client("ecs")
    s3 = local.client("s3")
    task = ecs.describe_tasks(cluster=cfg.cluster, tasks=[task_arn])["tasks"][0]
    ok = task["lastStatus"] == "STOPPED"
    _say(f"   task {task_arn.rsplit('/', 1)[-1]}: {task['lastStatus']}")
    for arn in sorted(family_arns):
        status = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"]
        ok = ok and status == "INACTIVE"
        _say(f"   task definition {arn.rsplit('/', 1)[-1]}: {status}")
    listed = s3.list_objects_v2(Bucket=cfg.s3_bucket, Prefix=cfg.s3_prefix + "/")
    left = listed.get("KeyCount", 0)
    ok = ok and left == 0
    _say(f"   staged objects left in s3://{cfg.s3_bucket}/{cfg.s3_prefix}/: {left}")
    alive = [c for c in local.containers() if c.alive()] if hasattr(local, "containers") else []
    ok = ok and not alive
    _say(f"   local sandbox processes still running: {len(alive)}")
    return ok


def _summary(server_calls: Counter[str], driver: SyncDriver) -> None:
    _phase("summary")
    _say("   AWS API calls and S3 requests (counted by the local AWS endpoint; S3 GETs are the")
    _say("   sandbox fetching staged files through presigned URLs):")
    for name, count in sorted(server_calls.items()):
        _say(f"     {name:<34} {count:>4}")
    _say(f"     {'total':<34} {sum(server_calls.values()):>4}")
    _say(f"   exec round trips (counted by the transport): {driver.stats.exec_round_trips}")


def run_demo(*, local: bool = True) -> int:
    """Run the demo on the embedded local ECS; returns 0 when every check held."""
    if not local:
        _say("the demo runs on the embedded local ECS only; use `ecs-sandbox demo --local`")
        return 2
    from .local import LocalAws  # noqa: PLC0415

    clock = _Clock()
    _say("ecs-sandbox demo: one sandbox on the embedded local ECS (no AWS account needed)")
    with tempfile.TemporaryDirectory(prefix="ecs-sandbox-demo-") as tmp, LocalAws() as aws:
        cfg = aws.config(image_template="ecs-sandbox/demo:{task_id}")
        _say(f"   local AWS on {aws.endpoint_url}; cluster {cfg.cluster}   {clock.lap():6.2f}s")

        def progress(phase: str, message: str) -> None:
            _say(f"   [{phase or '-':<13}] {message}   +{clock.lap():.2f}s")

        driver = SyncDriver(cfg, progress=progress)
        project = _write_project(Path(tmp))
        _phase("spin-up: task definition, RunTask, wait for RUNNING")
        with EcsFargateSandbox.spin_up(
            cfg=cfg, task_id="demo-1", trial_name="demo", run_id="demo-run", driver=driver
        ) as sandbox:
            handle = sandbox._flows.handle
            driver.progress = None
            _agent_session(sandbox, clock)

            _phase("copy a directory in and run its tests")
            sandbox.copy_to_sandbox(paths=[project], container_dir="/app")
            _say(f"   copy_to_sandbox(project -> /app)             {clock.lap():6.2f}s")
            result = sandbox.exec("sh /app/run_tests.sh")
            code = result.exit_code
            _say(f"   exec('sh /app/run_tests.sh') -> exit code {code}   {clock.lap():.2f}s")
            _say(_indent(result.text))
            failing = sandbox.exec("echo 'about to fail' >&2; exit 3")
            _say(
                f"   exec('... exit 3') -> exit code {failing.exit_code} (ECS Exec alone loses it)"
            )

            _phase("copy a result file out")
            written = sandbox.copy_from_sandbox("/app/results.json", Path(tmp) / "out")
            results = json.loads(written[0].read_text())
            _say(f"   copy_from_sandbox -> {written[0].name}: {results}   {clock.lap():.2f}s")
            driver.progress = progress
            _phase("tear-down")
        _say(f"   tear-down finished                           {clock.lap():6.2f}s")
        sandbox_calls = Counter(aws.calls)  # before verification adds calls of its own
        _phase("verify that nothing is left")
        definitions = {handle.task_definition_arn} if handle.task_definition_arn else set()
        clean = _verify_teardown(aws, cfg, handle.task_arn, definitions)
        checks_ok = result.exit_code == 0 and failing.exit_code == 3 and results["failed"] == 0
        _summary(sandbox_calls, driver)
    _say(f"\ndemo {'OK' if clean and checks_ok else 'FAILED'} in {clock.total():.2f}s")
    return 0 if clean and checks_ok else 1


__all__ = ["run_demo"]
