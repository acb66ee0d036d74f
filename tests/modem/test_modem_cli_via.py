"""``faxengine send/receive --via class1:PORT | class2.0:PORT`` as subprocesses against the rig."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_interop import ScaledClock, make_page  # noqa: E402

from engine.t30 import T30Config, T30Session  # noqa: E402
from imaging.tiff_f import read_tiff_f, write_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def cli(*args: str, timeout: float = 90) -> tuple[int, dict | None, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"faxengine {args[0]} did not finish: {err.decode(errors='replace')}") from None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else None), err.decode(errors="replace")


@pytest.mark.timeout(120)
async def test_cli_send_via_class1_busy(tmp_path):
    """The CLI's class1 path (the in-process run_modem_call tests cover a whole Class 1 call; a
    successful CLI call would have to run at real time)."""
    from modem.rig import Rig

    src = tmp_path / "doc.tif"
    write_tiff_f(str(src), [make_page(rows=60, seed=61)])
    rig = Rig("answer", output_dir=str(tmp_path), answer_delay=0.3, dial_results={"5550000": "busy"})
    paths = await rig.start()
    try:
        rc, rec, err = await cli("send", str(src), "--to", "5550000", "--via", f"class1:{paths['modem']}")
    finally:
        await rig.stop()
    assert rc == 1 and rec["error_code"] == "busy" and rec["retryable"] and rec["to"] == "5550000", err


@pytest.mark.timeout(120)
async def test_cli_send_and_receive_via_class20_emulator(tmp_path):
    from modem.rig import Rig
    from modem.rig.class20 import Class20Modem

    def factory(phy, clock, *, send_pages, on_page, calling, ident, ecm):
        return T30Session(phy, clock, T30Config(ident=ident, ecm=ecm), send_pages=send_pages, on_page=on_page,
                          calling=calling)

    page = make_page(rows=150, seed=62)
    src = tmp_path / "doc.tif"
    write_tiff_f(str(src), [page])
    speed = 6.0
    rig = Rig("answer", output_dir=str(tmp_path), speed=speed, answer_delay=0.3)
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], factory, clock=ScaledClock(speed))
    try:
        path = await modem.start()
        rc, rec, err = await cli("send", str(src), "--to", "5551234", "--via", f"class2.0:{path}", "--no-ecm")
        far = await rig.wait_results(1, timeout=30)
    finally:
        await modem.stop()
        await rig.stop()
    assert rc == 0 and rec["success"] and rec["pages_sent"] == 1, (rec, err)
    got = next(read_tiff_f(far[0]["rx_tiff"])).page
    assert (got.pixels[:page.rows] == page.pixels).all()

    rig = Rig("call", tx_tiff=str(src), speed=speed, call_delay=0.5, ring_interval=1.0)
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], factory, clock=ScaledClock(speed))
    out = tmp_path / "rx"
    try:
        path = await modem.start()
        rc, rec, err = await cli("receive", "--via", f"class2.0:{path}", "--out", str(out), "--timeout", "60")
    finally:
        await modem.stop()
        await rig.stop()
    assert rc == 0 and rec["success"] and rec["pages_received"] == 1, (rec, err)
    tif = [p for p in rec["pages"] if p.endswith(".tif")][0]
    got = next(read_tiff_f(tif)).page
    assert (got.pixels[:page.rows] == page.pixels).all()


async def test_cli_bad_modem_via_is_bad_input(tmp_path):
    src = tmp_path / "doc.tif"
    write_tiff_f(str(src), [make_page(rows=20)])
    rc, rec, err = await cli("send", str(src), "--to", "1", "--via", "class1:")
    assert rc == 2 and "serial port" in err
    rc, rec, err = await cli("send", str(src), "--to", "1", "--via", "class1:/dev/does-not-exist")
    assert rc == 1 and rec["error_code"] == "modem_gone"
