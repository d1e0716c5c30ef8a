"""Each fault switch of the local SSM gateway, against the core's SsmChannel.

A recoverable fault must leave the output exactly once and in order; a fatal one must end
the session with the right explanation (or none, for a dropped connection) and kill the
command's direct child. Seeds are fixed so that the first decision already triggers the
fault (``random.Random(1).random()`` is 0.134), which makes the evidence deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from _ssm_client import OpenSession, SsmTestClient

from ecs_sandbox_core._ssm_codec import PAUSE_PUBLICATION, START_PUBLICATION
from ecs_sandbox_drivers.local import ChannelFaults, LocalAws

EXPECTED = b"".join(b"%d\r\n" % n for n in range(1, 2001))  # `seq 1 2000` through a PTY
READY = "sh -c 'echo ready; exec cat'"
# Prints once input arrives (so the pid can be read first), then keeps a direct child that
# only a SIGKILL ends (closing the PTY sends SIGHUP).
THEN_CAT = "sh -c 'trap \"\" HUP; echo ready; read x; seq 1 2000; exec sleep 300'"


@pytest.fixture
def patient(agent: LocalAws) -> Iterator[LocalAws]:
    """Give recovery time: a session waits up to 10 s for acks after its command ends."""
    agent.agent_settings = replace(agent.agent_settings, close_wait_s=10.0)
    yield agent


RECOVERABLE = {
    "drop": ChannelFaults(seed=1, drop_output=0.3),
    "duplicate": ChannelFaults(seed=1, duplicate_output=0.5),
    "reorder": ChannelFaults(seed=1, reorder_output=0.5),
    "delay": ChannelFaults(seed=1, delay_output=0.5, delay_output_s=0.05),
    "corrupt digest": ChannelFaults(seed=1, corrupt_digest=0.5),
    "all at once": ChannelFaults(
        seed=1,
        drop_output=0.2,
        duplicate_output=0.2,
        reorder_output=0.2,
        delay_output=0.2,
        delay_output_s=0.05,
        corrupt_digest=0.2,
        drop_acks=0.2,
    ),
}


@pytest.mark.parametrize("name", list(RECOVERABLE))
def test_output_survives_the_fault_exactly_once_in_order(
    open_session: OpenSession, patient: LocalAws, name: str
) -> None:
    before = patient.ssm_stats
    client = open_session("seq 1 2000", faults=RECOVERABLE[name])
    client.run_to_end(timeout=60)
    assert bytes(client.output) == EXPECTED
    assert client.closed is not None and client.closed.kind == "channel_closed"
    after = patient.ssm_stats
    arrival = [f.sequence for f in client.stream_frames()]
    if name == "drop":
        assert after.frames_dropped > before.frames_dropped
        assert after.frames_resent > before.frames_resent
    elif name == "duplicate":
        assert len(arrival) > len(set(arrival))
    elif name in ("reorder", "delay"):
        assert arrival != sorted(arrival)
    elif name == "corrupt digest":
        assert None in client.frames  # refused by the client, not acknowledged...
        assert after.frames_resent > before.frames_resent  # ...so sent again


def test_lost_acks_are_recovered_and_input_arrives_once(
    open_session: OpenSession, agent: LocalAws
) -> None:
    before = agent.ssm_stats
    client = open_session(READY, faults=ChannelFaults(seed=1, drop_acks=0.5))
    client.wait_for(b"ready")
    for n in range(8):
        client.type(b"line%d\n" % n)
        client.wait_for(b"line%d\r\nline%d\r\n" % (n, n))
    lines = b"".join(b"line%d\r\nline%d\r\n" % (n, n) for n in range(8))
    assert bytes(client.output) == b"ready\r\n" + lines
    assert agent.ssm_stats.acks_dropped > before.acks_dropped
    assert client.channel is not None and client.channel.retransmissions > 0


def test_lost_acks_strand_a_client_when_duplicates_are_not_acked_again(
    open_session: OpenSession, agent: LocalAws
) -> None:
    """The Go agent discards duplicate input silently: a lost ack is never replaced."""
    agent.agent_settings = replace(agent.agent_settings, reack_duplicates=False)
    client = open_session(READY, faults=ChannelFaults(seed=1, drop_acks=0.5), give_up_s=1.5)
    client.wait_for(b"ready")
    client.pump(lambda: client.channel is not None and client.channel.closed is not None)
    assert client.channel is not None and client.channel.closed is not None
    assert client.channel.closed.kind == "unacknowledged"


def started(client: SsmTestClient, agent: LocalAws) -> int:
    """Wait for ``THEN_CAT``'s prompt, note its pid, let it print."""
    client.wait_for(b"ready")
    pid = agent.ssm_gateway.command_pid(client.session_id)
    assert pid is not None
    client.type(b"\n")
    return pid


