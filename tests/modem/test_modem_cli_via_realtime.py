"""``faxengine send --via class1:A`` to ``faxengine receive --via class1:B`` through the rig's ``pair`` mode at
real time (the CLI has a wall clock), and ``--via class2:PORT`` (Class 2, not 2.0) through the rig's Class 2
modem: the result record and progress lines are those of the T.38 path, the pages arrive pixel for pixel."""

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


async def _start(*args: str):
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _finish(proc, timeout: float) -> tuple[int, dict | None, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"faxengine did not finish: {err.decode(errors='replace')}") from None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else None), err.decode(errors="replace")


def _same(sent, got) -> bool:
    return got.shape[1] == sent.shape[1] and abs(got.shape[0] - sent.shape[0]) <= 1 and (
        got[:min(got.shape[0], sent.shape[0])] == sent[:min(got.shape[0], sent.shape[0])]).all()


@pytest.mark.timeout(120)
async def test_cli_class1_send_to_cli_class1_receive_in_real_time(tmp_path):
    from modem.rig import Rig

    page = make_page(rows=120, seed=81)
    src = tmp_path / "doc.tif"
    write_tiff_f(str(src), [page])
    rig = Rig("pair", ring_interval=1.0)                  # real time: the CLI's T.30 runs on the wall clock
    paths = await rig.start()
    out = tmp_path / "rx"
    try:
        receiver = await _start("receive", "--via", f"class1:{paths['b']}", "--out", str(out), "--timeout", "60",
                                "--rings", "2", "--ident", "+1 555 0202", "--no-ecm")
        await asyncio.sleep(0.5)       # a head start; a late receiver still gets its 2 of the rig's 10 one-second rings
        sender = await _start("send", str(src), "--to", "222", "--via", f"class1:{paths['a']}",
                              "--ident", "+1 555 0101", "--no-ecm", "--max-speed", "9600")
        rc_s, sent, err_s = await _finish(sender, 90)
        rc_r, got, err_r = await _finish(receiver, 30)
    finally:
        await rig.stop()
    assert rc_s == 0 and sent["success"], (sent, err_s)
    assert rc_r == 0 and got["success"], (got, err_r)
    assert sent["pages_sent"] == 1 and sent["to"] == "222" and sent["remote_ident"] == "+1 555 0202"
    assert sent["fax_speed"] == 9600 and sent["ecm"] is False
    assert got["pages_received"] == 1 and got["remote_ident"] == "+1 555 0101"
    assert "phase" in err_s and "page 1" in err_s and "9600 bit/s" in err_s      # progress lines on stderr
    tif = [p for p in got["pages"] if p.endswith(".tif")][0]
    assert _same(page.pixels, next(read_tiff_f(tif)).page.pixels)


@pytest.mark.timeout(120)
async def test_cli_send_via_class2_through_the_rig_class2_modem(tmp_path):
    from modem.rig import Rig
    from modem.rig.class20 import Class20Modem

    def factory(phy, clock, *, send_pages, on_page, calling, ident, ecm):
        return T30Session(phy, clock, T30Config(ident=ident, ecm=ecm), send_pages=send_pages, on_page=on_page,
                          calling=calling)

    page = make_page(rows=150, seed=82)
    src = tmp_path / "doc.tif"
    write_tiff_f(str(src), [page])
    speed = 6.0
    rig = Rig("answer", output_dir=str(tmp_path), speed=speed, answer_delay=0.3)
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], factory, clock=ScaledClock(speed), dialect="2")
    try:
        path = await modem.start()
        proc = await _start("send", str(src), "--to", "5551234", "--via", f"class2:{path}", "--no-ecm",
                            "--ident", "+1 555 0303")
        rc, rec, err = await _finish(proc, 90)
        far = await rig.wait_results(1, timeout=30)
    finally:
        await modem.stop()
        await rig.stop()
    assert rc == 0 and rec["success"] and rec["pages_sent"] == 1, (rec, err)
    assert "AT+FCLASS=2" in modem.commands and "AT+FCLASS=2.0" not in modem.commands
    assert any(c.startswith("AT+FLID=") for c in modem.commands)
    assert _same(page.pixels, next(read_tiff_f(far[0]["rx_tiff"])).page.pixels)
