"""Our T.30 sender to our T.30 receiver through the in-memory PHY pair, in virtual time."""

import numpy as np
import pytest
from t30_fakephy import phy_pair, run_virtual

from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage


def make_page(seed: int, rows: int = 200, y_dpi: int = 196) -> FaxPage:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((rows, 1728), dtype=bool)
    for _ in range(40):                             # some black blocks and text-like runs
        r, c = rng.integers(0, rows - 10), rng.integers(0, 1700)
        pixels[r:r + rng.integers(1, 10), c:c + rng.integers(1, 28)] = True
    pixels[rows // 2, ::3] = True
    return FaxPage(pixels=pixels, y_dpi=y_dpi)


async def talk(pages, tx_cfg=None, rx_cfg=None, impair=None):
    a, b = phy_pair()
    if impair is not None:
        a.impair = impair
    received = []
    progress = []
    tx = T30Session(a, a.clock, tx_cfg or T30Config(ident="+1 555 0100"), send_pages=pages, calling=True,
                    progress=progress.append)
    rx = T30Session(b, b.clock, rx_cfg or T30Config(ident="+1 555 0199"), calling=False,
                    on_page=lambda p, bad: received.append((p, bad)))
    start = a.clock.now()
    import asyncio
    tx_res, rx_res = await asyncio.gather(tx.run(), rx.run())
    return tx_res, rx_res, received, progress, a, b, a.clock.now() - start


@pytest.mark.parametrize("ecm,compression", [(False, "mh"), (False, "mr"), (True, "mh"), (True, "mr"),
                                             (True, "mmr")])
def test_pages_arrive_pixel_identical(ecm, compression):
    pages = [make_page(1), make_page(2, y_dpi=196), make_page(3, rows=150)]
    comps = tuple(c for c in ("mh", "mr", "mmr") if c in ("mh", compression))
    cfg = T30Config(ident="SENDER", ecm=ecm, compressions=comps)
    tx, rx, received, progress, *_ = run_virtual(talk(pages, cfg, T30Config(ident="RECEIVER", ecm=ecm)))
    assert tx.success, tx.error_message
    assert rx.success, rx.error_message
    assert tx.pages_sent == 3 and rx.pages_received == 3
    assert tx.compression == compression and rx.compression == compression
    assert tx.ecm is ecm and rx.ecm is ecm
    assert tx.fax_speed == 14400 and tx.modulation == "V17_14400"
    assert tx.remote_ident == "RECEIVER" and rx.remote_ident == "SENDER"
    assert tx.resolution == "fine" and rx.resolution == "fine"
    for (got, bad), want in zip(received, pages, strict=True):
        assert bad == 0 and got.y_dpi == 196
        assert np.array_equal(got.pixels, want.pixels)
    assert any(p["phase"] == "C" and p["page"] == 3 for p in progress)
    assert tx.duration > 0 and tx.error_message == "" and tx.error_code == ""


def test_standard_resolution_and_min_scan_time():
    pages = [make_page(5, rows=120, y_dpi=98)]
    tx, rx, received, _, a, _, _ = run_virtual(talk(pages, T30Config(ecm=False, compressions=("mh",)),
                                                    T30Config(ecm=False, min_scan_line_ms=20)))
    assert tx.success and rx.success and tx.resolution == "standard"
    assert np.array_equal(received[0][0].pixels, pages[0].pixels) and received[0][0].y_dpi == 98
    # Every coded row lasts at least 20 ms at 14400 bit/s (288 bits) -> the page data is at least that long.
    image = [p for _, kind, p in a.sent if kind == "image" and not p[2]]
    assert len(image[0][1]) * 8 >= 120 * 288


def test_fine_page_converted_when_receiver_has_only_standard():
    page = make_page(7, rows=100, y_dpi=196)
    tx, rx, received, *_ = run_virtual(talk([page], T30Config(), T30Config(resolutions=("standard",))))
    assert tx.success and rx.success and tx.resolution == "standard"
    assert np.array_equal(received[0][0].pixels, page.pixels[::2]) and received[0][0].y_dpi == 98


def test_mixed_resolutions_use_eom_and_new_dcs():
    pages = [make_page(8, rows=80, y_dpi=98), make_page(9, rows=80, y_dpi=196)]
    tx, rx, received, _, a, _, _ = run_virtual(talk(pages))
    assert tx.success and rx.success and rx.pages_received == 2
    assert [p.y_dpi for p, _ in received] == [98, 196]
    sent_fcfs = [f[2] & 0xFE for f in a.sent_frames()]
    assert 0x8E in sent_fcfs or any(f[2] == 0xBF and f[3] & 0xFE == 0x8E for f in a.sent_frames())


def test_superfine_when_both_support_it():
    page = make_page(10, rows=120, y_dpi=391)
    tx, rx, received, *_ = run_virtual(talk([page]))
    assert tx.success and rx.success and tx.resolution == "superfine"
    assert np.array_equal(received[0][0].pixels, page.pixels) and received[0][0].y_dpi == 391


def test_ecm_64_octet_frames():
    page = make_page(11)
    tx, rx, received, _, a, _, _ = run_virtual(talk([page], T30Config(ecm_frame_size=64), T30Config()))
    assert tx.success and rx.success
    ecm_bursts = [p for _, kind, p in a.sent if kind == "ecm"]
    assert max(len(f) for f in ecm_bursts[0][1]) == 3 + 1 + 64
    assert np.array_equal(received[0][0].pixels, page.pixels)


def test_big_page_spans_several_ecm_blocks():
    rng = np.random.default_rng(3)
    pixels = rng.random((400, 1728)) < 0.2      # noise compresses badly: > 64 KiB of MMR
    page = FaxPage(pixels=pixels, y_dpi=196)
    tx, rx, received, _, a, _, _ = run_virtual(talk([page]))
    assert tx.success and rx.success
    assert len([1 for _, kind, _ in a.sent if kind == "ecm"]) >= 2
    assert np.array_equal(received[0][0].pixels, pixels)


def test_speed_and_modem_limits_respected():
    tx, rx, *_ = run_virtual(talk([make_page(12, rows=60)], T30Config(max_speed=9600, modems=("v29", "v27ter"))))
    assert tx.success and tx.fax_speed == 9600 and tx.modulation == "V29_9600"
    tx, rx, *_ = run_virtual(talk([make_page(12, rows=60)], T30Config(), T30Config(modems=("v27ter",),
                                                                                    max_speed=4800)))
    assert tx.success and tx.modulation == "V27TER_4800" and rx.modulation == "V27TER_4800"


def test_training_fallback_through_a_bad_line():
    """TCF at V.17 is wiped out by the line: our receiver says FTT until V.29 9600 trains."""
    def impair(ev):
        if ev[0] == "data" and ev[2].family == "V17":
            return [("data", bytes((i * 37) & 0xFF for i in range(len(ev[1]))), ev[2])]
        return [ev]
    tx, rx, received, _, a, b, _ = run_virtual(talk([make_page(13, rows=80)], impair=impair))
    assert tx.success, tx.error_message
    assert tx.modulation == "V29_9600" and rx.modulation == "V29_9600"
    resp = [f[2] for f in b.sent_frames()]
    assert resp.count(0x44) == 4 and 0x84 in resp       # four FTTs (14400, 12000, 9600, 7200), then CFR


def test_training_fails_everywhere():
    def impair(ev):
        return [("data", b"\x01" * len(ev[1]), ev[2])] if ev[0] == "data" else [ev]
    tx, rx, *_ = run_virtual(talk([make_page(14, rows=40)], impair=impair))
    assert not tx.success and tx.error_code == "training_failed"
    assert tx.error_message == "training failed at 2400 bit/s" and tx.error_phase == "B"
    assert not rx.success


def test_receiver_rtn_on_damaged_page_then_resend():
    """Non-ECM page data corrupted once: the receiver answers RTN, the sender retrains and resends."""
    state = {"pages": 0}

    def impair(ev):
        if ev[0] == "carrier" and ev[1] == "image":
            state["pages"] += 1
        if ev[0] == "data" and state["pages"] == 2:    # 1 = TCF, 2 = the first page: line noise
            return [("data", bytes(b ^ 0x24 if i % 8 == 0 else b for i, b in enumerate(ev[1])), ev[2])]
        return [ev]
    page = make_page(15, rows=300)
    tx, rx, received, _, a, b, _ = run_virtual(talk([page], T30Config(ecm=False), T30Config(ecm=False),
                                                    impair=impair))
    assert tx.success and rx.success, (tx.error_message, rx.error_message)
    assert 0x4C in [f[2] for f in b.sent_frames()]     # RTN
    assert len(received) == 1 and np.array_equal(received[0][0].pixels, page.pixels)


def test_ecm_recovers_lost_frames():
    """ECM frames lost on the line: PPR, the sender resends only those, the page is exact."""
    dropped = set()

    def impair(ev):
        if ev[0] == "frame" and ev[1][2] == 0x06 and ev[1][3] in (1, 4) and ev[1][3] not in dropped:
            dropped.add(ev[1][3])
            return []
        return [ev]
    page = make_page(16, rows=500)
    tx, rx, received, _, a, b, _ = run_virtual(talk([page], impair=impair))
    assert tx.success and rx.success
    bursts = [p[1] for _, kind, p in a.sent if kind == "ecm"]
    assert len(bursts) == 2 and [f[3] for f in bursts[1] if f[2] == 0x06] == [1, 4]
    assert np.array_equal(received[0][0].pixels, page.pixels)


def test_v21_frames_lost_are_repeated():
    """Every first copy of a post-page command vanishes: T4 expiry and repetition carry the call."""
    seen = set()

    def impair(ev):
        if ev[0] == "hdlc" and ev[1][2] in (0x4F, 0x2F) and ev[1] not in seen:
            seen.add(ev[1])
            return []
        return [ev]
    tx, rx, received, *_ = run_virtual(talk([make_page(17, rows=60), make_page(18, rows=60)],
                                            T30Config(ecm=False), impair=impair))
    assert tx.success and rx.success and len(received) == 2


def test_polling_answerer_sends_caller_receives():
    """The other two role combinations: we answer and send (polled), we call and receive (poll)."""
    async def main():
        import asyncio
        a, b = phy_pair()
        got = []
        pages = [make_page(20, rows=80), make_page(21, rows=80)]
        tx = T30Session(a, a.clock, T30Config(ident="POLLED"), send_pages=pages, calling=False)
        rx = T30Session(b, b.clock, T30Config(ident="POLLER"), calling=True, on_page=lambda p, bad: got.append(p))
        tx_res, rx_res = await asyncio.gather(tx.run(), rx.run())
        return tx_res, rx_res, got, pages, a, b

    tx, rx, got, pages, a, b = run_virtual(main())
    assert tx.success and rx.success, (tx.error_message, rx.error_message)
    assert tx.remote_ident == "POLLER" and rx.remote_ident == "POLLED"
    assert all(np.array_equal(g.pixels, p.pixels) for g, p in zip(got, pages, strict=True))
    assert [f[2] for f in b.sent_frames()[:2]] == [0x41, 0x81]          # CIG, DTC
    assert a.sent_frames()[3][2] == 0x82                                 # DCS from the DIS sender: X = 0


def test_caller_that_wants_to_receive_from_a_plain_receiver():
    async def main():
        import asyncio
        a, b = phy_pair()
        x = T30Session(a, a.clock, T30Config(), calling=True)
        y = T30Session(b, b.clock, T30Config(), calling=False)
        return await asyncio.gather(x.run(), y.run())

    x, y = run_virtual(main())
    assert not x.success and x.error_code == "incompatible" and "bit 9" in x.error_message
    assert not y.success and y.error_message == "remote disconnected in phase B"


def test_failing_page_callback_ends_the_call_cleanly():
    async def main():
        import asyncio
        a, b = phy_pair()

        def broken(page, bad):
            raise OSError("disk full")
        tx = T30Session(a, a.clock, T30Config(), send_pages=[make_page(22, rows=50)], calling=True)
        rx = T30Session(b, b.clock, T30Config(), calling=False, on_page=broken)
        return await asyncio.gather(tx.run(), rx.run())

    tx, rx = run_virtual(main())
    assert not rx.success and rx.error_code == "internal_error" and "disk full" in rx.error_message
    assert not tx.success and tx.error_phase == "D"


def test_rtn_after_eom_retrains_without_new_dis():
    """Page 1 (standard, then EOM) is damaged: RTN, DCS/TCF again, page 1 again, then page 2 (fine)."""
    state = {"carriers": 0}

    def impair(ev):
        if ev[0] == "carrier" and ev[1] == "image":
            state["carriers"] += 1
        if ev[0] == "data" and state["carriers"] == 2:
            return [("data", bytes(b ^ 0x24 if i % 8 == 0 else b for i, b in enumerate(ev[1])), ev[2])]
        return [ev]
    pages = [make_page(30, rows=300, y_dpi=98), make_page(31, rows=100, y_dpi=196)]
    tx, rx, received, _, a, b, _ = run_virtual(talk(pages, T30Config(ecm=False), T30Config(ecm=False),
                                                    impair=impair))
    assert tx.success and rx.success, (tx.error_message, rx.error_message)
    assert [f[2] & 0xFE for f in a.sent_frames() if f[2] & 0xFE in (0x8E, 0x2E)] == [0x8E, 0x8E, 0x2E]
    assert [f[2] for f in b.sent_frames()].count(0x4C) == 1                  # one RTN
    assert [p.y_dpi for p, _ in received] == [98, 196]
    assert all(np.array_equal(g.pixels, w.pixels) for (g, _), w in zip(received, pages, strict=True))


def test_turnaround_silences_between_signals():
    """75 ms of silence before every signal that follows a reception or a change of carrier."""
    tx, rx, _, _, a, b, _ = run_virtual(talk([make_page(40, rows=60), make_page(41, rows=60)],
                                             T30Config(ecm=False, ident="A"), T30Config(ecm=False)))
    assert tx.success and rx.success

    def kinds(phy):
        out = []
        for _, kind, payload in phy.sent:
            if kind == "hdlc":
                out.append(f"{payload[2] & 0xFE:02x}" if payload[2] & 0x0E else f"{payload[2]:02x}")
            elif kind in ("image", "silence"):
                out.append(kind)
        return out
    # sender: DIS heard -> gap, TSI, DCS, gap, TCF; CFR heard -> gap, page, gap, MPS; MCF -> gap, page ...
    assert kinds(a) == ["silence", "42", "82", "silence", "image", "silence", "image", "silence", "4e",
                        "silence", "image", "silence", "2e", "silence", "fa"]
    assert kinds(b) == ["40", "80", "silence", "84", "silence", "8c", "silence", "8c"]


@pytest.mark.parametrize("ecm", [True, False])
@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("T30_LOSS_SEEDS", "12"))))
def test_lossy_line_keeps_the_ecm_guarantee(seed, ecm):
    """Random loss and corruption of V.21 frames and ECM frames between our two ends: whatever happens,
    both end cleanly, and a sender that reports success means every page arrived exact."""
    import random

    rng = random.Random(seed)
    p = rng.choice([0.05, 0.1, 0.2])

    def impair(ev):
        if ev[0] in ("hdlc", "frame") and rng.random() < p:
            return [] if rng.random() < 0.5 else [(ev[0], ev[1], False, *ev[3:])]
        return [ev]
    pages = [make_page(50 + seed, rows=120), make_page(60 + seed, rows=120)]
    cfg = T30Config(ident="TX", ecm=ecm, ecm_frame_size=rng.choice([64, 256]))

    async def main():
        import asyncio
        a, b = phy_pair()
        a.impair = impair
        b.impair = impair
        got = []
        tx = T30Session(a, a.clock, cfg, send_pages=pages, calling=True)
        rx = T30Session(b, b.clock, T30Config(ident="RX"), calling=False, on_page=lambda pg, bad: got.append(pg))
        tx_res, rx_res = await asyncio.gather(tx.run(), rx.run())
        return tx_res, rx_res, got

    tx, rx, got = run_virtual(main())
    assert "internal" not in tx.error_code + rx.error_code, (tx.error_message, rx.error_message)
    assert tx.success or tx.error_message
    assert tx.pages_sent <= len(got) <= len(pages)          # nothing lost silently, nothing doubled
    for g, w in zip(got, pages, strict=False):
        assert np.array_equal(g.pixels, w.pixels)
    if tx.success:
        assert len(got) == 2


