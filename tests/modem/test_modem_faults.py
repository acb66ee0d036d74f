"""Whole T.30 sessions over Class1Phy on a fake modem that fails: every fault ends with a reason, in bounded time."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402
from modem_interop import make_page  # noqa: E402

from engine.clock import MonotonicClock  # noqa: E402
from engine.t30 import T30Config, T30Session  # noqa: E402
from modem.at import ATChannel  # noqa: E402
from modem.call import finish_result  # noqa: E402
from modem.class1 import Class1Phy  # noqa: E402
from modem.dial import ModemLine  # noqa: E402

pytestmark = pytest.mark.timeout(60)

CSI = bytes([0xFF, 0x03, 0x40]) + b"0010 555 1+         "
DIS = bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8, 0x80, 0x80, 0x91, 0x80, 0x80, 0x80, 0x18])
CFR = bytes([0xFF, 0x13, 0x84])


async def _send_session(fake: FakeModem, **cfg):
    line = ModemLine(fake.path)
    await line.open()
    try:
        resp = await line.dial("5551234", timeout=5)
        assert resp.final == "CONNECT"
        phy = Class1Phy(line.ch, MonotonicClock(), adaptive_receive=False, command_timeout=1.0)
        phy.call_connected()
        session = T30Session(phy, MonotonicClock(), T30Config(ecm=False, modems=("v29",), **cfg),
                             send_pages=[make_page(rows=100)], calling=True)
        result = await asyncio.wait_for(session.run(), 45)
        return finish_result(result, line), session
    finally:
        await line.close()


async def test_modem_goes_silent_after_dis():
    fake = FakeModem()
    try:
        fake.hdlc_to_dte.extend([CSI, DIS])
        fake.handlers["AT+FTH=3"] = "silent"
        result, session = await _send_session(fake)
    finally:
        fake.close()
    assert not result.success and result.error_phase == "B"
    assert "AT+FTH=3" in result.error_message


async def test_modem_says_error_to_ftm():
    fake = FakeModem()
    try:
        fake.hdlc_to_dte.extend([CSI, DIS])
        fake.handlers["AT+FTM=96"] = "ERROR"
        result, session = await _send_session(fake)
    finally:
        fake.close()
    assert not result.success and "ERROR" in result.error_message


async def test_port_vanishes_during_training():
    fake = FakeModem()
    try:
        fake.hdlc_to_dte.extend([CSI, DIS])
        fake.close_after_bytes = 100             # TCF is 1800 bytes at 9600
        result, session = await _send_session(fake)
    finally:
        fake.close()
    assert not result.success and result.error_code == "modem_gone" and result.retryable


async def test_no_answer_from_remote_ends_after_retries():
    """Training is never answered (the fake has no CFR to give): T.30 gives up by itself."""
    fake = FakeModem()
    try:
        fake.hdlc_to_dte.extend([CSI, DIS])
        result, session = await _send_session(fake, t4=0.3, t1=3.0)
    finally:
        fake.close()
    assert not result.success and result.error_code
    assert fake.cans >= 1                      # each unanswered +FRH=3 was cancelled cleanly


async def test_garbage_frame_is_a_bad_frame_not_a_crash():
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        fake.hdlc_to_dte.append(("raw", b"\r\nCONNECT\r\n\x01\x02\xff\x99\x10\x03\r\nOK\r\n"))
        frame = await Class1Phy(ch).receive_hdlc(3)
        assert frame is not None and not frame.fcs_ok
    finally:
        await ch.close()
        fake.close()
