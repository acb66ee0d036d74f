"""T.30 driven frame by frame: the test plays the far end over the fake PHY, in virtual time."""

import asyncio

import numpy as np
import pytest
from t30_fakephy import phy_pair, run_virtual

from engine.phy import Modulation, PhyError
from engine.t30 import T30Config, T30Session, dis, ecm, fcf
from imaging import codec
from imaging.page import FaxPage

V17 = Modulation.V17_14400


def page(rows=120, seed=1, y_dpi=196, noise=0.0):
    rng = np.random.default_rng(seed)
    px = rng.random((rows, 1728)) < noise
    for _ in range(30):
        r, c = rng.integers(0, rows - 5), rng.integers(0, 1700)
        px[r:r + 4, c:c + rng.integers(2, 20)] = True
    return FaxPage(pixels=px, y_dpi=y_dpi)


class Far:
    """The scripted remote station."""

    def __init__(self, phy, x):
        self.phy = phy
        self.x = x

    async def burst(self, timeout=20.0):
        out = []
        while True:
            try:
                hf = await self.phy.receive_hdlc(timeout if not out else 3.0)
            except PhyError:
                return out
            if hf is None:
                return out
            f = fcf.parse(hf.data)
            out.append(f)
            if f.final:
                return out

    async def expect(self, code, timeout=20.0):
        frames = await self.burst(timeout)
        assert frames, f"expected {fcf.NAMES[code]}, got nothing"
        assert frames[-1].fcf == code, f"expected {fcf.NAMES[code]}, got {frames}"
        return frames[-1]

    async def send(self, code, fif=b"", pre=()):
        await self.phy.send_silence(0.075)
        await self.phy.send_hdlc([*pre, fcf.build(code, fif, x=self.x)])

    async def send_dis(self, **caps):
        c = dis.Capabilities(**{"ecm": True, "mmr": True, **caps})
        await self.send(fcf.DIS, c.build(), pre=[fcf.build(fcf.CSI, dis.encode_ident("FAR END"), final=False)])

    async def image(self, mod, timeout=20.0):
        data = bytearray()
        async for chunk in self.phy.receive_image(mod, timeout):
            data += chunk
        return bytes(data)

    async def ecm_burst(self, mod, timeout=20.0):
        return [hf.data async for hf in self.phy.receive_image_hdlc(mod, timeout)]


def run_pair(our_side, far_script, *, limit=3600.0):
    """Run our session and the far-end script together; returns (result, far_return, our_phy, far_phy)."""
    async def main():
        a, b = phy_pair()
        session = our_side(a)
        far_task = asyncio.ensure_future(far_script(Far(b, x=not session.calling), session))
        result = await session.run()
        try:
            far_ret = await asyncio.wait_for(far_task, 120)
        except (TimeoutError, asyncio.CancelledError):
            far_ret = None
        return result, far_ret, a, b
    return run_virtual(main(), limit=limit)


def sender(pages=None, **cfg):
    pages = pages if pages is not None else [page()]
    return lambda phy: T30Session(phy, phy.clock, T30Config(ident="OURS", **cfg), send_pages=pages, calling=True)


def receiver(got=None, **cfg):
    def make(phy):
        return T30Session(phy, phy.clock, T30Config(ident="OURS", **cfg), calling=False,
                          on_page=(lambda p, bad: got.append((p, bad))) if got is not None else None)
    return make


async def train(far, expect_mod=V17):
    """Far end as receiver: take TSI/DCS and TCF, answer CFR; returns the DCS parameters."""
    dcs_frame = await far.expect(fcf.DCS)
    params = dis.DcsParams.parse(dcs_frame.fif)
    assert params.modulation is expect_mod
    tcf = await far.image(params.modulation)
    assert len(tcf) == expect_mod.bit_rate * 3 // 16 and not any(tcf)
    await far.send(fcf.CFR)
    return params


# ----------------------------------------------------------------------------- our sender


def test_sender_happy_path_frame_by_frame():
    async def far_script(far, s):
        await far.send(fcf.NSF, b"\x00\x00\x0e\x01\x02\x03garbage", pre=[])  # a lone NSF: ignored
        c = dis.Capabilities(ecm=False)
        await far.send(fcf.DIS, c.build(), pre=[fcf.build(fcf.NSF, b"\xb5\x00\x51" + bytes(range(40)), final=False),
                                               fcf.build(fcf.CSI, dis.encode_ident("FAR END"), final=False)])
        dcs = await train(far)
        assert (dcs.resolution, dcs.compression, dcs.ecm) == ("fine", "mr", False)
        data = await far.image(V17)
        decoded = codec.decode(data, codec.Compression.MR, 1728, lsb_first=True)
        assert decoded.bad_rows == 0 and np.array_equal(decoded.pixels, s.send_pages[0].pixels)
        ppm = await far.expect(fcf.EOP)
        assert ppm.x
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return True

    result, far_ok, a, _ = run_pair(sender(), far_script)
    assert far_ok and result.success and result.pages_sent == 1 and result.remote_ident == "FAR END"
    first = fcf.parse(a.sent_frames()[0])
    assert first.fcf == fcf.TSI and first.x and dis.decode_ident(first.fif) == "OURS"
    image = [p for _, k, p in a.sent if k == "image"]
    assert image[0][2] is True and image[1][2] is False   # TCF long training, page short training


