"""Two spandsp T.38 terminals through the binding: the received TIFF must be pixel-identical."""

from __future__ import annotations

import pytest

from modem import spandsp
from modem.spandsp.testing import make_fax_tiff, pages_identical, read_fax_pages, run_t38_pair

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")

RATES = {"v17": 14400, "v29": 9600, "v27ter": 4800}


@pytest.fixture(scope="module")
def source_tiffs(tmp_path_factory):
    d = tmp_path_factory.mktemp("t38src")
    g4, g3 = d / "src_g4.tif", d / "src_g3.tif"
    pages = make_fax_tiff(g4, pages=3, compression="group4")
    assert pages_identical(make_fax_tiff(g3, pages=3, compression="group3"), pages)
    assert pages_identical(read_fax_pages(g4), pages)
    return {"g4": str(g4), "g3": str(g3), "pages": pages}


@pytest.mark.parametrize("t38_version", [0, 3])
@pytest.mark.parametrize("modem", ["v17", "v29", "v27ter"])
@pytest.mark.parametrize("ecm", [False, True])
def test_t38_pair_transfers_pixel_identical_pages(tmp_path, source_tiffs, ecm, modem, t38_version):
    rx = tmp_path / "rx.tif"
    src = source_tiffs["g4" if ecm else "g3"]
    tx_stats, rx_stats = run_t38_pair(
        dict(tx_tiff=src, ecm=ecm, modems=(modem,), t38_version=t38_version, ident="+1 555 0001"),
        dict(rx_tiff=str(rx), ecm=ecm, modems=(modem,), t38_version=t38_version, ident="+1 555 0002"))
    assert tx_stats["completion_code"] == 0, tx_stats
    assert rx_stats["completion_code"] == 0, rx_stats
    assert tx_stats["completion"] == "OK"
    assert tx_stats["pages_tx"] == 3 and rx_stats["pages_rx"] == 3
    assert tx_stats["bit_rate"] == RATES[modem] == rx_stats["bit_rate"]
    assert tx_stats["ecm"] is ecm and rx_stats["ecm"] is ecm
    assert rx_stats["bad_rows"] == 0
    assert rx_stats["remote_ident"] == "+1 555 0001" and tx_stats["remote_ident"] == "+1 555 0002"
    assert (rx_stats["x_resolution"], rx_stats["y_resolution"], rx_stats["width"]) == (8031, 7700, 1728)
    assert "->DCS" in tx_stats["frames"] and "<-DCS" in rx_stats["frames"]
    assert pages_identical(read_fax_pages(rx), source_tiffs["pages"])


def test_t38_no_pacing_and_restrictions(tmp_path, source_tiffs):
    rx = tmp_path / "rx.tif"
    tx_stats, rx_stats = run_t38_pair(
        dict(tx_tiff=source_tiffs["g4"], no_pacing=True, max_bit_rate=9600, compressions=("t4_1d",)),
        dict(rx_tiff=str(rx), no_pacing=True, resolutions=("standard", "fine"), min_scan_line_ms=10),
        max_seconds=60)
    assert tx_stats["ok"] and rx_stats["ok"], (tx_stats, rx_stats)
    assert tx_stats["bit_rate"] == 9600          # V.17 dropped by the 9600 cap
    assert tx_stats["encoding"] == "t4_1d"       # only 1D offered by the sender
    assert pages_identical(read_fax_pages(rx), source_tiffs["pages"])


def test_t38_receiver_without_fine_gets_error(tmp_path, source_tiffs):
    tx_stats, rx_stats = run_t38_pair(
        dict(tx_tiff=source_tiffs["g4"], no_pacing=True),
        dict(rx_tiff=str(tmp_path / "rx.tif"), no_pacing=True, resolutions=("standard",)), max_seconds=120)
    assert tx_stats["completion_code"] not in (None, 0)
    assert tx_stats["completion"] != "OK"
    assert tx_stats["pages_tx"] == 0
