"""The local SSM gateway and agent against the core's SsmChannel, in real LocalAws tasks.

Every session is a real ExecuteCommand on a bubblewrap task, a real WebSocket on 127.0.0.1,
a real PTY and a real command. The client is the core's sans-IO :class:`SsmChannel` pumped by
a blocking test driver (``_ssm_client``), or hand-made frames where a rule is about what the
agent does with frames a well-behaved client never sends.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from _ssm_client import OpenSession, SsmTestClient, sign

from ecs_sandbox_core._ssm_channel import KMS_REMEDY
from ecs_sandbox_core._ssm_codec import (
    CHANNEL_CLOSED,
    FLAG_SYN,
    PayloadType,
    size_payload,
)
from ecs_sandbox_drivers.local import ChannelFaults, LocalAws
from ecs_sandbox_drivers.local._agent_wire import IDLE_MESSAGE

READY = "sh -c 'echo ready; exec cat'"
# Without echo, what arrives is what cat read: order and duplicates show plainly.
QUIET = "sh -c 'stty -echo; echo ready; exec cat'"


def host_pid(agent: LocalAws, client: SsmTestClient, ns_pid: int) -> int:
    """The host pid of pid ``ns_pid`` in the container of ``client``'s command."""
    command = agent.ssm_gateway.command_pid(client.session_id)
    assert command is not None
    namespace = os.readlink(f"/proc/{command}/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and int(line.split()[-1]) == ns_pid:
                return int(entry)
    raise LookupError(f"no pid {ns_pid} in that container")


# --- what the command sees --------------------------------------------------------------------


def test_output_arrives_with_crlf_then_channel_closed(open_session: OpenSession) -> None:
    client = open_session("sh -c 'echo hi; exit 3'")
    client.run_to_end()
    assert bytes(client.output) == b"hi\r\n"
    assert client.closed is not None and client.closed.kind == "channel_closed"
    assert client.closed.by_agent
    first = client.stream_frames()[0]
    assert (first.sequence, first.flags, first.payload_type) == (0, FLAG_SYN, PayloadType.OUTPUT)
    assert client.kinds()[-1] == CHANNEL_CLOSED
    client.run_to_disconnect()
    assert client.close_code == 1000  # and then the WebSocket closes
    # No exit code reaches the client: only Output frames carry data.
    assert {f.payload_type for f in client.stream_frames()} == {PayloadType.OUTPUT}


def test_the_command_has_a_terminal_merged_stderr_and_the_agents_env(
    open_session: OpenSession,
) -> None:
    command = "sh -c 'echo out; echo err >&2; echo \"$TERM $LANG $HOME\"; tty; id -u'"
    client = open_session(command)
    client.run_to_end()
    lines = bytes(client.output).split(b"\r\n")
    assert lines[:3] == [b"out", b"err", b"xterm-256color C.UTF-8 /root"]
    assert lines[3].startswith(b"/dev/pts/")
    assert lines[4:] == [b"0", b""]


def test_lang_is_kept_when_the_container_sets_it(open_session: OpenSession) -> None:
    client = open_session("sh -c 'echo $LANG'", env={"LANG": "en_US.UTF-8"})
    client.run_to_end()
    assert bytes(client.output) == b"en_US.UTF-8\r\n"


def test_the_command_is_split_shell_style_and_run_without_a_shell(
    open_session: OpenSession,
) -> None:
    client = open_session("echo '$HOME' ';' \"a  b\"")
    client.run_to_end()
    assert bytes(client.output) == b"$HOME ; a  b\r\n"


def test_typed_input_reaches_cat_once_echoed(open_session: OpenSession) -> None:
    client = open_session(READY)
    client.type(b"hello\n")
    client.wait_for(b"hello\r\nhello\r\n")
    client.type("é€😀\n".encode())
    client.wait_for("é€😀\r\né€😀\r\n".encode())
    assert bytes(client.output) == "ready\r\nhello\r\nhello\r\né€😀\r\né€😀\r\n".encode()


def test_typed_input_reaches_head_and_the_session_ends_with_it(
    open_session: OpenSession,
) -> None:
    client = open_session("sh -c 'echo ready; exec head -c 5'")
    client.type(b"abcdefgh\n")
    client.run_to_end()
    assert bytes(client.output) == b"ready\r\nabcdefgh\r\nabcde"
    assert client.closed is not None and client.closed.kind == "channel_closed"


def test_size_sets_the_window(open_session: OpenSession) -> None:
    client = open_session("sh -c 'echo ready; read x; stty size'", size=(132, 43))
    client.type(b"\n")
    client.run_to_end()
    assert bytes(client.output).endswith(b"43 132\r\n")


@pytest.mark.xfail(
    strict=True,
    reason="SsmChannel holds all input (and Size) until the first Output frame when there is "
    "no handshake, as session-manager-plugin does (it learns the session type from the first "
    "message), so a command that reads before it writes never gets its input; the agent would "
    "not lose early input (it acks nothing before its PTY is up)",
)
def test_typed_input_reaches_a_command_that_prints_nothing_first(
    open_session: OpenSession,
) -> None:
    client = open_session("cat")
    client.type(b"hello\n")
    client.pump(lambda: b"hello\r\nhello\r\n" in client.output, timeout=3)


# --- upgrade and token ------------------------------------------------------------------------


def test_an_unsigned_upgrade_is_refused(open_session: OpenSession) -> None:
    client = open_session(READY, connect=False)
    client.connect(headers=[])
    assert client.rejected is not None and client.rejected.status == 403


@pytest.mark.parametrize(
    ("service", "region", "words"),
    [("ssm", None, b"ssmmessages"), ("ssmmessages", "eu-west-3", b"region")],
)
def test_an_upgrade_signed_for_another_scope_is_refused(
    open_session: OpenSession, service: str, region: str | None, words: bytes
) -> None:
    client = open_session(READY, connect=False)
    client.connect(headers=sign(client.url, region or client.region, service=service))
    assert client.rejected is not None and client.rejected.status == 403
    assert words in client.rejected.body


def test_an_upgrade_with_a_bad_signature_is_refused(open_session: OpenSession) -> None:
    client = open_session(READY, connect=False)
    forged = sign(client.url.replace("cell-number=local", "cell-number=other"), client.region)
    client.connect(headers=forged)
    assert client.rejected is not None and client.rejected.status == 403
    assert b"signature" in client.rejected.body


def test_an_upgrade_signed_with_an_added_key_pair_is_accepted(
    agent: LocalAws, open_session: OpenSession
) -> None:
    # The fault suite signs with its own fake credentials (moto accepts any).
    pair = ("AKIAADDEDKEYPAIR0001", "added-secret", "added-token")
    refused = open_session(READY, connect=False)
    refused.connect(headers=sign(refused.url, refused.region, credentials=pair))
    assert refused.rejected is not None and refused.rejected.status == 403
    assert b"security token" in refused.rejected.body
    agent.ssm_gateway.accept_credentials(pair[0], pair[1])
    client = open_session(READY, connect=False)
    client.connect(headers=sign(client.url, client.region, credentials=pair))
    assert client.rejected is None
    client.pump(lambda: b"ready" in client.output)
    # The dummy credentials still work.
    dummy = open_session(READY)
    dummy.pump(lambda: b"ready" in dummy.output)


def test_an_unknown_session_is_not_found(open_session: OpenSession) -> None:
    client = open_session(READY, connect=False)
    client.url = client.url.replace(client.session_id, "ecs-execute-command-unknown")
    client.connect()
    assert client.rejected is not None and client.rejected.status == 404


def test_a_wrong_token_is_refused_and_the_right_one_still_works(
    open_session: OpenSession, agent: LocalAws
) -> None:
    client = open_session("sh -c 'echo hi'", connect=False)
    session = {"sessionId": client.session_id, "streamUrl": client.url, "tokenValue": "nope"}
    with SsmTestClient(session, region=agent.region) as wrong:
        wrong.connect().run_to_end()
    assert wrong.close_code == 1008 and "not valid" in wrong.close_reason
    client.connect().run_to_end()
    assert bytes(client.output) == b"hi\r\n"


def test_a_token_is_single_use(open_session: OpenSession, agent: LocalAws) -> None:
    first = open_session(READY)
    first.wait_for(b"ready")
    session = {"sessionId": first.session_id, "streamUrl": first.url, "tokenValue": first.token}
    with SsmTestClient(session, region=agent.region) as second:
        second.connect().run_to_end()
    assert second.close_code == 1008 and "already used" in second.close_reason


@pytest.mark.parametrize("missing", ["MessageSchemaVersion", "RequestId", "ClientId", "TokenValue"])
def test_the_open_message_must_carry_every_field(open_session: OpenSession, missing: str) -> None:
    client = open_session(READY, connect=False, channel=False)
    message = json.loads(client.open_text())
    del message[missing]
    client.connect(open_text=json.dumps(message))
    client.run_to_end()
    assert client.close_code == 1008 and missing in client.close_reason


def test_a_binary_first_message_is_refused(open_session: OpenSession) -> None:
    client = open_session(READY, connect=False, channel=False)
    client.connect(send_open=False)
    client.send_input(0, b"x")
    client.run_to_end()
    assert client.close_code == 1008 and "TEXT" in client.close_reason


# --- the agent's rules for input, with hand-made frames ----------------------------------------


def test_input_is_not_acknowledged_before_the_pty_is_up(open_session: OpenSession) -> None:
    client = open_session(READY, channel=False, faults=ChannelFaults(start_delay_s=1.0))
    client.send_input(0, b"early\n")
    assert client.nothing_for(0.4, lambda: bool(client.acks()))
    client.send_until_acked(0, b"early\n")
    # Echoed by the terminal at once, maybe before the prompt; then printed by cat.
    client.pump(lambda: client.text().count(b"early\r\n") == 2)


def test_input_before_handshake_complete_is_acked_and_thrown_away(
    open_session: OpenSession, agent: LocalAws
) -> None:
    agent.agent_settings = replace(agent.agent_settings, handshake="session")
    client = open_session(READY, channel=False)
    client.pump(lambda: bool(client.stream_frames()))
    request = client.stream_frames()[0]
    assert (request.payload_type, request.sequence, request.flags) == (5, 0, FLAG_SYN)
    client.send_input(0, b"lost\n")
    client.pump(lambda: 0 in client.acks())
    response = {"ClientVersion": "1", "ProcessedClientActions": [], "Errors": []}
    client.send_input(1, json.dumps(response).encode(), PayloadType.HANDSHAKE_RESPONSE)
    client.pump(lambda: any(f.payload_type == 7 for f in client.stream_frames()))
    client.wait_for(b"ready\r\n")
    client.send_until_acked(2, b"kept\n")
    client.wait_for(b"kept\r\nkept\r\n")
    assert b"lost" not in client.text()


def test_duplicate_input_is_acked_again_and_delivered_once(open_session: OpenSession) -> None:
    client = open_session(QUIET, channel=False)
    client.wait_for(b"ready\r\n")
    client.send_until_acked(0, b"a\n")
    client.send_input(0, b"a\n")
    client.pump(lambda: client.acks().count(0) >= 2)
    client.send_until_acked(1, b"b\n")
    client.wait_for(b"b\r\n")
    assert client.text() == b"ready\r\na\r\nb\r\n"


def test_out_of_order_input_is_buffered_and_delivered_in_order(
    open_session: OpenSession,
) -> None:
    client = open_session(QUIET, channel=False)
    client.wait_for(b"ready\r\n")
    client.send_until_acked(0, b"a\n")
    client.send_input(2, b"c\n")
    client.pump(lambda: 2 in client.acks())
    client.send_input(1, b"b\n")
    client.pump(lambda: 1 in client.acks())
    client.wait_for(b"c\r\n")
    assert client.text() == b"ready\r\na\r\nb\r\nc\r\n"


def test_bad_size_json_is_not_acked(open_session: OpenSession) -> None:
    client = open_session(READY, channel=False)
    client.send_until_acked(0, b"a\n")
    client.send_input(1, b'{"cols": "wide"}', PayloadType.SIZE)
    assert client.nothing_for(0.4, lambda: 1 in client.acks())
    client.send_until_acked(1, size_payload(80, 24), PayloadType.SIZE)


def test_a_terminate_flag_is_ignored_when_the_go_agents_rule_is_chosen(
    open_session: OpenSession, agent: LocalAws
) -> None:
    agent.agent_settings = replace(agent.agent_settings, honour_terminate_flag=False)
    client = open_session(READY, channel=False)
    client.wait_for(b"ready\r\n")
    client.send_until_acked(0, (2).to_bytes(4, "big"), PayloadType.FLAG)
    client.send_until_acked(1, b"still here\n")
    client.wait_for(b"still here\r\nstill here\r\n")


def test_a_long_paste_into_a_slow_reader_arrives_whole(
    open_session: OpenSession, agent: LocalAws
) -> None:
    """The PTY fills up while the command sleeps: the agent blocks, holding frames back."""
    before = agent.ssm_stats.pty_writes_blocked
    data = (b"abcdefghijklmnopqrstuvwxyz0123456789" * 6000)[:200_000]
    client = open_session("sh -c 'stty raw -echo -iexten; echo ready; sleep 1; exec cat'")
    client.wait_for(b"ready\n")
    client.type(data)
    client.pump(lambda: len(client.output) >= len(b"ready\n") + len(data), timeout=60)
    assert bytes(client.output) == b"ready\n" + data
    assert agent.ssm_stats.pty_writes_blocked > before


# --- output ---------------------------------------------------------------------------------


def test_output_comes_in_chunks_of_at_most_1024_bytes(open_session: OpenSession) -> None:
    client = open_session("printf %020000d 0")
    client.run_to_end()
    assert bytes(client.output) == b"0" * 20000
    sizes = [len(f.payload) for f in client.stream_frames(PayloadType.OUTPUT)]
    assert max(sizes) <= 1024 and len(sizes) >= 20


def test_utf8_sequences_are_never_split_across_frames(open_session: OpenSession) -> None:
    # Two ASCII bytes first, so that full 1024-byte reads end inside a 3-byte rune.
    script = "printf xy; i=0; while [ $i -lt 3000 ]; do printf '\\342\\202\\254'; i=$((i+1)); done"
    client = open_session(f'sh -c "{script}"')
    client.run_to_end()
    assert bytes(client.output) == ("xy" + "€" * 3000).encode()
    for frame in client.stream_frames(PayloadType.OUTPUT):
        frame.payload.decode("utf-8")  # every frame holds whole runes
        assert len(frame.payload) <= 1027


def test_an_incomplete_utf8_tail_is_dropped_at_eof(open_session: OpenSession) -> None:
    client = open_session("printf 'ab\\342\\202'")
    client.run_to_end()
    assert bytes(client.output) == b"ab"


@pytest.mark.parametrize(("quirk", "expected"), [(True, b"a\xefb"), (False, "a\ufffdb".encode())])
def test_a_literal_replacement_character_is_cut_as_the_go_agent_does(
    open_session: OpenSession, agent: LocalAws, quirk: bool, expected: bytes
) -> None:
    agent.agent_settings = replace(agent.agent_settings, replacement_quirk=quirk)
    client = open_session("printf 'a\\357\\277\\275b'")
    client.run_to_end()
    assert bytes(client.output) == expected


def test_the_first_read_waits_for_the_delay(open_session: OpenSession, agent: LocalAws) -> None:
    agent.first_read_delay_s = 30.0
    client = open_session("echo early")
    client.pump(lambda: agent.ssm_gateway.command_pid(client.session_id) is not None)
    pid = agent.ssm_gateway.command_pid(client.session_id)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}")  # the command has run and ended...
    assert client.nothing_for(0.3, lambda: bool(client.frames))  # ...and nothing was sent


