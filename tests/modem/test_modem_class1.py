"""Class1Phy's command layer against the scripted fake modem on a real pty."""

import asyncio
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem, fcs  # noqa: E402

from engine.phy import Modulation, PhyError, WrongCarrier  # noqa: E402
from modem import class1_hdlc  # noqa: E402
from modem.at import ATChannel, PortGone  # noqa: E402
from modem.class1 import Class1Phy, modulation_code  # noqa: E402
from modem.quirks import Quirks  # noqa: E402

pytestmark = pytest.mark.timeout(30)

TSI = bytes([0xFF, 0x03, 0x43]) + b"4321 555 1+         "
DCS = bytes([0xFF, 0x13, 0x83, 0x00, 0x46, 0x78])
DIS = bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8, 0x80, 0x80, 0x91, 0x80, 0x80, 0x80, 0x18])
CFR = bytes([0xFF, 0x13, 0x84])


@pytest.fixture
async def rig():
    fake = FakeModem()
    ch = ATChannel(fake.path, flow="xonxoff")
    await ch.open()
    phy = Class1Phy(ch, quirks=Quirks())
    yield fake, phy
    await ch.close()
    fake.close()


def test_crc_vectors_from_reference():
    assert class1_hdlc.with_fcs(bytes([0xFF, 0x13, 0x8C]))[-2:] == bytes([0xA2, 0xF1])
    assert class1_hdlc.with_fcs(bytes([0xFF, 0x13, 0xFB]))[-2:] == bytes([0x9A, 0xF6])
    assert class1_hdlc.with_fcs(bytes([0xFF, 0x03, 0x86]))[-2:] == bytes([0x69, 0xCB])
    assert fcs(bytes([0xFF, 0x13, 0x84])) == bytes([0xEA, 0x7D])


def test_modulation_codes():
    assert modulation_code(Modulation.V17_14400, True) == 145
    assert modulation_code(Modulation.V17_14400, False) == 146
    assert modulation_code(Modulation.V29_9600, False) == 96
    assert modulation_code(Modulation.V27TER_4800, True) == 48


async def test_send_hdlc_burst_connect_then_ok(rig):
    fake, phy = rig
    await phy.send_hdlc([TSI, DCS])
    assert fake.frames_from_dte == [TSI, DCS]
    assert fake.commands.count("AT+FTH=3") == 1


async def test_send_hdlc_frame_with_dle_and_xoff_bytes(rig):
    fake, phy = rig
    frame = bytes([0xFF, 0x13, 0x10, 0x13, 0x11, 0x10])
    await phy.send_hdlc([frame])
    assert fake.frames_from_dte == [frame]


async def test_receive_hdlc_strips_fcs_and_reports_good(rig):
    fake, phy = rig
    fake.hdlc_to_dte.append(DIS)
    frame = await phy.receive_hdlc(3)
    assert frame.data == DIS and frame.fcs_ok


async def test_receive_hdlc_error_means_bad_fcs(rig):
    fake, phy = rig
    fake.hdlc_to_dte.append(("bad", CFR))
    frame = await phy.receive_hdlc(3)
    assert frame.data == CFR and not frame.fcs_ok


async def test_receive_hdlc_reissues_after_no_carrier_and_fcerror(rig):
    fake, phy = rig
    fake.hdlc_to_dte.extend(["NO CARRIER", "+FCERROR", CFR])
    frame = await phy.receive_hdlc(5)
    assert frame.data == CFR
    assert fake.commands.count("AT+FRH=3") == 3


async def test_receive_hdlc_rh_connect_bug(rig):
    fake, phy = rig
    fake.hdlc_to_dte.extend([("raw", b"\r\nCONNECT\r\n\r\nNO CARRIER\r\n"), CFR])
    frame = await phy.receive_hdlc(5)
    assert frame.data == CFR


async def test_receive_hdlc_timeout_cancels_with_can(rig):
    fake, phy = rig
    assert await phy.receive_hdlc(0.3) is None
    assert fake.cans == 1
    # modem usable afterwards
    fake.hdlc_to_dte.append(CFR)
    assert (await phy.receive_hdlc(3)).data == CFR


async def test_receive_hdlc_error_straight_away_is_hangup(rig):
    fake, phy = rig
    fake.hdlc_to_dte.append("ERROR")
    with pytest.raises(PhyError):
        await phy.receive_hdlc(3)


async def test_frame_with_xoff_byte_arrives_intact_under_xonxoff(rig):
    fake, phy = rig
    frame = bytes([0xFF, 0x13, 0x80, 0x13, 0x11, 0x13, 0x10])
    fake.hdlc_to_dte.append(frame)
    got = await phy.receive_hdlc(3)
    assert got.data == frame and got.fcs_ok


