"""A far end that refuses T.38: a real pjsua2 (pjsip 2.14) endpoint answering audio only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from sip_helpers import AUDIO_SDP, HERE, ScriptedUas, direct_trunk, free_udp_port

from t38.sip import CallFailure
from t38.trunk import SipConfig

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pjsua_peer():
    pytest.importorskip("pjsua2", reason="pjsua2-pybind11 not installed")
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "pjsua_peer.py"), str(port), "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while time.monotonic() < deadline and not (lines and lines[-1].startswith("READY")):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    if not (lines and lines[-1].startswith("READY")):
        proc.kill()
        pytest.fail(f"pjsua peer did not start: {''.join(lines)[-2000:]}")
    yield port, proc
    proc.kill()
    proc.wait(5)


async def test_pjsua_answers_488_to_t38_and_the_attempt_ends_with_t38_refused(endpoints, pjsua_peer):
    port, proc = pjsua_peer
    ep = await endpoints(SipConfig(port=0, trunks=(direct_trunk(port, t38_request_as_caller=0.3,
                                                                retry_on_t38_refused=False),)))
    call = await ep.call("pj", "peer")
    assert call.mode == "audio"
    with pytest.raises(CallFailure) as info:
        await asyncio.wait_for(call.t38_ready, 20)
    failure = info.value
    assert failure.error_code == "t38_refused"
    assert failure.error_message.startswith("remote refused T.38")
    assert failure.sip_code == 488 and failure.retryable is False
    result = failure.to_result("send")
    assert result.tx_result()["error_message"].startswith("remote refused T.38")
    end = await asyncio.wait_for(call.ended, 10)
    assert end.by == "local"            # we hung up after the refusal
    assert ep.active_calls() == 0


DECLINED_IMAGE = AUDIO_SDP.format(port=40000).replace("o=raw 1 1", "o=raw 1 2") + "m=image 0 udptl t38\r\n"


@pytest.mark.parametrize("answer,code,text", [
    ((415, "Unsupported Media Type", ""), 415, "remote refused T.38 (SIP 415 Unsupported Media Type)"),
    ((606, "Not Acceptable", ""), 606, "remote refused T.38 (SIP 606 Not Acceptable)"),
    ((200, "OK", "AUDIO"), 200, "remote refused T.38 (answer declined the image (T.38) stream)"),
    ((500, "Server Error", ""), 500, "remote refused T.38 (SIP 500 Server Error)"),
])
async def test_other_refusals_of_the_t38_reinvite(endpoints, answer, code, text):
    """415 / 606 / a 200 that keeps audio / another error: the attempt ends, reason says T.38 was refused."""
    status, reason, body = answer
    if body == "AUDIO":
        body = AUDIO_SDP.format(port=40000).replace("o=raw 1 1", "o=raw 1 2")
    uas = ScriptedUas(lambda req: (status, reason, body))
    try:
        ep = await endpoints(SipConfig(port=0, trunks=(direct_trunk(uas.port, t38_request_as_caller=0.0),)))
        call = await ep.call("2002", "peer")
        with pytest.raises(CallFailure) as info:
            await asyncio.wait_for(call.t38_ready, 10)
        assert info.value.error_code == "t38_refused" and info.value.sip_code == code
        assert info.value.error_message == text
        await asyncio.wait_for(call.ended, 10)
        await asyncio.sleep(0.2)
        assert any(t.startswith("BYE ") for t in uas.received), "we hung up with a BYE"
    finally:
        uas.close()


async def test_declined_image_line_in_a_200(endpoints):
    uas = ScriptedUas(lambda req: (200, "OK", DECLINED_IMAGE))
    try:
        ep = await endpoints(SipConfig(port=0, trunks=(direct_trunk(uas.port, t38_request_as_caller=0.0),)))
        call = await ep.call("2002", "peer")
        with pytest.raises(CallFailure) as info:
            await asyncio.wait_for(call.t38_ready, 10)
        assert info.value.error_code == "t38_refused"
    finally:
        uas.close()


IMAGE_ANSWER = (
    "v=0\r\no=raw 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=image 40002 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxRateManagement:transferredTCF\r\n"
    "a=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n")


async def test_far_end_silent_after_t38_is_ended_by_the_timer(endpoints):
    """T.38 is agreed but the far end never sends a packet: the media timer hangs up (BYE), T.30 stops."""
    from engine.clock import MonotonicClock
    from engine.t30 import T30Config, T30Session
    from t38.sip import open_call_phy

    uas = ScriptedUas(lambda req: (200, "OK", IMAGE_ANSWER))
    try:
        ep = await endpoints(SipConfig(port=0, trunks=(direct_trunk(uas.port, t38_request_as_caller=0.0),)))
        call = await ep.call("2002", "peer")
        clock = MonotonicClock()
        phy = await open_call_phy(call, clock, calling=True, pacing=False, watch_media=1.0)
        started = time.monotonic()
        import numpy as np

        from imaging.page import FaxPage
        page = FaxPage(pixels=np.zeros((50, 1728), dtype=bool), y_dpi=98)
        result = await asyncio.wait_for(T30Session(phy, clock, T30Config(), send_pages=[page], calling=True).run(),
                                        15)
        assert time.monotonic() - started < 10          # not T1's 35 s: the media timer ended it
        assert not result.success, result
        assert call.failure.error_code == "media_timeout"
        end = await asyncio.wait_for(call.ended, 5)
        assert end.by == "local"
        await asyncio.sleep(0.2)
        assert any(t.startswith("BYE ") for t in uas.received)
    finally:
        uas.close()
