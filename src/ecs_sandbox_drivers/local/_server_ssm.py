"""LocalAws's controls of its SSM gateway (a mixin, to keep ``_server`` readable)."""

from __future__ import annotations

from dataclasses import replace

from ._agent_faults import ChannelFaults
from ._agent_wire import AgentSettings, Handshake
from ._gateway import GatewayStats, SsmGateway


class SsmKnobs:
    """The agent's settings, the faults, the gateway and its counters, on LocalAws."""

    _agent_settings: AgentSettings
    _channel_faults: ChannelFaults
    _gateway: SsmGateway | None

    @property
    def agent_settings(self) -> AgentSettings:
        """How the local SSM agent behaves in sessions opened from now on."""
        return self._agent_settings

    @agent_settings.setter
    def agent_settings(self, value: AgentSettings) -> None:
        self._agent_settings = value
        if self._gateway is not None:
            self._gateway.settings = value

    @property
    def first_read_delay_s(self) -> float:
        """How long the agent waits before it first reads a new command's output."""
        return self._agent_settings.first_read_delay_s

    @first_read_delay_s.setter
    def first_read_delay_s(self, value: float) -> None:
        self.agent_settings = replace(self._agent_settings, first_read_delay_s=value)

    @property
    def idle_timeout_s(self) -> float:
        """How long a session may go without client input before it is ended."""
        return self._agent_settings.idle_timeout_s

    @idle_timeout_s.setter
    def idle_timeout_s(self, value: float) -> None:
        self.agent_settings = replace(self._agent_settings, idle_timeout_s=value)

    @property
    def exec_handshake(self) -> Handshake:
        """``"none"`` (AWS without a KMS key), ``"session"`` or ``"kms"``."""
        return self._agent_settings.handshake

    @exec_handshake.setter
    def exec_handshake(self, value: Handshake) -> None:
        self.agent_settings = replace(self._agent_settings, handshake=value)

    @property
    def channel_faults(self) -> ChannelFaults:
        """Faults for every session opened from now on (per session: ``ssm_gateway``)."""
        return self._channel_faults

    @channel_faults.setter
    def channel_faults(self, value: ChannelFaults) -> None:
        self._channel_faults = value
        if self._gateway is not None:
            self._gateway.set_faults(value)

    @property
    def ssm_gateway(self) -> SsmGateway:
        """The local SSM gateway: per-session faults, pauses, command pids, counters."""
        if self._gateway is None:
            raise RuntimeError("LocalAws is not started")
        return self._gateway

    @property
    def ssm_stats(self) -> GatewayStats:
        """Sessions opened and live, frames sent and resent... since start-up."""
        return self.ssm_gateway.stats()


__all__ = ["SsmKnobs"]
