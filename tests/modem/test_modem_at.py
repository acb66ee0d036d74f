"""The AT channel on a real pty against the scripted fake modem."""

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402

from modem.at import ATChannel, CommandTimeout, PortGone, parse_unsolicited  # noqa: E402

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def rig():
    fake = FakeModem()
    ch = ATChannel(fake.path, flow="rtscts")
    await ch.open()
    yield fake, ch
    await ch.close()
    fake.close()


async def test_command_ok_and_info_lines(rig):
    fake, ch = rig
    resp = await ch.command("AT+FCLASS=?", 2)
    assert resp.final == "OK" and resp.lines == ["0,1,1.0"]
    assert fake.commands[-1] == "AT+FCLASS=?"


async def test_echo_is_skipped(rig):
    fake, ch = rig
    fake.echo = True
    assert await ch.query("AT+FMI?") == "FakeModems Inc"


async def test_error_and_garbage(rig):
    fake, ch = rig
    fake.handlers["AT+FOO"] = ["\x07\xfe garbage \x01", "ERROR"]
    resp = await ch.command("AT+FOO", 2)
    assert resp.final == "ERROR" and len(resp.lines) == 1


async def test_silence_times_out(rig):
    fake, ch = rig
    fake.handlers["AT+SLOW"] = "silent"
    with pytest.raises(CommandTimeout):
        await ch.command("AT+SLOW", 0.3)
    # the channel still works afterwards
    assert (await ch.command("AT", 2)).ok


async def test_unsolicited_ring_and_caller_id_both_layouts(rig):
    fake, ch = rig
    fake.send(b"\r\nRING\r\n\r\nDATE=0801\r\nTIME=1801\r\nNMBR=8055554567\r\nNAME=ACME FAX\r\n"
              b"\r\nRING\r\n\r\nNMBR = 5551212\r\nCALLER NAME: Jane\r\n")
    fake.handlers["AT"] = "OK"
    resp = await ch.command("AT", 2)
    assert resp.ok
    assert resp.unsolicited.count("RING") == 2
    assert ch.rings.qsize() == 2
    assert ch.caller_id.number == "5551212" and ch.caller_id.name == "Jane" and ch.caller_id.date == "0801"


def test_parse_unsolicited_forms():
    assert parse_unsolicited("RING") == ("ring", "", "")
    assert parse_unsolicited("RING/5551000") == ("ring", "", "5551000")
    assert parse_unsolicited("RINGING") is None
    assert parse_unsolicited("NMBR = 123") == ("cid", "NMBR", "123")
    assert parse_unsolicited("CALLER NUMBER: 77") == ("cid", "NMBR", "77")


async def test_port_vanishing_raises_portgone(rig):
    fake, ch = rig
    fake.handlers["AT+HANG"] = "silent"
    task = asyncio.ensure_future(ch.command("AT+HANG", 10))
    await asyncio.sleep(0.1)
    fake.vanish()
    with pytest.raises(PortGone):
        await task


async def test_xonxoff_never_eats_dc1_dc3_from_modem():
    fake = FakeModem()
    ch = ATChannel(fake.path, flow="xonxoff")
    await ch.open()
    try:
        ch.direction("rx")
        fake.send(b"\x13\x11\x13data")
        got = b""
        while len(got) < 7:
            got += await ch.read_some(2)
        assert got == b"\x13\x11\x13data"
    finally:
        await ch.close()
        fake.close()


async def test_paced_write_keeps_schedule(rig):
    fake, ch = rig
    fake._mode = "data_tx"
    data = bytes(range(1, 200)) * 10
    lag = await ch.write_paced(data, bytes_per_second=20000, lead_seconds=0.01)
    for _ in range(50):
        if len(fake._data) >= len(data):
            break
        await asyncio.sleep(0.02)
    assert lag >= 0.0
    assert bytes(fake._data) == data
