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
