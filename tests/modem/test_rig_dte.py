"""A scripted DTE over the rig's real ptys: AT dialogue, dialling, frames, ringing, fault numbers."""

from __future__ import annotations

import asyncio

import pytest

from modem import spandsp
from modem.rig import Rig, RigError
from modem.rig.testing import PtyDte, hdlc_unstuff

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")


async def _frames_until_final(dte: PtyDte, first: bytes) -> list[bytes]:
    frames = [hdlc_unstuff(first)]
    while frames[-1][1] != 0x13:
        got = await dte.command(b"AT+FRH=3", b"OK\r\n", b"ERROR\r\n", b"NO CARRIER\r\n", timeout=10)
        assert got.startswith(b"\r\nCONNECT\r\n"), got
        frames.append(hdlc_unstuff(got[len(b"\r\nCONNECT\r\n"):]))
    return frames


@pytest.mark.timeout(60)
async def test_dte_dials_answer_mode_and_reads_dis(tmp_path):
    rig = Rig("answer", output_dir=str(tmp_path), speed=6.0, answer_delay=0.5, far_ident="+1 555 0100")
    paths = await rig.start()
    assert set(paths) == {"modem"} and paths["modem"].startswith("/dev/pts/")
    dte = PtyDte(paths["modem"])
    try:
        assert (await dte.command(b"AT")).endswith(b"OK\r\n")
        assert (await dte.command(b"ATE0")).endswith(b"OK\r\n")
        assert await dte.command(b"AT+FCLASS=1") == b"\r\nOK\r\n"
        assert b"24,48,72,73,74,96,97,98,121,122,145,146" in await dte.command(b"AT+FTM=?")
        await dte.command(b"ATD5551234", b"CONNECT\r\n", timeout=15)
        first = await dte.read_until(b"OK\r\n", b"ERROR\r\n", timeout=10)
        frames = await _frames_until_final(dte, first)
        csi, dis = frames[0], frames[-1]
        assert csi[:3] == b"\xff\x03\x40" and csi[3:23][::-1].decode().strip() == "+1 555 0100"
        assert dis[:3] == b"\xff\x13\x80" and dis[4] & 0x02          # DIS, ready to receive
        # Hang up; the far fax machine ends (no fax came) and the rig reports it.
        assert (await dte.command(b"ATH0")).endswith(b"OK\r\n")
        results = await rig.wait_results(1, timeout=20)
        assert results[0]["answered"] and results[0]["far_end"] == "receiver"
        assert results[0]["ok"] is False and results[0]["pages"] == 0
        assert results[0]["hung_up_by"] == "modem"
    finally:
        dte.close()
        await rig.stop()


@pytest.mark.timeout(60)
async def test_pair_rings_auto_answers_and_passes_frames():
    rig = Rig("pair", speed=4.0, ring_interval=1.0, line_delay_ms=40)
    paths = await rig.start()
    a, b = PtyDte(paths["a"]), PtyDte(paths["b"])
    try:
        for dte in (a, b):
            assert (await dte.command(b"ATE0")).endswith(b"OK\r\n")
            await dte.command(b"AT+FCLASS=1")
        await b.command(b"ATS0=2")
        a.write(b"ATD123\r")
        assert b"RING" in await b.read_until(b"RING\r\n", timeout=10)
        assert b"RING" in await b.read_until(b"RING\r\n", timeout=10)
        # auto-answer on the second ring: B sends CED then an implied AT+FTH=3
        assert b"CONNECT" in await b.read_until(b"CONNECT\r\n", timeout=15)
        b.write(bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8, 0x10, 0x03]))   # a DIS-like final frame
        assert (await b.read_until(b"OK\r\n", b"ERROR\r\n", timeout=10)).endswith(b"OK\r\n")
        assert b"CONNECT" in await a.read_until(b"CONNECT\r\n", timeout=15)
        frame = await a.read_until(b"OK\r\n", b"ERROR\r\n", timeout=10)
        assert frame.endswith(b"OK\r\n"), frame
        assert hdlc_unstuff(frame)[:6] == bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8])
        b.write(b"AT+FRH=3\r")                      # B waits for a frame; A hangs up instead
        await asyncio.sleep(0.3)
        assert (await a.command(b"ATH0")).endswith(b"OK\r\n")
        assert b"NO CARRIER" in await b.read_until(b"NO CARRIER\r\n", b"OK\r\n", timeout=10)
        assert (await b.command(b"AT+FRH=3")).endswith(b"ERROR\r\n")   # B is on-hook now
        results = await rig.wait_results(1, timeout=10)
        assert results[0]["from"] == "a" and results[0]["to"] == "b" and results[0]["answered"]
    finally:
        a.close()
        b.close()
        await rig.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("result,text", [("busy", b"BUSY"), ("no-dialtone", b"NO DIALTONE")])
async def test_fault_numbers_give_their_result_codes(tmp_path, result, text):
    rig = Rig("answer", output_dir=str(tmp_path), speed=4.0, dial_results={"666": result})
    paths = await rig.start()
    dte = PtyDte(paths["modem"])
    try:
        await dte.command(b"AT+FCLASS=1")
        got = await dte.command(b"ATD666", b"BUSY\r\n", b"NO DIALTONE\r\n", b"CONNECT\r\n", b"NO CARRIER\r\n",
                                timeout=10)
        assert text in got
        assert rig.results[0]["reason"] == result and rig.results[0]["ok"] is False
    finally:
        dte.close()
        await rig.stop()


