"""Engine configuration: one TOML file, every setting with a default, so no file is needed at all."""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "server": {
        "host": "127.0.0.1",
        "port": 8000,
        "smtp_port": 2525,
        "smtp_host": "",              # empty: same as server.host
        "data_dir": "data",           # relative to the working directory
        "node_id": "",                # empty: the host name; names this node's claims in a shared store
    },
    "storage": {
        "url": "",                    # empty: sqlite:///<data_dir>/faxengine.sqlite3 (WAL)
    },
    "auth": {
        "token_ttl": 3600,            # seconds an auth token stays valid
    },
    "api": {
        "max_body_bytes": 20 * 1024 * 1024,
        "page_size": 50,              # default listing page size
        "max_paginate_false": 10000,  # rows returned at most by ?paginate=false (416 beyond)
        "maximum_range": 2682000,     # widest created_from..created_to span of folder listings (s; 0: no cap)
    },
    "scheduler": {
        "enabled": True,
        "poll_interval": 0.5,         # seconds between looks for due jobs
        "max_outbound_per_account": 10,
        "serialize_destinations": True,   # one call at a time per destination number
        "claim_batch": 100,
        "default_retry_delay": 300,   # seconds before the next attempt when no cause matches
        "attempt_timeout": 3600,      # seconds a single attempt may take before it is aborted
        "retry_delay": {              # seconds by cause (SessionResult.error_code)
            "busy": 120,
            "no_answer": 300,
            "training_failed": 60,
            "remote_hangup": 60,
        },
    },
    "fetch": {
        "timeout": 30.0,
        "max_bytes": 20 * 1024 * 1024,
        "max_redirects": 5,
        "allow_private": False,       # allow loopback/private/link-local destinations
        "allowed_hosts": [],          # host names or addresses allowed even when private
        "user_agent": "faxengine",
    },
    "channels": {
        "default": "loopback",
        "loopback": {
            "enabled": True,
            "address": "127.0.0.1",   # where the two UDPTL endpoints of a loopback call bind
            "pacing": False,          # true: packets paced at modem line speed (a 1-page fax then takes ~10 s)
            "timeout": 600,           # seconds a loopback call may last
        },
        "sip": {                      # SIP trunks (the [sip] section): channels "sip" and "sip:<trunk>"
            "enabled": True,          # used when [sip] configures trunks (false: no SIP endpoint at all)
            "trunk": "",              # trunk of the "sip" channel; empty: the first one configured
            "pacing": True,           # T.38 packets paced at modem line speed, as gateways expect
            "media_timeout": 30.0,    # seconds without a UDPTL packet before a call is hung up
            "inbound_account": "",    # account for calls to numbers no account owns; empty: refuse (404)
        },
    },
    "modems": [],                     # [[modems]] entries (port, class, rings, ident, number, quirks, ...):
                                      # see engine/channels/modem.py; checked when the modem channel is built
    "notifications": {
        "retries": 3,                 # attempts per notification
        "retry_delay": 5.0,
        "smtp": {
            "host": "",               # empty: email notifications are skipped (and logged)
            "port": 25,
            "sender": "faxengine@localhost",
            "username": "",
            "password": "",
            "starttls": False,
            "timeout": 10.0,
        },
        "sms": {
            "url": "",                # HTTP gateway; POSTed JSON {"to","from","text"}
            "token": "",              # sent as Authorization: Bearer
            "timeout": 10.0,
        },
        "webhook": {
            "url": "",                # POSTed JSON event, signed with HMAC-SHA256 when secret is set
            "secret": "",
            "timeout": 10.0,
        },
    },
    # The SIP endpoint and its trunks: t38.trunk.sip_config_from_dict's table (bind_address, port,
    # public_address, media_ports, [sip.trunks.NAME] with proxy/registrar/credentials/t38...).  Empty: no SIP.
    "sip": {},
    "email_gateway": {
        "enabled": True,
        "default_domain": "fax.localhost",  # accounts get <account_id>.<default_domain> unless set
        "max_message_size": 10 * 1024 * 1024,
        "allow_all_when_empty": False,       # accept any sender when an account lists none
        "max_sessions": 50,                  # SMTP sessions at once; more get "421 too busy"
        "retries": 3,
    },
}


def _merge(base: dict, over: dict, path: str = "") -> dict:
    for key, value in over.items():
        where = f"{path}{key}"
        if key not in base:
            raise ConfigError(f"unknown setting {where!r}")
        if isinstance(base[key], dict) and key != "retry_delay" and where != "sip":
            if not isinstance(value, dict):
                raise ConfigError(f"setting {where!r} must be a table")
            _merge(base[key], value, where + ".")
        else:
            base[key] = value
    return base


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    raw: dict

    def __getitem__(self, section: str) -> Any:
        return self.raw[section]

    @property
    def data_dir(self) -> Path:
        return Path(self.raw["server"]["data_dir"])

    @property
    def storage_url(self) -> str:
        url = self.raw["storage"]["url"]
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'faxengine.sqlite3').resolve()}"

    @property
    def node_id(self) -> str:
        return self.raw["server"]["node_id"] or os.uname().nodename


def _check_sip(raw: dict, data: dict) -> None:
    """A bad [sip] table is a configuration error at start-up; with trunks and no channels.default set,
    outbound faxes go out over SIP."""
    if not isinstance(raw["sip"], dict):
        raise ConfigError("setting 'sip' must be a table")
    if not raw["sip"]:
        return
    from t38.trunk import TrunkConfigError, sip_config_from_dict

    try:
        sip = sip_config_from_dict(raw["sip"])
    except TrunkConfigError as exc:
        raise ConfigError(f"[sip]: {exc}") from None
    trunk = raw["channels"]["sip"]["trunk"]
    if trunk and trunk not in [t.name for t in sip.trunks]:
        raise ConfigError(f"channels.sip.trunk {trunk!r} is not a trunk of [sip] ({[t.name for t in sip.trunks]})")
    if sip.trunks and raw["channels"]["sip"]["enabled"] and "default" not in (data.get("channels") or {}):
        raw["channels"]["default"] = "sip"


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file, then ``section__key=value`` overrides (from the command line)."""
    raw = copy.deepcopy(DEFAULTS)
    if path:
        with open(path, "rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
        _merge(raw, data)
        _check_sip(raw, data)
    for name, value in overrides.items():
        if value is None:
            continue
        section, key = name.split("__", 1)
        raw[section][key] = value
    return Config(raw)
