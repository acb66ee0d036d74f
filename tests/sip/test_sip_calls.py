"""Two SIP endpoints on loopback call each other and switch to T.38 (both orders, glare, direct)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import time

import pytest
from sip_helpers import IMAGE_SDP, body_of, direct_trunk, hold_first_t38_reinvites, is_reinvite, status_of

from t38.sip import SipCall
from t38.trunk import SipConfig, T38Params, Trunk

pytestmark = pytest.mark.timeout(60)


async def make_pair(endpoints, *, a: dict | None = None, b: dict | None = None, relay=None, b_params=None):
    """Endpoint B answers DID 2002; endpoint A dials it through trunk 'peer'."""
    inbound: asyncio.Queue[SipCall] = asyncio.Queue()

    async def on_incoming(call: SipCall) -> None:
        await inbound.put(call)

    b_trunk = Trunk(name="direct", proxy="127.0.0.1", **(b or {}))
    b_conf = SipConfig(port=0, default_trunk=b_trunk,
                       public_address=f"127.0.0.1:{relay.port_b}" if relay else "")
    ep_b = await endpoints(b_conf, router=lambda did, caller, trunk: "acct-b" if did == "2002" else None,
                           on_incoming=on_incoming)
    target = relay.port_b if relay else ep_b.address[1]
    a_conf = SipConfig(port=0, trunks=(direct_trunk(target, **(a or {})),),
                       public_address=f"127.0.0.1:{relay.port_a}" if relay else "")
    ep_a = await endpoints(a_conf)
    if relay:
        relay.real_a, relay.real_b = ep_a.address, ep_b.address
    return ep_a, ep_b, inbound


async def udptl_round_trip(ma, mb) -> None:
    """A datagram each way between the two negotiated UDPTL sockets proves the addresses."""
    loop = asyncio.get_running_loop()
    ma.sock.sendto(b"\x00\x00\x01\x02\x00\x00", mb.local_address)
    assert await asyncio.wait_for(loop.sock_recv(mb.sock, 2048), 5) == b"\x00\x00\x01\x02\x00\x00"
    mb.sock.sendto(b"\x00\x00\x01\x04\x00\x00", mb.remote_address)
    assert await asyncio.wait_for(loop.sock_recv(ma.sock, 2048), 5) == b"\x00\x00\x01\x04\x00\x00"


@pytest.mark.parametrize("who", ["caller", "callee"])
async def test_switch_to_t38_either_side_reinvites(endpoints, who):
    a_kw = {"t38_request_as_caller": 0.0 if who == "caller" else None}
    b_kw = {"t38_request_as_callee": 0.0 if who == "callee" else None}
    ep_a, ep_b, inbound = await make_pair(endpoints, a=a_kw, b=b_kw)
    call_a = await ep_a.call("2002", "peer")
    assert call_a.mode in ("audio", "t38")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    assert call_b.account == "acct-b" and call_b.number == "2002"
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    requester, other = (call_a, call_b) if who == "caller" else (call_b, call_a)
    assert requester.t38_requests == 1 and other.t38_requests == 0
    assert ma.remote_address == mb.local_address and mb.remote_address == ma.local_address
    assert ma.params.version == mb.params.version == 0
    assert ma.params.rate_management == "transferredTCF"
    assert ma.params.remote_max_datagram == mb.params.local_max_datagram == 400
    await udptl_round_trip(ma, mb)
    await call_a.hangup()
    end_b = await asyncio.wait_for(call_b.ended, 5)
    assert end_b.by == "remote"
    assert ep_a.active_calls() == 0 and ep_b.active_calls() == 0


async def test_glare_both_reinvite_then_one_backs_off(endpoints, relay):
    # hold both sides' first T.38 re-INVITE, then deliver them together: each crosses the other
    relay.rule = hold_first_t38_reinvites(2)
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38_request_as_caller": 0.05},
                                          b={"t38_request_as_callee": 0.05}, relay=relay)
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    # release the held re-INVITE once the other side's re-INVITE has gone through: true glare
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(relay.held) >= 2:
            break
        await asyncio.sleep(0.01)
    relay.release_held()
    ma = await asyncio.wait_for(call_a.t38_ready, 15)
    mb = await asyncio.wait_for(call_b.t38_ready, 15)
    assert call_a.glare_count >= 1 and call_b.glare_count >= 1
    assert relay.seen("to_a", r"^SIP/2\.0 491") and relay.seen("to_b", r"^SIP/2\.0 491")
    # the callee backs off 0-2 s, the Call-ID owner 2.1-4 s: the callee's retry wins
    image_offers = [(d, t) for _, d, t in relay.log if is_reinvite(t) and "m=image" in t]
    assert image_offers[-1][0] == "to_a"
    assert ma.remote_address == mb.local_address and mb.remote_address == ma.local_address
    await udptl_round_trip(ma, mb)
    await call_b.hangup()
    assert (await asyncio.wait_for(call_a.ended, 5)).by == "remote"


async def test_t38_offered_in_initial_invite(endpoints):
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38_in_initial_invite": True, "t38_request_as_caller": None},
                                          b={"t38_request_as_callee": None})
    call_a = await ep_a.call("2002", "peer")
    assert call_a.mode == "t38"
    call_b = await asyncio.wait_for(inbound.get(), 5)
    ma = await asyncio.wait_for(call_a.t38_ready, 5)
    mb = await asyncio.wait_for(call_b.t38_ready, 5)
    assert call_a.t38_requests == call_b.t38_requests == 0
    await udptl_round_trip(ma, mb)
    await call_a.hangup()


async def test_negotiated_params_follow_the_answer_rules(endpoints):
    a_t38 = T38Params(version=3, max_datagram=1400, error_correction="fec", fill_bit_removal=True)
    b_t38 = T38Params(version=0, max_datagram=300, error_correction="redundancy", max_bit_rate=9600)
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38": a_t38, "t38_request_as_caller": 0.0},
                                          b={"t38": b_t38, "t38_request_as_callee": None})
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    for m in (ma, mb):
        assert m.params.version == 0            # answered lower
        assert m.params.max_bit_rate == 9600
        assert m.params.error_correction == "redundancy"   # B does not do FEC
        assert m.params.fill_bit_removal is False           # B does not support it: never enabled
    assert ma.params.remote_max_datagram == 300 and mb.params.remote_max_datagram == 1400
    await call_a.hangup()


async def test_udptl_before_the_ack_is_accepted(endpoints, relay):
    """The answerer of the T.38 re-INVITE reads UDPTL that arrives while its 200 is still un-ACKed."""
    state = {"image_200_at": None}

    def delay_ack(direction: str, text: str) -> str:
        if text.startswith("SIP/2.0 200") and "m=image" in text and "CSeq:" in text:
            state["image_200_at"] = state["image_200_at"] or time.monotonic()
        if text.startswith("ACK ") and state["image_200_at"] and time.monotonic() - state["image_200_at"] < 1.5:
            return "drop"
        return "pass"

    relay.rule = delay_ack
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38_request_as_caller": 0.0},
                                          b={"t38_request_as_callee": None}, relay=relay)
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    ma.sock.sendto(b"\x00\x00\x01\x02\x00\x00", ma.remote_address)
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(mb.sock, 2048), 5)
    assert data == b"\x00\x00\x01\x02\x00\x00"
    acks_to_b = [t for _, d, t in relay.log if d == "to_b" and t.startswith("ACK ")]
    assert acks_to_b, "the caller did ACK (the relay dropped it)"
    assert time.monotonic() - state["image_200_at"] < 1.5, "UDPTL was read before any ACK got through"
    await call_a.hangup()


async def test_session_refresh_during_t38_keeps_the_t38_sdp(endpoints, raw_uac_factory):
    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    ep = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1",
                                                               t38_request_as_callee=None)),
                         router=lambda did, caller, trunk: "acct", on_incoming=inbound.put)
    uac = raw_uac_factory(ep.address)
    media_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media_sock.bind(("127.0.0.1", 0))
    port = media_sock.getsockname()[1]
    ruri = f"sip:2002@127.0.0.1:{ep.address[1]}"
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=port, version=1))
    assert status_of(resp) == 200
    first = body_of(resp)
    assert re.search(r"^m=image [1-9]\d* udptl t38", first, re.M)
    call = await asyncio.wait_for(inbound.get(), 5)
    media = await asyncio.wait_for(call.t38_ready, 5)
    assert media.remote_address == ("127.0.0.1", port)
    moved: list = []
    call.on_media_change(moved.append)
    # 1. byte-identical refresh
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=port, version=1))
    assert status_of(resp) == 200 and body_of(resp) == first
    # 2. refresh with a new o= version, same media: same answer, byte for byte
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=port, version=2))
    assert status_of(resp) == 200 and body_of(resp) == first
    # 3. re-INVITE without SDP: we offer our current (T.38) SDP
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, "")
    assert status_of(resp) == 200 and body_of(resp) == first
    # 3b. an old-style hold (c=0.0.0.0) does not send our UDPTL to 0.0.0.0
    hold = IMAGE_SDP.format(port=port, version=3).replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, hold)
    assert status_of(resp) == 200 and body_of(resp) == first
    await asyncio.sleep(0.1)
    assert not moved
    # 4. the far end moves its UDPTL port: the engine hears about it
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=port + 1, version=4))
    assert status_of(resp) == 200 and body_of(resp) == first
    await asyncio.sleep(0.1)
    assert moved and moved[-1].remote_address == ("127.0.0.1", port + 1)
    assert not call.is_ended and call.refreshes >= 2
    resp = await asyncio.to_thread(uac.request, "BYE", ruri)
    assert status_of(resp) == 200
    end = await asyncio.wait_for(call.ended, 5)
    assert end.by == "remote" and call.failure.error_code == "remote_hangup"
    media_sock.close()


async def test_options_answered(endpoints, raw_uac_factory):
    ep = await endpoints()
    uac = raw_uac_factory(ep.address)
    resp = await asyncio.to_thread(uac.request, "OPTIONS", f"sip:127.0.0.1:{ep.address[1]}")
    assert status_of(resp) == 200
    assert re.search(r"^Allow:.*INVITE", resp, re.M | re.I)


async def test_no_t38_switch_ends_the_call(endpoints):
    """Nobody asks for T.38: the switch timer ends the call instead of leaving it up."""
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38_request_as_caller": None, "t38_switch_timeout": 0.5},
                                          b={"t38_request_as_callee": None, "t38_switch_timeout": 30})
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(call_a.t38_ready, 5)
    assert info.value.error_code == "t38_timeout"
    assert (await asyncio.wait_for(call_b.ended, 5)).by == "remote"


async def test_trunk_call_limit_and_busy_answer(endpoints):
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"max_calls": 1, "t38_request_as_caller": None},
                                          b={"max_calls": 1, "t38_request_as_callee": None})
    call = await ep_a.call("2002", "peer")
    with pytest.raises(Exception) as info:
        await ep_a.call("2002", "peer")
    assert info.value.error_code == "channel_busy"
    await call.hangup()


async def test_no_answer_cancels_and_busy_maps_to_busy(endpoints):
    never = asyncio.Event()

    async def slow_router(did: str, caller: str, trunk: Trunk):
        if did == "3003":
            await never.wait()          # never decides: the INVITE stays unanswered
        return "acct"

    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    ep_b = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1", max_calls=1,
                                                                 t38_request_as_callee=None)),
                           router=slow_router, on_incoming=inbound.put)
    ep_a = await endpoints(SipConfig(port=0, trunks=(direct_trunk(ep_b.address[1], answer_timeout=0.5,
                                                                  t38_request_as_caller=None),)))
    with pytest.raises(Exception) as info:
        await ep_a.call("3003", "peer")
    assert info.value.error_code == "no_answer"
    await asyncio.sleep(0.3)
    assert ep_a.active_calls() == 0 and ep_b.active_calls() == 0     # the CANCEL reached B
    first = await ep_a.call("2002", "peer")
    with pytest.raises(Exception) as info:
        await ep_a.call("2002", "peer")                               # B allows one call: 486
    assert info.value.error_code == "busy" and info.value.sip_code == 486
    assert "remote busy (SIP 486" in info.value.error_message
    await first.hangup()
    never.set()


async def test_sip_over_tcp_trunk(endpoints):
    """sippy has no TCP; our TCP server object carries the whole dialog (INVITE, re-INVITE, BYE)."""
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"transport": "tcp", "t38_request_as_caller": 0.0},
                                          b={"t38_request_as_callee": None})
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    await udptl_round_trip(ma, mb)
    tcp_b = ep_b._side.gc["_fax_tcp"]
    assert tcp_b.conns, "B took the call over a TCP connection"
    assert not ep_b._side.gc["_sip_tm"].l4r.cache_l2s[next(iter(ep_b._side.gc["_sip_tm"].l4r.cache_l2s))] \
        .stats[2], "and no SIP datagram reached B over UDP"
    await call_b.hangup()
    assert (await asyncio.wait_for(call_a.ended, 5)).by == "remote"


async def test_keepalive_reinvite_during_t38_keeps_the_call(endpoints):
    ep_a, ep_b, inbound = await make_pair(endpoints, a={"t38_request_as_caller": 0.0},
                                          b={"t38_request_as_callee": None})
    ep_a._side.config = dataclasses.replace(ep_a._side.config, keepalive_interval=0.3)
    call_a = await ep_a.call("2002", "peer")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    await asyncio.wait_for(call_a.t38_ready, 10)
    await asyncio.sleep(1.2)
    assert not call_a.is_ended and not call_b.is_ended and call_a.mode == call_b.mode == "t38"
    await call_a.hangup()


async def test_outbound_proxy_domain_caller_id_and_dial_prefix(endpoints, relay):
    """Every request goes to the outbound proxy; R-URI/To carry the trunk domain, From the caller-ID rules."""
    from t38.trunk import CallerIdRules

    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    ep_b = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1",
                                                                 t38_request_as_callee=None)),
                           router=lambda did, caller, trunk: "acct" if did == "02002" else None,
                           on_incoming=inbound.put)
    trunk = Trunk(name="carrier", proxy="sbc.carrier.invalid", domain="fax.example", dial_prefix="0",
                  outbound_proxy=f"127.0.0.1:{relay.port_b}", t38_request_as_caller=0.0,
                  caller_id=CallerIdRules(default_number="4420", allowed_pattern=r"44[0-9]+"))
    ep_a = await endpoints(SipConfig(port=0, trunks=(trunk,)))
    relay.real_a, relay.real_b = ep_a.address, ep_b.address
    call = await ep_a.call("2002", "carrier", caller="1234")          # 1234 not allowed -> default number
    call_b = await asyncio.wait_for(inbound.get(), 5)
    assert call_b.caller == "4420" and call_b.number == "02002"
    await asyncio.wait_for(call.t38_ready, 10)
    await call.hangup()
    await asyncio.wait_for(call_b.ended, 5)
    invites = relay.seen("to_b", r"^INVITE sip:02002@fax\.example")
    assert len(invites) == 1                                           # the dialog-creating INVITE
    assert len(relay.seen("to_b", r"^INVITE ")) >= 2                   # the re-INVITE (to the Contact) too
    assert re.search(r"^From: .*<sip:4420@fax\.example>", invites[0], re.M)
    assert re.search(r"^To: .*<sip:02002@fax\.example>", invites[0], re.M)
    assert relay.seen("to_b", r"^BYE "), "the BYE went through the outbound proxy too"