@pytest.mark.parametrize("unlimited", [False, True])
def test_legal_page_fits_an_a4_only_receiver(unlimited):
    """DIS without "unlimited length": a Legal page (2744 fine rows) arrives at A4 length (2292 rows),
    top and bottom rows kept; a receiver with unlimited length gets it whole."""
    legal = page(rows=2744, seed=7)
    legal.pixels[0, :100] = True
    legal.pixels[-1, -100:] = True

    async def far_script(far, s):
        await far.send_dis(ecm=False, unlimited_length=unlimited)
        dcs = await train(far)
        assert dcs.unlimited_length is unlimited
        decoded = codec.decode(await far.image(V17), codec.Compression.MR, 1728, lsb_first=True)
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return decoded

    result, decoded, _, _ = run_pair(sender([legal]), far_script)
    assert result.success and decoded.bad_rows == 0
    if unlimited:
        assert np.array_equal(decoded.pixels, legal.pixels)
    else:
        assert decoded.rows == 2292
        assert np.array_equal(decoded.pixels[0], legal.pixels[0])
        assert np.array_equal(decoded.pixels[-1], legal.pixels[-1])


def test_sender_ftt_then_fallback():
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        rates = []
        for _ in range(5):
            d = dis.DcsParams.parse((await far.expect(fcf.DCS)).fif)
            rates.append(d.modulation)
            await far.image(d.modulation)
            if len(rates) < 5:
                await far.send(fcf.FTT)
        await far.send(fcf.CFR)
        await far.image(rates[-1])
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return rates

    result, rates, *_ = run_pair(sender(), far_script)
    assert rates == [Modulation.V17_14400, Modulation.V17_12000, Modulation.V17_9600, Modulation.V17_7200,
                     Modulation.V29_9600]
    assert result.success and result.fax_speed == 9600 and result.modulation == "V29_9600"


def test_sender_training_exhausted():
    async def far_script(far, s):
        await far.send_dis(v17=False, v29=False, ecm=False)
        for _ in range(2):
            d = dis.DcsParams.parse((await far.expect(fcf.DCS)).fif)
            await far.image(d.modulation)
            await far.send(fcf.FTT)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), far_script)
    assert ok and not result.success
    assert (result.error_phase, result.error_code) == ("B", "training_failed")
    assert result.error_message == "training failed at 2400 bit/s" and result.retryable


def test_sender_rtn_retrains_and_resends_the_page():
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        await train(far)
        first = await far.image(V17)
        await far.expect(fcf.EOP)
        await far.send(fcf.RTN)
        await train(far, Modulation.V17_12000)      # retrain one step down
        again = await far.image(Modulation.V17_12000)
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return first, again

    result, (first, again), *_ = run_pair(sender(), far_script)
    assert result.success and result.pages_sent == 1
    assert codec.decode(first, codec.Compression.MR, 1728, lsb_first=True).rows == \
        codec.decode(again, codec.Compression.MR, 1728, lsb_first=True).rows


def test_sender_gives_up_after_repeated_rtn():
    async def far_script(far, s):
        await far.send_dis(ecm=False, v17=False, v29=False)
        mod = Modulation.V27TER_4800
        for _ in range(3):
            await train(far, mod)
            await far.image(mod)
            await far.expect(fcf.EOP)
            await far.send(fcf.RTN)
            mod = Modulation.V27TER_2400
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), far_script)
    assert ok and not result.success and result.error_code == "page_rejected"
    assert "page 1 rejected" in result.error_message


def test_sender_rtp_and_pip_count_as_delivered():
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        await train(far)
        await far.image(V17)
        await far.expect(fcf.MPS)
        await far.send(fcf.RTP)                    # kept, but retrain before the next page
        await train(far)
        await far.image(V17)
        await far.expect(fcf.MPS)
        await far.send(fcf.PIP)
        await far.image(V17)
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender([page(seed=i) for i in range(3)]), far_script)
    assert ok and result.success and result.pages_sent == 3


