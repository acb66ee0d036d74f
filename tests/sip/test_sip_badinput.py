"""Bad input to the SIP endpoint: the right SIP answer, a clear log line, no crash, no leak."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from sip_helpers import AUDIO_SDP, IMAGE_SDP, body_of, status_of

from t38.sip import SipCall
from t38.trunk import SipConfig, Trunk

pytestmark = pytest.mark.timeout(60)


async def answering_endpoint(endpoints, **trunk_kw):
    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    trunk_kw.setdefault("t38_request_as_callee", None)
    ep = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1", **trunk_kw)),
                         router=lambda did, caller, trunk: "acct" if did == "2002" else None,
                         on_incoming=inbound.put)
    return ep, inbound


async def still_alive(uac, ep) -> None:
    uac.to_tag, uac.call_id = "", uac.call_id + "-probe"
    resp = await asyncio.to_thread(uac.request, "OPTIONS", f"sip:127.0.0.1:{ep.address[1]}")
    assert status_of(resp) == 200


@pytest.mark.parametrize("garbage", [
    b"\xff\xfe\x00garbage that is not text at all \x80\x81\x82\x83",
    b"HELLO WORLD THIS IS NOT SIP AT ALL, JUST A LONG ENOUGH LINE\r\n\r\n",
    b"INVITE sip:2002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n",
    b"INVITE sip:2002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:2002@127.0.0.1>\r\nCall-ID: cid\r\nCSeq: 1 INVITE\r\nContent-Length: 500\r\n\r\nv=0\r\n"
    .replace(b"127.0.0.1:9;", b"127.0.0.1:PORT;"),
])
async def test_malformed_sip_is_dropped_with_a_log_line(endpoints, raw_uac_factory, caplog, garbage):
    ep, _ = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    with caplog.at_level(logging.INFO, logger="t38.sip"):
        uac.send_raw(garbage.replace(b"PORT", str(uac.port).encode()))
        await asyncio.sleep(0.2)
    assert any(r.name == "t38.sip" and r.levelno >= logging.WARNING for r in caplog.records), caplog.text
    if b"Content-Length: 500" in garbage:   # parsable headers, truncated body: 400 goes back
        uac.sock.settimeout(2)
        assert uac.sock.recvfrom(4096)[0].startswith(b"SIP/2.0 400")
        assert "Truncated SIP body" in caplog.text
    await still_alive(uac, ep)
    assert ep.active_calls() == 0


async def test_invite_with_no_usable_media_gets_488(endpoints, raw_uac_factory, caplog):
    ep, inbound = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    video_only = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                  "m=video 4000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    with caplog.at_level(logging.INFO, logger="t38.sip"):
        resp = await asyncio.to_thread(uac.request, "INVITE", f"sip:2002@127.0.0.1:{ep.address[1]}", video_only)
    assert status_of(resp) == 488
    assert "no usable media" in caplog.text
    assert inbound.empty()
    await still_alive(uac, ep)
    await asyncio.sleep(0.1)
    assert ep.active_calls() == 0


async def test_invite_with_unparsable_sdp_gets_400(endpoints, raw_uac_factory, caplog):
    ep, inbound = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    with caplog.at_level(logging.INFO, logger="t38.sip"):
        resp = await asyncio.to_thread(uac.request, "INVITE", f"sip:2002@127.0.0.1:{ep.address[1]}",
                                       "this is not SDP\r\n")
    assert status_of(resp) == 400
    assert "refusing INVITE" in caplog.text
    await still_alive(uac, ep)


async def test_unknown_did_gets_404_and_a_log_line(endpoints, raw_uac_factory, caplog):
    ep, inbound = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):     # no socket or call left behind by refused INVITEs
        uac.call_id, uac.to_tag = uac.call_id + "x", ""
        resp = await asyncio.to_thread(uac.request, "INVITE", f"sip:5555@127.0.0.1:{ep.address[1]}",
                                       AUDIO_SDP.format(port=4000))
        assert status_of(resp) == 404
    await asyncio.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2
    uac.call_id = uac.call_id + "y"
    with caplog.at_level(logging.INFO, logger="t38.sip"):
        resp = await asyncio.to_thread(uac.request, "INVITE", f"sip:5555@127.0.0.1:{ep.address[1]}",
                                       AUDIO_SDP.format(port=4000))
    assert status_of(resp) == 404
    assert "unknown DID '5555'" in caplog.text
    assert ep.stats["rejected_unknown_did"] == 21
    await asyncio.sleep(0.1)
    assert ep.active_calls() == 0


async def test_reinvite_without_sdp_and_bye_mid_call(endpoints, raw_uac_factory, caplog):
    ep, inbound = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    ruri = f"sip:2002@127.0.0.1:{ep.address[1]}"
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, AUDIO_SDP.format(port=4000))
    assert status_of(resp) == 200 and "m=audio" in body_of(resp)
    audio_answer = body_of(resp)
    call = await asyncio.wait_for(inbound.get(), 5)
    with caplog.at_level(logging.INFO, logger="t38.sip"):
        resp = await asyncio.to_thread(uac.request, "INVITE", ruri, "")
    assert status_of(resp) == 200 and body_of(resp) == audio_answer
    assert "without SDP" in caplog.text
    # now the far end switches to T.38, and a bogus audio-only offer during T.38 is refused, call kept
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=4002, version=2))
    assert status_of(resp) == 200 and "m=image" in body_of(resp)
    await asyncio.wait_for(call.t38_ready, 5)
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, AUDIO_SDP.format(port=4000).replace(" 1 1 ", " 1 3 "))
    assert status_of(resp) == 488
    assert not call.is_ended
    # the refused offer did not break the next refresh (reference §4.6 #2)
    resp = await asyncio.to_thread(uac.request, "INVITE", ruri, IMAGE_SDP.format(port=4002, version=2))
    assert status_of(resp) == 200 and "m=image" in body_of(resp)
    resp = await asyncio.to_thread(uac.request, "BYE", ruri)
    assert status_of(resp) == 200
    end = await asyncio.wait_for(call.ended, 5)
    assert end.by == "remote" and call.failure.error_message == "remote hung up during T.38"
    # after the BYE the dialog is gone: a second BYE gets 481, and the endpoint is still fine
    resp = await asyncio.to_thread(uac.request, "BYE", ruri)
    assert status_of(resp) in (481, 200)
    await still_alive(uac, ep)
    assert ep.active_calls() == 0


async def test_bye_for_unknown_dialog_gets_481(endpoints, raw_uac_factory):
    ep, _ = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    uac.to_tag = "nosuchtag"
    resp = await asyncio.to_thread(uac.request, "BYE", f"sip:2002@127.0.0.1:{ep.address[1]}")
    assert status_of(resp) == 481


async def test_unsupported_method_gets_405(endpoints, raw_uac_factory):
    ep, _ = await answering_endpoint(endpoints)
    uac = raw_uac_factory(ep.address)
    resp = await asyncio.to_thread(uac.request, "MESSAGE", f"sip:2002@127.0.0.1:{ep.address[1]}")
    assert status_of(resp) == 405
