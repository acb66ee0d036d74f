"""efax (Debian) as an independent Class 1 DTE: efax -> rig pair -> our Class 1 receiver, and our
Class 1 sender -> rig pair -> efax.  Two spandsp T.31 modems wired together, 40 ms line delay."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from modem_efax import run_efax  # noqa: E402
from modem_interop import ScaledClock, class1_receive, class1_send, make_page  # noqa: E402

from engine.t30 import T30Config  # noqa: E402
from modem import spandsp  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
    pytest.mark.skipif(shutil.which("efax") is None or shutil.which("efix") is None, reason="efax not installed"),
    pytest.mark.slow,
]

SPEED = 6.0          # as the other interop tests: our scaled clock keeps its margin against the rig


def efax_file(tmp_path, pixels: np.ndarray, name: str) -> str:
    pbm = tmp_path / f"{name}.pbm"
    Image.fromarray(~pixels).convert("1").save(pbm)
    out = tmp_path / f"{name}.tif"
    subprocess.run(["efix", "-i", "pbm", "-o", "tiffg3", "-n", str(out), str(pbm)], check=True,
                   capture_output=True, timeout=30)
    return str(out)


def below_header(got: np.ndarray, want: np.ndarray) -> bool:
    """efax adds a header of a few dozen lines on pages it sends; compare below it."""
    header = got.shape[0] - want.shape[0]
    return 0 <= header <= 64 and np.array_equal(got[header + 3:], want[3:])


@pytest.mark.timeout(200)
async def test_efax_sends_to_our_class1_receiver(tmp_path):
    from modem.rig import Rig

    # efax divides the page's bytes by its whole seconds of sending (end_data: bytes*8/dt): a page sent
    # within one wall-clock second kills it with SIGFPE (exit 5).  At 4x a 400-row page took ~0.8 s wall and
    # failed about half the time; 1000 rows take ~2 s.
    page = make_page(rows=1000, seed=11)
    f = efax_file(tmp_path, page.pixels, "p1")
    rig = Rig("pair", speed=SPEED, line_delay_ms=40, ring_interval=1.0)
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    try:
        cfg = T30Config(ident="+1 555 2222", ecm=False)
        ours = asyncio.ensure_future(class1_receive(paths["b"], cfg, clock))
        await asyncio.sleep(1.0)
        rc, log = await run_efax(["-d", paths["a"], "-o1", "-l", "+1 555 1111", "-v", "ewinchmaft",
                                  "-t", "222", f], timeout=180)
        result, got, session, _phy = await asyncio.wait_for(ours, 60)
    finally:
        await rig.stop()
    assert rc == 0, log
    assert result.success, (result, session.log[-12:])
    assert result.pages_received == 1 and result.remote_ident == "+1 555 1111"
    assert below_header(got[0].pixels, page.pixels)


@pytest.mark.timeout(200)
async def test_our_class1_sender_to_efax(tmp_path):
    from modem.rig import Rig
    from modem.spandsp.testing import read_fax_pages

    page = make_page(rows=400, seed=12)
    rig = Rig("pair", speed=SPEED, line_delay_ms=40, ring_interval=1.0)
    paths = await rig.start()
    clock = ScaledClock(SPEED)
    prefix = tmp_path / "efaxrx"
    try:
        receiver = asyncio.ensure_future(run_efax(
            ["-d", paths["b"], "-o1", "-w", "-iS0=1", "-l", "+1 555 2222", "-v", "ewinchmaft", "-r", str(prefix)],
            timeout=180))
        await asyncio.sleep(1.5)
        cfg = T30Config(ident="+1 555 1111", ecm=False)
        result, session, _phy = await class1_send(paths["a"], "222", [page], cfg, clock)
        rc, log = await receiver
    finally:
        await rig.stop()
    assert result.success, (result, session.log[-12:])
    assert result.pages_sent == 1 and result.remote_ident == "+1 555 2222"
    assert rc == 0, log
    files = sorted(p for p in os.listdir(tmp_path) if p.startswith("efaxrx"))
    assert len(files) == 1, (files, log)
    got = read_fax_pages(tmp_path / files[0])[0]
    assert got.shape[1] == 1728 and np.array_equal(got[:page.rows], page.pixels)