def test_peer_never_answers_t1():
    async def far_script(far, s):
        return await far.burst(timeout=100.0)

    result, frames, *_ = run_pair(sender(), far_script)
    assert not result.success and result.error_phase == "B" and result.error_code == "no_response"
    assert "T1" in result.error_message and result.retryable
    assert 35.0 <= result.duration < 40.0
    assert [f.fcf for f in frames] == [fcf.DCN]


def test_no_response_to_dcs_after_three_tries():
    async def far_script(far, s):
        await far.send_dis()
        got = []
        while True:
            frames = await far.burst(timeout=30.0)
            if not frames:
                return got
            got.append(frames[-1].fcf)

    result, got, *_ = run_pair(sender(), far_script)
    assert got == [fcf.DCS] * 3 + [fcf.DCN]
    assert result.error_message == "no response to DCS after 3 tries" and result.error_phase == "B"


def test_no_response_to_mps_after_three_tries():
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        await train(far)
        await far.image(V17)
        times, got = [], []
        while True:
            frames = await far.burst(timeout=30.0)
            if not frames:
                return got, times
            got.append(frames[-1].fcf)
            times.append(far.phy.clock.now())

    result, (got, times), *_ = run_pair(sender([page(), page(seed=2)]), far_script)
    assert got == [fcf.MPS] * 3 + [fcf.DCN]
    assert all(3.0 <= b - a < 5.0 for a, b in zip(times[:2], times[1:3], strict=True))   # T4 apart
    assert result.error_message == "no response to MPS after 3 tries"
    assert (result.error_phase, result.error_code, result.pages_sent) == ("D", "no_response", 0)


def test_sender_repeats_command_on_crp_and_ignores_garbage():
    async def far_script(far, s):
        await far.phy.send_hdlc([b"\x13\x37"])                       # garbage
        far.phy.impair = lambda ev: [(ev[0], ev[1], False)] if ev[0] == "hdlc" else [ev]
        await far.send_dis()                                         # bad FCS: must be ignored
        far.phy.impair = None
        await far.send_dis(ecm=False)
        await train(far)
        await far.image(V17)
        await far.expect(fcf.EOP)
        await far.send(fcf.CRP)
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), far_script)
    assert ok and result.success


def test_remote_dcn_in_phase_b_and_no_receive_capability():
    async def dcn_script(far, s):
        await far.send_dis()
        await far.expect(fcf.DCS)
        await far.send(fcf.DCN)

    result, *_ = run_pair(sender(), dcn_script)
    assert result.error_message == "remote disconnected in phase B" and result.error_code == "remote_disconnected"

    async def cannot_receive(far, s):
        await far.send_dis(ready_to_receive=False)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), cannot_receive)
    assert ok and result.error_code == "incompatible" and not result.retryable


def test_bad_page_width_is_a_clear_error():
    narrow = FaxPage(pixels=np.zeros((10, 1000), dtype=bool), y_dpi=98)

    async def far_script(far, s):
        return await far.burst(timeout=5.0)

    result, frames, *_ = run_pair(sender([narrow]), far_script)
    assert not result.success and result.error_code == "bad_document" and "1728" in result.error_message
    assert not result.retryable and [f.fcf for f in frames] == [fcf.DCN]


# ----------------------------------------------------------------------------- ECM sender


def test_ppr_retransmits_only_the_flagged_frames():
    big = page(rows=100, seed=9, noise=0.05)

    async def far_script(far, s):
        await far.send_dis()
        dcs = await train(far)
        assert dcs.ecm and dcs.compression == "mmr" and dcs.ecm_frame_size == 256
        frames = await far.ecm_burst(V17)
        fcd = {f[3]: f[4:] for f in frames if f[2] == fcf.FCD}
        assert [f[2] for f in frames[-3:]] == [fcf.RCP] * 3
        pps = await far.expect(fcf.PPS)
        n = pps.fif[3] + 1
        assert pps.fif[0] == fcf.EOP | 1 and n == len(fcd) >= 3
        await far.send(fcf.PPR, ecm.ppr_bitmap([0, 2]))
        again = await far.ecm_burst(V17)
        resent = [f[3] for f in again if f[2] == fcf.FCD]
        pps2 = await far.expect(fcf.PPS)
        assert pps2.fif == pps.fif
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        data = b"".join(fcd[i] for i in range(n))
        return resent, data

    result, (resent, data), *_ = run_pair(sender([big]), far_script)
    assert resent == [0, 2] and result.success and result.ecm
    decoded = codec.decode(data, codec.Compression.MMR, 1728, lsb_first=True)
    assert np.array_equal(decoded.pixels, big.pixels)


