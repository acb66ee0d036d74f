"""FCF octets, DIS/DCS bit fields and identities, in Class 1 transmission order."""

import pytest

from engine.phy import Modulation
from engine.t30 import dis, ecm, fcf
from engine.t30.tcf import tcf_bytes, tcf_ok


def test_fcf_values_match_transmission_order():
    # Values as a Class 1 modem delivers them (spandsp's t30_fcf.h uses the same convention).
    assert (fcf.DIS, fcf.CSI, fcf.NSF, fcf.DTC, fcf.DCS, fcf.TSI) == (0x80, 0x40, 0x20, 0x81, 0x82, 0x42)
    assert (fcf.CFR, fcf.FTT, fcf.MCF, fcf.RTN, fcf.RTP, fcf.DCN, fcf.CRP) == (0x84, 0x44, 0x8C, 0x4C, 0xCC, 0xFA, 0x1A)
    assert (fcf.MPS, fcf.EOM, fcf.EOP, fcf.PPS, fcf.PPR, fcf.CTC, fcf.CTR) == (0x4E, 0x8E, 0x2E, 0xBE, 0xBC, 0x12, 0xC4)
    assert (fcf.EOR, fcf.ERR, fcf.RR, fcf.RNR, fcf.PIP, fcf.PIN) == (0xCE, 0x1C, 0x6E, 0xEC, 0xAC, 0x2C)


def test_x_bit_rules():
    assert fcf.build(fcf.DCS, b"\x00", x=True)[2] == 0x83
    assert fcf.build(fcf.EOP, x=True) == b"\xff\x13\x2f"
    assert fcf.build(fcf.DIS, b"\x00", x=True)[2] == 0x80      # identification group: no X bit
    assert fcf.build(fcf.TSI, final=False)[1] == 0x03
    frame = fcf.parse(b"\xff\x13\x83\x00\x46")
    assert frame.fcf == fcf.DCS and frame.x and frame.final
    assert fcf.parse(b"\xff\x13\x81").fcf == fcf.DTC            # DTC is not DIS with an X bit
    with pytest.raises(fcf.FrameError):
        fcf.parse(b"\xff\x07\x80")
    with pytest.raises(fcf.FrameError):
        fcf.parse(b"\xff")


@pytest.mark.parametrize("frame,fcs", [
    (b"\xff\x13\x8c", b"\xa2\xf1"), (b"\xff\x13\xfb", b"\x9a\xf6"), (b"\xff\x13\x84", b"\xea\x7d"),
    (b"\xff\x13\x2f", b"\x33\x66"), (b"\xff\x03\x86", b"\x69\xcb"),
])
def test_fcs_vectors(frame, fcs):
    assert fcf.crc16(frame).to_bytes(2, "little") == fcs


def test_dis_typical_octets_and_round_trip():
    caps = dis.Capabilities(v17=True, v29=True, v27ter=True, fine=True, mr=True, ecm=True, mmr=True,
                            superfine=True, scan_time_code=7)
    fif = caps.build()
    assert fif[1] == 0xEE           # bit 10 receive, V.27ter+V.29+V.17, fine, 2-D
    assert fif[2] & 0x70 == 0x70    # bits 21-23: 0 ms
    back = dis.Capabilities.parse(fif)
    assert back.v17 and back.v29 and back.v27ter and back.fine and back.superfine and back.mr and back.mmr
    assert back.ecm and back.ready_to_receive and back.scan_time_code == 7
    assert [m.bit_rate for m in back.modulations()] == [14400, 12000, 9600, 7200, 9600, 7200, 4800, 2400]
    # extension bits set exactly up to the last octet used
    assert all(dis.get_bit(fif, b) for b in (24, 32, 40)) and len(fif) == 6


def test_dis_rate_codes():
    v29_only = bytearray(3)
    dis.set_field(v29_only, 11, 4, 0b0001)
    caps = dis.Capabilities.parse(bytes(v29_only))
    assert caps.v29 and not caps.v17 and not caps.v27ter
    v27 = dis.Capabilities.parse(bytes(3))          # 0000: V.27 ter fallback mode only
    assert [m for m in v27.modulations()] == [Modulation.V27TER_2400]
    v33 = bytearray(3)
    dis.set_field(v33, 11, 4, 0b0111)               # 1110: V.27 ter + V.29 + V.33 (no V.17)
    assert not dis.Capabilities.parse(bytes(v33)).v17
    assert dis.Capabilities.parse(b"").modulations() == [Modulation.V27TER_2400]   # short DIS tolerated


@pytest.mark.parametrize("mod,code", [
    (Modulation.V17_14400, 0b1000), (Modulation.V17_12000, 0b1010), (Modulation.V17_9600, 0b1001),
    (Modulation.V17_7200, 0b1011), (Modulation.V29_9600, 0b0001), (Modulation.V29_7200, 0b0011),
    (Modulation.V27TER_4800, 0b0010), (Modulation.V27TER_2400, 0b0000)])
def test_dcs_rates(mod, code):
    p = dis.DcsParams(modulation=mod)
    fif = p.build()
    assert dis.get_field(fif, 11, 4) == code
    assert dis.DcsParams.parse(fif).modulation is mod


