"""Class2Driver (Class 2 and 2.0) against scripted fake modems on real ptys; hang-up code mapping."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402

from imaging import codec  # noqa: E402
from imaging.page import FaxPage  # noqa: E402
from modem.class2 import CLASS2, CLASS20, HANGUP_CODES, Class2Driver, hangup_key, hangup_reason  # noqa: E402
from modem.dial import ModemLine  # noqa: E402

pytestmark = pytest.mark.timeout(40)


def make_page(rows=120, seed=1):
    rng = np.random.default_rng(seed)
    px = np.zeros((rows, 1728), dtype=bool)
    for r in range(rows):
        a = int(rng.integers(0, 1600))
        px[r, a:a + int(rng.integers(1, 120))] = True
    px[::17, 100:900] = True
    return FaxPage(px, y_dpi=196)


def class20_sender_fake(fake, *, results=None, fhs="00", fcs="+FCS:1,3,0,2,0,0,0,0"):
    """A Class 2.0 modem that accepts pages: OK per page (or the queued results), then +FHS."""
    pages = []
    results = list(results or [])

    def on_end(f, data, code):
        pages.append((data, code))
        res = results.pop(0) if results else "OK"
        f.reply(res)
        if code == ord(".") and res == "OK":
            f.reply(f"+FHS:{fhs}")

    def fdt(f, cmd):
        f.reply(fcs, "CONNECT")
        f.start_data(on_end)

    fake.handlers.update({
        "ATDT5551234": ["+FCO", '+FCI:"+1 555 1234"', "+FIS:1,5,0,2,0,0,0,0", "OK"],
        "AT+FDT": fdt,
        "AT+FPS?": ["+FPS:2", "OK"],
    })
    for c in ("AT+FLO=2", "AT+FNR=1,1,1,1", "AT+FIE=0", "AT+FBO=0", 'AT+FLI="FAXENGINE"', "AT+FCC=1,5,0,2,0,0,0,0",
              "AT+FCT=30", "AT+FCR=0", "AT+FCR=1", "AT+FBOR=0", 'AT+FLID="FAXENGINE"', "AT+FDCC=1,5,0,2,0,0,0,0",
              "AT+FPHCTO=30"):
        fake.handlers[c] = "OK"
    return pages


@pytest.fixture
async def line_and_fake():
    fake = FakeModem()
    line = ModemLine(fake.path)
    await line.open()
    yield line, fake
    await line.close()
    fake.close()


async def test_class20_send_two_pages(line_and_fake):
    line, fake = line_and_fake
    pages = class20_sender_fake(fake)
    page = make_page()
    res = await Class2Driver(line, "2.0", ident="FAXENGINE").send("5551234", [page, make_page(seed=2)])
    assert res.success, res
    assert res.pages_sent == 2 and res.remote_ident == "+1 555 1234" and res.fax_speed == 9600
    assert [code for _, code in pages] == [ord(","), ord(".")]
    got = codec.decode(pages[0][0], "mh", 1728, lsb_first=True)
    assert np.array_equal(got.pixels[:page.rows], page.pixels) and got.bad_rows == 0
    assert "AT+FCLASS=2.0" in fake.commands


async def test_class20_rtn_retransmits_then_succeeds(line_and_fake):
    line, fake = line_and_fake
    pages = class20_sender_fake(fake, results=["ERROR", "OK"])
    res = await Class2Driver(line, "2.0").send("5551234", [make_page()])
    assert res.success and len(pages) == 2


async def test_class20_hangup_code_maps_to_reason(line_and_fake):
    line, fake = line_and_fake
    class20_sender_fake(fake)
    fake.handlers["AT+FDT"] = ["+FHS:25", "OK"]
    res = await Class2Driver(line, "2.0").send("5551234", [make_page()])
    assert not res.success and res.error_code == "no_response" and "+FHS:25" in res.error_message


async def test_class20_dial_busy(line_and_fake):
    line, fake = line_and_fake
    class20_sender_fake(fake)
    fake.handlers["ATDT5551234"] = "BUSY"
    res = await Class2Driver(line, "2.0").send("5551234", [make_page()])
    assert res.error_code == "busy" and res.retryable and res.error_phase == "A"


async def test_class2_send_uses_fet_and_xon(line_and_fake):
    line, fake = line_and_fake
    class20_sender_fake(fake)
    got = []

    def on_end(f, data, code):
        got.append((data, code))
        f.reply("OK")

    def fdt(f, cmd):
        f.reply("+FDCS:1,3,0,2,0,0,0,0", "CONNECT")
        f.send(b"\x11")
        f.start_data(on_end)

    def fet(f, cmd):
        if cmd.endswith("2"):
            f.reply("+FPTS:1", "+FHNG:0", "OK")
        else:
            f.reply("+FPTS:1", "OK")

    fake.handlers.update({"ATDT5551234": ["+FCON", '+FCSI:"REMOTE"', "+FDIS:1,5,0,2,0,0,0,0", "OK"],
                          "AT+FDT": fdt, "AT+FET=0": fet, "AT+FET=2": fet})
    res = await Class2Driver(line, "2").send("5551234", [make_page(), make_page(seed=3)])
    assert res.success, res
    assert [c for _, c in got] == [3, 3]
    assert "AT+FET=0" in fake.commands and "AT+FET=2" in fake.commands and "AT+FCLASS=2" in fake.commands


async def test_class2_dial_hangup_decimal(line_and_fake):
    line, fake = line_and_fake
    class20_sender_fake(fake)
    fake.handlers["ATDT5551234"] = ["+FHNG:11", "OK"]
    res = await Class2Driver(line, "2").send("5551234", [make_page()])
    assert res.error_code == "no_answer" and "+FHNG:11" in res.error_message


async def test_class2_port_vanishes_mid_page(line_and_fake):
    line, fake = line_and_fake
    class20_sender_fake(fake)

    def fdt(f, cmd):
        f.reply("+FCS:1,3,0,2,0,0,0,0", "CONNECT")
        f.start_data(lambda *a: None)
        f.close_after_bytes = 500

    fake.handlers["AT+FDT"] = fdt
    res = await Class2Driver(line, "2.0").send("5551234", [make_page(rows=800)])
    assert not res.success and res.error_code == "modem_gone" and res.retryable


@pytest.mark.parametrize("dialect,reversed_rx", [("2.0", False), ("2", True)])
async def test_receive_one_page(line_and_fake, dialect, reversed_rx):
    line, fake = line_and_fake
    class20_sender_fake(fake)
    page = make_page(rows=80, seed=5)
    data = codec.encode(page.pixels, "mh", lsb_first=True, rtc=False, byte_align=True)
    wire = codec.reverse_bits(data) if reversed_rx else data
    d = CLASS20 if dialect == "2.0" else CLASS2
    conn, tsi, dcs = (("+FCO", '+FTI:"CALLER"', "+FCS:1,3,0,2,0,0,0,0") if dialect == "2.0"
                      else ("+FCON", '+FTSI:"CALLER"', "+FDCS:1,3,0,2,0,0,0,0"))
    fdr_count = [0]

    def send_page(f):
        f.send(wire.replace(b"\x10", b"\x10\x10") + b"\x10\x03")
        f.reply(d.page_status + "1,0,0,0,0", "+FET:2", "OK")

    def fdr(f, cmd):
        fdr_count[0] += 1
        if fdr_count[0] == 1:
            f.reply("CONNECT")
            f.on_trigger = send_page
        else:
            f.reply(d.hangup + "0" * (2 if dialect == "2.0" else 1), "OK")

    fake.handlers.update({"ATA": [conn, tsi, dcs, "OK"], "AT+FDR": fdr})
    fake.send(b"\r\nRING\r\n\r\nRING\r\n")
    got = []
    res = await Class2Driver(line, dialect).receive(rings=2, ring_timeout=5, on_page=lambda p, n: got.append(p))
    assert res.success, res
    assert res.pages_received == 1 and res.remote_ident == "CALLER"
    assert np.array_equal(got[0].pixels[:80], page.pixels) and got[0].y_dpi == 196


def test_hangup_keys_and_every_code_has_a_reason():
    assert hangup_key("0", CLASS2) == "00" and hangup_key("100", CLASS2) == "A0" and hangup_key("94", CLASS2) == "92"
    assert hangup_key("a1", CLASS20) == "A1" and hangup_key("0", CLASS20) == "00"
    for key, (_phase, code, msg, _retry) in HANGUP_CODES.items():
        assert msg and (code or key == "00")
    assert hangup_reason("27", CLASS2)[1] == "training_failed"
    assert hangup_reason("FF", CLASS20)[1] == "hangup_ff"