def test_ctc_after_the_fourth_ppr():
    async def far_script(far, s):
        await far.send_dis()
        await train(far)
        await far.ecm_burst(V17)
        for _ in range(4):
            await far.expect(fcf.PPS)
            await far.send(fcf.PPR, ecm.ppr_bitmap([1]))
            burst = await far.ecm_burst(V17) if _ < 3 else None
            if burst is not None:
                assert [f[3] for f in burst if f[2] == fcf.FCD] == [1]
        ctc = await far.expect(fcf.CTC)
        new_mod = dis.modulation_from_ctc(ctc.fif)
        await far.send(fcf.CTR)
        burst = await far.ecm_burst(new_mod)
        await far.expect(fcf.PPS)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return new_mod, [f[3] for f in burst if f[2] == fcf.FCD]

    result, (new_mod, resent), a, _ = run_pair(sender([page(rows=60, noise=0.05)]), far_script)
    assert new_mod is Modulation.V17_12000 and resent == [1]
    assert result.success and result.fax_speed == 12000
    ecm_sends = [p for _, k, p in a.sent if k == "ecm"]
    assert ecm_sends[-1][0] is Modulation.V17_12000 and ecm_sends[-1][2] is True    # long training after CTC


def test_eor_when_no_slower_speed_remains():
    async def far_script(far, s):
        await far.send_dis(v17=False, v29=False, v27ter_fallback_only=True)
        await train(far, Modulation.V27TER_2400)
        await far.ecm_burst(Modulation.V27TER_2400)
        for _ in range(4):
            await far.expect(fcf.PPS)
            await far.send(fcf.PPR, ecm.ppr_bitmap([0]))
            if _ < 3:
                await far.ecm_burst(Modulation.V27TER_2400)
        eor = await far.expect(fcf.EOR)
        await far.send(fcf.ERR)
        await far.expect(fcf.DCN)
        return eor.fif

    result, eor_fif, *_ = run_pair(sender(), far_script)
    assert eor_fif == bytes((fcf.EOP | 1,)) and result.success


def test_rnr_then_rr_polling():
    async def far_script(far, s):
        await far.send_dis()
        await train(far)
        await far.ecm_burst(V17)
        await far.expect(fcf.PPS)
        await far.send(fcf.RNR)
        await far.expect(fcf.RR)
        await far.send(fcf.RNR)
        await far.expect(fcf.RR)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), far_script)
    assert ok and result.success


def test_rnr_forever_hits_t5():
    async def far_script(far, s):
        await far.send_dis()
        await train(far)
        await far.ecm_burst(V17)
        await far.expect(fcf.PPS)
        while True:
            await far.send(fcf.RNR)
            frames = await far.burst(timeout=10)
            if frames[-1].fcf == fcf.DCN:
                return far.phy.clock.now()

    result, _, *_ = run_pair(sender(), far_script)
    assert not result.success and "T5" in result.error_message and result.error_phase == "D"


# ----------------------------------------------------------------------------- our receiver


