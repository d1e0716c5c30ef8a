"""The command loop (issue 9): pooled ECS Exec sessions, each a POSIX ``sh`` loop fed one
request per command, and what becomes of them when the agent, the connection or the loop's
own process goes away between or during commands.

A session found ended before a request is sent is replaced, and the request goes to the new
one, once; a session lost after the request went out fails the exec (the command may have
run) and is never retried.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import anyio
import pytest
from _faults_harness import Case

from ecs_sandbox_core import ExecCutOffError, ExecOutputTooLargeError
from ecs_sandbox_drivers._ssm_async import AsyncLoopSession
from ecs_sandbox_drivers._ssm_sync import SyncLoopSession

pytestmark = pytest.mark.faults
CATEGORY = "command-loop"

# Finds the command loop's ``sh`` in the container: the loop's script is in its command line
# (``lin[e]`` so that the search does not find its own command line).
FIND_LOOPS = (
    "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null | "
    "grep -q 'IFS= read -r lin[e]' && echo ${p#/proc/}; done; true"
)


def test_idle_timeout_between_commands(case: Case) -> None:
    case.agent(idle_timeout_s=1.0)  # AWS: 20 minutes without client input
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            first = await sandbox.exec(case.cmd("first", "echo one"))
            assert first.output == b"one\n"
            # The agent ends the idle session (channel_closed); the pool finds it ended.
            assert await api.in_worker(case.wait_sessions_closed) == 0
            second = await sandbox.exec(case.cmd("second", "echo two; exit 4"))
            assert (second.exit_code, second.output) == (4, b"two\n")

    case.run(scenario)
    assert case.executions("first") == case.executions("second") == 1
    assert case.sessions_opened() == 2  # the second command ran on a replacement session


def test_session_dropped_mid_command_on_a_reused_session(case: Case) -> None:
    # The first command's frame fits below the limit; the second one's output crosses it,
    # on the session the first command left idle.
    case.channel_faults(drop_tcp_after_bytes=4000)
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            first = await sandbox.exec(case.cmd("first", "echo small"))
            assert first.output == b"small\n"
            with case.expect(
                ExecCutOffError, "ended before the command finished", "connection dropped"
            ) as caught:
                await sandbox.exec(case.cmd("cut", "seq 1 5000; echo end"))
            assert "not run again" in caught["error"].remedy  # type: ignore[attr-defined]
            case.channel_faults()
            third = await sandbox.exec(case.cmd("third", "echo fine"))
            assert third.output == b"fine\n"

    case.run(scenario)
    for tag in ("first", "cut", "third"):
        assert case.executions(tag) == 1, tag
    assert case.sessions_opened() == 2


@pytest.mark.parametrize("when", ["idle", "busy"])
def test_loop_killed_inside_the_container(case: Case, when: str) -> None:
    """``kill -9`` of the loop's ``sh`` by another process in the container (an OOM kill):
    idle, the next command runs on a replacement; busy, the command in flight loses its
    session (explained, not retried) and the next command runs on a replacement."""
    api = case.api()
    killed: list[bytes] = []

    def kill_loop(task_arn: str) -> None:
        pids = case.in_container(task_arn, FIND_LOOPS).split()
        assert len(pids) == 1, pids  # one loop session in this sandbox
        case.in_container(task_arn, f"kill -9 {pids[0].decode()}")
        killed.append(pids[0])

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            arn = sandbox.task_arn
            first = await sandbox.exec(case.cmd("first", "echo one"))
            assert first.output == b"one\n"
            if when == "idle":
                await api.in_worker(lambda: kill_loop(arn))
                assert await api.in_worker(case.wait_sessions_closed) == 0
            else:
                killer = case.when_started(arn, "busy", lambda: kill_loop(arn))
                with case.expect(ExecCutOffError, "ended before the command finished"):
                    await sandbox.exec(case.cmd("busy", "echo started; sleep 3; echo end"))
                killer.join()
            after = await sandbox.exec(case.cmd("after", "echo fine"))
            assert (after.exit_code, after.output) == (0, b"fine\n")
            loops = (await sandbox.exec(FIND_LOOPS)).output.split()
            assert len(loops) == 1 and loops != killed, (loops, killed)  # a new loop

    case.run(scenario)
    assert killed
    assert case.executions("first") == case.executions("after") == 1
    assert case.executions("busy") == (1 if when == "busy" else 0)
    assert case.sessions_opened() == 2


def test_more_concurrent_commands_than_sessions(case: Case) -> None:
    """Six commands at once on a sandbox allowed two sessions: each runs exactly once and
    gets its own output; at most two sessions are opened."""
    api = case.api(case.cfg(exec_sessions_per_sandbox=2))
    tags = [f"par{i}" for i in range(6)]
    results: dict[str, Any] = {}

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            commands = {
                tag: case.cmd(tag, f"sleep 0.3; echo {tag}; exit {i}") for i, tag in enumerate(tags)
            }
            if case.mode == "sync":
                target = sandbox.target
                with concurrent.futures.ThreadPoolExecutor(len(tags)) as pool:
                    futures = {tag: pool.submit(target.exec, cmd) for tag, cmd in commands.items()}
                    results.update({tag: f.result() for tag, f in futures.items()})
            else:

                async def one(tag: str) -> None:
                    results[tag] = await sandbox.exec(commands[tag])

                async with anyio.create_task_group() as group:
                    for tag in tags:
                        group.start_soon(one, tag)

    case.run(scenario)
    for i, tag in enumerate(tags):
        assert (results[tag].exit_code, results[tag].output) == (i, f"{tag}\n".encode())
        assert case.executions(tag) == 1, tag
    assert case.sessions_opened() == 2


def test_a_command_longer_than_the_idle_timeout(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent ends a session after its idle timeout without client input, output or not;
    the driver types the loop's no-op keep-alive line while a command runs (every 5 minutes
    against AWS's 20; here 0.3 s against 1 s)."""
    case.agent(idle_timeout_s=1.0)
    for session_class in (SyncLoopSession, AsyncLoopSession):
        monkeypatch.setattr(session_class, "keepalive_s", 0.3)
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            result = await sandbox.exec(case.cmd("long", "sleep 2.5; echo done"))
            assert (result.exit_code, result.output) == (0, b"done\n")

    case.run(scenario)
    assert case.executions("long") == 1
    assert case.sessions_opened() == 1


def test_output_past_the_limit_stops_the_command(case: Case) -> None:
    """Past max_exec_output_bytes the exec fails and the command is stopped in the container
    (as the error says), not left running behind a closed session."""
    api = case.api(case.cfg(max_exec_output_bytes=50_000))
    sleeper = "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline 2>/dev/null; echo; done"

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(ExecOutputTooLargeError, "more than 50000 bytes", limit=50_000):
                await sandbox.exec(case.cmd("loud", "seq 1 100000; sleep 47 & sleep 47"))
            left = await sandbox.exec(sleeper + " | grep 'slee[p] 47'; true")
            assert left.output == b"", left.output
            after = await sandbox.exec(case.cmd("after", "echo fine"))
            assert after.output == b"fine\n"

    case.run(scenario)
    assert case.executions("loud") == case.executions("after") == 1
