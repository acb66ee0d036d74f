"""Channels carry fax calls: the loopback channel (T.38 to ourselves), SIP trunks and fax modems."""

from __future__ import annotations

import logging

from engine.channels.base import Channel, OutboundCall, Progress

log = logging.getLogger(__name__)

__all__ = ["Channel", "OutboundCall", "Progress", "build_channels", "channel_names"]


def build_channels(config, inbound) -> dict[str, Channel]:  # noqa: ANN001
    """The channels the configuration enables (with no configuration: the loopback channel)."""
    channels: dict[str, Channel] = {}
    section = config["channels"]
    if section["loopback"]["enabled"]:
        from engine.channels.loopback import LoopbackChannel

        channels["loopback"] = LoopbackChannel(inbound, section["loopback"])
    if config["sip"]:
        from engine.channels.sip import build_sip_channels

        channels.update(build_sip_channels(config, inbound)[1])
    if config["modems"]:
        from engine.channels.modem import build_modem_channel

        modem = build_modem_channel(config, inbound)
        if modem is not None:
            channels["modem"] = modem
    return channels


def channel_names(config) -> set[str]:  # noqa: ANN001
    """The names build_channels gives, without building anything: what a job's ``channel`` may say
    (the API checks it where no scheduler runs in-process)."""
    names: set[str] = set()
    section = config["channels"]
    if section["loopback"]["enabled"]:
        names.add("loopback")
    if config["sip"] and section["sip"]["enabled"]:
        from t38.trunk import sip_config_from_dict

        names.add("sip")
        names.update(f"sip:{trunk.name}" for trunk in sip_config_from_dict(config["sip"]).trunks)
    if config["modems"]:
        names.add("modem")
    return names
