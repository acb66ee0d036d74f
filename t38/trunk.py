"""SIP trunk and endpoint configuration: plain dataclasses, validated when built from a mapping.

Kept free of the SIP library so the engine, the API and the CLI can read and show trunks without
importing it.  Every setting has a default; :func:`trunk_from_dict` turns a TOML table into a
:class:`Trunk` and names the bad key when the input is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

ERROR_CORRECTION = ("redundancy", "fec", "none")
RATE_MANAGEMENT = ("transferredTCF", "localTCF")
TRANSPORTS = ("udp", "tcp")
KNOWN_CODECS = {"PCMU": 0, "PCMA": 8, "G722": 9, "G729": 18}


class TrunkConfigError(ValueError):
    """A trunk or endpoint setting is missing or out of range; the message names it."""


@dataclass(frozen=True)
class T38Params:
    """What we declare in our own T.38 SDP (offers, and our side of answers)."""

    version: int = 0
    max_bit_rate: int = 14400
    rate_management: str = "transferredTCF"
    max_buffer: int = 2000
    max_datagram: int = 400           # largest UDPTL datagram we accept
    error_correction: str = "redundancy"
    redundancy_depth: int = 3         # secondary IFPs per packet when sending redundancy
    fill_bit_removal: bool = False    # never answered true unless offered
    transcoding_mmr: bool = False
    transcoding_jbig: bool = False

    def validate(self) -> None:
        if self.version not in (0, 1, 2, 3):
            raise TrunkConfigError(f"t38.version must be 0..3, got {self.version!r}")
        if self.max_bit_rate not in (2400, 4800, 7200, 9600, 12000, 14400, 33600):
            raise TrunkConfigError(f"t38.max_bit_rate {self.max_bit_rate!r} is not a fax rate")
        if self.rate_management not in RATE_MANAGEMENT:
            raise TrunkConfigError(f"t38.rate_management must be one of {RATE_MANAGEMENT}")
        if not 64 <= self.max_datagram <= 65507:
            raise TrunkConfigError(f"t38.max_datagram must be 64..65507, got {self.max_datagram!r}")
        if not 0 < self.max_buffer <= 1 << 20:
            raise TrunkConfigError(f"t38.max_buffer out of range: {self.max_buffer!r}")
        if self.error_correction not in ERROR_CORRECTION:
            raise TrunkConfigError(f"t38.error_correction must be one of {ERROR_CORRECTION}")
        if not 0 <= self.redundancy_depth <= 8:
            raise TrunkConfigError(f"t38.redundancy_depth must be 0..8, got {self.redundancy_depth!r}")


@dataclass(frozen=True)
class CallerIdRules:
    """How the From user/name of an outbound call is chosen."""

    default_number: str = "anonymous"
    default_name: str = ""
    allow_override: bool = True       # a job may set its own caller number...
    allowed_pattern: str = r"\+?[0-9]{2,20}"  # ...when it matches this
    strip_plus: bool = False

    def choose(self, requested: str | None, name: str | None = None) -> tuple[str, str]:
        number = self.default_number
        if requested and self.allow_override and re.fullmatch(self.allowed_pattern, requested):
            number = requested
        if self.strip_plus:
            number = number.lstrip("+")
        return number, (name if name is not None else self.default_name)


@dataclass(frozen=True)
class Trunk:
    """One SIP trunk (a carrier account, an SBC, a PBX, or a peer reached directly)."""

    name: str
    proxy: str = ""                   # "host[:port]" where INVITEs go (defaults to the registrar)
    registrar: str = ""               # "host[:port]"; empty = no registration
    domain: str = ""                  # host part of To/From/R-URI; defaults to the proxy host
    username: str = ""                # AOR user for REGISTER and From when registering
    auth_username: str = ""           # digest user if different from username
    password: str = ""
    transport: str = "udp"
    outbound_proxy: str = ""          # every request goes here, whatever the R-URI says
    register: bool = False
    register_expires: int = 300
    caller_id: CallerIdRules = field(default_factory=CallerIdRules)
    dial_prefix: str = ""             # put in front of every dialled number
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    t38: T38Params = field(default_factory=T38Params)
    t38_in_initial_invite: bool = False   # offer audio + image in the INVITE itself
    t38_request_as_caller: float | None = 4.0   # s after answer before we re-INVITE; None = wait for theirs
    t38_request_as_callee: float | None = 1.0
    t38_switch_timeout: float = 15.0  # no T.38 by then -> the call ends
    retry_on_t38_refused: bool = True
    max_calls: int = 4
    answer_timeout: float = 60.0      # outbound: no final answer by then -> CANCEL, "no answer"
    max_call_duration: float = 3600.0
    dids: tuple[str, ...] = ()        # numbers this trunk delivers to us (informational for routing)

    def validate(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise TrunkConfigError(f"trunk name {self.name!r} must be letters, digits, '_', '.', '-'")
        if self.transport not in TRANSPORTS:
            raise TrunkConfigError(f"trunk {self.name}: transport must be one of {TRANSPORTS}")
        for key in ("proxy", "registrar", "outbound_proxy"):
            value = getattr(self, key)
            if value:
                parse_hostport(value, what=f"trunk {self.name}: {key}")
        if not (self.proxy or self.registrar or self.outbound_proxy):
            raise TrunkConfigError(f"trunk {self.name}: needs a proxy, a registrar or an outbound_proxy")
        if self.register and not self.registrar:
            raise TrunkConfigError(f"trunk {self.name}: register = true needs a registrar")
        if self.register and not self.username:
            raise TrunkConfigError(f"trunk {self.name}: register = true needs a username")
        if not 10 <= self.register_expires <= 86400:
            raise TrunkConfigError(f"trunk {self.name}: register_expires must be 10..86400")
        if not self.codecs:
            raise TrunkConfigError(f"trunk {self.name}: codecs must not be empty")
        for codec in self.codecs:
            if codec not in KNOWN_CODECS:
                raise TrunkConfigError(f"trunk {self.name}: unknown codec {codec!r} (known: {sorted(KNOWN_CODECS)})")
        if self.max_calls < 1:
            raise TrunkConfigError(f"trunk {self.name}: max_calls must be at least 1")
        if self.t38_switch_timeout <= 0 or self.answer_timeout <= 0 or self.max_call_duration <= 0:
            raise TrunkConfigError(f"trunk {self.name}: timeouts must be positive")
        self.t38.validate()

    @property
    def next_hop(self) -> tuple[str, int]:
        """Where requests are sent first."""
        return parse_hostport(self.outbound_proxy or self.proxy or self.registrar)

    @property
    def sip_domain(self) -> str:
        if self.domain:
            return self.domain
        return parse_hostport(self.proxy or self.registrar or self.outbound_proxy)[0]

    @property
    def digest_user(self) -> str:
        return self.auth_username or self.username


@dataclass(frozen=True)
class SipConfig:
    """The SIP endpoint: where it listens and what it says about itself."""

    bind_address: str = "127.0.0.1"
    port: int = 5060                  # 0 = any free port (tests)
    public_address: str = ""          # advertised in Via/Contact/SDP when behind NAT; "host" or "host:port"
    media_address: str = ""           # where UDPTL sockets bind; defaults to bind_address
    media_ports: tuple[int, int] = (0, 0)   # (first, last); (0, 0) = let the OS choose
    user_agent: str = "faxengine"
    trunks: tuple[Trunk, ...] = ()
    default_trunk: Trunk | None = None  # settings for calls from peers that match no trunk
    accept_unknown_sources: bool = True
    keepalive_interval: float = 0.0   # s between in-dialog re-INVITE keepalives (0 = off); 408/481 ends the call
    tcp: bool = True                  # also listen for SIP over TCP (same port); needed by tcp trunks

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise TrunkConfigError(f"sip.port must be 0..65535, got {self.port!r}")
        first, last = self.media_ports
        if (first, last) != (0, 0) and not (1024 <= first <= last <= 65535):
            raise TrunkConfigError(f"sip.media_ports must be (0, 0) or 1024 <= first <= last, got {self.media_ports}")
        names = [t.name for t in self.trunks]
        if len(names) != len(set(names)):
            raise TrunkConfigError(f"duplicate trunk names in {names}")
        for trunk in self.trunks:
            trunk.validate()
        if self.public_address:
            parse_hostport(self.public_address, default_port=0, what="sip.public_address")

    def trunk(self, name: str) -> Trunk:
        for trunk in self.trunks:
            if trunk.name == name:
                return trunk
        raise TrunkConfigError(f"no trunk named {name!r} (configured: {[t.name for t in self.trunks]})")

    def inbound_defaults(self) -> Trunk:
        return self.default_trunk or Trunk(name="direct", proxy="127.0.0.1")


def parse_hostport(text: str, default_port: int = 5060, what: str = "address") -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port)."""
    text = text.strip()
    if text.startswith("sip:"):
        text = text[4:]
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([A-Za-z0-9_.-]+)(?::(\d+))?", text)
    if not m:
        raise TrunkConfigError(f"{what}: {text!r} is not host[:port]")
    host = m.group(1) or m.group(3)
    port_text = m.group(2) or m.group(4)
    port = int(port_text) if port_text else default_port
    if not 0 <= port <= 65535:
        raise TrunkConfigError(f"{what}: port {port} out of range")
    return host, port


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise TrunkConfigError(f"{where} must be a table, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise TrunkConfigError(f"{where}: unknown setting {key!r} (known: {sorted(known)})")
        if key == "t38":
            value = _build(T38Params, value, f"{where}.t38")
        elif key == "caller_id":
            value = _build(CallerIdRules, value, f"{where}.caller_id")
        elif key in ("codecs", "dids", "media_ports"):
            if not isinstance(value, list | tuple):
                raise TrunkConfigError(f"{where}.{key} must be a list")
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TrunkConfigError(f"{where}: {exc}") from None


def trunk_from_dict(data: dict[str, Any], name: str | None = None) -> Trunk:
    """Build and validate a trunk from a TOML-style table."""
    data = dict(data)
    if name is not None:
        data.setdefault("name", name)
    trunk = _build(Trunk, data, f"trunk {data.get('name', '?')}")
    trunk.validate()
    return trunk


def sip_config_from_dict(data: dict[str, Any]) -> SipConfig:
    """``[sip]`` table with an optional ``trunks`` table of tables (name -> settings)."""
    data = dict(data)
    trunks = data.pop("trunks", {})
    if isinstance(trunks, dict):
        built = tuple(trunk_from_dict(v, name=k) for k, v in trunks.items())
    else:
        built = tuple(trunk_from_dict(v) for v in trunks)
    default = data.pop("default_trunk", None)
    config = _build(SipConfig, data, "sip")
    config = replace(config, trunks=built,
                     default_trunk=trunk_from_dict(default, name="direct") if default else None)
    config.validate()
    return config