async def far_sender_start(far, mod=V17, *, ecm_mode=False, compression="mh", resolution="fine"):
    """Far end as sender: wait for our DIS, send TSI/DCS + TCF, return our DIS and the DCS params."""
    frames = await far.burst()
    assert [f.fcf for f in frames] == [fcf.CSI, fcf.DIS]
    caps = dis.Capabilities.parse(frames[-1].fif)
    params = dis.DcsParams(modulation=mod, resolution=resolution, compression=compression, ecm=ecm_mode)
    await far.send(fcf.DCS, params.build(), pre=[fcf.build(fcf.TSI, dis.encode_ident("FAR SENDER"), final=False,
                                                           x=True)])
    await far.phy.send_silence(0.075)
    await far.phy.send_image(mod, bytes(mod.bit_rate * 3 // 16), long_training=True)
    return caps, params


def encoded(p, compression="mh"):
    comp = codec.Compression[compression.upper()]
    return codec.encode(p.pixels, comp, k=4, rtc=True, lsb_first=True)


def test_receiver_happy_path_and_repeated_eop():
    got = []
    pg = page(seed=4)

    async def far_script(far, s):
        caps, _ = await far_sender_start(far)
        assert caps.v17 and caps.ecm and caps.mmr and caps.fine and caps.superfine
        await far.expect(fcf.CFR)
        await far.phy.send_image(V17, encoded(pg))
        await far.send(fcf.EOP)
        await far.expect(fcf.MCF)
        await far.send(fcf.EOP)                  # as if our MCF was lost
        await far.expect(fcf.MCF)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and result.success and result.pages_received == 1 and len(got) == 1
    assert result.remote_ident == "FAR SENDER" and np.array_equal(got[0][0].pixels, pg.pixels)


def test_receiver_ftt_on_bad_tcf_then_cfr():
    async def far_script(far, s):
        await far.burst()
        params = dis.DcsParams(modulation=V17, resolution="fine")
        await far.send(fcf.DCS, params.build())
        await far.phy.send_image(V17, b"\x00\x01" * 1350, long_training=True)
        await far.expect(fcf.FTT)
        params = dis.DcsParams(modulation=Modulation.V17_12000, resolution="fine")
        await far.send(fcf.DCS, params.build())
        await far.phy.send_image(Modulation.V17_12000, bytes(2250), long_training=True)
        await far.expect(fcf.CFR)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(), far_script)
    assert ok and not result.success and result.error_message == "remote disconnected in phase C"


def test_receiver_dcn_mid_page_and_hangup_mid_page():
    async def dcn_script(far, s):
        await far_sender_start(far)
        await far.expect(fcf.CFR)
        await far.phy.send_image(V17, encoded(page())[:300])
        await far.send(fcf.DCN)

    result, *_ = run_pair(receiver(), dcn_script)
    assert not result.success and result.error_message == "remote disconnected in phase D"

    async def hangup_script(far, s):
        await far_sender_start(far)
        await far.expect(fcf.CFR)
        data = encoded(page())
        task = asyncio.ensure_future(far.phy.send_image(V17, data))
        await asyncio.sleep(0.3)
        await far.phy.hangup()
        task.cancel()

    result, *_ = run_pair(receiver(), hangup_script)
    assert not result.success and result.error_code == "remote_disconnected"
    assert result.error_message.startswith("remote disconnected in phase C")


def test_receiver_crp_on_damaged_command_and_rtn_on_bad_page():
    got = []

    async def far_script(far, s):
        await far_sender_start(far)
        await far.expect(fcf.CFR)
        noisy = bytes(b ^ 0x24 if i % 6 == 0 else b for i, b in enumerate(encoded(page(rows=300))))
        await far.phy.send_image(V17, noisy)
        far.phy.impair = lambda ev: [(ev[0], ev[1], False)] if ev[0] == "hdlc" else [ev]
        await far.send(fcf.EOP)
        far.phy.impair = None
        await far.expect(fcf.CRP)
        await far.send(fcf.EOP)
        await far.expect(fcf.RTN)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and got == [] and not result.success


def test_receiver_caller_silent_t1():
    async def far_script(far, s):
        n = 0
        while True:
            frames = await far.burst(timeout=50)
            if not frames:
                return n
            n += frames[-1].fcf == fcf.DIS

    result, dis_count, *_ = run_pair(receiver(), far_script)
    assert not result.success and result.error_phase == "B" and "T1" in result.error_message
    assert 6 <= dis_count <= 12 and 35 <= result.duration < 45


def test_receiver_ecm_ppr_ctc_eor_and_repeated_pps():
    got = []
    pg = page(rows=60, seed=6, noise=0.05)
    data = encoded(pg, "mmr")

    async def far_script(far, s):
        await far_sender_start(far, ecm_mode=True, compression="mmr")
        await far.expect(fcf.CFR)
        block = ecm.split_blocks(data, 256)[0]
        block[-1] = block[-1].ljust(256, b"\x00")      # not the page's last block: full frames only
        n = len(block)
        assert n >= 3
        first = [i for i in range(n) if i != 1]
        await far.phy.send_image_hdlc(V17, ecm.block_frames(block, first))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.PPS_NULL, 0, 0, n, x=True))
        ppr = await far.expect(fcf.PPR)
        assert ecm.frames_from_bitmap(ppr.fif, n) == [1]
        await far.send(fcf.CTC, dis.ctc_fif(dis.DcsParams(modulation=V17).build(), Modulation.V17_12000))
        await far.expect(fcf.CTR)
        await far.phy.send_image_hdlc(Modulation.V17_12000, ecm.block_frames(block, [1]))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.PPS_NULL, 0, 0, n, x=True))
        await far.expect(fcf.MCF)
        await far.send(fcf.PPS, ecm.pps_fif(fcf.PPS_NULL, 0, 0, n, x=True))   # our MCF "lost"
        await far.expect(fcf.MCF)
        # second block: the page end, accepted partially with EOR
        await far.phy.send_image_hdlc(Modulation.V17_12000, ecm.block_frames([b"\x00" * 10, b"\x00" * 10], [0]))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 1, 2, x=True))
        await far.expect(fcf.PPR)
        await far.send(fcf.EOR, bytes((fcf.EOP | 1,)))
        await far.expect(fcf.ERR)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and result.success and result.pages_received == 1 and result.ecm
    assert result.fax_speed == 12000
    assert np.array_equal(got[0][0].pixels, pg.pixels)


