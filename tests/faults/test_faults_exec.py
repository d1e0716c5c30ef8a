"""Faults in the AWS CLI exec transport (a wrapping transport around the real ``aws`` CLI and
the stand-in plugin: these cases keep ``exec_transport="aws-cli"``), and commands whose output
tries to look like transport errors or like the exec markers (over the native transport).
Faults of the native transport's data channel are in ``test_faults_channel.py``."""

from __future__ import annotations

import base64
import hashlib

import pytest
from _faults_harness import Case
from _faults_inject import cut_after_begin, not_connected
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_sandbox_core import (
    ExecCutOffError,
    ExecTimeoutError,
    TransportResult,
)

pytestmark = pytest.mark.faults
CATEGORY = "exec-transport"


def test_agent_not_connected_then_runs_once(case: Case) -> None:
    transport = case.faulty(match="-once", before=not_connected(2))
    api = case.api(case.cli_cfg(), transport=transport)

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            result = await sandbox.exec(case.cmd("once", "echo ran"))
            assert (result.exit_code, result.output) == (0, b"ran\n")

    case.run(scenario)
    assert (transport.attempts, transport.started) == (3, 1)
    assert case.executions("once") == 1
    retried = [m for phase, m in case.progress_log if phase == "exec" and "did not start" in m]
    assert len(retried) == 2, case.progress_log


def test_cli_times_out_before_the_command_starts(case: Case) -> None:
    # The CLI hung before the session began: nothing proves the command did not start (a
    # timeout carries no error code), so it is reported, never sent again.
    def hang(attempt: int) -> TransportResult:
        return TransportResult(stdout=b"", stderr=b"", returncode=None, timed_out=True)

    transport = case.faulty(match="-hung", before=hang)
    api = case.api(case.cli_cfg(), transport=transport)

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(ExecTimeoutError, "never started", started=False, phase="exec"):
                await sandbox.exec(case.cmd("hung", "echo never"), timeout_sec=5)

    case.run(scenario)
    assert transport.attempts == 1
    assert case.executions("hung") == 0


def test_timeout_after_the_command_started(case: Case) -> None:
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(
                ExecTimeoutError, "after the command started", started=True, phase="exec"
            ):
                await sandbox.exec(case.cmd("slow", "echo started; sleep 31"), timeout_sec=1)
            # The timed-out command was killed, not left running, and not run again.
            left = await sandbox.exec(
                "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
                " | grep -c 'slee[p] 31'; true"
            )
            assert left.output.strip() == b"0", left.output

    case.run(scenario)
    assert case.executions("slow") == 1


def test_output_cut_off_before_the_exit_marker(case: Case) -> None:
    transport = case.faulty(match="-cut", after=cut_after_begin)
    api = case.api(case.cli_cfg(), transport=transport)

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            with case.expect(ExecCutOffError, "ended before the command finished"):
                await sandbox.exec(case.cmd("cut", "echo whole; echo output"))

    case.run(scenario)
    assert (transport.attempts, transport.started) == (1, 1)
    assert case.executions("cut") == 1


@pytest.mark.parametrize(
    "says",
    [
        "Rate exceeded",
        "An error occurred (ThrottlingException) when calling the ExecuteCommand operation: "
        "Rate exceeded",
        "An error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
        "operation: The execute command failed due to an internal error. Try again later.",
        "SessionManagerPlugin is not found. Please refer to SessionManager Documentation here",
    ],
    ids=["rate-exceeded", "throttling", "target-not-connected", "plugin-missing"],
)
def test_output_that_looks_like_a_transport_error(case: Case, says: str) -> None:
    api = case.api()

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            body = f"printf '%s\\n' '{says}'; printf '%s\\n' '{says}' >&2; exit 3"
            result = await sandbox.exec(case.cmd("says", body))
            assert result.exit_code == 3
            assert result.output == f"{says}\n{says}\n".encode()

    case.run(scenario)
    assert case.executions("says") == 1


# The command finds its own call's nonce in its parent shell's command line, so that the
# imitations below are exact copies of this very call's markers, not just look-alikes.
_FIND_NONCE = "n=$(tr '\\0' '\\n' < /proc/$PPID/cmdline | grep -o '[0-9a-f]\\{32\\}' | head -n 1); "
_PIECES = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=20),
        st.sampled_from(
            [
                "<<ecsx-@N@:begin>>\n",
                "<<ecsx-@N@:end:0>>\n",
                "\n<<ecsx-@N@:end:0>>\n",
                "<<ecsx-@N@:end:255>>",
                "<<ecsx-@N@:rc:0>>",
                "<<ecsx-@N@:end:",
                "<<ecsx-0123456789abcdef0123456789abcdef:end:0>>\n",
                "<<ecsx-",
                "\r\n",
            ]
        ),
    ),
    max_size=8,
)


def test_output_imitating_the_markers(case: Case) -> None:
    api = case.api()
    examples: list[int] = []

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            nonce_file = case.local_aws.container(sandbox.task_arn).root / "fs" / "tmp" / "nonce"

            @settings(
                max_examples=20,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(pieces=_PIECES, code=st.integers(0, 255), binary=st.booleans())
            def imitation_never_moves_the_exit_code(
                pieces: list[str], code: int, binary: bool
            ) -> None:
                payload = "".join(pieces)
                encoded = base64.b64encode(payload.encode()).decode()
                tag = f"mark{len(examples)}"
                examples.append(code)
                body = (
                    _FIND_NONCE + 'printf %s "$n" > /tmp/nonce; '
                    f'printf %s {encoded} | base64 -d | sed "s/@N@/$n/g"; exit {code}'
                )
                result = api.blocking(sandbox.exec, case.cmd(tag, body), binary=binary)
                nonce = nonce_file.read_text()
                assert len(nonce) == 32, nonce
                assert result.exit_code == code
                assert result.output == payload.replace("@N@", nonce).encode()

            await api.in_worker(imitation_never_moves_the_exit_code)

    case.run(scenario)
    assert examples
    for i in range(len(examples)):
        assert case.executions(f"mark{i}") == 1


def test_ten_megabytes_of_binary_output(case: Case) -> None:
    api = case.api()
    size = 10 * 1024 * 1024
    program = (
        "import random, sys; r = random.Random(20240917); "
        f"sys.stdout.buffer.write(r.randbytes({size} - 4) + b'\\xff\\xfe\\r\\n')"
    )
    import random  # noqa: PLC0415

    expected = random.Random(20240917).randbytes(size - 4) + b"\xff\xfe\r\n"

    async def scenario() -> None:
        async with api.spin_up(case.task_id(), case.run_id) as sandbox:
            result = await sandbox.exec(
                case.cmd("big", f"python3 -c {_sq(program)}; exit 9"), binary=True
            )
            assert result.exit_code == 9
            assert len(result.output) == size
            assert hashlib.sha256(result.output).digest() == hashlib.sha256(expected).digest()

    case.run(scenario)
    assert case.executions("big") == 1


def _sq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
