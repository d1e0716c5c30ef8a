"""A client nobody here wrote, pyssm-client 0.2.0, against the local SSM gateway and agent.

The local agent is otherwise tested with our own client (the core's ``SsmChannel``), which
proves only that the two agree with each other. pyssm-client (PyPI, Apache-2.0, asyncio +
websockets, Python >= 3.12) was written against AWS from the Go plugin's sources. It runs here
in its own python3.12 venv (``.venv-peer/`` at the repository root, made on first use and
reused), through its own ``connect`` command, driven by ``peer/pyssm_peer.py``.

What it showed:

* pyssm-client sends ``Authorization: Bearer <token>`` on the upgrade, not a SigV4 signature.
  The local gateway requires the signature session-manager-plugin sends, so unmodified it is
  refused with 403; ``pyssm_peer.py --sign`` adds the signature (a wrapper around the
  ``websockets`` connect that pyssm-client calls; pyssm-client's code is not changed).
* pyssm-client's open message carries ``"MessageSchemaVersion": 1`` (an integer), where the
  plugin sends ``"1.0"``. The gateway refused it ("the open message lacks
  MessageSchemaVersion"), which AWS does not: pyssm-client's history shows sessions against
  AWS with it since September 2025. The gateway was stricter than AWS; it takes an integer now.
* With both, pyssm-client completes a session: it prints the command's output and the
  ``channel_closed`` notice, and it acknowledges every output frame (the agent here is told to
  wait 10 minutes for acknowledgements before closing, so a prompt close proves them). With
  output frames dropped, duplicated and reordered, it still gets every byte once, in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _ssm_client import OpenSession
from hypothesis import example, given
from hypothesis import strategies as st

from ecs_sandbox_drivers.local import ChannelFaults, GatewayStats, LocalAws
from ecs_sandbox_drivers.local._gateway_admit import open_fields

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-peer"
DRIVER = Path(__file__).resolve().parent / "peer" / "pyssm_peer.py"
# pyssm-client is the peer; websockets carries its protocol, so it is pinned to the version
# this test was written against as well.
REQUIREMENTS = ("pyssm-client==0.2.0", "websockets==17.4")
COMMAND = "sh -c 'echo peer-$((6*7)); exit 0'"
PIP_TIMEOUT_S = 300


# --- the peer's interpreter and venv ----------------------------------------------------------


def _python_candidates() -> Iterator[str]:
    """Interpreters that may be Python >= 3.12, 3.12 first: $PEER_PYTHON, PATH, pyenv."""
    if os.environ.get("PEER_PYTHON"):
        yield os.environ["PEER_PYTHON"]
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in (12, 13, 14):
        found = shutil.which(f"python3.{minor}")  # a pyenv shim may refuse to run: probed
        if found:
            yield found
        if versions.is_dir():
            for version in sorted(versions.glob(f"3.{minor}.*"), reverse=True):
                yield str(version / "bin" / "python3")


def find_python312() -> str | None:
    """The first candidate that really runs and is Python >= 3.12 (a pyenv shim may not run)."""
    for candidate in _python_candidates():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if probe.returncode == 0 and probe.stdout.strip() == "True":
                return candidate
    return None


def _pypi_reachable(python: str) -> str | None:
    """None when pip can fetch pyssm-client's index page, else pip's last words."""
    probe = subprocess.run(
        [python, "-m", "pip", "index", "versions", "pyssm-client"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode == 0 and "0.2.0" in probe.stdout:
        return None
    return (probe.stderr.strip().splitlines() or ["no output"])[-1]


def ensure_peer_venv() -> Path:
    """``.venv-peer/bin/python`` with pyssm-client installed (skips without 3.12 or PyPI)."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-{hashlib.sha256(' '.join(REQUIREMENTS).encode()).hexdigest()[:12]}"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(REPO / ".venv-peer.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run may be building it
        if stamp.exists() and python.exists():
            return python
        base = find_python312()
        if base is None:
            pytest.skip("no Python >= 3.12 interpreter found (pyssm-client needs one)")
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True, timeout=120)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
        if install.returncode != 0:
            unreachable = _pypi_reachable(str(python))
            if unreachable is not None:
                pytest.skip(f"PyPI is not reachable for pyssm-client: {unreachable}")
            pytest.fail(f"pip install {' '.join(REQUIREMENTS)} failed:\n{install.stderr}")
        stamp.touch()
        return python