def test_receiver_ecm_block_with_rnr_free_rr():
    got = []
    pg = page(rows=50, seed=8)

    async def far_script(far, s):
        await far_sender_start(far, ecm_mode=True, compression="mmr")
        await far.expect(fcf.CFR)
        block = ecm.split_blocks(encoded(pg, "mmr"), 256)[0]
        await far.phy.send_image_hdlc(V17, ecm.block_frames(block, list(range(len(block)))))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, len(block), x=True))
        await far.expect(fcf.MCF)
        await far.send(fcf.RR)
        await far.expect(fcf.MCF)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and result.success and np.array_equal(got[0][0].pixels, pg.pixels)


# ----------------------------------------------------------------------------- abort


@pytest.mark.parametrize("role", ["send", "receive"])
def test_abort_ends_with_dcn(role):
    async def main():
        a, b = phy_pair()
        if role == "send":
            s = T30Session(a, a.clock, T30Config(), send_pages=[page()], calling=True)
        else:
            s = T30Session(a, a.clock, T30Config(), calling=False)
        far = Far(b, x=role == "receive")
        task = asyncio.ensure_future(s.run())
        await asyncio.sleep(5.0)
        s.abort("job cancelled")
        result = await task
        frames = []
        while True:
            more = await far.burst(timeout=5)
            if not more:
                return result, frames
            frames += more

    result, frames = run_virtual(main())
    assert not result.success and result.error_code == "aborted" and "job cancelled" in result.error_message
    assert frames[-1].fcf == fcf.DCN and not result.retryable


def test_receiver_keeps_block_size_when_retransmission_pps_counts_only_resent_frames():
    """spandsp's PPS after a retransmission counts the frames of that burst, not of the block."""
    got = []
    pg = page(rows=60, seed=12, noise=0.05)

    async def far_script(far, s):
        await far_sender_start(far, ecm_mode=True, compression="mmr")
        await far.expect(fcf.CFR)
        block = ecm.split_blocks(encoded(pg, "mmr"), 256)[0]
        n = len(block)
        short = list(block)
        short[2] = short[2][:100]                    # a damaged non-final frame that claims a good FCS
        await far.phy.send_image_hdlc(V17, ecm.block_frames(short, [i for i in range(n) if i != 1]))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, n, x=True))
        ppr = await far.expect(fcf.PPR)
        asked = ecm.frames_from_bitmap(ppr.fif, n)
        await far.phy.send_image_hdlc(V17, ecm.block_frames(block, asked))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, len(asked), x=True))
        await far.expect(fcf.MCF)
        await far.send(fcf.DCN)
        return asked

    result, asked, *_ = run_pair(receiver(got), far_script)
    assert asked == [1, 2]
    assert result.success and np.array_equal(got[0][0].pixels, pg.pixels)


def test_receiver_waits_quietly_after_a_damaged_dcs():
    """A damaged DCS must not be answered with a new DIS while the caller is busy with TCF and T4."""
    async def far_script(far, s):
        await far.burst()                                       # our CSI/DIS
        params = dis.DcsParams(modulation=V17, resolution="fine")
        far.phy.impair = lambda ev: [(ev[0], ev[1], False)] if ev[0] == "hdlc" else [ev]
        await far.send(fcf.DCS, params.build())
        far.phy.impair = None
        await far.phy.send_image(V17, bytes(2700), long_training=True)
        heard = await far.burst(timeout=3.0)                    # the caller's T4: we must stay silent
        await far.send(fcf.DCS, params.build())
        await far.phy.send_image(V17, bytes(2700), long_training=True)
        await far.expect(fcf.CFR)
        await far.send(fcf.DCN)
        return heard

    result, heard, *_ = run_pair(receiver(), far_script)
    assert heard == []


def test_receiver_asks_crp_for_a_damaged_command_in_phase_c():
    got = []
    pg = page(rows=60, seed=13, noise=0.05)

    async def far_script(far, s):
        await far_sender_start(far, ecm_mode=True, compression="mmr")
        await far.expect(fcf.CFR)
        block = ecm.split_blocks(encoded(pg, "mmr"), 256)[0]
        await far.phy.send_image_hdlc(V17, ecm.block_frames(block, [i for i in range(len(block)) if i != 0]))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, len(block), x=True))
        await far.expect(fcf.PPR)
        far.phy.impair = lambda ev: [(ev[0], ev[1], False)] if ev[0] == "hdlc" else [ev]
        await far.send(fcf.CTC, dis.ctc_fif(dis.DcsParams(modulation=V17).build(), Modulation.V17_12000))
        far.phy.impair = None
        await far.expect(fcf.CRP)
        await far.send(fcf.CTC, dis.ctc_fif(dis.DcsParams(modulation=V17).build(), Modulation.V17_12000))
        await far.expect(fcf.CTR)
        await far.phy.send_image_hdlc(Modulation.V17_12000, ecm.block_frames(block, [0]))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, 1, x=True))
        await far.expect(fcf.MCF)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and result.success and np.array_equal(got[0][0].pixels, pg.pixels)


