"""Container-like tasks on a machine without docker: one long-lived bubblewrap per task.

Each task's container is a ``bwrap`` process with its own pid, ipc and uts namespaces (network
shared, so the sandbox reaches presigned URLs of the local AWS on 127.0.0.1), the host's
``/usr`` and ``/etc`` read-only (secrets masked), and writable ``/tmp``, ``/root``, ``/app``,
``/tests``, ``/logs`` and ``/var/tmp`` bound from a per-task directory under the host's temp
root. It runs the task's keep-alive command; execs enter it with ``nsenter`` against the pid
of bwrap's child (pid 1 inside), so a tmux server started by one exec is there for the next.
Killing that pid 1 ends every process in the container; when the keep-alive command exits,
bwrap exits with its status.

What a task can reach of the host is set in :mod:`._isolation`.

bwrap is started with ``--die-with-parent``, which the kernel ties to the *thread* that forked
it; so every container is started from one launcher thread that lives as long as the host,
never from a short-lived request thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from ._container_argv import HOSTNAME, WRITABLE_DIRS, ContainerSpec, bwrap_argv, nsenter_argv
from ._isolation import etc_masks

logger = logging.getLogger(__name__)

HOST_IMAGE = "ecs-sandbox/local:latest"
"""The image LocalAws's own task definition names: what a local task really runs on (the host)."""
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class LocalContainer:
    """One running (or finished) task container.

    ``init_pid`` is the host pid of the container's pid 1 (bwrap's child), the target for
    ``nsenter``; ``env`` is the environment an exec sees inside.
    """

    def __init__(
        self, spec: ContainerSpec, *, root: Path, proc: subprocess.Popen[bytes] | None
    ) -> None:
        self.spec = spec
        self.root = root
        self._proc = proc
        self.init_pid: int | None = None
        self.started_at = time.monotonic()
        self.launch_error: str | None = None
        self.stopped_by_user = False
        self.stop_reason = ""
        self.env: dict[str, str] = {
            "HOME": "/root",
            "PATH": STANDARD_PATH,
            "HOSTNAME": HOSTNAME,
            **spec.environment,
        }

    @property
    def task_arn(self) -> str:
        return self.spec.task_arn

    @property
    def task_id(self) -> str:
        return self.spec.task_arn.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def runtime_id(self) -> str:
        """The ``containers[].runtimeId`` DescribeTasks reports (ECS's form: task id, number)."""
        return f"{self.task_id}-{self.init_pid or 0}"

    @property
    def log_path(self) -> Path:
        """The container's own stdout and stderr (the keep-alive command's, and bwrap's)."""
        return self.root / "container.log"

    def exit_code(self) -> int | None:
        """The keep-alive command's exit status once the container has ended, else None."""
        if self._proc is None:
            return 1 if self.launch_error else None
        code = self._proc.poll()
        if code is None:
            return None
        # bwrap reports a signal death of its child as 128 + signal; Popen as -signal.
        return 128 - code if code < 0 else code

    @property
    def running(self) -> bool:
        """True while the container's keep-alive command runs."""
        return self.launch_error is None and self.init_pid is not None and self.exit_code() is None

    def alive(self) -> bool:
        """True while any process of the container (bwrap included) is still running."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Kill every process in the container and reap bwrap."""
        if self._proc is None:
            return
        if self.init_pid is not None and self._proc.poll() is None:
            # SIGKILL to pid 1 of the pid namespace takes every process inside with it.
            _signal(self.init_pid, signal.SIGKILL)
        _signal(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            logger.error("bwrap pid %d did not exit after SIGKILL", self._proc.pid)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class ContainerHost:
    """Starts, finds and stops the task containers under one host directory ``root``."""

    def __init__(self, root: Path, *, bwrap: str = "bwrap") -> None:
        self.root = root
        self._bwrap = bwrap
        self._drop_privileges = os.geteuid() == 0
        # Computed once: a host file whose mode changes later keeps its first treatment.
        self._masks = etc_masks() if os.path.isdir("/etc") else ()
        self._lock = threading.Lock()
        self._images_warned: set[str] = set()
        self._containers: dict[str, LocalContainer] = {}
        self._jobs: queue.SimpleQueue[tuple[ContainerSpec, Future[LocalContainer]] | None] = (
            queue.SimpleQueue()
        )
        self._launcher = threading.Thread(
            target=self._launch_loop, name="ecs-sandbox-launcher", daemon=True
        )
        self._launcher.start()
        self._closed = False

    # --- public ---------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> LocalContainer:
        """Start ``spec``'s container; returns once its pid 1 exists (or launching failed)."""
        if self._closed:
            raise RuntimeError("the container host is closed")
        done: Future[LocalContainer] = Future()
        self._jobs.put((spec, done))
        container = done.result(timeout=_START_TIMEOUT_S + 5)
        with self._lock:
            self._containers[spec.task_arn] = container
        return container

    def get(self, task: str) -> LocalContainer | None:
        """The container of a task given by ARN or id, or None."""
        with self._lock:
            found = self._containers.get(task)
            if found is None:
                for container in self._containers.values():
                    if container.task_id == task:
                        return container
            return found

    def stop(self, task: str, *, reason: str = "") -> LocalContainer | None:
        """Kill a task's container as StopTask does; returns it, or None when unknown."""
        container = self.get(task)
        if container is not None and not container.stopped_by_user:
            container.stopped_by_user = container.exit_code() is None
            container.stop_reason = reason or "Task stopped by user"
            container.kill()
            logger.info("stopped container of %s", container.task_id)
        return container

    def all(self) -> list[LocalContainer]:
        with self._lock:
            return list(self._containers.values())

    def close(self) -> None:
        """Kill every container and stop the launcher thread; files stay for the owner."""
        if self._closed:
            return
        self._closed = True
        for container in self.all():
            container.kill()
        self._jobs.put(None)
        self._launcher.join(timeout=_STOP_TIMEOUT_S)

    # --- the launcher thread ----------------------------------------------------------------

    def _launch_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            spec, done = job
            try:
                done.set_result(self._launch(spec))
            except BaseException as exc:  # handed to the waiting request thread
                done.set_exception(exc)

    def _launch(self, spec: ContainerSpec) -> LocalContainer:
        task_root = self.root / "tasks" / spec.task_arn.rsplit("/", 1)[-1]
        fs_root = task_root / "fs"
        for path in WRITABLE_DIRS:
            target = fs_root / path.strip("/").replace("/", "-")
            target.mkdir(parents=True, exist_ok=True)
            if path in ("/tmp", "/var/tmp"):  # noqa: S108
                target.chmod(0o1777)
        container = LocalContainer(spec, root=task_root, proc=None)
        if spec.image and spec.image != HOST_IMAGE and spec.image not in self._images_warned:
            # Said once per image: the configured image is silently not what runs otherwise.
            self._images_warned.add(spec.image)
            logger.warning(
                "the local ECS has no container images: task %s runs on this host's /usr and "
                "/etc, not on image %s",
                container.task_id,
                spec.image,
            )
        if not spec.command:
            container.launch_error = "CannotStartContainerError: no command to run"
            return container
        read_fd, write_fd = os.pipe()
        log = container.log_path.open("ab")
        try:
            argv = bwrap_argv(
                spec,
                fs_root=fs_root,
                info_fd=write_fd,
                env=container.env,
                masks=self._masks,
                drop_privileges=self._drop_privileges,
            )
            argv[0] = self._bwrap
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            container.launch_error = f"CannotStartContainerError: {exc}"
            return container
        finally:
            os.close(write_fd)
            log.close()
        container._proc = proc
        container.started_at = time.monotonic()
        info = _read_all(read_fd, _START_TIMEOUT_S)
        try:
            init_pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            init_pid = None
        started = init_pid is not None and _wait_for_command(init_pid, proc, _START_TIMEOUT_S)
        text = ""
        if started and proc.poll() is not None:
            # Ended at once: bwrap's own failures start with "bwrap:"; a command's do not.
            text = container.log_path.read_text(errors="replace").strip()
            started = not text.startswith("bwrap:")
        if not started:
            container.kill()
            text = text or container.log_path.read_text(errors="replace").strip()
            container.launch_error = f"CannotStartContainerError: {text or 'bwrap failed'}"
            logger.error("container for %s did not start: %s", spec.task_arn, text)
        container.init_pid = init_pid
        return container


def _wait_for_command(init_pid: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until bwrap's pid 1 has forked the command: only then is the new root in place.

    bwrap reports the child's pid before that child has set up its mounts; an nsenter that
    came earlier would enter a half-built root.
    """
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if children.read_text().strip():
                return True
        except OSError:
            pass  # pid 1 already gone: the command could not start, or ended at once
        if proc.poll() is not None:
            return True  # ended already; the caller tells a failed set-up from a quick exit
        time.sleep(0.001)
    return False


def _read_all(fd: int, timeout_s: float) -> bytes:
    """Read a pipe to EOF (bwrap closes its info fd once the child runs) within a bound."""
    data = bytearray()
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel, os.fdopen(fd, "rb", buffering=0) as pipe:
        sel.register(pipe, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            chunk = pipe.read(65536)
            if not chunk:
                break
            data += chunk
            # The JSON object is complete once it closes; bwrap keeps the fd open otherwise.
            if data.rstrip().endswith(b"}"):
                break
    return bytes(data)


__all__ = [
    "HOSTNAME",
    "HOST_IMAGE",
    "STANDARD_PATH",
    "WRITABLE_DIRS",
    "ContainerHost",
    "ContainerSpec",
    "LocalContainer",
    "bwrap_argv",
    "nsenter_argv",
]
