"""End to end: a fax over SIP + T.38 between two endpoints (our T.30 on both ends)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from sip_helpers import direct_trunk

from engine.clock import MonotonicClock
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from t38.sip import SipCall, open_call_phy
from t38.trunk import SipConfig, Trunk

pytestmark = pytest.mark.timeout(120)


def make_page(seed: int, rows: int = 160) -> FaxPage:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((rows, 1728), dtype=bool)
    for _ in range(30):
        r, c = rng.integers(0, rows - 10), rng.integers(0, 1700)
        pixels[r:r + rng.integers(1, 10), c:c + rng.integers(1, 28)] = True
    return FaxPage(pixels=pixels, y_dpi=196)


@pytest.mark.parametrize("who,ecm", [("caller", True), ("callee", False)])
async def test_fax_over_sip_t38_between_two_endpoints(endpoints, who, ecm):
    clock = MonotonicClock()
    received: list[FaxPage] = []
    rx_results: asyncio.Queue = asyncio.Queue()
    calls_b: list[SipCall] = []

    async def receive(call: SipCall) -> None:
        calls_b.append(call)
        phy = await open_call_phy(call, clock, calling=False, pacing=False, watch_media=30)
        session = T30Session(phy, clock, T30Config(ident="RECEIVER", ecm=ecm), calling=False,
                             on_page=lambda page, _bad: received.append(page))
        result = await session.run()
        await call.hangup()                       # BYE as soon as T.30 ends
        await rx_results.put(result)

    b_trunk = Trunk(name="direct", proxy="127.0.0.1", t38_request_as_callee=0.0 if who == "callee" else None)
    ep_b = await endpoints(SipConfig(port=0, default_trunk=b_trunk),
                           router=lambda did, caller, trunk: "acct" if did == "2002" else None, on_incoming=receive)
    ep_a = await endpoints(SipConfig(port=0, trunks=(direct_trunk(
        ep_b.address[1], t38_request_as_caller=0.0 if who == "caller" else None),)))
    pages = [make_page(1), make_page(2)]
    call = await ep_a.call("2002", "peer")
    phy = await open_call_phy(call, clock, calling=True, pacing=False, watch_media=30)
    tx = await T30Session(phy, clock, T30Config(ident="SENDER", ecm=ecm), send_pages=pages, calling=True).run()
    await call.hangup()
    rx = await asyncio.wait_for(rx_results.get(), 30)
    assert tx.success, tx.error_message
    assert rx.success, rx.error_message
    assert tx.pages_sent == 2 and rx.pages_received == 2 and tx.ecm is ecm
    assert tx.remote_ident == "RECEIVER" and rx.remote_ident == "SENDER"
    for got, want in zip(received, pages, strict=True):
        assert np.array_equal(got.pixels, want.pixels)
    await asyncio.wait_for(call.ended, 5)
    await asyncio.wait_for(calls_b[0].ended, 5)
    assert ep_a.active_calls() == 0 and ep_b.active_calls() == 0


@pytest.mark.slow
async def test_bye_mid_page_ends_the_receivers_session(endpoints):
    """The sender's side hangs up (BYE) while a page is being received: the receiver's T.30 stops,
    its result says why, and the call is gone on both sides."""
    clock = MonotonicClock()
    rx_results: asyncio.Queue = asyncio.Queue()
    in_page = asyncio.Event()

    def rx_progress(info: dict) -> None:
        if info.get("phase") == "C":
            in_page.set()

    async def receive(call: SipCall) -> None:
        phy = await open_call_phy(call, clock, calling=False, pacing=True, bye_grace=0.5)
        result = await T30Session(phy, clock, T30Config(ident="RECEIVER", ecm=False), calling=False,
                                  progress=rx_progress).run()
        await call.hangup()
        await rx_results.put(result)

    ep_b = await endpoints(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1",
                                                                 t38_request_as_callee=None)),
                           router=lambda did, caller, trunk: "acct", on_incoming=receive)
    ep_a = await endpoints(SipConfig(port=0, trunks=(direct_trunk(ep_b.address[1], t38_request_as_caller=0.0),)))
    call = await ep_a.call("2002", "peer")
    phy = await open_call_phy(call, clock, calling=True, pacing=True)
    session = T30Session(phy, clock, T30Config(ident="SENDER", ecm=False), send_pages=[make_page(3, rows=2200)],
                         calling=True)
    task = asyncio.ensure_future(session.run())
    await asyncio.wait_for(in_page.wait(), 30)
    await asyncio.sleep(0.5)                     # well inside the page (paced like a real line)
    await call.hangup()                          # BYE mid-page
    tx = await asyncio.wait_for(task, 15)
    rx = await asyncio.wait_for(rx_results.get(), 15)
    assert not tx.success and not rx.success
    assert rx.error_phase in ("C", "D") and "disconnected" in rx.error_message, rx   # page cut, then the line
    assert ep_a.active_calls() == 0 and ep_b.active_calls() == 0
