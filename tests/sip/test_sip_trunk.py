"""Trunk configuration: built from TOML-style tables, every bad value named; SIP codes -> reasons."""

from __future__ import annotations

import tomllib

import pytest

from t38.sip import failure_for_status
from t38.trunk import CallerIdRules, TrunkConfigError, parse_hostport, sip_config_from_dict, trunk_from_dict

TOML = """
[sip]
bind_address = "127.0.0.1"
port = 5070
public_address = "203.0.113.5"

[sip.trunks.carrier]
registrar = "sip.carrier.example:5060"
proxy = "sbc.carrier.example"
outbound_proxy = "10.0.0.1:5080"
username = "4420"
password = "pw"
register = true
register_expires = 600
transport = "udp"
codecs = ["PCMA"]
max_calls = 8
t38_in_initial_invite = true
caller_id = { default_number = "+4420", allow_override = false }
t38 = { version = 0, max_bit_rate = 9600, max_datagram = 1400, error_correction = "fec" }
"""


def test_sip_config_from_toml():
    config = sip_config_from_dict(tomllib.loads(TOML)["sip"])
    trunk = config.trunk("carrier")
    assert trunk.register and trunk.register_expires == 600 and trunk.codecs == ("PCMA",)
    assert trunk.next_hop == ("10.0.0.1", 5080) and trunk.sip_domain == "sbc.carrier.example"
    assert trunk.t38.max_datagram == 1400 and trunk.t38.error_correction == "fec" and trunk.t38.max_bit_rate == 9600
    assert trunk.caller_id.choose("+15551234") == ("+4420", "")     # override not allowed
    assert trunk.t38_in_initial_invite and trunk.max_calls == 8
    with pytest.raises(TrunkConfigError, match="no trunk named 'other'"):
        config.trunk("other")


@pytest.mark.parametrize("change,message", [
    ({"transport": "sctp"}, "transport must be one of"),
    ({"registrar": "", "proxy": "", "outbound_proxy": ""}, "needs a proxy"),
    ({"username": ""}, "needs a username"),
    ({"codecs": ["OPUS"]}, "unknown codec 'OPUS'"),
    ({"max_calls": 0}, "max_calls"),
    ({"t38": {"version": 4}}, "t38.version"),
    ({"t38": {"error_correction": "parity"}}, "t38.error_correction"),
    ({"t38": {"max_datagram": 10}}, "t38.max_datagram"),
    ({"t38": {"speed": 1}}, "unknown setting 'speed'"),
    ({"colour": "blue"}, "unknown setting 'colour'"),
    ({"proxy": "bad host:x"}, "is not host"),
    ({"register_expires": 5}, "register_expires"),
    ({"codecs": "PCMU"}, "must be a list"),
])
def test_bad_trunk_settings_are_named(change, message):
    data = tomllib.loads(TOML)["sip"]["trunks"]["carrier"]
    data.update(change)
    with pytest.raises(TrunkConfigError, match=message):
        trunk_from_dict(data, name="carrier")


def test_duplicate_trunks_and_port_0_rules():
    from t38.sip import SipEndpoint
    from t38.trunk import SipConfig

    with pytest.raises(TrunkConfigError, match="media_ports"):
        sip_config_from_dict({"media_ports": [10, 5]})
    with pytest.raises(TrunkConfigError, match="port 0 needs a specific bind_address"):
        SipEndpoint(SipConfig(bind_address="0.0.0.0", port=0))
    tcp = trunk_from_dict({"proxy": "127.0.0.1", "transport": "tcp"}, name="tcp")
    with pytest.raises(TrunkConfigError, match="needs sip.tcp = true"):
        SipEndpoint(SipConfig(port=0, trunks=(tcp,), tcp=False))
    tcp = trunk_from_dict({"proxy": "127.0.0.1", "transport": "tcp", "outbound_proxy": "10.0.0.1"}, name="tcp")
    with pytest.raises(TrunkConfigError, match="outbound_proxy over TCP"):
        SipEndpoint(SipConfig(port=0, trunks=(tcp,)))


def test_hostport_forms():
    assert parse_hostport("example.com") == ("example.com", 5060)
    assert parse_hostport("sip:10.1.2.3:5080") == ("10.1.2.3", 5080)
    assert parse_hostport("[2001:db8::1]:5062") == ("2001:db8::1", 5062)
    with pytest.raises(TrunkConfigError):
        parse_hostport("a b")


def test_caller_id_rules():
    rules = CallerIdRules(default_number="+4420", allowed_pattern=r"\+44[0-9]{2,12}", strip_plus=True)
    assert rules.choose("+4420999") == ("4420999", "")
    assert rules.choose("+15551234") == ("4420", "")             # not allowed by the pattern
    assert rules.choose(None, "Fax Dept") == ("4420", "Fax Dept")


@pytest.mark.parametrize("code,t38,error_code,retryable", [
    (486, False, "busy", True), (600, False, "busy", True), (480, False, "no_answer", True),
    (408, False, "no_answer", True), (404, False, "not_found", False), (403, False, "forbidden", False),
    (407, False, "forbidden", False), (488, True, "t38_refused", True), (415, True, "t38_refused", True),
    (606, True, "t38_refused", True), (503, False, "sip_error", True), (488, False, "media_refused", False)])
def test_sip_codes_map_to_clear_reasons(code, t38, error_code, retryable):
    failure = failure_for_status(code, "Reason Text", t38=t38)
    assert failure.error_code == error_code and failure.retryable is retryable
    assert f"SIP {code} Reason Text" in failure.error_message
    if error_code == "t38_refused":
        assert failure.error_message.startswith("remote refused T.38")
    result = failure.to_result("send")
    assert not result.success and result.error_code == error_code
