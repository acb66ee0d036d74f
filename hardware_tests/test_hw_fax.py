"""Send/receive scenarios on the fax rig named by FAX_RIG (unset or "virtual": the virtual rig).

See README.md in this folder for wiring a hardware rig and what a passing run prints."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from hw_rig import make_pages, rig_spec, start_rig, stop_rig, transfer  # noqa: E402

from engine.t30 import T30Config  # noqa: E402

VIRTUAL = rig_spec() == "virtual"


def _needs_virtual_deps():
    if not VIRTUAL:
        return False
    from modem import spandsp
    return not spandsp.available()


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_needs_virtual_deps(), reason="virtual rig needs libspandsp")]

SCENARIOS = [
    ("v17-ecm", ("v17", "v29", "v27ter"), True),
    ("v17-noecm", ("v17", "v29", "v27ter"), False),
    ("v29-noecm", ("v29",), False),
    ("v27ter-ecm", ("v27ter",), True),
]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    rows = min(a.shape[0], b.shape[0])
    return a.shape[1] == b.shape[1] and abs(a.shape[0] - b.shape[0]) <= 1 and np.array_equal(a[:rows], b[:rows])


async def _two_pages(setup, name, record_property, **cfg):
    """Two pages from the rig's caller to its callee with these T30Config options, then the rig stops;
    the run goes into the test's output, and both sides must report both pages done."""
    try:
        pages = make_pages(2, rows=300 if VIRTUAL else 600)
        send_cfg = T30Config(ident="+1 555 0101", **cfg)
        recv_cfg = T30Config(ident="+1 555 0202", **cfg)
        sent, received, got = await transfer(setup, pages, send_cfg, recv_cfg)
    finally:
        await stop_rig(setup)
    summary = {"rig": setup.description, "scenario": name, "send": sent.to_dict(), "receive": received.to_dict()}
    record_property("fax_rig_run", json.dumps(summary))
    print(f"\nFAX_RIG {setup.description} {name}: send ok={sent.success} pages={sent.pages_sent} "
          f"speed={sent.fax_speed} ecm={sent.ecm} | receive ok={received.success} pages={received.pages_received} "
          f"{sent.error_code or ''}{received.error_code or ''}")
    assert sent.success, sent
    assert received.success, received
    assert sent.pages_sent == 2 and received.pages_received == 2
    return pages, sent, received, got


@pytest.mark.timeout(600 if not VIRTUAL else 150)
@pytest.mark.parametrize("name,modems,ecm", SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_hw_send_receive(name, modems, ecm, record_property):
    setup = await start_rig()
    pages, sent, received, got = await _two_pages(setup, name, record_property, ecm=ecm, modems=modems)
    assert sent.ecm == ecm and sent.remote_ident == "+1 555 0202" and received.remote_ident == "+1 555 0101"
    if "v17" not in modems:
        assert sent.fax_speed == {"v29": 9600, "v27ter": 4800}[modems[0]]
    for a, b in zip(pages, got, strict=True):
        assert _same(a.pixels, b.pixels)


CLASS20_SCENARIOS = [("c20-sends-ecm", "caller", True), ("c20-receives-noecm", "callee", False)]


@pytest.mark.timeout(600 if not VIRTUAL else 150)
@pytest.mark.parametrize("name,side,ecm", CLASS20_SCENARIOS, ids=[s[0] for s in CLASS20_SCENARIOS])
async def test_hw_class20_send_receive(name, side, ecm, record_property):
    """A Class 2.0 modem on one side (our Class2Driver; the modem runs T.30), our Class 1 stack on the other.
    Virtual: the rig's Class 2.0 modem in front of one of the pair's T.31 modems.  Hardware: runs for the
    side FAX_RIG names as class2.0 (e.g. ``class2.0:/dev/ttyACM0,class1:/dev/ttyACM1``), skips the other."""
    setup = await start_rig(class20_side=side if VIRTUAL else "", class20_ecm=ecm)
    if getattr(setup, side).kind != "class2.0":
        await stop_rig(setup)
        pytest.skip(f"FAX_RIG does not name a class2.0 modem as the {side}")
    pages, sent, received, got = await _two_pages(setup, name, record_property, ecm=ecm)
    assert sent.ecm == ecm and received.ecm == ecm
    assert received.remote_ident == "+1 555 0101"
    if not (VIRTUAL and side == "caller"):
        # The rig's Class 2.0 modem is store-and-forward: it runs T.30 only after <DLE>. so it has no +FCI
        # (called station's CSI) to report at ATD time; a real modem does.
        assert sent.remote_ident == "+1 555 0202"
    for a, b in zip(pages, got, strict=True):
        assert _same(a.pixels, b.pixels)


@pytest.mark.timeout(120)
async def test_hw_probe_records_identity(record_property):
    """With hardware, the probe's identity of both modems goes into the output (virtual: spandsp's)."""
    from modem.dial import ModemLine
    from modem.probe import probe

    setup = await start_rig()
    try:
        reports = []
        for spec in (setup.caller, setup.callee):
            line = ModemLine(spec.port, clock=setup.clock)
            await line.open()
            try:
                reports.append(await probe(line))
            finally:
                await line.close()
    finally:
        await stop_rig(setup)
    for r in reports:
        record_property(f"modem_identity_{r.port}", json.dumps(r.identity))
        print(f"\nFAX_RIG modem {r.port}: {json.dumps(r.identity)} classes={','.join(r.classes)} quirks={r.quirks}")
        assert r.classes, r.replies
        assert r.class1_tx or any(c in r.classes for c in ("2", "2.0"))
    if VIRTUAL:
        assert all(r.quirks == "spandsp-t31" for r in reports)
        assert "145" in reports[0].class1_tx
