"""Faults on the rig's side of the wire: a DTE that vanishes mid-call, then comes back."""

from __future__ import annotations

import pytest

from modem import spandsp
from modem.rig import Rig
from modem.rig.testing import PtyDte

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")


@pytest.mark.timeout(60)
async def test_dte_closing_the_port_mid_call_ends_the_call_and_port_reopens(tmp_path):
    rig = Rig("answer", output_dir=str(tmp_path), speed=4.0, answer_delay=0.2, hangup_grace=2.0)
    paths = await rig.start()
    dte = PtyDte(paths["modem"])
    try:
        await dte.command(b"AT+FCLASS=1")
        await dte.command(b"ATD5551234", b"CONNECT\r\n", timeout=15)
        await dte.read_until(b"OK\r\n", timeout=10)              # CSI/DIS arriving
    finally:
        dte.close()                                             # the DTE dies without ATH
    result = (await rig.wait_results(1, timeout=20))[0]
    assert result["hung_up_by"] == "dte-gone" and result["answered"]
    assert result["ok"] is False and result["completion"] != "OK"
    # a new DTE on the same path finds an idle modem and can call again
    dte = PtyDte(paths["modem"])
    try:
        assert (await dte.command(b"AT", timeout=10)).endswith(b"OK\r\n")
        await dte.command(b"AT+FCLASS=1")
        assert b"CONNECT" in await dte.command(b"ATD5551234", b"CONNECT\r\n", b"NO CARRIER\r\n", timeout=15)
    finally:
        dte.close()
        await rig.stop()
    assert len(rig.results) == 2


@pytest.mark.timeout(60)
async def test_silent_far_end_gives_no_carrier(tmp_path):
    rig = Rig("answer", output_dir=str(tmp_path), speed=30.0, answer_delay=0.2,   # only the rig's clock here
              dial_results={"000": "no-carrier"})
    paths = await rig.start()
    dte = PtyDte(paths["modem"])
    try:
        await dte.command(b"AT+FCLASS=1")
        got = await dte.command(b"ATD000", b"CONNECT\r\n", b"NO CARRIER\r\n", b"ERROR\r\n", timeout=40)
        assert got.endswith(b"NO CARRIER\r\n"), got
    finally:
        dte.close()
        await rig.stop()
    assert rig.results and rig.results[0].get("reason") == "no-carrier"
