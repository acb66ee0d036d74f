"""Our Class 1 stack (Class1Phy + T30Session) against a spandsp fax machine through the virtual rig.

The rig (spandsp T.31 modem on a pty, audio looped to a spandsp fax terminal) runs faster than real
time; our clock is scaled by the same factor so both ends agree on T.30 timers.  Pages are compared
pixel by pixel with what the other end stored or sent."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_interop import ScaledClock, class1_receive, class1_send, make_page  # noqa: E402

from engine.t30 import T30Config  # noqa: E402
from imaging.tiff_f import read_tiff_f, write_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.slow]

SPEED = 6.0
MODEMS = {"v17": ("v17", 14400), "v29": ("v29", 9600), "v27ter": ("v27ter", 4800)}


def _rig(**kw):
    from modem.rig import Rig
    return Rig(speed=SPEED, answer_delay=0.5, **kw)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    rows = min(a.shape[0], b.shape[0])
    return a.shape[1] == b.shape[1] and abs(a.shape[0] - b.shape[0]) <= 1 and np.array_equal(a[:rows], b[:rows])


async def _each_modem(tmp_path, case, ecm: bool) -> None:
    """Run ``case`` for V.17, V.29 and V.27ter at once, each on its own rig (the calls mostly wait on the
    rigs' paced clocks, so three share the wall time); every variant's failure is reported."""
    dirs = {m: tmp_path / m for m in MODEMS}
    for d in dirs.values():
        d.mkdir()
    outcomes = await asyncio.gather(*(case(dirs[m], m, ecm) for m in MODEMS), return_exceptions=True)
    failures = [f"{m}-{'ecm' if ecm else 'noecm'}: {o!r}" for m, o in zip(MODEMS, outcomes, strict=True)
                if isinstance(o, BaseException)]
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ecm", [False, True], ids=["noecm", "ecm"])
async def test_class1_sends_to_spandsp(tmp_path, ecm):
    await _each_modem(tmp_path, _sends_to_spandsp, ecm)


async def _sends_to_spandsp(tmp_path, modem, ecm):
    fam, rate = MODEMS[modem]
    rig = _rig(mode="answer", output_dir=str(tmp_path), far_ecm=ecm, far_modems=(fam,))
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    pages = [make_page(seed=1), make_page(rows=200, seed=2)]
    try:
        cfg = T30Config(ident="+1 555 0199", ecm=ecm, modems=(fam,))
        result, session, phy = await class1_send(paths["modem"], "5551234", pages, cfg, clock)
        results = await rig.wait_results(1, timeout=30)
    finally:
        await rig.stop()
    assert result.success, (result, session.log[-12:])
    assert result.pages_sent == 2 and result.fax_speed == rate and result.ecm == ecm
    assert any("PPS" in line for line in session.log) == ecm
    assert phy.stats.image_bytes_sent > 0 and phy.stats.bad_frames == 0
    far = results[0]
    assert far["ok"] and far["pages"] == 2, far
    stored = [p.page for p in read_tiff_f(far["rx_tiff"])]
    assert len(stored) == 2
    for sent, got in zip(pages, stored, strict=True):
        assert _same(sent.pixels, got.pixels)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ecm", [False, True], ids=["noecm", "ecm"])
async def test_class1_receives_from_spandsp(tmp_path, ecm):
    await _each_modem(tmp_path, _receives_from_spandsp, ecm)


async def _receives_from_spandsp(tmp_path, modem, ecm):
    fam, rate = MODEMS[modem]
    pages = [make_page(seed=3), make_page(rows=240, seed=4)]
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), pages)
    rig = _rig(mode="call", tx_tiff=str(tx), far_ecm=ecm, far_modems=(fam,), call_delay=0.5, ring_interval=1.0)
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    try:
        cfg = T30Config(ident="+1 555 0199", ecm=ecm, modems=(fam,))
        result, got, session, phy = await class1_receive(paths["modem"], cfg, clock)
        results = await rig.wait_results(1, timeout=30)
    finally:
        await rig.stop()
    assert result.success, (result, session.log[-12:])
    assert result.pages_received == 2 and result.fax_speed == rate and result.ecm == ecm
    assert any("PPS" in line for line in session.log) == ecm
    assert phy.stats.image_bytes_received > 0
    assert results[0]["ok"], results[0]
    for sent, rx in zip(pages, got, strict=True):
        assert _same(sent.pixels, rx.pixels)


@pytest.mark.timeout(120)
async def test_class1_paced_writes_at_14400(tmp_path):
    """Virtual flow control (writes paced to line rate, 0.3 s ahead): the modem never runs dry mid-page."""
    rig = _rig(mode="answer", output_dir=str(tmp_path), far_modems=("v17",))
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    pages = [make_page(rows=500, seed=21)]
    try:
        cfg = T30Config(ecm=False, modems=("v17",))
        result, session, phy = await class1_send(paths["modem"], "5551234", pages, cfg, clock,
                                                 quirks={"pace_tx": True, "pace_lead_seconds": 0.3})
        results = await rig.wait_results(1, timeout=30)
    finally:
        await rig.stop()
    assert result.success and result.fax_speed == 14400, (result, session.log[-8:])
    assert results[0]["ok"] and results[0]["stats"]["bad_rows"] == 0, results[0]
    stored = [p.page for p in read_tiff_f(results[0]["rx_tiff"])]
    assert _same(pages[0].pixels, stored[0].pixels)
    print(f"worst lag behind line rate while pacing: {phy.stats.worst_tx_lag:.3f} s (lead 0.3 s)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ecm", [False, True], ids=["noecm", "ecm"])
async def test_class1_xonxoff_flow_control_at_14400(tmp_path, ecm):
    """The modem throttles us with DC3/DC1 (XON/XOFF toward the modem only); 0x11/0x13 in its data survive."""
    rig = _rig(mode="answer", output_dir=str(tmp_path), far_modems=("v17",), far_ecm=ecm, xonxoff=True)
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    pages = [make_page(rows=600, seed=51)]
    try:
        cfg = T30Config(ecm=ecm, modems=("v17",))
        result, session, phy = await class1_send(paths["modem"], "5551234", pages, cfg, clock,
                                                 quirks={"flow": "xonxoff"})
        results = await rig.wait_results(1, timeout=30)
        summary = rig.summary()
    finally:
        await rig.stop()
    assert phy.ch.flow == "xonxoff"
    assert result.success and result.fax_speed == 14400, (result, session.log[-8:])
    assert results[0]["ok"], results[0]
    assert sum(summary["cts_off_events"].values()) > 0       # the modem really did throttle us
    stored = [p.page for p in read_tiff_f(results[0]["rx_tiff"])]
    assert _same(pages[0].pixels, stored[0].pixels)


@pytest.mark.timeout(150)
async def test_class1_ecm_sender_repairs_line_errors(tmp_path):
    """Bit errors on the line: the spandsp receiver asks for damaged ECM frames again (PPR), our
    software-HDLC sender resends them, and the page arrives intact.  (The receive direction is left out:
    see the modem report, T.30 receiver accepts a retransmitted block whose frame is still bad.)"""
    pages = [make_page(rows=600, seed=71)]
    from modem.rig import Rig

    speed = 4.0                      # more PPR round trips: keep timing slack under a loaded CI machine
    clock = ScaledClock(speed)
    cfg = T30Config(ecm=True, modems=("v29",))
    rig = Rig(mode="answer", output_dir=str(tmp_path), speed=speed, answer_delay=0.5, far_ecm=True,
              far_modems=("v29",), symbol_error_rate=3e-4, seed=5)
    paths = await rig.start()
    try:
        result, session, phy = await class1_send(paths["modem"], "5551234", pages, cfg, clock)
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    hits = rig._line_out.hits + rig._line_back.hits
    ppr = sum("PPR" in line for line in session.log)
    print(f"line hits {hits}, PPR {ppr}")
    assert hits > 0 and ppr > 0, session.log
    assert result.success and result.ecm, (hits, result, session.log[-14:], far)
    assert far["ok"], far
    got = [p.page for p in read_tiff_f(far["rx_tiff"])]
    assert _same(pages[0].pixels, got[0].pixels)