def test_sender_remote_dcn_instead_of_mcf():
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        await train(far)
        await far.image(V17)
        await far.expect(fcf.MPS)
        await far.send(fcf.DCN)
        return await far.burst(timeout=10)

    result, after, *_ = run_pair(sender([page(), page(seed=2)]), far_script)
    assert not result.success and result.error_message == "remote disconnected in phase D"
    assert result.error_code == "remote_disconnected" and result.retryable and after == []   # no DCN back


@pytest.mark.parametrize("role", ["send", "receive"])
@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("T30_FUZZ_SEEDS", "6"))))
def test_random_frames_never_crash_or_hang(role, seed):
    """A far end that answers everything with random (partly valid) frames: a clean result, always."""
    import random

    rng = random.Random(seed)
    codes = [fcf.DIS, fcf.CSI, fcf.DCS, fcf.CFR, fcf.FTT, fcf.MCF, fcf.RTN, fcf.RTP, fcf.PPR, fcf.PPS, fcf.CTC,
             fcf.CTR, fcf.EOR, fcf.ERR, fcf.RNR, fcf.RR, fcf.CRP, fcf.MPS, fcf.EOP, fcf.EOM, fcf.DTC, 0x00, 0xFF]

    async def far_script(far, s):
        try:
            await chatter(far)
        except PhyError:        # we hung up on it
            pass

    async def chatter(far):
        for _ in range(40):
            n = rng.randrange(0, 40)
            fif = bytes(rng.randrange(256) for _ in range(n))
            kind = rng.random()
            if kind < 0.1:
                await far.phy.send_hdlc([bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))])
            elif kind < 0.2:
                await far.phy.send_image(V17, fif * 20)
            else:
                await far.send(rng.choice(codes), fif)
            await far.burst(timeout=rng.choice([0.5, 2.0, 5.0]))

    maker = sender([page(rows=30)]) if role == "send" else receiver()
    result, *_ = run_pair(maker, far_script)
    assert result.error_message or result.success
    assert result.error_code != "internal_error", result.error_message


# ----------------------------------------------------------------------------- added in the audit


def test_receiver_answers_rnr_to_rr_until_its_page_store_is_done():
    """ECM receiver with a page sink that needs 10 s: PPS-EOP gets RNR, every RR gets RNR, and MCF
    comes only after the page was stored."""
    pg = page(rows=50, seed=9)
    stored = []

    def make(phy):
        async def slow_store(p, bad):
            await phy.clock.sleep(10.0)
            stored.append((phy.clock.now(), p))
        return T30Session(phy, phy.clock, T30Config(ident="OURS"), calling=False, on_page=slow_store)

    async def far_script(far, s):
        await far_sender_start(far, ecm_mode=True, compression="mmr")
        await far.expect(fcf.CFR)
        block = ecm.split_blocks(encoded(pg, "mmr"), 256)[0]
        await far.phy.send_image_hdlc(V17, ecm.block_frames(block, list(range(len(block)))))
        await far.send(fcf.PPS, ecm.pps_fif(fcf.EOP, 0, 0, len(block), x=True))
        answers = [(await far.burst())[-1].fcf]
        while answers[-1] == fcf.RNR and len(answers) < 20:
            await far.send(fcf.RR)
            answers.append((await far.burst())[-1].fcf)
        mcf_at = far.phy.clock.now()
        await far.send(fcf.DCN)
        return answers, mcf_at

    result, (answers, mcf_at), *_ = run_pair(make, far_script)
    assert result.success and len(stored) == 1 and np.array_equal(stored[0][1].pixels, pg.pixels)
    assert answers[-1] == fcf.MCF and answers[:-1] == [fcf.RNR] * (len(answers) - 1) and len(answers) >= 3
    assert mcf_at > stored[0][0]


def test_receiver_repeats_its_answer_on_crp():
    got = []

    async def far_script(far, s):
        await far_sender_start(far)
        await far.expect(fcf.CFR)
        await far.phy.send_image(V17, encoded(page(seed=6)))
        await far.send(fcf.EOP)
        await far.expect(fcf.MCF)
        await far.send(fcf.CRP)                  # "repeat your answer"
        await far.expect(fcf.MCF)
        await far.send(fcf.DCN)
        return True

    result, ok, *_ = run_pair(receiver(got), far_script)
    assert ok and result.success and len(got) == 1


