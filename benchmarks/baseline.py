"""A baseline that behaves as the reference module does, written here only for comparison.

It reproduces the reference's *behaviour* (``../shared/reference/``, ``../shared/FACTS.md``),
including the defects the benchmarks measure, and nothing else:

* exec: every command is one ``sh -lc`` round trip framed by a fixed begin marker and an
  exit-status line, decoded as text;
* tmux: session start probes ``tmux -V`` (once per sandbox), asks ``has-session``, then
  creates the session and sets ``history-limit`` afterwards (so it never applies); a blocking
  send is ``send-keys`` plus ``tmux wait done``; an incremental read captures the whole
  scrollback, looks for the previous capture inside it and falls back to the visible screen;
* control plane: per sandbox a credentials check, DescribeTaskDefinition, its own
  RegisterTaskDefinition (retried on throttling), RunTask (retried on capacity), a
  DescribeTasks loop every 2 s, then StopTask and DeregisterTaskDefinition, on a boto3 client
  with botocore's "standard" retries and 12 attempts.
"""

from __future__ import annotations

import contextlib
import random
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ecs_sandbox_drivers._process import run_sync
from ecs_sandbox_drivers._transport import ExecTransport, PreparedRun

BEGIN = "__NEMO_BEGIN__"
RC = "__NEMO_RC__="
_CHATTER = (
    "the session manager plugin was installed successfully",
    "starting session with sessionid:",
    "exiting session with sessionid:",
)
_ENTER = ("Enter", "C-m", "KPEnter", "C-j", "^M", "^J")


# --- exec ---------------------------------------------------------------------------------


@dataclass
class ReferenceExec:
    """Runs commands in one task as the reference does, counting round trips and bytes."""

    transport: ExecTransport
    task_arn: str
    container: str
    round_trips: int = 0
    bytes_out: int = 0

    def run(self, argv: list[str], timeout_s: float = 60.0) -> str:
        shell = " ".join(shlex.quote(part) for part in argv)
        framed = f"printf '{BEGIN}\\n'; {shell}; rc=$?; printf '\\n{RC}%s\\n' \"$rc\""
        command = f"sh -lc {shlex.quote(framed)}"
        prepared = self.transport.prepare(
            task_arn=self.task_arn, container=self.container, command=command
        )
        assert isinstance(prepared, PreparedRun), prepared
        self.round_trips += 1
        _code, stdout, stderr, _timed_out = run_sync(prepared, timeout_s)
        self.bytes_out += len(stdout)
        return payload_of(stdout, stderr)


def payload_of(stdout: bytes, stderr: bytes) -> str:
    """What the reference returns from a framed run: the text between its markers."""
    text = stdout.decode("utf-8", errors="replace") + "\n" + stderr.decode(errors="replace")
    lines = [ln for ln in text.splitlines() if not ln.lower().startswith(_CHATTER)]
    begin = next((i for i, ln in enumerate(lines) if ln.strip() == BEGIN), None)
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(RC)), None)
    if begin is not None and end is not None and end > begin:
        return "\n".join(lines[begin + 1 : end]).strip("\n")
    return "\n".join(lines).strip("\n")


# --- pane reading -------------------------------------------------------------------------


@dataclass
class ReferencePaneDiff:
    """The reference's incremental output: the previous full capture, found as a substring."""

    previous: str | None = None

    def new_content(self, current: str) -> str | None:
        if self.previous is None:
            return None
        needle = self.previous.strip()
        if not needle or needle not in current:
            return None
        at = current.index(needle)
        cut = needle.rfind("\n")
        return current[at + cut + 1 :] if cut >= 0 else current[at:]

    def read(self, current: str, screen: Callable[[], str]) -> str:
        """One poll given the full capture; ``screen()`` captures the visible screen."""
        first = self.previous is None
        found = None if first else self.new_content(current)
        self.previous = current
        if found is not None and found.strip():
            return "New Terminal Output:\n" + found
        return "Current Terminal Screen:\n" + screen()


@dataclass
class ReferenceSession:
    """A tmux session driven the reference's way, one exec per tmux command."""

    exec: ReferenceExec
    name: str
    version_checked: bool = False
    diff: ReferencePaneDiff = field(default_factory=ReferencePaneDiff)

    def start(self) -> None:
        if not self.version_checked:
            self.version_checked = True
            self.exec.run(["sh", "-lc", "tmux -V 2>/dev/null || true"])
        probe = (
            f"tmux has-session -t {shlex.quote(self.name)} 2>/dev/null "
            "&& echo __NEMO_YES__ || echo __NEMO_NO__"
        )
        if "__NEMO_YES__" in self.exec.run(["bash", "-lc", probe]):
            return
        # history-limit set after the session exists: the first pane keeps 2000 rows.
        create = (
            f"tmux new-session -x 160 -y 40 -d -s {shlex.quote(self.name)} "
            f"\\; set-option -t {shlex.quote(self.name)} history-limit 50000"
        )
        self.exec.run(["bash", "-lc", create])

    def send_keys(self, keys: list[str], *, block: bool, max_timeout_s: float = 180.0) -> None:
        if block and keys and keys[-1] in _ENTER:
            keys = [*keys[:-1], "; tmux wait -S done", "Enter"]
        if keys:
            self.exec.run(["tmux", "send-keys", "-t", self.name, *keys])
        if block:
            self.exec.run(
                ["timeout", f"{max_timeout_s}s", "tmux", "wait", "done"], max_timeout_s + 30
            )

    def capture(self, *, entire: bool) -> str:
        argv = ["tmux", "capture-pane", "-p", *(["-S", "-"] if entire else []), "-t", self.name]
        return self.exec.run(argv)

    def get_incremental_output(self) -> str:
        return self.diff.read(self.capture(entire=True), lambda: self.capture(entire=False))


