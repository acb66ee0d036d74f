"""The binding's own contract: clear errors on bad input, lifecycle, logging, callback errors."""

from __future__ import annotations

import logging
import shutil
import subprocess

import numpy as np
import pytest

from modem import spandsp
from modem.spandsp import constants as C
from modem.spandsp.testing import make_fax_tiff, pages_identical, read_fax_pages

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")


def test_bad_options_give_clear_errors(tmp_path):
    send = lambda d, s: None  # noqa: E731
    with pytest.raises(FileNotFoundError, match="TIFF to send"):
        spandsp.T38Terminal(True, send, tx_tiff=str(tmp_path / "missing.tif"))
    with pytest.raises(FileNotFoundError, match="directory"):
        spandsp.FaxAudioTerminal(False, rx_tiff=str(tmp_path / "no" / "such" / "rx.tif"))
    with pytest.raises(ValueError, match="unknown modem"):
        spandsp.T38Terminal(True, send, modems=("v34",))
    with pytest.raises(ValueError, match="20 characters"):
        spandsp.FaxAudioTerminal(True, ident="x" * 21)
    with pytest.raises(ValueError, match="t38_version"):
        spandsp.T38Terminal(True, send, t38_version=4)
    with pytest.raises(ValueError, match="below every"):
        spandsp.T38Terminal(True, send, max_bit_rate=2400)
    with pytest.raises(ValueError, match="compression"):
        spandsp.T38Terminal(True, send, compressions=("jpeg2000",))
    with pytest.raises(TypeError):
        spandsp.T38Terminal(True, None)  # type: ignore[arg-type]


def test_closed_objects_refuse_calls():
    term = spandsp.T38Terminal(True, lambda d, s: None)
    term.close()
    term.close()  # idempotent
    with pytest.raises(spandsp.ClosedError):
        term.step()
    with pytest.raises(spandsp.ClosedError):
        term.rx_ifp(b"\x00", 0)
    fax = spandsp.FaxAudioTerminal(True)
    fax.close()
    with pytest.raises(spandsp.ClosedError):
        fax.tx_audio(160)
    modem = spandsp.T31Modem(lambda b: None)
    modem.close()
    with pytest.raises(spandsp.ClosedError):
        modem.at_rx(b"AT\r")


def test_sequence_numbers_and_copies_follow_spandsp():
    got: list[tuple[bytes, int]] = []
    term = spandsp.T38Terminal(True, lambda d, s: got.append((d, s)))
    try:
        for _ in range(50):
            term.step()
        seqs = [s for _, s in got]
        assert seqs == sorted(seqs) and seqs[0] == 0
        assert len(set(seqs)) == term.packets_sent          # one seq per packet spandsp made
        assert len(got) > len(set(seqs))                     # indicators came with repeats
        assert got[0] == (b"\x00", 0) and (b"\x02", 1) in got  # no-signal, then the CNG indicator
    finally:
        term.close()


def test_exception_in_send_packet_surfaces_in_caller():
    def boom(data: bytes, seq: int) -> None:
        raise RuntimeError("network down")

    term = spandsp.T38Terminal(True, boom)
    try:
        with pytest.raises(RuntimeError, match="network down"):
            for _ in range(50):
                term.step()
    finally:
        term.close()


def test_logging_goes_to_python_logging(caplog):
    caplog.set_level(logging.DEBUG, logger="faxengine.spandsp")
    term = spandsp.T38Terminal(True, lambda d, s: None, log=True, name="logtest")
    try:
        for _ in range(20):
            term.step()
    finally:
        term.close()
    records = [r for r in caplog.records if r.name == "faxengine.spandsp.logtest"]
    assert records, "no spandsp log lines arrived"
    assert any("logtest/t38core" in r.getMessage() and "cng" in r.getMessage() for r in records)


def test_t31_logging_and_audio_shapes(caplog):
    caplog.set_level(logging.DEBUG, logger="faxengine.spandsp")
    out = bytearray()
    modem = spandsp.T31Modem(out.extend, log=True, name="t31log")
    try:
        modem.at_rx(b"AT+FCLASS=1\r")
        assert out.endswith(b"OK\r\n")
        assert modem.tx_audio(160).dtype == np.int16 and len(modem.tx_audio(77)) == 77
        modem.rx_audio(np.zeros(160, dtype=np.int16))
        with pytest.raises(ValueError):
            modem.rx_audio(np.zeros((2, 80), dtype=np.int16))
    finally:
        modem.close()
    assert any("t31log/at" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to measure the private struct")
def test_t31_at_logging_offset_matches_private_headers(tmp_path):
    src = tmp_path / "off.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <tiffio.h>\n"
                   "#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES\n#include <spandsp.h>\n"
                   "int main(void){printf(\"%zu\", offsetof(t31_state_t, at_state.logging));return 0;}\n")
    proc = subprocess.run(["gcc", str(src), "-o", str(tmp_path / "off")], capture_output=True, timeout=60)
    if proc.returncode:
        pytest.skip(f"private headers not usable: {proc.stderr[:200]!r}")
    out = subprocess.run([str(tmp_path / "off")], capture_output=True, text=True, timeout=10).stdout
    assert int(out) == C.T31_AT_LOGGING_OFFSET


def test_page_comparison_detects_a_single_pixel(tmp_path):
    pages = make_fax_tiff(tmp_path / "a.tif", pages=2, height=300)
    again = read_fax_pages(tmp_path / "a.tif")
    assert pages_identical(pages, again)
    again[1][150, 900] = ~again[1][150, 900]
    assert not pages_identical(pages, again)
    assert not pages_identical(pages, again[:1])


def test_completion_text():
    assert spandsp.completion_text(0) == "OK"
    assert spandsp.completion_text(C.T30_ERR_CALLDROPPED) != "OK"
    assert spandsp.frame_name(0x80) == "DIS"


def test_missing_library_gives_a_clear_error(monkeypatch):
    from modem.spandsp import _lib

    monkeypatch.setattr(_lib, "_lib", None)
    monkeypatch.setattr(_lib, "SONAME", "libspandsp.so.999")
    with pytest.raises(spandsp.SpandspUnavailable, match="libspandsp2"):
        _lib.lib()
    assert _lib.available() is False