async def _slow_sink_call(ecm: bool, store_seconds: float, pages: int = 2):
    """Our sender to our receiver whose page sink (an async on_page) takes ``store_seconds`` per page."""
    import asyncio
    a, b = phy_pair()
    stored = []       # (clock time the sink finished, page)

    async def slow_store(page, bad):
        await b.clock.sleep(store_seconds)
        stored.append((b.clock.now(), page))

    tx = T30Session(a, a.clock, T30Config(ecm=ecm), send_pages=[make_page(30 + i, rows=60) for i in range(pages)],
                    calling=True)
    rx = T30Session(b, b.clock, T30Config(ecm=ecm), calling=False, on_page=slow_store)
    tx_res, rx_res = await asyncio.gather(tx.run(), rx.run())
    return tx_res, rx_res, tx, rx, stored, b


def _sent_at(phy, code):
    from engine.t30 import fcf
    return [t for t, kind, data in phy.sent if kind == "hdlc" and fcf.parse(data).fcf == code]


def test_ecm_receiver_answers_rnr_while_its_page_sink_is_busy():
    """The page store takes 8 s: we answer PPS with RNR, RR with RNR, and MCF only once the page is
    stored; the sender polls with RR and the call succeeds."""
    from engine.t30 import fcf
    tx, rx, tx_s, rx_s, stored, b = run_virtual(_slow_sink_call(ecm=True, store_seconds=8.0))
    assert tx.success and rx.success, (tx.error_message, rx.error_message)
    assert tx.pages_sent == rx.pages_received == len(stored) == 2
    assert sum(1 for line in rx_s.log if line == "> <RNR>") >= 4          # >= 2 per page
    assert sum(1 for line in tx_s.log if line == "> <RR>") >= 4
    mcfs = _sent_at(b, fcf.MCF)
    assert len(mcfs) == 2 and all(m >= t for m, (t, _) in zip(mcfs, stored, strict=True))  # confirmed after storing


def test_ecm_receiver_sink_never_ready_ends_after_t5():
    tx, rx, _tx_s, rx_s, stored, _b = run_virtual(_slow_sink_call(ecm=True, store_seconds=1000.0, pages=1))
    assert not rx.success and rx.error_code == "internal_error" and "T5" in rx.error_message
    assert not tx.success and not stored
    assert rx.duration < 120 and tx.duration < 120


def test_non_ecm_slow_sink_does_not_delay_the_answer_but_the_result_waits_for_it():
    """Without ECM there is no RNR and the answer is due within T4: MCF goes out after the 1 s grace,
    the store finishes in the background, and the session ends only once every page is stored."""
    from engine.t30 import fcf
    tx, rx, tx_s, _rx_s, stored, b = run_virtual(_slow_sink_call(ecm=False, store_seconds=6.0))
    assert tx.success and rx.success and len(stored) == 2
    assert tx_s.log.count("> <MPS>") == 1                    # answered in time: no repeated MPS
    assert not _sent_at(b, fcf.RNR)                          # no RNR outside ECM
    assert rx.duration >= stored[-1][0] - 1e-6               # the result waited for the last store
