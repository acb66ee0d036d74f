"""Our Class 2 / 2.0 driver through the rig's Class 2.0 (and Class 2) modem (an AT+FCLASS=2.0 interpreter in front of
our T.30 on a spandsp T.31 modem) to and from a spandsp fax machine; pages compared pixel by pixel."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_interop import ScaledClock, make_page  # noqa: E402

from engine.t30 import T30Config, T30Session  # noqa: E402
from imaging.tiff_f import read_tiff_f, write_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402
from modem.call import open_line  # noqa: E402
from modem.class2 import Class2Driver  # noqa: E402

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.slow]

SPEED = 6.0


def factory(phy, clock, *, send_pages, on_page, calling, ident, ecm):
    return T30Session(phy, clock, T30Config(ident=ident, ecm=ecm), send_pages=send_pages, on_page=on_page,
                      calling=calling)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    rows = min(a.shape[0], b.shape[0])
    return a.shape[1] == b.shape[1] and abs(a.shape[0] - b.shape[0]) <= 1 and np.array_equal(a[:rows], b[:rows])


async def _at_once(tmp_path, case, variants: dict[str, tuple]) -> None:
    """Run ``case`` for each variant at once, each on its own rig (the calls mostly wait on the rigs' paced
    clocks, so they share the wall time); every variant's failure is reported."""
    dirs = {name: tmp_path / name for name in variants}
    for d in dirs.values():
        d.mkdir()
    outcomes = await asyncio.gather(*(case(dirs[name], *args) for name, args in variants.items()),
                                    return_exceptions=True)
    failures = [f"{name}: {o!r}" for name, o in zip(variants, outcomes, strict=True) if isinstance(o, BaseException)]
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(120)
async def test_class2_driver_sends_through_rig(tmp_path):
    await _at_once(tmp_path, _sends_through_rig,
                   {"c20-noecm": ("2.0", False), "c20-ecm": ("2.0", True), "c2-noecm": ("2", False)})


async def _sends_through_rig(tmp_path, dialect, ecm):
    from modem.rig import Rig
    from modem.rig.class20 import Class20Modem

    rig = Rig("answer", output_dir=str(tmp_path), speed=SPEED, answer_delay=0.5, far_ecm=ecm)
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], factory, clock=ScaledClock(SPEED), ecm=ecm, dialect=dialect)
    pages = [make_page(rows=300, seed=31), make_page(rows=200, seed=32)]
    try:
        path = await modem.start()
        line = await open_line(path)
        try:
            result = await Class2Driver(line, dialect, ident="+1 555 0303", ecm=ecm).send("5551234", pages)
        finally:
            await line.close()
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await modem.stop()
        await rig.stop()
    assert result.success, (result, modem.results)
    assert result.pages_sent == 2
    assert f"AT+FCLASS={dialect}" in modem.commands
    assert any(c.startswith("AT+FLI=" if dialect == "2.0" else "AT+FLID=") for c in modem.commands)
    if dialect == "2":
        assert "AT+FET=0" in modem.commands and "AT+FET=2" in modem.commands
    assert far["ok"] and far["pages"] == 2, far
    assert modem.results[0].ecm == ecm
    stored = [p.page for p in read_tiff_f(far["rx_tiff"])]
    for a, b in zip(pages, stored, strict=True):
        assert _same(a.pixels, b.pixels)


@pytest.mark.timeout(120)
async def test_class2_driver_receives_through_rig(tmp_path):
    await _at_once(tmp_path, _receives_through_rig, {"c20": ("2.0",), "c2": ("2",)})


async def _receives_through_rig(tmp_path, dialect):
    from modem.rig import Rig
    from modem.rig.class20 import Class20Modem

    pages = [make_page(rows=260, seed=41), make_page(rows=180, seed=42)]
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), pages)
    rig = Rig("call", tx_tiff=str(tx), speed=SPEED, call_delay=0.5, ring_interval=1.0, far_ident="+1 555 0404")
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], factory, clock=ScaledClock(SPEED), dialect=dialect)
    got = []
    try:
        path = await modem.start()
        line = await open_line(path)
        try:
            result = await Class2Driver(line, dialect, ident="+1 555 0303").receive(
                rings=1, ring_timeout=60, on_page=lambda p, n: got.append(p))
        finally:
            await line.close()
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await modem.stop()
        await rig.stop()
    assert result.success, (result, modem.results)
    assert result.pages_received == 2 and result.remote_ident == "+1 555 0404"
    assert far["ok"], far
    for a, b in zip(pages, got, strict=True):
        assert _same(a.pixels, b.pixels)