@pytest.fixture(scope="module")
def peer_python() -> Path:
    return ensure_peer_venv()


# --- sessions ---------------------------------------------------------------------------------


@pytest.fixture
def patient_agent(local_aws: LocalAws) -> Iterator[LocalAws]:
    """The shared LocalAws, its agent waiting 10 minutes for acks at EOF (restored after).

    At EOF the agent closes at once if every output frame is acknowledged, else after this
    wait: with 10 minutes, a session that closes within the test's time was fully acked.
    """
    settings = local_aws.agent_settings
    local_aws.agent_settings = replace(settings, close_wait_s=600.0)
    yield local_aws
    local_aws.agent_settings = settings


def execute(aws: LocalAws, ecs: Any, task: str, command: str = COMMAND) -> dict[str, str]:
    session: dict[str, str] = ecs.execute_command(
        cluster=aws.cluster, task=task, container="main", command=command, interactive=True
    )["session"]
    return session


def run_peer(
    python: Path, aws: LocalAws, session: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[bytes]:
    """pyssm-client's ``connect`` on ``session``, with the local AWS's credentials and region.

    Bytes, not text: text mode would turn the PTY's ``\\r\\n`` into ``\\n``.
    """
    argv = [str(python), str(DRIVER), *flags, json.dumps(session)]
    try:
        return subprocess.run(
            argv,
            env={**os.environ, **aws.aws_env()},
            stdin=subprocess.DEVNULL,  # not a terminal: pyssm-client reads no keys, sends no size
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            "pyssm-client did not finish: the agent never closed the session, so some output "
            f"frame was never acknowledged.\nstdout: {exc.stdout!r}\nstderr: {exc.stderr!r}"
        )


def delta(before: GatewayStats, after: GatewayStats) -> dict[str, int]:
    names = [f.name for f in dataclasses.fields(GatewayStats)]
    return {name: getattr(after, name) - getattr(before, name) for name in names}


def test_pyssm_client_completes_a_session(
    peer_python: Path,
    patient_agent: LocalAws,
    ecs: Any,
    start_task: Callable[..., str],
) -> None:
    session = execute(patient_agent, ecs, start_task())
    before = patient_agent.ssm_stats
    done = run_peer(peer_python, patient_agent, session, "--sign")
    changes = delta(before, patient_agent.ssm_stats)
    report = f"rc={done.returncode}\nstdout={done.stdout!r}\nstderr={done.stderr!r}\n{changes}"
    assert done.returncode == 0, report
    # The command's output through a PTY, then pyssm-client's notice for channel_closed
    # (printed only when that message arrives; our agent's Output is empty on EOF).
    closing = f"\n\nSessionId: {session['sessionId']} : Session closed.\n\n".encode()
    assert done.stdout == b"peer-42\r\n" + closing, report
    assert changes["sessions_opened"] == 1, report
    assert changes["upgrades_refused"] == changes["tokens_refused"] == 0, report
    assert changes["bad_frames"] == 0, report  # every ack pyssm-client sent decoded
    assert patient_agent.ssm_stats.live_sessions == before.live_sessions, report


def test_pyssm_client_gets_every_byte_in_order_through_faults(
    peer_python: Path,
    patient_agent: LocalAws,
    ecs: Any,
    start_task: Callable[..., str],
) -> None:
    """About 9 KB in 1024-byte frames, some dropped, duplicated or sent out of order.

    pyssm-client buffers frames ahead of the one it expects and ignores repeats; the agent
    resends what was not acknowledged. Every byte arrives once, in order, and the session
    still closes only because every frame was acknowledged in the end.
    """
    session = execute(patient_agent, ecs, start_task(), "sh -c 'seq 1 2000; echo peer-done'")
    faults = ChannelFaults(seed=7, drop_output=0.2, duplicate_output=0.2, reorder_output=0.3)
    patient_agent.ssm_gateway.set_faults(faults, session["sessionId"])
    before = patient_agent.ssm_stats
    done = run_peer(peer_python, patient_agent, session, "--sign")
    changes = delta(before, patient_agent.ssm_stats)
    report = f"rc={done.returncode}\nstderr={done.stderr!r}\n{changes}"
    expected = b"".join(b"%d\r\n" % n for n in range(1, 2001)) + b"peer-done\r\n"
    assert done.returncode == 0, report
    assert done.stdout.startswith(expected), report
    assert done.stdout.endswith(b"Session closed.\n\n"), report
    # The faults did act: seed 7 sends the first frame twice, drops the second and holds the
    # third back, so the whole output came only through the agent resending.
    assert changes["frames_dropped"] > 0 and changes["frames_resent"] > 0, report


def test_unsigned_pyssm_client_is_refused_with_403(
    peer_python: Path, local_aws: LocalAws, ecs: Any, start_task: Callable[..., str]
) -> None:
    session = execute(local_aws, ecs, start_task())
    before = local_aws.ssm_stats
    done = run_peer(peer_python, local_aws, session)  # the wrapper only reports the refusal
    changes = delta(before, local_aws.ssm_stats)
    report = f"rc={done.returncode}\nstderr={done.stderr!r}\n{changes}"
    refusals = [
        json.loads(line) for line in done.stderr.splitlines() if line.startswith(b'{"refused"')
    ]
    # pyssm-client tries three times, then gives up with exit status 1 and no output.
    assert done.returncode == 1 and done.stdout == b"", report
    assert (
        refusals == [{"refused": 403, "reason": "Authorization must use AWS4-HMAC-SHA256"}] * 3
    ), report
    assert changes["upgrades_refused"] == 3 and changes["sessions_opened"] == 0, report


# --- what pyssm-client needed from the gateway (no python3.12 needed) ------------------------


def test_an_integer_schema_version_opens_a_session(open_session: OpenSession) -> None:
    client = open_session(COMMAND, connect=False)
    message = json.loads(client.open_text(token=client.token))
    message["MessageSchemaVersion"] = 1  # as pyssm-client sends it
    client.connect(open_text=json.dumps(message))
    client.run_to_end()
    assert bytes(client.output) == b"peer-42\r\n"
    assert client.closed is not None and client.closed.kind == "channel_closed"


FIELDS = ("MessageSchemaVersion", "RequestId", "TokenValue", "ClientId", "ClientVersion")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


def _valid(name: str, value: object) -> bool:
    if name == "MessageSchemaVersion" and type(value) is int:
        return True
    return isinstance(value, str) and value != ""


@example(
    fields={
        "MessageSchemaVersion": 1,
        "RequestId": "r",
        "TokenValue": "t",
        "ClientId": "c",
        "ClientVersion": "v",
    },
    absent=set(),
    extra={},
)
@given(
    fields=st.fixed_dictionaries({name: JSON_VALUES | st.text(min_size=1) for name in FIELDS}),
    absent=st.sets(st.sampled_from(FIELDS)),
    extra=st.dictionaries(st.text().filter(lambda k: k not in FIELDS), JSON_VALUES, max_size=2),
)
def test_open_fields_takes_exactly_strings_and_an_integer_schema_version(
    fields: dict[str, object], absent: set[str], extra: dict[str, object]
) -> None:
    message = {k: v for k, v in fields.items() if k not in absent} | extra
    bad = [name for name in FIELDS if name in absent or not _valid(name, fields[name])]
    try:
        parsed = open_fields(json.dumps(message))
    except ValueError as exc:
        assert bad, str(exc)
        assert str(exc) == f"the open message lacks {', '.join(bad)}"
    else:
        assert not bad and parsed == message


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@given(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_open_fields_refuses_json_that_is_not_an_object(value: object) -> None:
    with pytest.raises(ValueError, match=r"^the open message is not a JSON object$"):
        open_fields(json.dumps(value))


@given(st.text().filter(_not_json))
def test_open_fields_refuses_text_that_is_not_json(text: str) -> None:
    with pytest.raises(ValueError, match=r"^the open message is not JSON$"):
        open_fields(text)