@pytest.mark.timeout(30)
async def test_rig_rejects_bad_configuration(tmp_path):
    with pytest.raises(RigError, match="mode"):
        Rig("loop")
    with pytest.raises(RigError, match="TIFF"):
        Rig("call")
    with pytest.raises(RigError, match="not found"):
        Rig("call", tx_tiff=str(tmp_path / "nope.tif"))
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(RigError, match="not a readable TIFF"):
        Rig("call", tx_tiff=str(tmp_path / "text.tif"))
    from PIL import Image
    Image.new("RGB", (64, 64)).save(tmp_path / "colour.tif")
    with pytest.raises(RigError, match="not bilevel"):
        Rig("call", tx_tiff=str(tmp_path / "colour.tif"))
    with pytest.raises(RigError, match="output directory"):
        Rig("answer", output_dir=str(tmp_path / "missing"))
    with pytest.raises(RigError, match="dial result"):
        Rig("answer", output_dir=str(tmp_path), dial_results={"1": "maybe"})
    with pytest.raises(ValueError):
        Rig("pair", line_delay_ms=-5)
    await asyncio.sleep(0)


@pytest.mark.timeout(60)
async def test_flow_control_holds_off_a_fast_dte(tmp_path):
    """+FTM data faster than 9600 bit/s: the modem's buffer fills, the rig stops reading (and sends
    DC3/DC1 with xonxoff), and every byte still reaches the line: OK only comes after the last one."""
    rig = Rig("answer", output_dir=str(tmp_path), speed=4.0, answer_delay=0.2, xonxoff=True)
    paths = await rig.start()
    dte = PtyDte(paths["modem"])
    try:
        await dte.command(b"ATE0")
        await dte.command(b"AT+FCLASS=1")
        await dte.command(b"ATD1", b"CONNECT\r\n", timeout=15)
        await dte.read_until(b"OK\r\n", timeout=10)
        assert (await dte.command(b"AT+FTM=96", b"CONNECT\r\n", b"ERROR\r\n")).endswith(b"CONNECT\r\n")
        payload = bytes(range(256)).replace(b"\x10", b"\x10\x10") * 40        # ~10 kB, DLE-shielded
        started = rig.samples
        await dte.send(payload + b"\x10\x03", timeout=40)
        done = await dte.read_until(b"OK\r\n", b"ERROR\r\n", timeout=40)
        assert done.endswith(b"OK\r\n")
        # line time (sample clock, not wall time) covers all the data: nothing was dropped
        data_bytes = len(payload.replace(b"\x10\x10", b"\x10"))
        assert (rig.samples - started) / 8000 >= data_bytes * 8 / 9600
        assert rig.modems["modem"].cts_off_events > 0
        assert b"\x13" in done and b"\x11" in done                          # XOFF then XON seen
    finally:
        dte.close()
        await rig.stop()


@pytest.mark.timeout(60)
async def test_call_mode_rings_dte_answers_and_gets_tsi_dcs(tmp_path):
    from modem.spandsp.testing import make_fax_tiff

    make_fax_tiff(tmp_path / "src.tif", pages=1, height=200)
    rig = Rig("call", tx_tiff=str(tmp_path / "src.tif"), speed=4.0, call_delay=0.2, ring_interval=1.0,
              far_ident="+1 555 0200")
    paths = await rig.start()
    dte = PtyDte(paths["modem"])
    try:
        await dte.command(b"ATE0")
        await dte.command(b"AT+FCLASS=1")
        await dte.read_until(b"RING\r\n", timeout=10)
        # answer: CED, then an implied AT+FTH=3 for our DIS
        assert b"CONNECT" in await dte.command(b"ATA", b"CONNECT\r\n", b"NO CARRIER\r\n", timeout=15)
        dte.write(bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8, 0x80, 0x80, 0x91, 0x80, 0x80, 0x80, 0x18, 0x10, 0x03]))
        assert (await dte.read_until(b"OK\r\n", b"ERROR\r\n", timeout=10)).endswith(b"OK\r\n")
        frames = []
        while not frames or frames[-1][1] != 0x13:
            got = await dte.command(b"AT+FRH=3", b"OK\r\n", b"ERROR\r\n", b"NO CARRIER\r\n", timeout=10)
            assert got.startswith(b"\r\nCONNECT\r\n"), got
            frames.append(hdlc_unstuff(got[len(b"\r\nCONNECT\r\n"):]))
        fcfs = [f[2] & 0xFE for f in frames]
        assert fcfs[-1] == 0x82                                      # DCS
        tsi = next(f for f in frames if f[2] & 0xFE == 0x42)
        assert tsi[3:23][::-1].decode().strip() == "+1 555 0200"
        assert (await dte.command(b"ATH0")).endswith(b"OK\r\n")
        result = (await rig.wait_results(1, timeout=20))[0]
        assert result["far_end"] == "sender" and result["ok"] is False and result["pages"] == 0
    finally:
        dte.close()
        await rig.stop()