async def test_after_dial_first_frame_is_implied(rig):
    fake, phy = rig
    csi = bytes([0xFF, 0x03, 0x40]) + b"4321 555 1+         "
    fake.hdlc_to_dte.extend([csi, DIS])
    resp = await phy.ch.command("ATD5551234", 5)
    assert resp.final == "CONNECT"
    phy.call_connected()
    f1 = await phy.receive_hdlc(3)
    f2 = await phy.receive_hdlc(3)
    assert (f1.data, f2.data) == (csi, DIS)
    assert fake.commands.count("AT+FRH=3") == 1


async def test_after_answer_first_send_is_implied(rig):
    fake, phy = rig
    resp = await phy.ch.command("ATA", 5)
    assert resp.final == "CONNECT"
    phy.call_answered()
    await phy.wait_silence(0.07, 1)        # must not write AT into the HDLC stream
    await phy.send_hdlc([DIS])
    assert fake.frames_from_dte == [DIS]
    assert "AT+FTH=3" not in fake.commands and "AT+FRS=7" not in fake.commands


async def test_send_image_codes_and_data(rig):
    fake, phy = rig
    page = bytes([0x00, 0x10, 0x80, 0x13, 0x11]) * 100
    await phy.send_image(Modulation.V17_14400, bytes(1800), long_training=True)
    await phy.send_image(Modulation.V17_14400, page)
    await phy.send_image(Modulation.V29_9600, page)
    assert [c for c, _ in fake.images_from_dte] == [145, 146, 96]
    assert fake.images_from_dte[0][1] == bytes(1800)
    assert fake.images_from_dte[1][1] == page


async def test_receive_image_streams_until_carrier_loss(rig):
    fake, phy = rig
    page = bytes(range(256)) * 20
    fake.images_to_dte.append(page)
    got = b"".join([c async for c in phy.receive_image(Modulation.V29_9600, 3)])
    assert got == page
    assert "AT+FRM=96" in fake.commands


async def test_receive_image_long_training_after_dcs_then_short(rig):
    fake, phy = rig
    fake.hdlc_to_dte.append(DCS)
    await phy.receive_hdlc(3)
    fake.images_to_dte.extend([bytes(100), bytes(50)])
    [c async for c in phy.receive_image(Modulation.V17_14400, 3)]
    [c async for c in phy.receive_image(Modulation.V17_14400, 3)]
    assert [c for c in fake.commands if c.startswith("AT+FRM")] == ["AT+FRM=145", "AT+FRM=146"]


async def test_receive_image_fcerror_is_wrong_carrier_after_persistence(rig):
    fake, phy = rig
    fake.images_to_dte.extend(["+FCERROR"] * 3)
    with pytest.raises(WrongCarrier):
        [c async for c in phy.receive_image(Modulation.V29_9600, 3)]
    assert sum(c == "AT+FRM=96" for c in fake.commands) == 3


async def test_adaptive_receive_hands_the_frame_to_receive_hdlc(rig):
    fake, phy = rig
    mps = bytes([0xFF, 0x13, 0x4F])
    fake.images_to_dte.append(("far", mps))
    with pytest.raises(WrongCarrier):
        [c async for c in phy.receive_image(Modulation.V29_9600, 3)]
    frame = await phy.receive_hdlc(3)
    assert frame.data == mps and frame.fcs_ok
    assert "AT+FRH=3" not in fake.commands


async def test_receive_image_timeout(rig):
    fake, phy = rig
    with pytest.raises(TimeoutError):
        [c async for c in phy.receive_image(Modulation.V29_9600, 0.3)]
    assert fake.cans == 1


async def test_consumer_stopping_early_is_drained(rig):
    fake, phy = rig
    fake.images_to_dte.append(bytes(5000))
    async for _chunk in phy.receive_image(Modulation.V29_9600, 3):
        break
    fake.hdlc_to_dte.append(CFR)
    assert (await phy.receive_hdlc(3)).data == CFR


async def test_silences(rig):
    fake, phy = rig
    await phy.send_silence(0.07)
    assert await phy.wait_silence(0.07, 2)
    assert fake.commands[-2:] == ["AT+FTS=7", "AT+FRS=7"]


async def test_host_delays_when_modem_lacks_fts_frs():
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        phy = Class1Phy(ch, quirks=Quirks(has_fts=False, has_frs=False))
        await phy.send_silence(0.07)
        assert await phy.wait_silence(0.07, 1)
        assert not any(c.startswith(("AT+FTS", "AT+FRS")) for c in fake.commands)
    finally:
        await ch.close()
        fake.close()


async def test_fts_error_means_remote_hung_up(rig):
    fake, phy = rig
    fake.handlers["AT+FTS=9"] = "ERROR"
    with pytest.raises(PhyError):
        await phy.send_silence(0.09)


