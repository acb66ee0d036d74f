"""+FCL / +FIT set up on the rig's spandsp T.31 modem through a pty: what ``=?`` offers is set, and the modem
reads the values back.  spandsp stores both but does not act on +FIT (see modem/README.md), so the hang-up
behaviour itself is not testable here."""

from __future__ import annotations

import pytest

from modem import spandsp
from modem.dial import ModemLine
from modem.quirks import with_overrides

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.timeout(40)]


async def test_rig_modem_takes_fcl_and_fit_at_class1_setup(tmp_path):
    from modem.rig import Rig

    rig = Rig(mode="answer", output_dir=str(tmp_path), speed=4.0)
    paths = await rig.start()
    line = ModemLine(paths["modem"], atz_timeout=2, at_timeout=1)
    try:
        await line.open()
        await line.basic_init()
        await line.identify()
        cls = await line.setup_class1()
        fcl = await line.ch.query("AT+FCL?", 2.0)
        fit = await line.ch.query("AT+FIT?", 2.0)
        # Off by quirk: nothing is sent, so the modem keeps what it has (reset to 0,0 first to see that).
        assert (await line.ch.command("AT+FCL=0", 2.0)).ok and (await line.ch.command("AT+FIT=0,0", 2.0)).ok
        line.quirks = with_overrides(line.quirks, {"carrier_loss": 0, "dte_inactivity": 0})
        await line.setup_class1()
        fcl_off = await line.ch.query("AT+FCL?", 2.0)
        fit_off = await line.ch.query("AT+FIT?", 2.0)
    finally:
        await line.close()
        await rig.stop()
    assert cls == "1.0" and line.quirks.name == "spandsp-t31"
    assert fcl is not None and fcl.strip() == "2"
    assert fit is not None and fit.replace(" ", "") == "+FIT:60,1"
    assert (fcl_off or "").strip() == "0" and (fit_off or "").replace(" ", "") == "+FIT:0,0"
    assert line.fcl is None and line.fit is None
