"""What every fault case needs: one scenario run under sync, asyncio and trio; injected faults
at the AWS API layer (LocalAws hooks, ``_faults_inject``), in ECS Exec's data channel (the local
SSM gateway's ``ChannelFaults`` and agent settings) and, for the cases that test the AWS CLI
path, in the exec transport (a wrapping transport, ``_faults_inject``); and the after-case
audit (leaks, open SSM sessions, executions per command, explained failures, secrets).

Commands go over the native transport (``exec_transport="ssm"``, pooled command-loop sessions)
unless a case asks for another one.

Scenarios are ``async def`` functions over a small facade. Under ``asyncio`` and ``trio`` they
run on that event loop with the real async API. Under ``sync`` the facade calls the real sync
API *inline* and the coroutine is driven by hand without an event loop (it never suspends), so
a ``KeyboardInterrupt`` is raised on the test's own thread exactly as a Ctrl-C would be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import boto3
from _faults_inject import (
    FaultyTransport,
)
from _faults_report import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    FAKE_SESSION_TOKEN,
    REPORT,
    CaseRecord,
    find_secret,
)

from ecs_sandbox_core import EcsFargateConfig, TransportResult
from ecs_sandbox_drivers import EcsFargateSandbox, SyncDriver, aio
from ecs_sandbox_drivers.local import ChannelFaults, LocalAws
from ecs_sandbox_drivers.local._transport import LocalTransport

T = TypeVar("T")
MODES = ("sync", "asyncio", "trio")
EXEC_LOG = "/tmp/.faults-exec"  # each counted command appends its tag here, in the sandbox
BASE_IMAGE = "ecs-sandbox/faults:{task_id}"
# The drivers' clock runs this much faster than real time (DriverBase.time_scale), so that
# back-offs and phase deadlines in unscaled units cost a tenth of the wall time.
TIME_SCALE = 10.0


# --- running one scenario under a mode ------------------------------------------------------


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the sync facade) to its end, on this thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("a sync-mode scenario awaited something that suspends")


def run_mode(mode: str, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    if mode == "sync":
        return drive(fn())
    return anyio.run(fn, backend=mode)


class Inline:
    """Makes a sync object's methods awaitable by calling them inline (sync mode)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            value = attr(*args, **kwargs)
            if type(value).__name__ in {"EcsFargateTmuxSession", "EcsFargateSandbox"}:
                return Inline(value)
            return value

        return call

    @property
    def target(self) -> Any:
        return self._target


def fake_session(region: str) -> boto3.Session:
    """A boto3 session with the suite's distinctive fake credentials."""
    return boto3.Session(
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
        aws_session_token=FAKE_SESSION_TOKEN,
        region_name=region,
    )


