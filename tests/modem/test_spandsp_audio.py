"""Two spandsp audio fax machines back to back over in-memory audio, through the binding."""

from __future__ import annotations

import pytest

from modem import spandsp
from modem.spandsp.testing import make_fax_tiff, pages_identical, read_fax_pages, run_audio_pair

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")


@pytest.mark.parametrize("ecm,modem,rate", [(False, "v17", 14400), (True, "v29", 9600), (False, "v27ter", 4800)])
def test_audio_pair_transfers_pixel_identical_pages(tmp_path, ecm, modem, rate):
    src, rx = tmp_path / "src.tif", tmp_path / "rx.tif"
    pages = make_fax_tiff(src, pages=2, height=800, compression="group3")
    tx_stats, rx_stats = run_audio_pair(
        dict(tx_tiff=str(src), ecm=ecm, modems=(modem,), ident="CALLER"),
        dict(rx_tiff=str(rx), ecm=ecm, modems=(modem,), ident="ANSWERER"))
    assert tx_stats["ok"] and rx_stats["ok"], (tx_stats, rx_stats)
    assert tx_stats["pages_tx"] == 2 and rx_stats["pages_rx"] == 2
    assert tx_stats["bit_rate"] == rate and rx_stats["ecm"] is ecm
    assert tx_stats["remote_ident"] == "ANSWERER" and rx_stats["remote_ident"] == "CALLER"
    assert pages_identical(read_fax_pages(rx), pages)


def test_audio_answerer_alone_times_out_with_a_reason():
    """A caller with nobody on the line must end (T1/T0), not run forever."""
    term = spandsp.FaxAudioTerminal(True, ecm=False)
    import numpy as np
    silence = np.zeros(160, dtype=np.int16)
    try:
        for _ in range(int(90 * 50)):          # 90 s of simulated silence
            term.tx_audio(160)
            term.rx_audio(silence)
            if term.done:
                break
        assert term.done
        stats = term.stats()
        assert stats["completion_code"] != 0 and stats["completion"] != "OK"
        assert stats["pages_tx"] == 0
    finally:
        term.close()
