"""T38Phy: the PHY contract as IFP packets, in virtual time; then against spandsp over real UDP."""

from __future__ import annotations

import asyncio

import pytest
from t38_harness import Lockstep, SpandspPeer, VirtualClock

from engine.phy import HdlcFrame, Modulation, WrongCarrier
from t38.ifp import DataType, Field, FieldType, IfpPacket, Indicator, decode, encode
from t38.phy import T38Phy, T38PhyOptions, bit_reverse, open_t38_udptl
from t38.udptl import UdptlConfig

DIS_FRAME = bytes.fromhex("ff1380" "00eef880809180808018")   # DIS as a Class 1 modem delivers it
CSI_FRAME = bytes.fromhex("ff0340") + b" 0010 555 1+".ljust(20)


class MemoryTransport:
    """Records what a T38Phy sends (with clock time) and optionally hands it to a peer phy."""

    def __init__(self, clock: VirtualClock, version: int = 0) -> None:
        self.clock = clock
        self.version = version
        self.sent: list[tuple[float, IfpPacket, int]] = []
        self.peer: T38Phy | None = None
        self.seq = 0
        self.closed = False

    def send(self, ifp: bytes, copies: int = 1) -> None:
        self.sent.append((self.clock.now(), decode(ifp, self.version), copies))
        if self.peer is not None:
            self.peer.feed_ifp(self.seq, ifp)
        self.seq += 1

    def max_ifp(self) -> int:
        return 300

    def close(self) -> None:
        self.closed = True