class Api:
    """Spins up sandboxes through the API under test (the real sync or async drivers)."""

    def __init__(
        self,
        mode: str,
        cfg: EcsFargateConfig,
        *,
        transport: Any,
        session: boto3.Session,
        progress: Callable[[str, str], None],
        time_scale: float,
    ) -> None:
        self.mode = mode
        self.cfg = cfg
        self.driver: Any
        common = {
            "transport": transport,
            "session": session,
            "progress": progress,
            "time_scale": time_scale,
        }
        if mode == "sync":
            self.driver = SyncDriver(cfg, **common)
        else:
            self.driver = aio.AsyncDriver(cfg, poll_tick_s=0.5, **common)

    @asynccontextmanager
    async def spin_up(self, task_id: str, run_id: str, **kwargs: Any) -> AsyncIterator[Any]:
        args = {"cfg": self.cfg, "task_id": task_id, "trial_name": "faults", "run_id": run_id}
        args.update(kwargs)
        if self.mode != "sync":
            async with aio.EcsFargateSandbox.spin_up(driver=self.driver, **args) as sandbox:
                yield sandbox
            return
        with EcsFargateSandbox.spin_up(driver=self.driver, **args) as sandbox:
            yield Inline(sandbox)

    def blocking(self, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Call a facade method from a worker thread (Hypothesis runs there, sync code)."""
        if self.mode == "sync":
            return drive(method(*args, **kwargs))  # type: ignore[arg-type]
        return anyio.from_thread.run(functools.partial(method, *args, **kwargs))

    async def in_worker(self, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` (which may use :meth:`blocking`) off the event loop."""
        if self.mode == "sync":
            return fn()
        return await anyio.to_thread.run_sync(fn)

    async def sleep(self, seconds: float) -> None:
        if self.mode == "sync":
            import time  # noqa: PLC0415

            time.sleep(seconds)
        else:
            await anyio.sleep(seconds)


# --- the per-case audit ---------------------------------------------------------------------


_counter = itertools.count(1)


class SecretScanner:
    """Scans every log record (root handler at DEBUG) while a case runs."""

    def __init__(self) -> None:
        self.case: Case | None = None

    def scan(self, logger_name: str, text: str) -> None:
        REPORT.log_records_scanned += 1
        hit = find_secret(text)
        if hit is None:
            return
        if logger_name.startswith("ecs_sandbox"):
            if self.case is not None:
                self.case.record.secrets_logged += 1
                self.case.record.details.append(f"secret ({hit}) in log {logger_name}: {text}")
            else:  # outside a case: charged to the session
                REPORT.stray_secrets.append(f"{logger_name}: {text[:300]}")
        else:
            REPORT.third_party_records_with_secrets[logger_name.split(".", maxsplit=1)[0]] += 1


SCANNER = SecretScanner()


_AUDIT_CLIENTS: dict[str, tuple[Any, Any]] = {}


def _audit_clients(local_aws: LocalAws) -> tuple[Any, Any]:
    """The auditor's own ECS and S3 clients (the local dummy credentials), made once."""
    if local_aws.endpoint_url not in _AUDIT_CLIENTS:
        _AUDIT_CLIENTS[local_aws.endpoint_url] = (
            local_aws.client("ecs", max_attempts=1),
            local_aws.client("s3", max_attempts=1),
        )
    return _AUDIT_CLIENTS[local_aws.endpoint_url]


class Case:
    """One fault case against one driver: its configuration, API, counting and audit."""

    def __init__(self, local_aws: LocalAws, mode: str, name: str, category: str) -> None:
        self.local_aws = local_aws
        self.mode = mode
        self.name = name
        self.n = next(_counter)
        self.run_id = f"faults-{self.n}-{secrets.token_hex(3)}"
        self.record = CaseRecord(case=name, driver=mode, category=category)
        self.tags: set[str] = set()
        self.log_hooks: list[Callable[[str, str], None]] = []
        self.progress_log: list[tuple[str, str]] = []
        self._hooks: list[Any] = []
        self._failed = False
        self._ecs, self._s3 = _audit_clients(local_aws)
        self._tasks_before = set(self._all_tasks())
        self._defs_before = set(self._active_definitions())
        self._settings_before = local_aws.agent_settings
        self._sessions_before = local_aws.ssm_stats.sessions_opened

    # configuration and API ------------------------------------------------------------------

    def cfg(self, **overrides: Any) -> EcsFargateConfig:
        values: dict[str, Any] = {
            "image_template": BASE_IMAGE,
            "ecs_exec_timeout_sec": 30,
            "exec_connect_timeout_sec": 10.0,
            "running_timeout_sec": 20.0,
            "run_task_max_retries": 4,
            "s3_prefix": "faults",
            # The cases script the faults of the sandbox's first exec; the spin-up's image
            # probe would take that exec (tests/drivers/test_image_probe_e2e.py tests it).
            "probe_image": False,
        }
        values.update(overrides)
        return self.local_aws.config(**values)

    def api(
        self,
        cfg: EcsFargateConfig | None = None,
        *,
        transport: Any = None,
        time_scale: float = TIME_SCALE,
    ) -> Api:
        """The API under test. Its driver's clock runs ``time_scale`` times faster than real
        time (back-offs and phase deadlines shrink by that factor; exec timeouts do not)."""
        cfg = cfg or self.cfg()
        return Api(
            self.mode,
            cfg,
            transport=transport if transport is not None else LocalTransport(self.local_aws),
            session=fake_session(self.local_aws.region),
            progress=self._progress,
            time_scale=time_scale,
        )

    def faulty(self, **kwargs: Any) -> FaultyTransport:
        """A damaging wrapper around the AWS CLI transport (use with ``cli_cfg()``)."""
        return FaultyTransport(self.local_aws.cli_transport(), **kwargs)

    def cli_cfg(self, **overrides: Any) -> EcsFargateConfig:
        """The configuration of a case that tests the AWS CLI path."""
        return self.cfg(exec_transport="aws-cli", **overrides)

    # the data channel --------------------------------------------------------------------------

    def channel_faults(self, **switches: Any) -> ChannelFaults:
        """Faults for every SSM session opened from now on (until the case ends)."""
        faults = ChannelFaults(**switches)
        self.local_aws.channel_faults = faults
        return faults

    def agent(self, **settings: Any) -> None:
        """Agent settings (``idle_timeout_s``...) for sessions opened from now on."""
        self.local_aws.agent_settings = dataclasses.replace(
            self.local_aws.agent_settings, **settings
        )

    def sessions_opened(self) -> int:
        """SSM sessions the local gateway accepted since the case began."""
        return self.local_aws.ssm_stats.sessions_opened - self._sessions_before

    def wait_sessions_closed(self, live: int = 0, timeout_s: float = 10.0) -> int:
        """Wait until at most ``live`` SSM sessions are open (polling); return how many are."""
        deadline = time.monotonic() + timeout_s
        while (now := self.local_aws.ssm_stats.live_sessions) > live:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return now

    def in_container(self, task_arn: str, script: str) -> bytes:
        """Run ``sh -c script`` in the task's container out of band (nsenter, no ECS Exec),
        as another process in the container would; return its output."""
        prepared = LocalTransport(self.local_aws).prepare(
            task_arn=task_arn,
            container=self.local_aws.container_name,
            command=f"sh -c {_sq(script)}",
        )
        assert not isinstance(prepared, TransportResult), prepared
        done = subprocess.run(
            prepared.argv, env=prepared.env, capture_output=True, timeout=30, check=False
        )
        return done.stdout

    def task_id(self, suffix: str = "") -> str:
        safe = re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")
        return f"c{self.n}-{self.mode}-{safe}"[:60].rstrip("-") + suffix

    def _progress(self, phase: str, message: str) -> None:
        self.progress_log.append((phase, message))
        for hook in list(self.log_hooks):
            hook(phase, message)

    @contextlib.contextmanager
    def hook(self, hook: Any) -> Iterator[Any]:
        self.local_aws.add_hook(hook)
        self._hooks.append(hook)
        try:
            yield hook
        finally:
            self._remove_hook(hook)

    def add_hook(self, hook: Any) -> Any:
        self.local_aws.add_hook(hook)
        self._hooks.append(hook)
        return hook

    def _remove_hook(self, hook: Any) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)
            with contextlib.suppress(ValueError):
                self.local_aws.remove_hook(hook)

    # counted commands ------------------------------------------------------------------------

    def cmd(self, tag: str, body: str = "true") -> str:
        """Shell text that records one execution of ``tag`` in the sandbox, then runs body."""
        full = f"c{self.n}-{tag}"
        self.tags.add(full)
        return f"echo {full} >> {EXEC_LOG}; {body}"

    def when_started(
        self, task_arn: str, tag: str, action: Callable[[], None], *, after_s: float = 0.2
    ) -> threading.Thread:
        """Call ``action`` from a thread ``after_s`` after the counted command ``tag`` began
        in the task's container (it appended its tag to the log)."""
        container = self.local_aws.container(task_arn)
        assert container is not None
        log = container.root / "fs" / "tmp" / EXEC_LOG.rsplit("/", 1)[-1]
        full = f"c{self.n}-{tag}"

        def watch() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if log.exists() and full in log.read_text().split():
                    break
                time.sleep(0.01)
            time.sleep(after_s)
            action()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def executions(self, tag: str) -> int:
        return self._counts().get(f"c{self.n}-{tag}", 0)

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for container in self._case_containers():
            path = container.root / "fs" / "tmp" / EXEC_LOG.rsplit("/", 1)[-1]
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                counts[line.strip()] = counts.get(line.strip(), 0) + 1
        return counts

    def _case_containers(self) -> list[Any]:
        new = set(self._all_tasks()) - self._tasks_before
        return [c for c in self.local_aws.containers() if c.task_arn in new]

    # expected failures -----------------------------------------------------------------------

    def seen(self, exc: BaseException) -> None:
        """Scan an exception (and its causes) for secrets."""
        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        for item in chain:
            REPORT.exception_messages_scanned += 1
            text = f"{item!s}\n{item!r}\n{getattr(item, 'remedy', '')}"
            hit = find_secret(text)
            if hit is not None:
                self.record.secrets_logged += 1
                self.record.details.append(f"secret ({hit}) in {type(item).__name__}: {text}")

    def unexplained(self, problem: str) -> None:
        if not self._failed:
            self._failed = True
            self.record.unexplained_failures += 1
        self.record.details.append(problem)

    @contextlib.contextmanager
    def expect(
        self, error_type: type[BaseException], *needles: str, **attrs: Any
    ) -> Iterator[dict[str, BaseException]]:
        """The block must raise ``error_type`` whose message contains every needle and whose
        attributes equal ``attrs``; anything else is an unexplained failure."""
        caught: dict[str, BaseException] = {}
        try:
            yield caught
        except BaseException as exc:
            caught["error"] = exc
            self.seen(exc)
            problems = []
            if not isinstance(exc, error_type):
                problems.append(f"expected {error_type.__name__}, got {type(exc).__name__}: {exc}")
            else:
                text = str(exc)
                problems += [f"message lacks {n!r}: {text}" for n in needles if n not in text]
                for key, value in attrs.items():
                    if getattr(exc, key, None) != value:
                        problems.append(f"{key}={getattr(exc, key, None)!r}, wanted {value!r}")
            if problems:
                self.unexplained("; ".join(problems))
                raise AssertionError("; ".join(problems)) from exc
            self.record.outcome = f"{type(exc).__name__} as documented"
            return
        self.unexplained(f"expected {error_type.__name__}, nothing was raised")
        raise AssertionError(f"expected {error_type.__name__}, nothing was raised")

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``scenario`` under this case's mode; any escaping exception is a failure."""
        SCANNER.case = self
        try:
            value = run_mode(self.mode, scenario)
        except BaseException as exc:
            self.seen(exc)
            if not isinstance(exc, AssertionError) or not self._failed:
                self.unexplained(f"scenario raised {type(exc).__name__}: {exc}")
            if isinstance(exc, KeyboardInterrupt):
                raise AssertionError(f"KeyboardInterrupt escaped the scenario: {exc}") from exc
            raise
        if not self.record.outcome:
            self.record.outcome = "ok"
        return value

    # ecs-sandbox gc ----------------------------------------------------------------------------

    def gc_args(self, *extra: str) -> list[str]:
        """``ecs-sandbox`` arguments that point the CLI at this LocalAws."""
        aws = self.local_aws
        settings = {
            "region": aws.region,
            "cluster": aws.cluster,
            "task_definition": aws.task_definition,
            "container_name": aws.container_name,
            "subnets": aws.subnet_id,
            "security_groups": aws.security_group_id,
            "s3_bucket": aws.bucket,
            "s3_prefix": "faults",
            "endpoint_url": aws.endpoint_url,
        }
        args: list[str] = []
        for key, value in settings.items():
            args += ["--set", f"{key}={value}"]
        return [*args, *extra]

    def gc_run(self, run_id: str | None = None) -> str:
        """Run ``ecs-sandbox gc --run-id RUN`` in-process (credentials from the environment,
        the suite's fake ones) and return what it printed; it must exit 0."""
        from ecs_sandbox_drivers import cli  # noqa: PLC0415

        env = {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
            "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
            "AWS_DEFAULT_REGION": self.local_aws.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        saved = {key: os.environ.get(key) for key in env}
        out = io.StringIO()
        try:
            os.environ.update(env)
            with contextlib.redirect_stdout(out):
                code = cli.main(self.gc_args("gc", "--run-id", run_id or self.run_id))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        text = out.getvalue()
        SCANNER.scan("ecs_sandbox.gc-output", text)
        assert code == 0, text
        return text

    # the audit -------------------------------------------------------------------------------

    def _all_tasks(self) -> list[str]:
        arns: list[str] = []
        paginator = self._ecs.get_paginator("list_tasks")
        for desired in ("RUNNING", "STOPPED"):  # ListTasks lists only RUNNING by default
            for page in paginator.paginate(cluster=self.local_aws.cluster, desiredStatus=desired):
                arns += page["taskArns"]
        return arns

    def _active_definitions(self) -> list[str]:
        arns: list[str] = []
        for page in self._ecs.get_paginator("list_task_definitions").paginate(status="ACTIVE"):
            arns += page["taskDefinitionArns"]
        return arns

    def leaks(self) -> list[str]:
        """Everything the case left: live tasks, ACTIVE definitions, staged objects, containers."""
        found: list[str] = []
        arns = self._all_tasks()
        for i in range(0, len(arns), 100):
            described = self._ecs.describe_tasks(
                cluster=self.local_aws.cluster, tasks=arns[i : i + 100]
            )
            for task in described["tasks"]:
                if task.get("lastStatus") != "STOPPED":
                    found.append(f"task {task['taskArn']} is {task.get('lastStatus')}")
        for arn in set(self._active_definitions()) - self._defs_before:
            found.append(f"task definition {arn} is ACTIVE")
        listed = self._s3.list_objects_v2(Bucket=self.local_aws.bucket)
        for obj in listed.get("Contents", []):
            found.append(f"object s3://{self.local_aws.bucket}/{obj['Key']}")
        for container in self.local_aws.containers():
            if container.alive():
                found.append(f"container of {container.task_id} is alive")
        return found

    def finish(self) -> CaseRecord:
        """Audit the case, record it, and return its record (the fixture asserts on it)."""
        SCANNER.case = None
        for hook in list(self._hooks):
            self._remove_hook(hook)
        self.local_aws.start_delay_s = 0.0
        self.local_aws.channel_faults = ChannelFaults()
        self.local_aws.agent_settings = self._settings_before
        leaks = self.leaks()
        open_sessions = self.wait_sessions_closed()
        if open_sessions:
            leaks.append(f"{open_sessions} SSM session(s) still open at the local gateway")
        self.record.leaked = len(leaks)
        self.record.details += leaks
        counts = self._counts()
        for tag, n in counts.items():
            if tag in self.tags and n > 1:
                self.record.duplicate_executions += n - 1
                self.record.details.append(f"{tag} ran {n} times")
        if leaks:
            self._clean_up(leaks)
        REPORT.add(self.record)
        return self.record

    def _clean_up(self, leaks: list[str]) -> None:
        """Release what a failing case leaked, so that the next case starts clean."""
        for arn in self._all_tasks():
            with contextlib.suppress(Exception):
                self._ecs.stop_task(cluster=self.local_aws.cluster, task=arn, reason="leak")
        for arn in set(self._active_definitions()) - self._defs_before:
            with contextlib.suppress(Exception):
                self._ecs.deregister_task_definition(taskDefinition=arn)
        listed = self._s3.list_objects_v2(Bucket=self.local_aws.bucket)
        for obj in listed.get("Contents", []):
            self._s3.delete_object(Bucket=self.local_aws.bucket, Key=obj["Key"])
        for container in self.local_aws.containers():
            container.kill()


def host_path(local_aws: LocalAws, task_arn: str, path: str) -> Path:
    """Where ``path`` (under /tmp, /app, /root, ...) of a task's container lives on the host."""
    container = local_aws.container(task_arn)
    assert container is not None
    top, _, rest = path.strip("/").partition("/")
    return container.root / "fs" / top / rest


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str)


def _sq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
