"""Our T.30 over SIP + T.38 against spandsp's T.38 terminal (libspandsp2 via ctypes) behind a
minimal SIP answerer/caller, so the far end's T.30 and IFP code are not ours."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from sip_helpers import direct_trunk

from engine.clock import MonotonicClock
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from t38.sip import SipCall, SipEndpoint, open_call_phy
from t38.trunk import SipConfig, Trunk
from t38.udptl import UdptlConfig, UdptlEndpoint

spandsp = pytest.importorskip("modem.spandsp.t38_terminal")
testing = pytest.importorskip("modem.spandsp.testing")
pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


async def run_spandsp_on_call(call: SipCall, *, calling: bool, **terminal_kwargs) -> dict:
    """Drive a spandsp T38Terminal in real time (160 samples / 20 ms) on the call's UDPTL socket."""
    media = await call.t38_ready
    loop = asyncio.get_running_loop()
    state: dict = {"last_seq": None}
    terminal_box: list = []

    def rx(seq: int, ifp: bytes | None) -> None:
        call.media_activity()
        if ifp is not None and terminal_box and not terminal_box[0].closed:
            terminal_box[0].rx_ifp(ifp, seq)

    config = UdptlConfig(redundancy=media.params.redundancy_depth, max_datagram=media.params.remote_max_datagram)
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: UdptlEndpoint(rx, config, media.remote_address), sock=media.sock)

    def tx(ifp: bytes, seq: int) -> None:
        if seq == state["last_seq"]:
            endpoint.repeat_last()
        else:
            state["last_seq"] = seq
            endpoint.send(ifp)

    terminal = spandsp.T38Terminal(calling, tx, t38_version=media.params.version, **terminal_kwargs)
    terminal_box.append(terminal)
    start = loop.time()
    ticks = 0
    try:
        while not terminal.done and not call.is_ended and loop.time() - start < 120:
            terminal.step(160)
            ticks += 1
            await asyncio.sleep(max(0.0, start + ticks * 0.02 - loop.time()))
        # the far end may hang up as soon as it has our DCN: let spandsp finish phase E (up to 3 s)
        for _ in range(150):
            if terminal.done:
                break
            terminal.step(160)
            await asyncio.sleep(0.02)
        return terminal.stats()
    finally:
        terminal.close()
        endpoint.close()


async def _caller_and_answerer(endpoints, answer, account: str) -> SipEndpoint:  # noqa: ANN001
    """B answers every call (routed to ``account``) with ``answer`` and asks for T.38 after 0.5 s; A, returned,
    calls B on trunk "peer" and waits for B's T.38 re-INVITE."""
    ep_b = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1",
                                                                 t38_request_as_callee=0.5)),
                           router=lambda did, caller, trunk: account, on_incoming=answer)
    return await endpoints(SipConfig(port=0, trunks=(direct_trunk(ep_b.address[1], t38_request_as_caller=None),)))


async def test_we_send_to_spandsp_over_sip(endpoints, tmp_path):
    rx_tiff = tmp_path / "rx.tif"
    results: asyncio.Queue = asyncio.Queue()

    async def answer(call: SipCall) -> None:
        stats = await run_spandsp_on_call(call, calling=False, rx_tiff=str(rx_tiff), ident="SPANDSP", ecm=True)
        await call.hangup()
        await results.put(stats)

    ep_a = await _caller_and_answerer(endpoints, answer, account="spandsp")
    clock = MonotonicClock()
    rng = np.random.default_rng(7)
    pixels = np.zeros((300, 1728), dtype=bool)
    for _ in range(40):
        r, c = rng.integers(0, 290), rng.integers(0, 1700)
        pixels[r:r + 8, c:c + 20] = True
    page = FaxPage(pixels=pixels, y_dpi=196)
    call = await ep_a.call("2002", "peer")
    phy = await open_call_phy(call, clock, calling=True, pacing=True, watch_media=30)
    tx = await T30Session(phy, clock, T30Config(ident="FAXENGINE", ecm=True), send_pages=[page], calling=True).run()
    await call.hangup()
    stats = await asyncio.wait_for(results.get(), 60)
    assert tx.success, tx.error_message
    assert tx.remote_ident == "SPANDSP"
    assert stats["ok"], stats
    got = testing.read_fax_pages(str(rx_tiff))
    assert len(got) == 1 and np.array_equal(got[0], pixels)


async def test_spandsp_sends_to_us_over_sip(endpoints, tmp_path):
    tx_tiff = tmp_path / "tx.tif"
    testing.make_fax_tiff(tx_tiff, pages=1, height=300)
    received: list[FaxPage] = []
    results: asyncio.Queue = asyncio.Queue()

    async def answer(call: SipCall) -> None:
        clock = MonotonicClock()
        phy = await open_call_phy(call, clock, calling=False, pacing=True, watch_media=30)
        result = await T30Session(phy, clock, T30Config(ident="FAXENGINE"), calling=False,
                                  on_page=lambda p, _bad: received.append(p)).run()
        await call.hangup()
        await results.put(result)

    ep_a = await _caller_and_answerer(endpoints, answer, account="acct")
    call = await ep_a.call("2002", "peer")
    stats = await run_spandsp_on_call(call, calling=True, tx_tiff=str(tx_tiff), ident="SPANDSP", ecm=False)
    await call.hangup()
    rx = await asyncio.wait_for(results.get(), 60)
    assert stats["ok"], (stats["completion"], stats["frames"], rx)
    assert rx.success, rx.error_message
    assert rx.pages_received == 1 and rx.remote_ident == "SPANDSP"
    want = testing.read_fax_pages(str(tx_tiff))
    assert np.array_equal(received[0].pixels, want[0])