async def drive(clock: VirtualClock, *coros, step: float = 0.005, limit: float = 120.0):
    """Run coroutines to completion, advancing virtual time whenever they are all waiting."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    while not all(t.done() for t in tasks):
        for _ in range(5):
            await asyncio.sleep(0)
        if clock.now() > limit:
            for t in tasks:
                t.cancel()
            raise AssertionError("virtual time limit reached")
        clock.advance(step)
    return [t.result() for t in tasks]


def make_phy(clock, **opts) -> tuple[T38Phy, MemoryTransport]:
    options = T38PhyOptions(**opts)
    transport = MemoryTransport(clock, options.version)
    return T38Phy(transport, clock, options), transport


def feed(phy: T38Phy, *packets: IfpPacket, version: int = 0) -> None:
    for p in packets:
        phy.feed_ifp(0, encode(p, version))


def hdlc_packets(frame_wire: bytes, dt=DataType.V21, status=FieldType.HDLC_FCS_OK_SIG_END):
    return [IfpPacket.data(dt, Field(FieldType.HDLC_DATA, frame_wire)), IfpPacket.data(dt, Field(status))]


# ------------------------------------------------------------------ transmit side

def test_send_hdlc_maps_to_preamble_data_fcs_and_is_paced():
    async def main():
        clock = VirtualClock()
        phy, tx = make_phy(clock, calling=True)
        await drive(clock, phy.send_hdlc([CSI_FRAME, DIS_FRAME]))
        return clock, tx

    clock, tx = asyncio.run(main())
    kinds = [p for _, p, _ in tx.sent]
    assert kinds[0] == IfpPacket.ind(Indicator.NO_SIGNAL) and kinds[1] == IfpPacket.ind(Indicator.CNG)
    assert kinds[2] == IfpPacket.ind(Indicator.V21_PREAMBLE)
    assert kinds[-1] == IfpPacket.ind(Indicator.NO_SIGNAL)
    data = [p for p in kinds if p.data_type == DataType.V21]
    # bits reversed on the wire (T.38 is MSB first): DIS control/FCF 13 80 travel as c8 01
    wire = b"".join(f.data for p in data for f in p.fields if f.data)
    assert wire == bit_reverse(CSI_FRAME + DIS_FRAME) and wire[len(CSI_FRAME):][:3] == bytes.fromhex("ffc801")
    statuses = [f.type for p in data for f in p.fields if f.data is None]
    assert statuses == [FieldType.HDLC_FCS_OK, FieldType.HDLC_FCS_OK_SIG_END]
    # a data-less field is always last in its packet (the form every decoder agrees on)
    assert all(f.data is not None for p in data for f in p.fields[:-1])
    # pacing: one octet per packet at 300 bit/s, after a 1 s preamble; the burst lasts as long as on a line
    times = [t for t, p, _ in tx.sent if p.data_type == DataType.V21]
    assert times[0] >= 1.0
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 8 / 300 - 0.006                  # the drive loop ticks in 5 ms steps
    assert clock.now() >= 1.0 + 8 * len(wire) / 300
    # the end of the burst is sent three times
    assert [c for _, p, c in tx.sent if any(f.type == FieldType.HDLC_FCS_OK_SIG_END for f in p.fields)] == [3]


def test_send_image_paced_chunks_at_bit_rate():
    page = bytes(range(256)) * 40                  # 10240 octets = 5.69 s at 14400 bit/s

    async def main():
        clock = VirtualClock()
        phy, tx = make_phy(clock, calling=True)
        phy._started = True
        await drive(clock, phy.send_image(Modulation.V17_14400, page))
        return clock, tx

    clock, tx = asyncio.run(main())
    assert tx.sent[0][1] == IfpPacket.ind(Indicator.V17_14400_SHORT_TRAINING)
    chunks = [(t, p.fields[0].data) for t, p, _ in tx.sent
              if p.fields and p.fields[0].type == FieldType.T4_NON_ECM_DATA]
    assert all(len(d) == 54 for _, d in chunks[:-1]) and 0 < len(chunks[-1][1]) <= 54   # 30 ms at 14400
    got = b"".join(d for _, d in chunks)
    assert got[:len(page)] == bit_reverse(page) and not any(got[len(page):])
    span = chunks[-1][0] - chunks[0][0]
    assert span == pytest.approx(8 * (len(got) - len(chunks[-1][1])) / 14400, abs=0.01)   # paced, not a burst
    assert [p.fields[0].type for _, p, _ in tx.sent[-2:-1]] == [FieldType.T4_NON_ECM_SIG_END]
    assert tx.sent[-1][1] == IfpPacket.ind(Indicator.NO_SIGNAL)


def test_long_training_and_local_tcf_sends_no_data():
    async def main(mode):
        clock = VirtualClock()
        phy, tx = make_phy(clock, rate_management=mode)
        phy._started = True
        await drive(clock, phy.send_image(Modulation.V17_9600, bytes(1800), long_training=True))
        return clock.now(), tx

    t, tx = asyncio.run(main("localTCF"))
    assert [p for _, p, _ in tx.sent] == [IfpPacket.ind(Indicator.V17_9600_LONG_TRAINING),
                                          IfpPacket.ind(Indicator.NO_SIGNAL)]
    assert t == pytest.approx(1.393 + 1.5, abs=0.02)
    t, tx = asyncio.run(main("transferredTCF"))
    assert sum(len(p.fields[0].data or b"") for _, p, _ in tx.sent if p.fields) >= 1800


def test_answering_side_sends_ced_first():
    async def main():
        clock = VirtualClock()
        phy, tx = make_phy(clock, calling=False)
        await drive(clock, phy.send_hdlc([DIS_FRAME]))
        return tx

    tx = asyncio.run(main())
    inds = [(round(t, 2), p.indicator) for t, p, _ in tx.sent if p.indicator is not None]
    assert inds[:4] == [(0.0, Indicator.NO_SIGNAL), (0.2, Indicator.CED), (3.2, Indicator.NO_SIGNAL),
                        (3.2, Indicator.V21_PREAMBLE)]


def test_ecm_frames_as_hdlc_at_high_speed():
    frames = [bytes.fromhex("ff0306") + bytes([i]) + bytes(range(256)) for i in range(3)]

    async def main():
        clock = VirtualClock()
        phy, tx = make_phy(clock, version=3)
        phy._started = True
        await drive(clock, phy.send_image_hdlc(Modulation.V29_9600, frames))
        return tx

    tx = asyncio.run(main())
    assert tx.sent[0][1] == IfpPacket.ind(Indicator.V29_9600_TRAINING)
    data = [p for _, p, _ in tx.sent if p.data_type == DataType.V29_9600]
    assert b"".join(f.data for p in data for f in p.fields if f.data) == bit_reverse(b"".join(frames))
    assert [f.type for p in data for f in p.fields if f.data is None] == \
        [FieldType.HDLC_FCS_OK, FieldType.HDLC_FCS_OK, FieldType.HDLC_FCS_OK_SIG_END]


# ------------------------------------------------------------------ receive side

def test_receive_frames_fcs_status_and_loss():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        feed(phy, IfpPacket.ind(Indicator.V21_PREAMBLE))
        feed(phy, *hdlc_packets(bit_reverse(CSI_FRAME), status=FieldType.HDLC_FCS_OK))
        feed(phy, *hdlc_packets(bit_reverse(DIS_FRAME), status=FieldType.HDLC_FCS_BAD))
        feed(phy, IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, bit_reverse(DIS_FRAME[:5]))))
        phy.feed_ifp(9, None)                                             # a lost packet inside the frame
        feed(phy, IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, bit_reverse(DIS_FRAME[7:])),
                                 Field(FieldType.HDLC_FCS_OK_SIG_END)))
        got = [await phy.receive_hdlc(1.0) for _ in range(3)]
        return got + await drive(clock, phy.receive_hdlc(1.0))

    a, b, c, d = asyncio.run(main())
    assert a == HdlcFrame(CSI_FRAME, True)
    assert b == HdlcFrame(DIS_FRAME, False)
    assert c == HdlcFrame(DIS_FRAME[:5] + DIS_FRAME[7:], False)        # reported bad, never silently good
    assert d is None


def test_receive_tolerates_spandsp_multifield_and_missing_indicators():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock, version=3)
        phy._started = True
        # no v21-preamble at all, and spandsp's octet-aligned [fcs-OK, sig-end]
        feed(phy, IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, bit_reverse(DIS_FRAME))), version=3)
        phy.feed_ifp(1, bytes.fromhex("c0021008"))
        return await phy.receive_hdlc(1.0), phy._rx_carrier

    frame, carrier = asyncio.run(main())
    assert frame == HdlcFrame(DIS_FRAME, True) and carrier is None


def test_receive_image_until_sig_end_without_no_signal():
    page = bytes(range(200))

    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        feed(phy, IfpPacket.ind(Indicator.V27TER_4800_TRAINING))
        for i in range(0, 200, 50):
            chunk = Field(FieldType.T4_NON_ECM_DATA, bit_reverse(page[i:i + 50]))
            feed(phy, IfpPacket.data(DataType.V27TER_4800, chunk))
        feed(phy, IfpPacket.data(DataType.V27TER_4800, Field(FieldType.T4_NON_ECM_SIG_END)))
        feed(phy, IfpPacket.data(DataType.V27TER_4800, Field(FieldType.T4_NON_ECM_SIG_END)))   # repeat, new seq
        feed(phy, IfpPacket.ind(Indicator.V21_PREAMBLE), *hdlc_packets(bit_reverse(DIS_FRAME)))
        got = b"".join([c async for c in phy.receive_image(Modulation.V27TER_4800, 5.0)])
        return got, await phy.receive_hdlc(1.0)

    got, frame = asyncio.run(main())
    assert got == page and frame == HdlcFrame(DIS_FRAME, True)


def test_receive_image_wrong_carrier_keeps_frame_and_timeout():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        feed(phy, IfpPacket.ind(Indicator.V21_PREAMBLE), *hdlc_packets(bit_reverse(DIS_FRAME)))
        with pytest.raises(WrongCarrier):
            async for _ in phy.receive_image(Modulation.V17_14400, 5.0):
                pass
        frame = await phy.receive_hdlc(1.0)
        agen = phy.receive_image_hdlc(Modulation.V17_14400, 2.0)
        t0 = clock.now()
        with pytest.raises(TimeoutError):
            await drive(clock, agen.__anext__())
        return frame, clock.now() - t0

    frame, waited = asyncio.run(main())
    assert frame == HdlcFrame(DIS_FRAME, True) and waited == pytest.approx(2.0, abs=0.02)


def test_receive_hdlc_timeout_is_clock_time():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        t0 = clock.now()
        frame, = await drive(clock, phy.receive_hdlc(3.0))
        return frame, clock.now() - t0

    frame, waited = asyncio.run(main())
    assert frame is None and waited == pytest.approx(3.0, abs=0.02)


def test_local_tcf_receiver_gets_zeros_for_a_dataless_training():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock, rate_management="localTCF")
        phy._started = True
        feed(phy, IfpPacket.ind(Indicator.V17_14400_LONG_TRAINING), IfpPacket.ind(Indicator.NO_SIGNAL))
        return b"".join([c async for c in phy.receive_image(Modulation.V17_14400, 5.0)])

    got = asyncio.run(main())
    assert got == bytes(2700)


def test_phy_pair_in_memory_ecm_roundtrip():
    frames = [bytes.fromhex("ff0306") + bytes([i]) + bytes(range(i, i + 64)) for i in range(5)]

    async def main():
        clock = VirtualClock()
        a, ta = make_phy(clock, calling=True, version=3)
        b, tb = make_phy(clock, calling=False, version=3)
        ta.peer, tb.peer = b, a
        a._started = b._started = True

        async def receiver():
            return [f async for f in b.receive_image_hdlc(Modulation.V17_12000, 10.0)]

        _, got = await drive(clock, a.send_image_hdlc(Modulation.V17_12000, frames), receiver())
        await a.hangup()
        await a.hangup()
        return got, ta.closed

    got, closed = asyncio.run(main())
    assert got == [HdlcFrame(f, True) for f in frames] and closed


# ------------------------------------------------------------------ against spandsp over UDP

@pytest.mark.timeout(60)
@pytest.mark.parametrize("ecm", [False, True])
def test_answering_t38phy_receives_spandsp_dcs_tcf_and_page(tmp_path, ecm):
    """Our PHY answers with a hand-built DIS; spandsp sends TSI/DCS, TCF and one page; we say MCF."""
    from modem.spandsp.testing import make_fax_tiff

    tiff = tmp_path / "tx.tif"
    make_fax_tiff(tiff, pages=1, height=300)

    async def main():
        clock = VirtualClock()
        net = Lockstep(clock)
        peer = SpandspPeer(net, True, tx_tiff=str(tiff), ecm=ecm, ident="SPANDSP")
        addr = await peer.start()
        phy = await open_t38_udptl(clock, T38PhyOptions(calling=False), remote=addr,
                                   udptl_config=UdptlConfig())
        peer.endpoint.remote = phy.transport.local_address
        net.endpoints.append(phy.transport)
        log: list[str] = []

        async def answer():
            dis = bytearray(DIS_FRAME)
            if ecm:
                dis[6] |= 0x04          # DIS bit 27: ECM (FIF octet 4, bit 3)
            await phy.send_hdlc([CSI_FRAME, bytes(dis)])
            frames = []
            while not frames or frames[-1].data[1] != 0x13:
                f = await phy.receive_hdlc(10.0)
                assert f is not None, "no DCS"
                frames.append(f)
            log.append(" ".join(f.data[:3].hex() for f in frames))
            tcf = b"".join([c async for c in phy.receive_image(Modulation.V17_14400, 5.0)])
            log.append(f"tcf {len(tcf)} {sum(1 for b in tcf if b)}")
            await phy.send_silence(0.075)
            await phy.send_hdlc([bytes.fromhex("ff1384")])                      # CFR
            if ecm:
                fcd = [f async for f in phy.receive_image_hdlc(Modulation.V17_14400, 10.0)]
                log.append(f"ecm {len(fcd)} {all(f.fcs_ok for f in fcd)} {fcd[-1].data[2]:02x}")
            else:
                page = b"".join([c async for c in phy.receive_image(Modulation.V17_14400, 10.0)])
                log.append(f"page {len(page)}")
            ppm = await phy.receive_hdlc(10.0)
            log.append(f"ppm {ppm.data.hex()}")
            await phy.send_silence(0.075)
            await phy.send_hdlc([bytes.fromhex("ff138c")])                      # MCF
            dcn = await phy.receive_hdlc(10.0)
            log.append(f"dcn {dcn.data.hex()}")
            await phy.hangup()

        task = asyncio.ensure_future(answer())
        ok = await net.run(lambda: task.done() and peer.terminal.done, 120.0)
        stats = peer.terminal.stats()
        peer.close()
        if task.done():
            task.result()
        return ok, log, stats

    ok, log, stats = asyncio.run(main())
    assert ok, log
    assert log[0].endswith("ff1383") or log[0].endswith("ff1382")           # ... DCS, final
    tcf_len, tcf_ones = map(int, log[1].split()[1:])
    assert tcf_len >= 2700 * 0.95 and tcf_ones == 0                          # 1.5 s of zeros at 14400
    if ecm:
        n, all_ok, last = log[2].split()[1:]
        assert int(n) >= 4 and all_ok == "True" and last == "86"             # FCDs then RCP (reversed 0x61)
        assert log[3].startswith("ppm ff13") and log[3][8:10] == "bf"        # PPS (X bit: from the caller)
    else:
        assert int(log[2].split()[1]) > 500
        assert log[3] == "ppm ff132f"                                        # EOP (with the X bit)
    assert log[4] == "dcn ff13fb"
    assert stats["completion_code"] == 0 and stats["pages_tx"] == 1


def test_repeated_indicator_mid_frame_does_not_break_the_frame():
    async def main():
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        wire = bit_reverse(DIS_FRAME)
        feed(phy, IfpPacket.ind(Indicator.V21_PREAMBLE),
             IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, wire[:4])),
             IfpPacket.ind(Indicator.V21_PREAMBLE),          # a late copy with a new sequence number
             IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, wire[4:]), Field(FieldType.HDLC_FCS_OK_SIG_END)))
        return await phy.receive_hdlc(1.0)

    assert asyncio.run(main()) == HdlcFrame(DIS_FRAME, True)


def test_caller_repeats_cng_until_it_hears_something():
    async def main():
        clock = VirtualClock()
        phy, tx = make_phy(clock, calling=True)
        frame, = await drive(clock, phy.receive_hdlc(10.0))
        cngs = [round(t, 1) for t, p, _ in tx.sent if p.indicator == Indicator.CNG]
        feed(phy, IfpPacket.ind(Indicator.CED))
        await drive(clock, phy.receive_hdlc(10.0))
        return frame, cngs, sum(1 for _, p, _ in tx.sent if p.indicator == Indicator.CNG)

    frame, cngs, total = asyncio.run(main())
    assert frame is None and cngs == [0.0, 3.5, 7.0]
    assert total == 3                                     # nothing more once the far end is heard


def test_hdlc_stuffing_count():
    from t38.phy import _stuffing_bits
    assert _stuffing_bits(b"\xff") == 1 and _stuffing_bits(b"\xff\xff") == 3
    assert _stuffing_bits(b"\x1f\x00") == 1 and _stuffing_bits(b"\xf0\x01") == 1
    assert _stuffing_bits(b"\x0f\x01") == 0 and _stuffing_bits(b"\x00\x7e") == 1
    assert _stuffing_bits(b"\x55" * 10) == 0


def _csi_dis_burst(octets_per_packet: int) -> tuple[list[IfpPacket], list[set[int]]]:
    """CSI + DIS as spandsp sends them (one octet per IFP at V.21) or packed; also which packet
    indices carry each frame's octets or its FCS status."""
    packets = [IfpPacket.ind(Indicator.V21_PREAMBLE)]
    owners: list[set[int]] = []
    for frame, status in ((CSI_FRAME, FieldType.HDLC_FCS_OK), (DIS_FRAME, FieldType.HDLC_FCS_OK_SIG_END)):
        wire = bit_reverse(frame)
        mine = set()
        for start in range(0, len(wire), octets_per_packet):
            mine.add(len(packets))
            chunk = wire[start:start + octets_per_packet]
            packets.append(IfpPacket.data(DataType.V21, Field(FieldType.HDLC_DATA, chunk)))
        mine.add(len(packets))
        packets.append(IfpPacket.data(DataType.V21, Field(status)))
        owners.append(mine)
    packets.append(IfpPacket.ind(Indicator.NO_SIGNAL))
    return packets, owners