def test_dcs_round_trip_all_fields():
    p = dis.DcsParams(modulation=Modulation.V17_14400, resolution="superfine", compression="mmr", ecm=True,
                      ecm_frame_size=64, scan_time_ms=0)
    q = dis.DcsParams.parse(p.build())
    assert (q.resolution, q.compression, q.ecm, q.ecm_frame_size, q.width) == ("superfine", "mmr", True, 64, 1728)
    p = dis.DcsParams(modulation=Modulation.V29_9600, resolution="fine", compression="mr", scan_time_ms=10)
    q = dis.DcsParams.parse(p.build())
    assert (q.resolution, q.compression, q.ecm, q.scan_time_ms) == ("fine", "mr", False, 10)
    assert dis.get_bit(p.build(), 10)


def test_dcs_rejects_nonsense():
    bad = bytearray(3)
    dis.set_field(bad, 11, 4, 0b0100)
    with pytest.raises(ValueError):
        dis.DcsParams.parse(bytes(bad))


def test_min_scan_time_including_half_at_fine():
    def caps(code, half=False):
        return dis.Capabilities(scan_time_code=code, half_scan_time_superfine=half)
    assert [caps(c).scan_time_ms("standard") for c in range(8)] == [20, 5, 10, 20, 40, 40, 10, 0]
    assert [caps(c).scan_time_ms("fine") for c in range(8)] == [20, 5, 10, 10, 40, 20, 5, 0]
    assert caps(4, half=True).scan_time_ms("superfine") == 20
    assert caps(4).scan_time_ms("superfine") == 40
    assert [caps(c, half=True).scan_time_ms("superfine") for c in range(8)] == [10, 5, 5, 5, 20, 10, 5, 0]
    for c in range(8):       # every value is one a DCS can carry
        for res in ("standard", "fine", "superfine"):
            assert caps(c, half=True).scan_time_ms(res) in dis.SCAN_TIME_DCS_CODE


def test_ident_reversed_and_padded():
    fif = dis.encode_ident("+1 555 0100")
    assert len(fif) == 20 and fif.startswith(b"0010 555 1+")
    assert dis.decode_ident(fif) == "+1 555 0100"
    assert dis.decode_ident(b" " * 9 + b"0010 555 1+") == "+1 555 0100"   # other padding style
    assert dis.decode_ident(b"\x00\xff") == "??"


def test_ctc_field():
    dcs = dis.DcsParams(modulation=Modulation.V17_14400, resolution="fine").build()
    c = dis.ctc_fif(dcs, Modulation.V17_12000)
    assert c[0] == 0 and len(c) == 2 and dis.modulation_from_ctc(c) is Modulation.V17_12000


def test_ecm_helpers():
    blocks = ecm.split_blocks(bytes(256 * 300 + 10), 256)
    assert [len(b) for b in blocks] == [256, 45] and len(blocks[1][-1]) == 10
    bitmap = ecm.ppr_bitmap([0, 9, 255])
    assert len(bitmap) == 32 and bitmap[0] == 1 and bitmap[1] == 2 and bitmap[31] == 0x80
    assert ecm.frames_from_bitmap(bitmap, 256) == [0, 9, 255]
    assert ecm.pps_fif(fcf.MPS, 1, 2, 256, x=True) == bytes((0x4F, 1, 2, 255))
    assert ecm.pps_fif(fcf.PPS_NULL, 0, 0, 3, x=True) == bytes((0, 0, 0, 2))


def test_tcf_judgement():
    mod = Modulation.V29_9600
    good = tcf_bytes(mod)
    assert len(good) == 1800 and tcf_ok(good, mod)
    assert tcf_ok(b"\x55" * 100 + good[:1300], mod)        # leading garbage, a long clean run
    noisy = bytearray(good)
    for i in range(0, len(noisy), 300):
        noisy[i] = 0x10
    assert not tcf_ok(bytes(noisy), mod)
    assert not tcf_ok(b"", mod)


def test_our_dis_reflects_the_config():
    from engine.t30 import T30Config, T30Session

    def caps(**kw):
        s = T30Session(None, None, T30Config(**kw), calling=False)
        return dis.Capabilities.parse(s._local_capabilities().build())
    c = caps()
    assert c.v17 and c.ecm and c.mmr and c.mr and c.fine and c.superfine and c.scan_time_code == 7
    assert c.widths == (1728,) and c.unlimited_length and c.ready_to_receive and not c.ready_to_transmit
    c = caps(ecm=False, modems=("v29", "v27ter"), resolutions=("standard",), compressions=("mh",),
             min_scan_line_ms=20)
    assert not (c.v17 or c.ecm or c.mmr or c.mr or c.fine or c.superfine) and c.v29 and c.v27ter
    assert c.scan_time_code == 0 and c.scan_time_ms("standard") == 20
    assert caps(ecm_frame_size=64).prefers_64_octet


def test_config_validation():
    from engine.t30 import T30Config

    for bad in (dict(ecm_frame_size=128), dict(min_scan_line_ms=7), dict(modems=("v34",)), dict(modems=()),
                dict(resolutions=("fine",)), dict(compressions=("jbig",)), dict(max_speed=1200)):
        with pytest.raises(ValueError):
            T30Config(**bad).validate()