def test_the_default_first_read_takes_everything_written_meanwhile(
    open_session: OpenSession, agent: LocalAws
) -> None:
    agent.first_read_delay_s = 1.0  # AWS's
    client = open_session("sh -c 'echo one; echo two; echo three'")
    client.run_to_end()
    assert [f.payload for f in client.stream_frames()] == [b"one\r\ntwo\r\nthree\r\n"]


def test_the_channel_closed_message_names_the_session_and_client(
    open_session: OpenSession,
) -> None:
    client = open_session("true", channel=False)
    client.run_to_end()
    closed = [f for f in client.frames if f and f.message_type == CHANNEL_CLOSED]
    assert len(closed) == 1
    payload = json.loads(closed[0].payload)
    assert set(payload) == {
        "MessageId",
        "CreatedDate",
        "DestinationId",
        "SessionId",
        "MessageType",
        "SchemaVersion",
        "Output",
    }
    assert payload["SessionId"] == client.session_id
    assert payload["MessageType"] == CHANNEL_CLOSED and payload["SchemaVersion"] == 1
    assert payload["DestinationId"]


def test_output_is_resent_until_acknowledged_then_the_session_waits_for_acks(
    open_session: OpenSession, agent: LocalAws
) -> None:
    agent.agent_settings = replace(agent.agent_settings, close_wait_s=0.6)
    client = open_session("echo once", channel=False)  # a client that never acknowledges
    client.run_to_end()
    kinds = client.kinds()
    assert kinds[-1] == CHANNEL_CLOSED
    # The command ended at once, yet its unacknowledged frame kept being resent meanwhile.
    assert [f.sequence for f in client.stream_frames()].count(0) >= 2
    assert client.raw_output() == b"once\r\n"


