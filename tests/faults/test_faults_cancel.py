"""Ctrl-C (sync) and anyio cancellation (asyncio, trio) at each phase of a sandbox's life.

The sync driver gets a real ``KeyboardInterrupt`` on the test's own thread: raised from the
driver's progress callback (called for every log record a flow emits, with its phase), or
delivered as a real SIGINT to the main thread while a command runs, as a Ctrl-C would be. The
anyio drivers get their cancel scope cancelled at the same points. Afterwards the audit
checks that nothing is left: no task, no task definition, no staged object, no container.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _faults_harness import Case

pytestmark = pytest.mark.faults
CATEGORY = "cancellation"

# (phase of the log record, start of its message): the first record that matches triggers
# the interruption. What exists at that point is noted on the right.
TRIGGERS: dict[str, tuple[str, str]] = {
    "register": ("register", "registering task definition"),  # nothing yet
    "run-task": ("run-task", "starting a task for"),  # a task definition
    "wait-running": ("wait-running", "waiting for task"),  # a definition and a task
    "pre-upload": ("transfer", "staged"),  # ... and a staged S3 object
    "teardown": ("teardown", "stopping task"),  # the sandbox is being released
}


def _when(case: Case, phase: str, message: str, action: Callable[[], None]) -> None:
    fired = []

    def hook(seen_phase: str, seen_message: str) -> None:
        if not fired and seen_phase == phase and seen_message.startswith(message):
            fired.append(True)
            action()

    case.log_hooks.append(hook)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _ctrl_c() -> None:
    """A real SIGINT to the main thread, as a terminal sends on Ctrl-C."""
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, signal.SIGINT)


@pytest.mark.parametrize("at", list(TRIGGERS))
def test_interrupted_at_phase(case: Case, at: str, tmp_path: Path) -> None:
    api = case.api()
    src = tmp_path / "upload.txt"
    src.write_text("pre-upload")
    phase, message = TRIGGERS[at]
    reached: list[str] = []

    async def body() -> None:
        async with api.spin_up(
            case.task_id(), case.run_id, pre_upload_paths=[src], upload_dest_dir="/app"
        ) as sandbox:
            reached.append(sandbox.task_arn)
            result = await sandbox.exec(case.cmd("body", "cat /app/upload.txt"))
            assert result.output == b"pre-upload"

    if case.mode == "sync":
        _when(case, phase, message, _interrupt)

        async def scenario() -> None:
            with case.expect(KeyboardInterrupt):
                await body()

    else:

        async def scenario() -> None:
            with anyio.CancelScope() as scope:
                _when(case, phase, message, scope.cancel)
                await body()
            assert scope.cancel_called
            # Cancelled in a shielded tear-down, the cancellation lands after it finished.
            assert scope.cancelled_caught or at == "teardown"
            case.record.outcome = "cancelled"

    case.run(scenario)
    assert any(p == phase and m.startswith(message) for p, m in case.progress_log)
    expected_runs = 1 if at == "teardown" else 0
    assert case.executions("body") == expected_runs
    assert bool(reached) == (at == "teardown")


def test_interrupted_inside_the_block_while_a_command_runs(case: Case) -> None:
    api = case.api()
    arns: list[str] = []

    def when_started(action: Callable[[], None]) -> threading.Thread:
        def watch() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if arns:
                    log = case.local_aws.container(arns[0]).root / "fs" / "tmp" / ".faults-exec"
                    if log.exists() and log.read_text().strip():
                        break
                time.sleep(0.01)
            time.sleep(0.1)
            action()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    async def body() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            arns.append(sandbox.task_arn)
            await sandbox.exec(case.cmd("long", "sleep 30"))
            raise AssertionError("the command should have been interrupted")

    if case.mode == "sync":

        async def scenario() -> None:
            watcher = when_started(_ctrl_c)
            with case.expect(KeyboardInterrupt):
                await body()
            watcher.join()

    else:

        async def scenario() -> None:
            with anyio.CancelScope() as scope:
                token = anyio.lowlevel.current_token()
                watcher = when_started(
                    lambda: anyio.from_thread.run_sync(scope.cancel, token=token)
                )
                await body()
            assert scope.cancelled_caught
            watcher.join()
            case.record.outcome = "cancelled"

    started = time.monotonic()
    case.run(scenario)
    assert time.monotonic() - started < 10  # the command was killed, not waited for
    assert case.executions("long") == 1


def test_interrupted_twice_during_start_up_clean_up(case: Case) -> None:
    """A second Ctrl-C while a failed spin-up cleans up ends that clean-up at once (the
    operator insists); what it could not release carries tags for ``ecs-sandbox gc``,
    which this case runs."""
    api = case.api()
    phase, message = TRIGGERS["wait-running"]

    if case.mode == "sync":
        _when(case, phase, message, _interrupt)
        _when(case, "teardown", "spin-up failed", _interrupt)

        async def scenario() -> None:
            with case.expect(KeyboardInterrupt):
                async with api.spin_up(case.task_id(), case.run_id):
                    raise AssertionError("spin-up should have been interrupted")

    else:
        # Clean-up after a cancellation runs shielded: a second cancel changes nothing.
        async def scenario() -> None:
            with anyio.CancelScope() as scope:
                _when(case, phase, message, scope.cancel)
                _when(case, "teardown", "spin-up failed", scope.cancel)
                async with api.spin_up(case.task_id(), case.run_id):
                    raise AssertionError("spin-up should have been cancelled")
            assert scope.cancelled_caught
            case.record.outcome = "cancelled"

    case.run(scenario)
    swept = case.gc_run()
    if case.mode == "sync":
        # The second Ctrl-C cut the clean-up short; gc found the task and the definition.
        assert "released 1 task(s), 1 task definition(s)" in swept, swept
    else:
        assert "released 0 task(s), 0 task definition(s)" in swept, swept


# Every process of the cancelled command, found by its unusual sleep time (``slee[p]`` keeps
# the search from finding its own command line).
LEFT_OVER = (
    "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null; echo; done"
    " | grep 'slee[p] 47'; true"
)


PER_COMMAND_GAP = (
    "with one session per command (exec_sessions_per_sandbox=0) the driver ends the session "
    "when it is cancelled, and the agent kills the wrapper with it, before the flow can send a "
    "stop request; the command, in a session of its own, runs on until the wrapper's timer "
    "stops it: at once if the cancellation came after the timer's first second, else at its "
    "timeout"
)


@pytest.mark.parametrize(
    "sessions",
    [
        "pooled",
        # Not strict: the wrapper's timer stops a command whose wrapper died, once it has found
        # the command (after its first second), so a slow harness may see it gone already.
        pytest.param("per-command", marks=pytest.mark.xfail(strict=False, reason=PER_COMMAND_GAP)),
    ],
)
def test_cancelled_command_is_stopped_in_the_container(case: Case, sessions: str) -> None:
    """Ctrl-C (sync) or a cancelled scope (anyio) while a native command runs: the command
    and its process group are gone from the container afterwards, the sandbox stays usable."""
    cfg = case.cfg() if sessions == "pooled" else case.cfg(exec_sessions_per_sandbox=0)
    api = case.api(cfg)
    # A background job in the command's process group, and the command in the foreground.
    body = "sleep 47 & sleep 47; echo never"

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            arn = sandbox.task_arn
            if case.mode == "sync":
                watcher = case.when_started(arn, "victim", _ctrl_c)
                with case.expect(KeyboardInterrupt):
                    await sandbox.exec(case.cmd("victim", body))
            else:
                with anyio.CancelScope() as scope:
                    token = anyio.lowlevel.current_token()
                    watcher = case.when_started(
                        arn, "victim", lambda: anyio.from_thread.run_sync(scope.cancel, token=token)
                    )
                    await sandbox.exec(case.cmd("victim", body))
                assert scope.cancelled_caught
            watcher.join()
            left = await sandbox.exec(LEFT_OVER)
            assert left.output == b"", left.output
            after = await sandbox.exec(case.cmd("after", "echo fine"))
            assert (after.exit_code, after.output) == (0, b"fine\n")
            case.record.outcome = "cancelled; command stopped in the container"

    case.run(scenario)
    assert case.executions("victim") == 1
    assert case.executions("after") == 1
