"""Call set-up for the engine: specs, failures before T.30, and the port vanishing mid-page."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402
from modem_interop import ScaledClock, make_page  # noqa: E402

from engine.t30 import T30Config, T30Session  # noqa: E402
from modem import spandsp  # noqa: E402
from modem.at import ModemError  # noqa: E402
from modem.call import connect_class1, failure_result, finish_result, parse_spec  # noqa: E402
from modem.dial import DialFailure  # noqa: E402


def test_parse_spec():
    assert parse_spec("class1:/dev/ttyACM0").kind == "class1"
    assert parse_spec("class2.0:/dev/ttyS0").dialect == "2.0"
    assert parse_spec("class2:/dev/ttyS0").dialect == "2"
    for bad in ("class3:/dev/x", "class1:", "/dev/ttyACM0", ""):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("answer,code", [("BUSY", "busy"), ("NO CARRIER", "no_carrier"),
                                         ("NO DIALTONE", "no_dialtone"), ("NO ANSWER", "no_answer")])
async def test_dial_failures_become_result_records(answer, code):
    fake = FakeModem()
    try:
        fake.dial_result = [answer]
        with pytest.raises(DialFailure) as info:
            await connect_class1(fake.path, number="5551234")
        r = failure_result(info.value, "send")
        assert not r.success and r.error_code == code and r.retryable and r.error_phase == "A"
        assert "ATH0" in fake.commands           # line released after the failed dial
    finally:
        fake.close()


@pytest.mark.timeout(30)
async def test_modem_answering_garbage_then_nothing_gives_modem_error():
    from modem.dial import ModemLine

    fake = FakeModem()
    line = ModemLine(fake.path, atz_timeout=0.3, at_timeout=0.2)
    await line.open()
    try:
        fake.handlers.update({"AT": ["\x01\x02garbage"], "ATZ": "silent"})
        with pytest.raises(ModemError) as info:
            await line.reset()
        r = failure_result(info.value, "send")
        assert r.error_code == "modem_error" and not r.success and "reset ladder" in r.error_message
    finally:
        await line.close()
        fake.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
async def test_port_vanishing_mid_page_ends_the_attempt_with_a_clear_reason(tmp_path):
    from modem.rig import Rig

    speed = 6.0
    rig = Rig("answer", output_dir=str(tmp_path), speed=speed, answer_delay=0.3, far_modems=("v27ter",))
    paths = await rig.start()
    clock = ScaledClock(speed)
    stopped = False
    try:
        line, phy = await connect_class1(paths["modem"], number="5551234", clock=clock)
        session = T30Session(phy, clock, T30Config(ecm=False, modems=("v27ter",)),
                             send_pages=[make_page(rows=2000, seed=9)], calling=True)
        task = asyncio.ensure_future(session.run())
        for _ in range(400):                       # wait until page data is flowing (second +FTM: the page)
            await asyncio.sleep(0.05)
            if sum(b"AT+FTM=" in b for _, d, b in line.ch.trace if d == ">") >= 2:
                break
        await asyncio.sleep(0.5)
        assert not task.done()
        await rig.stop()                           # the "USB modem" disappears
        stopped = True
        result = finish_result(await asyncio.wait_for(task, 30), line)
        await line.close()
    finally:
        if not stopped:
            await rig.stop()
    assert not result.success and result.error_code == "modem_gone" and result.retryable
    assert "vanished" in result.error_message


@pytest.mark.timeout(30)
async def test_run_modem_call_busy_and_missing_port():
    from modem.call import run_modem_call

    fake = FakeModem()
    try:
        fake.dial_result = ["BUSY"]
        r = await run_modem_call(f"class1:{fake.path}", role="send", session_factory=None, number="5551234",
                                 pages=[make_page(rows=20)])
        assert r.error_code == "busy" and r.retryable and not r.success
    finally:
        fake.close()
    for kind in ("class1", "class2.0"):
        r = await run_modem_call(f"{kind}:/dev/does-not-exist", role="send", session_factory=None, number="1",
                                 pages=[make_page(rows=20)])
        assert r.error_code == "modem_gone" and "cannot open" in r.error_message


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
async def test_run_modem_call_class1_send_through_rig(tmp_path):
    from modem.call import run_modem_call
    from modem.rig import Rig

    rig = Rig("answer", output_dir=str(tmp_path), speed=6.0, answer_delay=0.3)
    paths = await rig.start()
    clock = ScaledClock(6.0)
    try:
        cfg = T30Config(ident="+1 555 0505")
        r = await run_modem_call(f"class1:{paths['modem']}", role="send", number="5551234",
                                 pages=[make_page(rows=100)], clock=clock,
                                 session_factory=lambda phy, clk, **kw: T30Session(phy, clk, cfg, **kw))
    finally:
        await rig.stop()
    assert r.success and r.pages_sent == 1, r


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
async def test_run_modem_call_class1_receive_after_two_rings(tmp_path):
    from imaging.tiff_f import write_tiff_f
    from modem.call import run_modem_call
    from modem.rig import Rig

    page = make_page(rows=120, seed=81)
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), [page])
    rig = Rig("call", tx_tiff=str(tx), speed=6.0, call_delay=0.3, ring_interval=1.0)
    paths = await rig.start()
    clock = ScaledClock(6.0)
    got = []
    try:
        cfg = T30Config(ident="+1 555 0707")
        r = await run_modem_call(f"class1:{paths['modem']}", role="receive", rings=2, ring_timeout=60,
                                 on_page=lambda p, n: got.append(p), clock=clock,
                                 session_factory=lambda phy, clk, **kw: T30Session(phy, clk, cfg, **kw))
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    assert r.success and r.pages_received == 1, r
    assert far["ok"] and far["stats"]["remote_ident"] == "+1 555 0707", far
    assert (got[0].pixels[:page.rows] == page.pixels).all()