@pytest.mark.parametrize("octets_per_packet", [1, 4])
def test_one_lost_packet_spoils_only_the_frame_it_belonged_to(octets_per_packet):
    """Every single-packet loss of a CSI+DIS burst, in turn: a frame none of whose data packets was
    lost still arrives good (a lost indicator or a lost FCS status between frames must not spoil
    the next frame), and a frame that lost a data packet is never reported good."""
    packets, (csi_packets, dis_packets) = _csi_dis_burst(octets_per_packet)

    async def run(lost: int):
        clock = VirtualClock()
        phy, _ = make_phy(clock)
        phy._started = True
        feed(phy, IfpPacket.ind(Indicator.NO_SIGNAL))     # the quiet line before the burst
        for i, p in enumerate(packets):
            phy.feed_ifp(i + 1, None if i == lost else encode(p, 0))
        frames = []
        while (f := await phy.receive_hdlc(0.0 if frames else 1.0)) is not None:
            frames.append(f)
        return frames

    for lost in range(len(packets)):
        frames = asyncio.run(run(lost))
        good = [f.data for f in frames if f.fcs_ok]
        assert all(g in (CSI_FRAME, DIS_FRAME) for g in good), (lost, frames)
        dis_data_lost = lost in dis_packets and lost != max(dis_packets)    # max: the FCS status
        csi_data_lost = lost in csi_packets and lost != max(csi_packets)
        assert (DIS_FRAME in good) == (not dis_data_lost and lost != max(dis_packets)), (lost, frames)
        assert (CSI_FRAME in good) == (not csi_data_lost and lost != max(csi_packets)), (lost, frames)
