"""Our T.30 over the Class 1 PHY against spandsp's fax machine on the virtual modem rig (real ptys).

The rig runs spandsp's T.31 modem and a spandsp T.30 terminal at 4x real time; our side uses the
wall clock, so its timers are generous by that factor (the protocol still has to be right)."""

from __future__ import annotations

import asyncio
import tempfile

import numpy as np
import pytest

from engine.clock import MonotonicClock
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from modem import spandsp

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")]


async def _session_on_rig(rig, ecm: bool, *, number: str | None, **session_kw):  # noqa: ANN001, ANN003
    """Our T.30 over the rig's Class 1 modem (dialling ``number``, or answering when None); returns
    (result, the rig's far-end record, session)."""
    from modem.call import connect_class1

    paths = await rig.start()
    try:
        clock = MonotonicClock()
        line, phy = await connect_class1(paths["modem"], number=number, clock=clock,
                                         **({} if number else {"ring_timeout": 30}))
        try:
            session = T30Session(phy, clock, T30Config(ident="OURS", ecm=ecm), calling=number is not None,
                                 **session_kw)
            result = await asyncio.wait_for(session.run(), 120)
        finally:
            await line.hangup()
            await line.close()
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    return result, far, session


async def _send(ecm: bool):
    from modem.rig import Rig
    from modem.spandsp.testing import make_fax_tiff, read_fax_pages

    tmp = tempfile.mkdtemp(prefix="t30rig")
    src = make_fax_tiff(f"{tmp}/tx.tif", pages=2, height=300)
    rig = Rig("answer", output_dir=tmp, speed=4.0, answer_delay=0.5, far_ident="RIG FAR", far_ecm=ecm)
    result, far, session = await _session_on_rig(rig, ecm, number="5551234",
                                                 send_pages=[FaxPage(p, 196) for p in src])
    received = read_fax_pages(far["rx_tiff"]) if far.get("rx_tiff") else []
    return result, far, src, received, session


async def _receive(ecm: bool):
    from modem.rig import Rig
    from modem.spandsp.testing import make_fax_tiff

    tmp = tempfile.mkdtemp(prefix="t30rig")
    src = make_fax_tiff(f"{tmp}/tx.tif", pages=2, height=300, seed=3)
    rig = Rig("call", tx_tiff=f"{tmp}/tx.tif", speed=4.0, far_ident="RIG FAR", far_ecm=ecm, calls=1)
    got = []
    result, far, session = await _session_on_rig(rig, ecm, number=None, on_page=lambda p, bad: got.append((p, bad)))
    return result, far, src, got, session


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ecm", [False, True])
def test_class1_send_to_spandsp(ecm):
    result, far, src, received, session = asyncio.run(_send(ecm))
    assert result.success, (result.error_message, session.log)
    assert far["ok"] and far["pages"] == 2 and result.pages_sent == 2 and result.ecm is ecm
    assert result.remote_ident == "RIG FAR" and result.fax_speed == 14400
    assert len(received) == 2 and all(np.array_equal(a, b) for a, b in zip(received, src, strict=True))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ecm", [False, True])
def test_class1_receive_from_spandsp(ecm):
    result, far, src, got, session = asyncio.run(_receive(ecm))
    assert result.success, (result.error_message, session.log)
    assert far["ok"] and result.pages_received == 2 and result.ecm is ecm and result.remote_ident == "RIG FAR"
    assert all(np.array_equal(p.pixels, s) and bad == 0 for (p, bad), s in zip(got, src, strict=True))