def test_a_close_mid_stream_is_explained_and_kills_the_command(
    open_session: OpenSession, agent: LocalAws, wait_gone: Callable[[int], bool]
) -> None:
    client = open_session(THEN_CAT, faults=ChannelFaults(close_after_bytes=3000))
    pid = started(client, agent)
    client.run_to_end()
    assert client.closed is not None and client.closed.by_agent
    assert "after 3000 output bytes" in client.closed.reason
    full = b"ready\r\n\r\n" + EXPECTED
    assert len(client.output) >= 3000 and full.startswith(bytes(client.output))
    assert wait_gone(pid)


def test_a_dropped_connection_has_no_close_frame_and_kills_the_command(
    open_session: OpenSession, agent: LocalAws, wait_gone: Callable[[int], bool]
) -> None:
    client = open_session(THEN_CAT, faults=ChannelFaults(drop_tcp_after_bytes=3000))
    pid = started(client, agent)
    client.run_to_end()
    assert client.dropped and client.close_code is None and client.closed is None
    assert (b"ready\r\n\r\n" + EXPECTED).startswith(bytes(client.output))
    assert wait_gone(pid)


def test_a_pause_after_some_output_holds_everything_then_resumes(
    open_session: OpenSession, patient: LocalAws
) -> None:
    faults = ChannelFaults(pause_after_bytes=2000, pause_for_s=0.3)
    client = open_session("seq 1 2000", faults=faults)
    client.run_to_end(timeout=30)
    assert bytes(client.output) == EXPECTED
    kinds = client.kinds()
    paused, resumed = kinds.index(PAUSE_PUBLICATION), kinds.index(START_PUBLICATION)
    assert paused < resumed
    assert "output_stream_data" not in kinds[paused:resumed]  # no reads, no resends
    assert "output_stream_data" in kinds[resumed:]


def test_input_typed_during_a_pause_waits_for_the_resumption(
    open_session: OpenSession, agent: LocalAws
) -> None:
    client = open_session(READY)
    client.wait_for(b"ready")
    agent.ssm_gateway.pause(client.session_id, 0.4)
    client.pump(lambda: client.channel is not None and client.channel.paused)
    client.type(b"during\n")
    client.wait_for(b"during\r\nduring\r\n")
    kinds = client.kinds()
    first_echo = next(
        n for n, f in enumerate(client.frames) if f is not None and b"during" in f.payload
    )
    assert kinds.index(START_PUBLICATION) < first_echo


def test_a_refused_token_closes_the_websocket(open_session: OpenSession) -> None:
    client = open_session(READY, faults=ChannelFaults(refuse_token=True))
    client.run_to_end()
    assert client.close_code == 1008 and "fault" in client.close_reason


def test_fault_switches_are_checked() -> None:
    with pytest.raises(ValueError, match="drop_output"):
        ChannelFaults(drop_output=1.0)
    with pytest.raises(ValueError, match="negative"):
        ChannelFaults(close_after_bytes=-1)
    assert not ChannelFaults(seed=5).active
    assert ChannelFaults(refuse_token=True).active
