"""Our T.30 over our T38Phy against spandsp's T.38 terminal, every packet through real UDP sockets
on 127.0.0.1 (UDPTL with redundancy), in virtual time.  Received pages are compared pixel by pixel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest
from t38_harness import Lockstep, SpandspPeer, VirtualClock, seeded_loss

from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from modem.spandsp.testing import make_fax_tiff, read_fax_pages
from t38.ifp import Indicator, decode
from t38.phy import T38PhyOptions, open_t38_udptl
from t38.udptl import UdptlConfig, decode_packet

MODEMS = {"v17": (("v17",), 14400), "v29": (("v29",), 9600), "v27ter": (("v27ter",), 4800)}
DPI = {"standard": (204, 98), "fine": (204, 196), "superfine": (204, 391)}


@dataclass
class CallOutcome:
    finished: bool
    ours: object                       # SessionResult
    theirs: dict                       # spandsp stats
    sent: list[np.ndarray]
    received: list[np.ndarray]
    virtual_seconds: float
    log: list[str] = field(default_factory=list)
    dropped: int = 0                   # datagrams the seeded loss hook discarded (both directions)
    largest: int = 0                   # largest UDPTL datagram sent either way


async def run_call(tmp_path, *, we_send: bool, ecm: bool, modem: str = "v17", version: int = 0, pages: int = 1,
                   resolution: str = "fine", height: int = 400, loss: float = 0.0, seed: int = 3,
                   redundancy: int = 3, max_datagram: int = 400, max_seconds: float = 400.0,
                   peer_drops=None, store_seconds: float = 0.0) -> CallOutcome:
    clock = VirtualClock()
    net = Lockstep(clock)
    modems, rate = MODEMS[modem]
    src = tmp_path / "src.tif"
    sent = make_fax_tiff(src, pages=pages, height=height, dpi=DPI[resolution], seed=seed)
    rx_tiff = tmp_path / "spandsp_rx.tif"
    udptl = UdptlConfig(redundancy=redundancy, max_datagram=max_datagram)
    peer_kwargs = dict(t38_version=version, ecm=ecm, modems=modems, ident="SPANDSP PEER")
    if we_send:
        peer = SpandspPeer(net, False, udptl=udptl, loss=loss, seed=seed + 1, rx_tiff=str(rx_tiff), **peer_kwargs)
    else:
        peer = SpandspPeer(net, True, udptl=udptl, loss=loss, seed=seed + 1, tx_tiff=str(src), **peer_kwargs)
    addr = await peer.start()
    if peer_drops is not None:      # a loss hook that sees what spandsp is sending
        ep = peer.endpoint
        ep.loss = lambda: peer_drops(decode(decode_packet(ep._last_datagram).primary, version))
    phy = await open_t38_udptl(clock, T38PhyOptions(calling=we_send, version=version), remote=addr,
                               udptl_config=udptl, loss=seeded_loss(loss, seed + 2))
    peer.endpoint.remote = phy.transport.local_address
    net.endpoints.append(phy.transport)

    received: list[np.ndarray] = []
    config = T30Config(ident="+1 555 0100", ecm=ecm, max_speed=rate, modems=modems)
    if we_send:
        fax_pages = [FaxPage(p, y_dpi=DPI[resolution][1]) for p in sent]
        session = T30Session(phy, clock, config, send_pages=fax_pages, calling=True)
    else:
        async def slow_store(page, bad):      # a page store that takes store_seconds (RNR in ECM)
            await clock.sleep(store_seconds)
            received.append(page.pixels)

        on_page = slow_store if store_seconds else (lambda page, bad: received.append(page.pixels))
        session = T30Session(phy, clock, config, on_page=on_page, calling=False)
    task = asyncio.ensure_future(session.run())
    try:
        finished = await net.run(lambda: task.done() and peer.terminal.done, max_seconds)
        if not task.done():
            task.cancel()
        ours = task.result() if task.done() and not task.cancelled() else None
        theirs = peer.terminal.stats()
        dropped = phy.transport.datagrams_dropped + peer.endpoint.datagrams_dropped
        largest = max(phy.transport.largest_datagram, peer.endpoint.largest_datagram)
    finally:
        peer.close()
        await phy.hangup()
    if we_send and rx_tiff.exists():
        received = read_fax_pages(rx_tiff)
    return CallOutcome(finished, ours, theirs, sent, [np.asarray(r, dtype=bool) for r in received],
                       clock.now(), list(session.log), dropped, largest)


def assert_success(out: CallOutcome, *, pages: int, rate: int, ecm: bool) -> None:
    assert out.finished, out.log
    assert out.ours is not None and out.ours.success, (out.ours, out.log)
    assert out.theirs["ok"], (out.theirs, out.log)
    assert out.ours.fax_speed == rate and out.ours.ecm == ecm
    assert out.theirs["bit_rate"] == rate
    assert len(out.received) == pages == len(out.sent)
    for i, (a, b) in enumerate(zip(out.sent, out.received, strict=True)):
        assert a.shape == b.shape, f"page {i + 1}: {a.shape} != {b.shape}"
        assert np.array_equal(a, b), f"page {i + 1} differs in {int((a != b).sum())} pixels"


CASES = [
    # (we_send, ecm, modem, version, pages, resolution)
    (True, False, "v17", 0, 1, "fine"),
    (True, True, "v17", 3, 2, "standard"),
    (True, False, "v29", 3, 2, "standard"),
    (True, True, "v29", 0, 1, "fine"),
    (True, False, "v27ter", 0, 1, "standard"),
    (True, True, "v27ter", 3, 1, "fine"),
    (False, False, "v17", 3, 2, "fine"),
    (False, True, "v17", 0, 1, "standard"),
    (False, False, "v29", 0, 1, "fine"),
    (False, True, "v29", 3, 2, "standard"),
    (False, False, "v27ter", 3, 1, "standard"),
    (False, True, "v27ter", 0, 1, "fine"),
    (True, True, "v17", 1, 1, "fine"),
    (False, False, "v17", 2, 1, "standard"),
]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("we_send,ecm,modem,version,pages,resolution", CASES,
                         ids=[f"{'ours->spandsp' if c[0] else 'spandsp->ours'}-{'ecm' if c[1] else 'noecm'}-{c[2]}"
                              f"-v{c[3]}-{c[4]}p-{c[5]}" for c in CASES])
def test_interop(tmp_path, we_send, ecm, modem, version, pages, resolution):
    out = asyncio.run(run_call(tmp_path, we_send=we_send, ecm=ecm, modem=modem, version=version, pages=pages,
                               resolution=resolution, height=300 if modem == "v27ter" else 400))
    assert_success(out, pages=pages, rate=MODEMS[modem][1], ecm=ecm)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("we_send", [True, False], ids=["ours->spandsp", "spandsp->ours"])
@pytest.mark.parametrize("ecm", [True, False], ids=["ecm", "noecm"])
def test_interop_with_5_percent_loss_and_redundancy_3(tmp_path, we_send, ecm):
    out = asyncio.run(run_call(tmp_path, we_send=we_send, ecm=ecm, pages=2, loss=0.05, seed=11, redundancy=3))
    assert out.dropped > 10                  # the loss really happened (~5% of ~500 datagrams)
    assert_success(out, pages=2, rate=14400, ecm=ecm)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_interop_three_full_fine_pages(tmp_path):
    out = asyncio.run(run_call(tmp_path, we_send=True, ecm=True, pages=3, height=1100, resolution="fine"))
    assert_success(out, pages=3, rate=14400, ecm=True)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("we_send", [True, False], ids=["ours->spandsp", "spandsp->ours"])
def test_interop_small_max_datagram(tmp_path, we_send):
    """A far end that takes only 120-octet datagrams: our IFPs shrink and redundancy is shed to fit."""
    out = asyncio.run(run_call(tmp_path, we_send=we_send, ecm=True, pages=1, max_datagram=120))
    assert_success(out, pages=1, rate=14400, ecm=True)
    assert 60 < out.largest <= 120


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("ecm", [True, False], ids=["ecm", "noecm"])
def test_same_loss_without_redundancy_is_not_survived(tmp_path, ecm):
    """The control for the test above: the same seeded loss with redundancy 0 damages or breaks the call."""
    out = asyncio.run(run_call(tmp_path, we_send=True, ecm=ecm, pages=2, loss=0.05, seed=11, redundancy=0))
    assert out.dropped > 10
    intact = (out.ours is not None and out.ours.success and out.theirs["ok"] and len(out.received) == 2
              and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(out.sent, out.received,
                                                                                     strict=True)))
    assert not intact


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_interop_in_real_time(tmp_path):
    """No virtual clock: spandsp stepped every 20 ms of wall time, our side paced by the monotonic clock."""
    from t38_harness import RealTime

    from engine.clock import MonotonicClock

    async def main():
        net = RealTime()
        src = tmp_path / "src.tif"
        sent = make_fax_tiff(src, pages=1, height=300, dpi=DPI["fine"], seed=4)
        peer = SpandspPeer(net, False, rx_tiff=str(tmp_path / "rx.tif"), ecm=True, ident="SPANDSP")
        addr = await peer.start()
        clock = MonotonicClock()
        phy = await open_t38_udptl(clock, T38PhyOptions(calling=True), remote=addr, udptl_config=UdptlConfig())
        peer.endpoint.remote = phy.transport.local_address
        session = T30Session(phy, clock, T30Config(ident="OURS"), calling=True,
                             send_pages=[FaxPage(p, y_dpi=196) for p in sent])
        task = asyncio.ensure_future(session.run())
        t0 = clock.now()
        finished = await net.run(lambda: task.done() and peer.terminal.done, 90)
        stats = peer.terminal.stats()
        peer.close()
        await phy.hangup()
        return finished, task.result() if task.done() else None, stats, sent, clock.now() - t0

    finished, ours, theirs, sent, wall = asyncio.run(main())
    assert finished and ours.success and theirs["ok"], (ours, theirs)
    got = read_fax_pages(tmp_path / "rx.tif")
    assert len(got) == 1 and np.array_equal(got[0], sent[0])
    assert wall > 10          # paced at line speed: CED, V.21 bursts, TCF and the page take real time


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("we_send", [True, False], ids=["ours->spandsp", "spandsp->ours"])
@pytest.mark.parametrize("ecm", [True, False], ids=["ecm", "noecm"])
def test_interop_superfine(tmp_path, we_send, ecm):
    """R8 x 15.4 lines/mm (DIS/DCS bit 41) both ways, pixel for pixel."""
    out = asyncio.run(run_call(tmp_path, we_send=we_send, ecm=ecm, resolution="superfine", height=500))
    assert_success(out, pages=1, rate=14400, ecm=ecm)
    assert out.ours.resolution == "superfine"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("we_send", [True, False], ids=["ours->spandsp", "spandsp->ours"])
def test_lost_v21_preambles_do_not_spoil_spandsps_frames(tmp_path, we_send):
    """Every v21-preamble indicator spandsp sends is lost (all copies), without redundancy: each of its
    V.21 bursts then arrives as data without its indicator, and the frames in it must still count as
    good (regression: the loss used to mark the following frame bad, so every DIS/CFR/MCF was lost)."""
    dropped = []

    def drop_preambles(packet):
        if packet.indicator == Indicator.V21_PREAMBLE:
            dropped.append(packet)
            return True
        return False

    out = asyncio.run(run_call(tmp_path, we_send=we_send, ecm=True, redundancy=0, peer_drops=drop_preambles))
    assert len(dropped) >= 3
    assert_success(out, pages=1, rate=14400, ecm=True)
    assert "< (bad FCS)" not in out.log


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_spandsp_polls_with_rr_while_our_page_store_is_busy(tmp_path):
    """Our ECM receiver answers RNR while its page store (8 s per page) is busy; spandsp's sender
    polls with RR and both pages arrive intact."""
    out = asyncio.run(run_call(tmp_path, we_send=False, ecm=True, pages=2, store_seconds=8.0))
    assert_success(out, pages=2, rate=14400, ecm=True)
    assert out.log.count("> <RNR>") >= 2 and out.log.count("< <RR>") >= 2