# --- control plane ------------------------------------------------------------------------


@dataclass
class ScaledClock:
    """Time for a simulated account running ``scale`` times faster than real time."""

    scale: float

    def now(self) -> float:
        return time.monotonic() * self.scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.scale)


class ScaledBotocoreSleep:
    """Stands in for the ``time`` module inside ``botocore.endpoint`` while the baseline runs,
    so that botocore's own retry back-off runs on the simulated account's clock too."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass(frozen=True)
class ReferencePlan:
    """What one reference sandbox needs to know."""

    cluster: str
    task_definition: str
    container: str
    subnets: list[str]
    security_groups: list[str]
    image: str
    run_id: str
    task_id: str


def _retryable_register(error: Any) -> bool:
    code = (error.response.get("Error") or {}).get("Code", "")
    text = str(error)
    return (
        "Too many concurrent attempts to create a new revision" in text
        or "Rate exceeded" in text
        or code in {"ThrottlingException", "TooManyRequestsException"}
    )


def reference_sandbox(
    ecs: Any, sts: Any, plan: ReferencePlan, clock: ScaledClock, rng: random.Random
) -> None:
    """Spin one sandbox up and tear it down as the reference does (raises what it raised)."""
    import botocore.exceptions  # noqa: PLC0415 - the baseline only needs it here

    client_error = botocore.exceptions.ClientError
    sts.get_caller_identity()  # the credentials check runs for every sandbox
    keepalive = ["sh", "-lc", "sleep 10800"]
    try:
        base = ecs.describe_task_definition(taskDefinition=plan.task_definition)["taskDefinition"]
    except client_error:
        base = None
    family = f"nemo-{plan.run_id}-{plan.task_id}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
    containers = (base or {}).get("containerDefinitions") or []
    for definition in containers:
        if definition.get("name") == plan.container:
            definition["image"] = plan.image
            definition["command"] = keepalive
    payload = {
        "family": family,
        "networkMode": (base or {}).get("networkMode", "awsvpc"),
        "requiresCompatibilities": (base or {}).get("requiresCompatibilities", ["FARGATE"]),
        "cpu": (base or {}).get("cpu", "256"),
        "memory": (base or {}).get("memory", "512"),
        "containerDefinitions": containers,
    }
    registered = None
    for attempt in range(1, 16):
        try:
            registered = ecs.register_task_definition(**payload)
            break
        except client_error as exc:
            if not _retryable_register(exc) or attempt >= 15:
                raise
            clock.sleep(min(30.0, 0.75 * 2 ** min(6, attempt - 1)) + rng.random())
    assert registered is not None
    definition_arn = registered["taskDefinition"]["taskDefinitionArn"]
    task_arn = None
    for attempt in range(1, 31):
        try:
            answer = ecs.run_task(
                cluster=plan.cluster,
                taskDefinition=definition_arn,
                launchType="FARGATE",
                platformVersion="LATEST",
                enableExecuteCommand=True,
                overrides={
                    "containerOverrides": [
                        {
                            "name": plan.container,
                            "command": keepalive,
                            "environment": [{"name": "TEST_DIR", "value": "/tests"}],
                        }
                    ]
                },
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": plan.subnets,
                        "securityGroups": plan.security_groups,
                        "assignPublicIp": "DISABLED",
                    }
                },
            )
        except client_error as exc:
            if "Capacity is unavailable" not in str(exc) or attempt >= 30:
                raise
            clock.sleep(min(60.0, 2.0 ** min(6, attempt - 1)) + rng.random())
            continue
        failures = answer.get("failures") or []
        if failures:
            reasons = " | ".join(str(f.get("reason", "")) for f in failures)
            if "Capacity is unavailable" not in reasons or attempt >= 30:
                raise RuntimeError(f"run_task failures: {failures}")
            clock.sleep(min(60.0, 2.0 ** min(6, attempt - 1)) + rng.random())
            continue
        task_arn = answer["tasks"][0]["taskArn"]
        break
    assert task_arn is not None
    started = clock.now()
    while True:
        tasks = ecs.describe_tasks(cluster=plan.cluster, tasks=[task_arn]).get("tasks") or []
        if not tasks:
            raise RuntimeError("task disappeared")
        status = tasks[0].get("lastStatus")
        if status == "RUNNING":
            break
        if status == "STOPPED":
            raise RuntimeError(f"task stopped early: {tasks[0].get('stoppedReason')}")
        if clock.now() - started > 300:
            raise TimeoutError("task not RUNNING after 300 s")
        clock.sleep(2.0)
    # The reference cleans up only once the sandbox exists (a failed start leaks).
    # It logs a failed StopTask or DeregisterTaskDefinition and goes on.
    with contextlib.suppress(Exception):
        ecs.stop_task(cluster=plan.cluster, task=task_arn, reason="nemo sandbox done")
    with contextlib.suppress(Exception):
        ecs.deregister_task_definition(taskDefinition=definition_arn)