async def test_pty_closing_mid_page_raises_portgone(rig):
    fake, phy = rig
    fake.close_after_bytes = 3000
    with pytest.raises(PortGone):
        await asyncio.wait_for(phy.send_image(Modulation.V29_9600, bytes(range(1, 200)) * 200), 10)


async def test_hangup_twice_is_safe(rig):
    fake, phy = rig
    await phy.hangup()
    await phy.hangup()
    assert fake.commands.count("ATH0") == 1


async def test_ecm_block_roundtrip_through_fake_modem(rig):
    fake, phy = rig
    frames = [bytes([0xFF, 0x03, 0x06, n]) + bytes((n * 7 + i) & 0xFF for i in range(256)) for n in range(5)]
    frames.append(bytes([0xFF, 0x03, 0x86]))
    await phy.send_image_hdlc(Modulation.V17_9600, frames)
    code, wire = fake.images_from_dte[-1]
    assert code == 98
    fake.images_to_dte.append(wire)
    got = [f async for f in phy.receive_image_hdlc(Modulation.V17_9600, 3)]
    assert [f.data for f in got] == frames and all(f.fcs_ok for f in got)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=3, max_size=80), min_size=1, max_size=6), st.integers(1, 40))
def test_hdlc_encode_decode_any_chunking(frames, step):
    wire = class1_hdlc.encode(frames, preamble_flags=3)
    dec = class1_hdlc.Decoder()
    out = []
    for i in range(0, len(wire), step):
        out += dec.feed(wire[i:i + step])
    assert [f for f, ok in out if ok] == frames


def test_hdlc_decoder_flags_corrupted_frame():
    wire = bytearray(class1_hdlc.encode([bytes([0xFF, 0x03, 0x06, 1]) + bytes(range(64))], preamble_flags=2))
    wire[10] ^= 0x04
    out = class1_hdlc.Decoder().feed(bytes(wire))
    assert out and not any(ok for _, ok in out)


class _RecordingClock:
    def __init__(self):
        from engine.clock import MonotonicClock
        self._c = MonotonicClock()
        self.sleeps = []

    def now(self):
        return self._c.now()

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        await self._c.sleep(seconds)


async def test_tm_connect_delay_quirk_waits_before_data():
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        clock = _RecordingClock()
        phy = Class1Phy(ch, clock=clock, quirks=Quirks(tm_connect_delay=0.4))
        await phy.send_image(Modulation.V17_14400, bytes(100), long_training=True)
        assert 0.4 in clock.sleeps and fake.images_from_dte == [(145, bytes(100))]
        clock.sleeps.clear()
        await Class1Phy(ch, clock=clock, quirks=Quirks()).send_image(Modulation.V29_9600, bytes(10))
        assert 0.4 not in clock.sleeps
    finally:
        await ch.close()
        fake.close()


async def test_missing_fcs_firmware_quirk():
    """Old firmware passes frames without FCS (fcs_bytes=0): nothing is stripped."""
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        fake.hdlc_to_dte.append(("raw", b"\r\nCONNECT\r\n\xff\x13\x84\x10\x03\r\nOK\r\n"))
        frame = await Class1Phy(ch, quirks=Quirks(fcs_bytes=0)).receive_hdlc(3)
        assert frame.data == CFR and frame.fcs_ok
    finally:
        await ch.close()
        fake.close()


async def test_validate_v21_quirk_catches_modem_saying_ok_on_bad_frame():
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        fake.hdlc_to_dte.append(("raw", b"\r\nCONNECT\r\n\xff\x13\x84\x00\x00\x10\x03\r\nOK\r\n"))
        frame = await Class1Phy(ch, quirks=Quirks(validate_v21=True)).receive_hdlc(3)
        assert frame.data == CFR and not frame.fcs_ok
    finally:
        await ch.close()
        fake.close()


async def test_bit_reversed_firmware_frames_are_flipped():
    fake = FakeModem()
    ch = ATChannel(fake.path)
    await ch.open()
    try:
        rev = bytes(int(f"{b:08b}"[::-1], 2) for b in CFR)      # FF C8 21
        fake.hdlc_to_dte.append(("raw", b"\r\nCONNECT\r\n" + rev + fcs(CFR) + b"\x10\x03\r\nOK\r\n"))
        frame = await Class1Phy(ch).receive_hdlc(3)
        assert frame.data == CFR
    finally:
        await ch.close()
        fake.close()


async def test_rh_connect_bug_with_result_split_across_reads(rig):
    fake, phy = rig

    def frh(f, cmd):
        f.send(b"\r\nCONNECT\r\n\r\nNO CARR")
        asyncio.get_running_loop().call_later(0.2, f.send, b"IER\r\n")
        f.handlers.pop("AT+FRH=3")

    fake.handlers["AT+FRH=3"] = frh
    fake.hdlc_to_dte.append(CFR)
    frame = await phy.receive_hdlc(5)
    assert frame.data == CFR
