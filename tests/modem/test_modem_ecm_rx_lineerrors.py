"""ECM reception through bit errors on the line: the spandsp fax machine sends (rig ``call`` mode),
the line damages some ECM frames, our T.30 receiver asks for them again (PPR) and must store the
page exactly as sent -- never answer MCF for a block that still has missing or bad frames."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_interop import ScaledClock, class1_receive, make_page  # noqa: E402

from engine.t30 import T30Config  # noqa: E402
from imaging.tiff_f import write_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.slow]

SPEED = 4.0


@pytest.mark.timeout(150)
@pytest.mark.parametrize("seeds", [(3, 5), (11, 17)], ids=["3+5", "11+17"])
async def test_class1_ecm_receiver_repairs_line_errors(tmp_path, seeds):
    """Two seeds at once, each on its own rig (the calls mostly wait on the rigs' paced clocks)."""
    dirs = [tmp_path / str(seed) for seed in seeds]
    for d in dirs:
        d.mkdir()
    outcomes = await asyncio.gather(*(_repairs_line_errors(d, seed) for d, seed in zip(dirs, seeds, strict=True)),
                                    return_exceptions=True)
    failures = [f"seed {seed}: {o!r}" for seed, o in zip(seeds, outcomes, strict=True) if isinstance(o, BaseException)]
    assert not failures, "\n".join(failures)


async def _repairs_line_errors(tmp_path, seed):
    from modem.rig import Rig

    pages = [make_page(rows=600, seed=71)]
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), pages)
    clock = ScaledClock(SPEED)
    rig = Rig(mode="call", tx_tiff=str(tx), speed=SPEED, far_ecm=True, far_modems=("v29",), call_delay=0.5,
              ring_interval=1.0, symbol_error_rate=2e-4, seed=seed)
    paths = await rig.start()
    try:
        cfg = T30Config(ident="+1 555 0199", ecm=True, modems=("v29",))
        result, got, session, phy = await class1_receive(paths["modem"], cfg, clock)
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    hits = rig._line_out.hits + rig._line_back.hits
    ppr = sum("PPR" in line for line in session.log)
    print(f"seed {seed}: line hits {hits}, PPR {ppr}, result {result.success} {result.error_message!r}")
    assert hits > 0, "the line made no errors: the test would prove nothing"
    assert result.success and result.ecm, (hits, result, session.log[-20:], far)
    assert far["ok"], far
    assert len(got) == 1
    a, b = pages[0].pixels, got[0].pixels
    assert a.shape == b.shape and np.array_equal(a, b), "page stored differs from the page sent"