def test_pings_keep_the_connection_alive(open_session: OpenSession, agent: LocalAws) -> None:
    agent.agent_settings = replace(agent.agent_settings, ping_interval_s=0.1)
    client = open_session(READY)
    client.pump(lambda: client.pings >= 3)


# --- ending -----------------------------------------------------------------------------------

# Both ignore SIGHUP (what closing the PTY sends) and share a process group: only a SIGKILL
# of the direct child alone leaves the background sleep alive and the foreground one dead.
BACKGROUND = 'sh -c \'trap "" HUP; sleep 301 & echo "bg=$!"; exec sleep 300\''
# A direct child that only a SIGKILL ends.
HUP_PROOF = "sh -c 'trap \"\" HUP; echo ready; exec sleep 300'"


def started_with_background(agent: LocalAws, client: SsmTestClient) -> tuple[int, int]:
    client.pump(lambda: b"bg=" in client.output and b"\r\n" in client.output.split(b"bg=")[1])
    ns_pid = int(client.output.split(b"bg=")[1].split(b"\r\n")[0])
    direct = agent.ssm_gateway.command_pid(client.session_id)
    assert direct is not None
    return direct, host_pid(agent, client, ns_pid)


@pytest.mark.parametrize("how", ["terminate", "close frame", "tcp drop"])
def test_ending_kills_the_direct_child_only(
    open_session: OpenSession,
    agent: LocalAws,
    wait_gone: Callable[[int], bool],
    how: str,
) -> None:
    client = open_session(BACKGROUND)
    direct, background = started_with_background(agent, client)
    if how == "terminate":
        assert client.channel is not None
        client.channel.terminate()
        client.run_to_end()
        assert client.closed is not None and client.closed.kind == "channel_closed"
    elif how == "close frame":
        client.close()
    else:
        client.drop()
    try:
        assert wait_gone(direct)
        assert os.path.exists(f"/proc/{background}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(background, 9)


def test_an_idle_session_ends_and_its_command_is_killed(
    open_session: OpenSession, agent: LocalAws, wait_gone: Callable[[int], bool]
) -> None:
    agent.idle_timeout_s = 0.5
    client = open_session(HUP_PROOF)
    client.wait_for(b"ready")
    direct = agent.ssm_gateway.command_pid(client.session_id)
    assert direct is not None
    client.run_to_end()
    assert client.closed is not None and client.closed.reason == IDLE_MESSAGE
    assert wait_gone(direct)


def test_input_keeps_a_session_from_idling(open_session: OpenSession, agent: LocalAws) -> None:
    agent.idle_timeout_s = 0.6
    client = open_session(READY)
    for n in range(4):
        client.type(b"%d\n" % n)
        client.wait_for(b"%d\r\n%d\r\n" % (n, n))
        time.sleep(0.3)
    assert not client.finished


def test_a_handshake_session_runs(open_session: OpenSession, agent: LocalAws) -> None:
    agent.agent_settings = replace(agent.agent_settings, handshake="session")
    client = open_session(READY)
    client.type(b"hi\n")
    client.wait_for(b"hi\r\nhi\r\n")
    kinds = [f.payload_type for f in client.stream_frames()]
    assert kinds[:2] == [PayloadType.HANDSHAKE_REQUEST, PayloadType.HANDSHAKE_COMPLETE]
    assert client.channel is not None and client.channel.agent_version


def test_a_kms_session_is_refused_by_the_client(open_session: OpenSession, agent: LocalAws) -> None:
    agent.exec_handshake = "kms"
    before = agent.ssm_stats.live_sessions
    client = open_session(READY)
    client.pump(lambda: client.channel is not None and client.channel.closed is not None)
    assert client.channel is not None and client.channel.closed is not None
    assert client.channel.closed.kind == "kms"
    assert client.channel.closed.reason == KMS_REMEDY
    client.close()
    deadline = time.monotonic() + 5
    while agent.ssm_stats.live_sessions > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.ssm_stats.live_sessions == before


def test_many_sessions_at_once(open_session: OpenSession, agent: LocalAws) -> None:
    before = agent.ssm_stats
    clients = [open_session(READY) for _ in range(40)]
    for n, client in enumerate(clients):
        client.type(b"n%d\n" % n)
    for n, client in enumerate(clients):
        client.wait_for(b"n%d\r\nn%d\r\n" % (n, n))
    assert agent.ssm_stats.live_sessions == before.live_sessions + 40
    assert agent.ssm_stats.sessions_opened == before.sessions_opened + 40
    for client in clients:
        client.close()


def test_closing_local_aws_ends_sessions_and_kills_commands(
    wait_gone: Callable[[int], bool],
) -> None:
    cleanup: list[SsmTestClient] = []
    with LocalAws(first_read_delay_s=0.02) as aws, contextlib.ExitStack() as stack:
        stack.callback(lambda: [c.drop() for c in cleanup])
        ecs = aws.client("ecs", max_attempts=1)
        cfg = aws.config()
        arn = ecs.run_task(
            cluster=cfg.cluster,
            taskDefinition=cfg.task_definition,
            launchType="FARGATE",
            enableExecuteCommand=True,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(cfg.subnets),
                    "securityGroups": list(cfg.security_groups),
                }
            },
        )["tasks"][0]["taskArn"]
        session = ecs.execute_command(
            cluster=cfg.cluster, task=arn, container="main", command=READY, interactive=True
        )["session"]
        client = SsmTestClient(session, region=aws.region)
        client.connect(headers=sign(client.url, aws.region, credentials=aws.credentials))
        cleanup.append(client)
        client.wait_for(b"ready")
        direct = aws.ssm_gateway.command_pid(client.session_id)
        assert direct is not None
        closer = threading.Thread(target=aws.close)
        closer.start()
        client.run_to_end()
        closer.join()
    assert client.closed is not None and "shutting down" in client.closed.reason
    assert wait_gone(direct)