def test_sender_pin_without_ecm_retrains_and_resends_the_page():
    """PIN (no voice here) is handled like RTN: retrain with DCS/TCF one step slower and send the page again."""
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        await train(far)
        first = await far.image(V17)
        await far.expect(fcf.EOP)
        await far.send(fcf.PIN)
        await train(far, Modulation.V17_12000)
        second = await far.image(Modulation.V17_12000)
        await far.expect(fcf.EOP)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return first == second

    result, same, *_ = run_pair(sender(), far_script)
    assert same and result.success and result.pages_sent == 1 and result.fax_speed == 12000


def test_sender_pin_in_ecm_ends_the_call_with_a_reason():
    async def far_script(far, s):
        await far.send_dis()
        await train(far)
        await far.ecm_burst(V17)
        await far.expect(fcf.PPS)
        await far.send(fcf.PIN)
        await far.expect(fcf.DCN)
        return True

    result, ok, *_ = run_pair(sender(), far_script)
    assert ok and not result.success and result.error_code == "page_rejected" and "PIN" in result.error_message


def test_sender_follows_the_receivers_64_octet_preference():
    async def far_script(far, s):
        await far.send_dis(prefers_64_octet=True)
        dcs = await train(far)
        frames = await far.ecm_burst(V17)
        await far.expect(fcf.PPS)
        await far.send(fcf.MCF)
        await far.expect(fcf.DCN)
        return dcs, frames

    result, (dcs, frames), *_ = run_pair(sender(), far_script)
    fcd = [f for f in frames if fcf.parse(f).fcf == fcf.FCD]
    assert result.success and dcs.ecm_frame_size == 64
    assert len(fcd) > 1 and all(len(f) - 4 == 64 for f in fcd[:-1]) and len(fcd[-1]) - 4 <= 64


@pytest.mark.parametrize("params,text", [
    (dict(width=2048), "2048-pixel width"),
    (dict(modulation=Modulation.V29_9600), "V29_9600"),
])
def test_receiver_refuses_a_dcs_outside_its_dis(params, text):
    async def far_script(far, s):
        await far.burst()
        dcs = dis.DcsParams(**{"modulation": V17, "resolution": "fine", **params})
        await far.send(fcf.DCS, dcs.build())
        return await far.expect(fcf.DCN)

    result, dcn, *_ = run_pair(receiver(modems=("v17", "v27ter")), far_script)
    assert dcn and not result.success and result.error_code == "incompatible" and text in result.error_message


def test_no_response_to_pps_after_three_tries():
    async def far_script(far, s):
        await far.send_dis()
        await train(far)
        await far.ecm_burst(V17)
        for _ in range(3):
            await far.expect(fcf.PPS)
        return await far.expect(fcf.DCN)

    result, dcn, *_ = run_pair(sender(), far_script)
    assert dcn and not result.success and result.error_code == "no_response"
    assert result.error_message == "no response to PPS-EOP after 3 tries" and result.error_phase == "D"


def test_receiver_sender_silent_after_the_page():
    """The sender goes quiet after its page (no post-page command): T2 three times, then DCN."""
    async def far_script(far, s):
        await far_sender_start(far)
        await far.expect(fcf.CFR)
        await far.phy.send_image(V17, encoded(page(seed=2)))
        t0 = far.phy.clock.now()
        await far.expect(fcf.DCN, timeout=60)
        return far.phy.clock.now() - t0

    result, waited, *_ = run_pair(receiver(), far_script)
    assert not result.success and result.error_code == "no_response"
    assert result.error_message == "no post-page command after page 1"
    assert 3 * 6.0 <= waited < 3 * 6.0 + 5


def test_sender_walks_the_whole_fallback_list_on_ftt():
    """FTT at every speed: V.17 14400 -> 12000 -> 9600 -> 7200 -> V.29 9600 -> 7200 -> V.27ter 4800 -> 2400."""
    async def far_script(far, s):
        await far.send_dis(ecm=False)
        rates = []
        while True:
            frames = await far.burst()
            if frames[-1].fcf == fcf.DCN:
                return rates
            d = dis.DcsParams.parse(frames[-1].fif)
            rates.append(d.modulation)
            tcf = await far.image(d.modulation)
            assert len(tcf) == d.modulation.bit_rate * 3 // 16          # 1.5 s of zeros at each speed
            await far.send(fcf.FTT)

    result, rates, *_ = run_pair(sender(), far_script)
    assert rates == list(dis.FALLBACK) and [m.bit_rate for m in rates] == [14400, 12000, 9600, 7200, 9600, 7200,
                                                                           4800, 2400]
    assert not result.success and result.error_message == "training failed at 2400 bit/s"
