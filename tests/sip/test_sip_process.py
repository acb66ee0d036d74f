"""Two engine processes fax each other over SIP + T.38: either side re-INVITEs, and glare."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from sip_helpers import HERE, direct_trunk, hold_first_t38_reinvites

from engine.clock import MonotonicClock
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from t38.sip import open_call_phy
from t38.trunk import SipConfig

pytestmark = [pytest.mark.timeout(90)]


def page(seed: int) -> FaxPage:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((150, 1728), dtype=bool)
    for _ in range(25):
        r, c = rng.integers(0, 140), rng.integers(0, 1700)
        pixels[r:r + 5, c:c + 30] = True
    return FaxPage(pixels=pixels, y_dpi=196)


def start_peer(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(HERE / "sip_peer_proc.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise AssertionError(f"peer did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, int(line.split()[1])


@pytest.mark.parametrize("order", ["caller", "callee", "glare"])
async def test_two_processes_fax_over_sip_t38(endpoints, relay, order):
    peer_args = ["--request-t38", "now" if order in ("callee", "glare") else "none", "--seconds", "60"]
    if order == "glare":
        relay.rule = hold_first_t38_reinvites(2)
        peer_args += ["--public", f"127.0.0.1:{relay.port_b}"]
    proc, peer_port = await asyncio.to_thread(start_peer, *peer_args)
    try:
        target = relay.port_b if order == "glare" else peer_port
        ep = await endpoints(SipConfig(port=0, public_address=f"127.0.0.1:{relay.port_a}" if order == "glare" else "",
                                       trunks=(direct_trunk(target, t38_request_as_caller=0.05
                                                            if order in ("caller", "glare") else None),)))
        if order == "glare":
            relay.real_a, relay.real_b = ep.address, ("127.0.0.1", peer_port)
        call = await ep.call("2002", "peer")
        if order == "glare":
            deadline = time.monotonic() + 5
            while len(relay.held) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert len(relay.held) == 2, "both sides sent a T.38 re-INVITE"
            relay.release_held()
        clock = MonotonicClock()
        phy = await open_call_phy(call, clock, calling=True, pacing=False, watch_media=30)
        pages = [page(1), page(2)]
        tx = await T30Session(phy, clock, T30Config(ident="PARENT"), send_pages=pages, calling=True).run()
        await call.hangup()
        line = await asyncio.to_thread(proc.stdout.readline)
        rx = json.loads(line)
        assert tx.success, tx.error_message
        assert rx["success"], rx
        assert rx["pages_received"] == 2 and rx["remote_ident"] == "PARENT" and tx.remote_ident == "PEER-PROCESS"
        assert rx["page_md5"] == [hashlib.md5(p.pixels.tobytes()).hexdigest() for p in pages]
        if order == "caller":
            assert call.t38_requests == 1 and rx["t38_requests"] == 0
        elif order == "callee":
            assert call.t38_requests == 0 and rx["t38_requests"] == 1
        else:
            assert call.glare_count >= 1 and rx["glare_count"] >= 1
            assert relay.seen("to_a", r"^SIP/2\.0 491") and relay.seen("to_b", r"^SIP/2\.0 491")
    finally:
        await asyncio.to_thread(proc.wait, 15)
        if proc.poll() is None:
            proc.kill()
