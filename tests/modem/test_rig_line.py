"""The rig's simulated line: exact delay, reproducible impairments, and their effect on real fax calls."""

from __future__ import annotations

import numpy as np
import pytest

from modem import spandsp
from modem.rig import LineDirection
from modem.spandsp.testing import make_fax_tiff, pages_identical, read_fax_pages


def test_delay_is_exact_across_blocks():
    line = LineDirection(delay_ms=25)               # 200 samples
    signal = np.arange(1, 801, dtype=np.int16)
    out = np.concatenate([line.carry(signal[i:i + 160]) for i in range(0, 800, 160)])
    assert np.all(out[:200] == 0)
    assert np.array_equal(out[200:], signal[:600])
    line.reset()
    assert np.all(line.carry(signal[:160]) == 0)


def test_hits_and_noise_are_reproducible_and_gated():
    tone = (8000 * np.sin(np.arange(160 * 100) * 0.7)).astype(np.int16)
    runs = []
    for _ in range(2):
        line = LineDirection(symbol_error_rate=1e-2, noise_dbm0=-30, seed=7)
        runs.append(np.concatenate([line.carry(tone[i:i + 160]) for i in range(0, len(tone), 160)]))
        assert line.hits > 0
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], tone)
    quiet = LineDirection(noise_dbm0=-30, seed=7)
    assert np.all(quiet.carry(np.zeros(160, dtype=np.int16)) == 0)     # no noise on silence
    with pytest.raises(ValueError):
        LineDirection(symbol_error_rate=0.7)
    with pytest.raises(ValueError):
        LineDirection(noise_dbm0=5)


def _call_over_line(tmp_path, ecm: bool, symbol_error_rate: float):
    src = tmp_path / "src.tif"
    pages = make_fax_tiff(src, pages=2, height=800, compression="group3")
    rx = tmp_path / f"rx-{ecm}.tif"
    a = spandsp.FaxAudioTerminal(True, tx_tiff=str(src), ecm=ecm)
    b = spandsp.FaxAudioTerminal(False, rx_tiff=str(rx), ecm=ecm)
    ab = LineDirection(symbol_error_rate=symbol_error_rate, seed=5)
    ba = LineDirection(symbol_error_rate=symbol_error_rate, seed=6)
    try:
        for _ in range(50 * 300):
            to_b, to_a = a.tx_audio(160), b.tx_audio(160)
            b.rx_audio(ab.carry(to_b))
            a.rx_audio(ba.carry(to_a))
            if a.done and b.done:
                break
        return a.stats(), b.stats(), pages, read_fax_pages(rx), ab.hits + ba.hits
    finally:
        a.close()
        b.close()


@pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
def test_line_errors_damage_non_ecm_pages_and_ecm_repairs_them(tmp_path):
    tx, rx, pages, got, hits = _call_over_line(tmp_path, ecm=False, symbol_error_rate=1e-4)
    assert hits > 0 and tx["ok"] and rx["pages_rx"] == 2
    assert rx["bad_rows"] > 0 and not pages_identical(got, pages)
    tx, rx, pages, got, hits = _call_over_line(tmp_path, ecm=True, symbol_error_rate=1e-4)
    assert hits > 0 and tx["ok"] and rx["ok"] and rx["ecm"]
    assert pages_identical(got, pages)
