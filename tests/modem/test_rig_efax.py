"""efax (Debian), an independent Class 1 DTE, through the rig's ptys to spandsp fax machines."""

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

from modem import spandsp  # noqa: E402
from modem.rig import Rig  # noqa: E402
from modem.spandsp.testing import make_fax_tiff, pages_identical, read_fax_pages  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
    pytest.mark.skipif(shutil.which("efax") is None or shutil.which("efix") is None, reason="efax not installed"),
    pytest.mark.slow,
]

# efax keeps up at 8x real time (its own timers are wall-clock).  Its pages here (~27 KB at 14400) still take
# ~1.9 s wall: efax divides by the whole seconds a page took and dies of SIGFPE under 1 s (test_modem_efax).
SPEED = 8.0
PAGES = 2
HEIGHT = 1000


def efax_pages(tmp_path, pages: list[np.ndarray]) -> list[str]:
    """One TIFF-F (G3, made by efix) per page: efax sends one file per page."""
    files = []
    for i, page in enumerate(pages, 1):
        pbm = tmp_path / f"page{i}.pbm"
        Image.fromarray(~page).convert("1").save(pbm)
        subprocess.run(["efix", "-i", "pbm", "-o", "tiffg3", "-n", str(tmp_path / f"efax{i}.tif"), str(pbm)],
                       check=True, capture_output=True, timeout=30)
        files.append(str(tmp_path / f"efax{i}.tif"))
    return files


@pytest.mark.timeout(180)
async def test_efax_sends_through_answer_mode(tmp_path):
    src = make_fax_tiff(tmp_path / "src.tif", pages=PAGES, height=HEIGHT, compression="group3")
    files = efax_pages(tmp_path, src)
    out_dir = tmp_path / "rx"
    out_dir.mkdir()
    rig = Rig("answer", output_dir=str(out_dir), speed=SPEED, far_ident="+1 555 0100")
    paths = await rig.start()
    try:
        rc, log = await run_efax(["-d", paths["modem"], "-o1", "-l", "+1 555 9999", "-v", "ewinchmaft",
                                  "-t", "5551234", *files], timeout=150)
        assert rc == 0, log
        result = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    assert result["ok"], result
    assert result["far_end"] == "receiver" and result["pages"] == PAGES
    assert result["stats"]["remote_ident"] == "+1 555 9999"
    assert result["stats"]["bit_rate"] == 14400 and result["stats"]["bad_rows"] == 0
    got = read_fax_pages(result["rx_tiff"])
    assert len(got) == PAGES
    for page, want in zip(got, src, strict=True):
        header = page.shape[0] - want.shape[0]     # efax prepends its header lines
        assert 0 <= header <= 64, page.shape
        # below efax's header the image is the source, except where header glyphs overhang a row or two
        assert np.array_equal(page[header + 3:], want[3:])


@pytest.mark.timeout(180)
async def test_efax_receives_from_call_mode(tmp_path):
    src_path = tmp_path / "src.tif"
    src = make_fax_tiff(src_path, pages=PAGES, height=HEIGHT, compression="group4")
    rig = Rig("call", tx_tiff=str(src_path), speed=SPEED, call_delay=0.5, ring_interval=1.0,
              far_ident="+1 555 0200")
    paths = await rig.start()
    prefix = tmp_path / "efaxrx"
    try:
        rc, log = await run_efax(["-d", paths["modem"], "-o1", "-l", "+1 555 9999", "-v", "ewinchmaft",
                                  "-r", str(prefix)], timeout=150)
        assert rc == 0, log
        result = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await rig.stop()
    assert result["ok"], result
    assert result["far_end"] == "sender" and result["pages"] == PAGES
    assert result["stats"]["remote_ident"] == "+1 555 9999"
    files = sorted(p for p in os.listdir(tmp_path) if p.startswith("efaxrx"))
    assert len(files) == PAGES, (files, log)
    got = [read_fax_pages(tmp_path / f)[0] for f in files]
    assert pages_identical(got, src)


@pytest.mark.timeout(240)
async def test_efax_to_efax_through_pair_mode(tmp_path):
    """Two Class 1 DTEs through two modems; needs line delay (efax's AT+FRS race, see the reference)."""
    src = make_fax_tiff(tmp_path / "src.tif", pages=1, height=HEIGHT, compression="group3")
    files = efax_pages(tmp_path, src)
    rig = Rig("pair", speed=SPEED, line_delay_ms=40, ring_interval=1.0)
    paths = await rig.start()
    prefix = tmp_path / "pairrx"
    try:
        receiver = asyncio.ensure_future(run_efax(
            ["-d", paths["b"], "-o1", "-w", "-iS0=1", "-l", "+1 555 2222", "-v", "ewinchmaft", "-r", str(prefix)],
            timeout=200))
        await asyncio.sleep(1.5)        # let the receiver set up auto-answer before the call
        rc, send_log = await run_efax(["-d", paths["a"], "-o1", "-l", "+1 555 1111", "-v", "ewinchmaft",
                                       "-t", "222", *files], timeout=200)
        rrc, recv_log = await receiver
        assert rc == 0, send_log
        assert rrc == 0, recv_log
        result = (await rig.wait_results(1, timeout=20))[0]
    finally:
        await rig.stop()
    assert result["answered"] and result["from"] == "a" and result["number"] == "222"
    files = sorted(p for p in os.listdir(tmp_path) if p.startswith("pairrx"))
    assert len(files) == 1, (files, recv_log)
    page = read_fax_pages(tmp_path / files[0])[0]
    header = page.shape[0] - src[0].shape[0]
    assert 0 <= header <= 64
    assert np.array_equal(page[header + 3:], src[0][3:])
