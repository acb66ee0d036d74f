"""One fax per call for the command line: ``run_sip_fax`` (what ``--via sip:`` runs)."""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import pytest
from sip_helpers import HERE, free_udp_port

if str(HERE.parent / "t38") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "t38"))

from t38_cli import cli, finish  # noqa: E402

from engine.clock import MonotonicClock
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from t38.sip import SipViaError, run_sip_fax

pytestmark = pytest.mark.timeout(60)


def factory(ident: str):
    return lambda phy, clock, **kw: T30Session(phy, clock, T30Config(ident=ident), **kw)


async def test_send_and_receive_one_fax_by_host_and_port(tmp_path, monkeypatch):
    monkeypatch.delenv("FAXENGINE_SIP_CONFIG", raising=False)
    port = free_udp_port()
    clock = MonotonicClock()
    pixels = np.zeros((120, 1728), dtype=bool)
    pixels[10:20, 100:400] = True
    got: list[FaxPage] = []
    rx_task = asyncio.ensure_future(run_sip_fax("2002", f"127.0.0.1:{port}", role="receive", clock=clock,
                                                session_factory=factory("RX"), on_page=lambda p, _b: got.append(p),
                                                timeout=20, pacing=False))
    await asyncio.sleep(0.3)
    tx = await run_sip_fax("2002", f"127.0.0.1:{port}", role="send", clock=clock, session_factory=factory("TX"),
                           pages=[FaxPage(pixels=pixels, y_dpi=98)], pacing=False)
    rx = await asyncio.wait_for(rx_task, 20)
    assert tx.success and rx.success, (tx.error_message, rx.error_message)
    assert np.array_equal(got[0].pixels, pixels)


async def test_sip_failures_become_results_and_bad_values_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("FAXENGINE_SIP_CONFIG", raising=False)
    port = free_udp_port()
    clock = MonotonicClock()
    rx_task = asyncio.ensure_future(run_sip_fax("2002", f"127.0.0.1:{port}", role="receive", clock=clock,
                                                session_factory=factory("RX"), timeout=10, pacing=False))
    await asyncio.sleep(0.3)
    tx = await run_sip_fax("9999", f"127.0.0.1:{port}", role="send", clock=clock, session_factory=factory("TX"),
                           pages=[], pacing=False)
    assert not tx.success and tx.error_code == "not_found" and "404" in tx.error_message
    rx_task.cancel()
    await asyncio.gather(rx_task, return_exceptions=True)
    with pytest.raises(SipViaError, match="neither a configured trunk"):
        await run_sip_fax("1", "no such host!", role="send", clock=clock, session_factory=factory("TX"))
    bad = tmp_path / "sip.toml"
    bad.write_text("[sip.trunks.x]\ntransport = 'carrier pigeon'\nproxy = '127.0.0.1'\n")
    with pytest.raises(SipViaError, match="transport"):
        await run_sip_fax("1", "x", role="send", clock=clock, session_factory=factory("TX"), config_path=str(bad))
    rx = await run_sip_fax("", f"127.0.0.1:{free_udp_port()}", role="receive", clock=clock,
                           session_factory=factory("RX"), timeout=0.3)
    assert rx.error_code == "no_call"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cli_send_and_receive_via_sip(tmp_path):
    """``faxengine receive --via sip:2002@HOST:PORT`` and ``faxengine send --via sip:2002@HOST:PORT``."""
    from modem.spandsp.testing import make_fax_tiff, read_fax_pages

    src = tmp_path / "doc.tif"
    pages = make_fax_tiff(src, pages=1, height=400)
    port = free_udp_port()
    receiver = cli("receive", "--via", f"sip:2002@127.0.0.1:{port}", "--out", str(tmp_path / "in"),
                    "--timeout", "40", "--ident", "RECEIVER", "--no-pacing")
    import time
    time.sleep(1.5)
    wrong = cli("send", str(src), "--to", "9999", "--via", f"sip:9999@127.0.0.1:{port}", "--no-pacing")
    sender = cli("send", str(src), "--to", "2002", "--via", f"sip:2002@127.0.0.1:{port}", "--ident", "SENDER",
                  "--no-pacing")
    rc_w, w, err_w = finish(wrong, 90)
    rc_tx, tx, err_tx = finish(sender, 90)
    rc_rx, rx, err_rx = finish(receiver, 90)
    assert rc_w == 1 and w["error_code"] == "not_found" and "404" in w["error_message"], err_w
    assert rc_tx == 0 and tx["success"], err_tx
    assert rc_rx == 0 and rx["success"], err_rx
    assert rx["remote_ident"] == "SENDER" and tx["remote_ident"] == "RECEIVER"
    got = read_fax_pages(rx["pages"][0])
    assert len(got) == 1 and np.array_equal(got[0], pages[0])
    bad = cli("send", str(src), "--to", "1", "--via", "sip:nonumber")
    rc_b, _, err_b = finish(bad, 90)
    assert rc_b == 2 and "sip: needs NUMBER@TRUNK" in err_b
