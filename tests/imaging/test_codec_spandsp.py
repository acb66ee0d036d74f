"""Our codecs against spandsp's T.4 transmitter and receiver, a peer we did not write.

Both directions of a real fax call minus the modem: spandsp's t4_rx takes our line-order (LSB-first)
bytes, finds EOLs and RTC/EOFB, counts bad rows and writes a TIFF, which we read back; spandsp's t4_tx
codes a TIFF page for the line (with its own fill and RTC) and our decoder reads it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import conftest_codec as cc  # noqa: E402

from imaging.codec import Compression, decode, encode, min_row_bits_for  # noqa: E402

MH, MR, MMR = Compression.MH, Compression.MR, Compression.MMR
_ENCODING = {MH: 1, MR: 2, MMR: 3}  # T4_COMPRESSION_ITU_T4_1D / _T4_2D / _T6 (spandsp 0.0.6 t4_rx.h)


def _load():
    name = ctypes.util.find_library("spandsp") or "libspandsp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.t4_rx_init.restype = ctypes.c_void_p
    lib.t4_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    for fn in ("t4_rx_start_page", "t4_rx_end_page", "t4_rx_free"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
        getattr(lib, fn).restype = ctypes.c_int
    lib.t4_rx_put_chunk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.t4_rx_put_chunk.restype = ctypes.c_int
    for fn in ("t4_rx_set_rx_encoding", "t4_rx_set_image_width", "t4_rx_set_x_resolution", "t4_rx_set_y_resolution"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
        getattr(lib, fn).restype = None
    lib.t4_rx_get_transfer_statistics.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Stats)]
    lib.t4_rx_get_transfer_statistics.restype = None
    lib.t4_tx_init.restype = ctypes.c_void_p
    lib.t4_tx_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    for fn in ("t4_tx_start_page", "t4_tx_end_page", "t4_tx_free"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
        getattr(lib, fn).restype = ctypes.c_int
    lib.t4_tx_get_chunk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.t4_tx_get_chunk.restype = ctypes.c_int
    for fn in ("t4_tx_set_tx_encoding", "t4_tx_set_min_bits_per_row"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
        getattr(lib, fn).restype = None
    return lib


class _Stats(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int)
        for name in (
            "pages_transferred pages_in_file width length bad_rows longest_bad_row_run "
            "x_resolution y_resolution encoding line_image_size"
        ).split()
    ]


LIB = _load()
pytestmark = pytest.mark.skipif(LIB is None, reason="libspandsp not installed")


def _receive(data: bytes, comp: Compression, width: int, tmp: Path):
    """Feed line-order bytes to spandsp; returns (end of page seen, stats, decoded pixels)."""
    path = tmp / f"rx_{comp.value}.tif"
    state = LIB.t4_rx_init(None, str(path).encode(), 3)
    assert state
    try:
        LIB.t4_rx_set_rx_encoding(state, _ENCODING[comp])
        LIB.t4_rx_set_image_width(state, width)
        LIB.t4_rx_set_x_resolution(state, 8031)  # R8, pixels per metre
        LIB.t4_rx_set_y_resolution(state, 7700)  # fine
        assert LIB.t4_rx_start_page(state) == 0
        done = LIB.t4_rx_put_chunk(state, data, len(data))
        LIB.t4_rx_end_page(state)
        stats = _Stats()
        LIB.t4_rx_get_transfer_statistics(state, ctypes.byref(stats))
    finally:
        LIB.t4_rx_free(state)
    return bool(done), stats, cc.pillow_decode_tiff(path.read_bytes())


@pytest.mark.parametrize("comp", [MH, MR, MMR], ids=lambda c: c.value)
@pytest.mark.parametrize("mslt_ms", [0, 10, 20])
def test_spandsp_receives_our_pages(comp, mslt_ms, tmp_path):
    page = cc.text_page(rows=400)
    page[::37, ::5] = True  # some short rows and isolated pixels besides the text
    mrb = 0 if comp is MMR else min_row_bits_for(mslt_ms, 14400)
    data = encode(page, comp, k=4, min_row_bits=mrb, lsb_first=True)
    done, stats, pixels = _receive(data, comp, page.shape[1], tmp_path)
    assert done, "spandsp did not see RTC/EOFB"
    assert (stats.length, stats.bad_rows) == (page.shape[0], 0)
    assert np.array_equal(pixels, page)


@pytest.mark.parametrize("comp", [MH, MR], ids=lambda c: c.value)
def test_spandsp_receives_byte_aligned_pages(comp, tmp_path):
    page = cc.table_page(rows=300)
    data = encode(page, comp, k=2, byte_align=True, lsb_first=True)
    done, stats, pixels = _receive(data, comp, page.shape[1], tmp_path)
    assert done and stats.bad_rows == 0 and np.array_equal(pixels, page)


def _transmit(page: np.ndarray, comp: Compression, min_bits: int, tmp: Path) -> bytes:
    """spandsp codes a one-page TIFF for the line; returns the line-order bytes of the page."""
    path = tmp / "tx.tif"
    path.write_bytes(cc.wrap(encode(page, MMR, rtc=False), page, MMR))
    state = LIB.t4_tx_init(None, str(path).encode(), -1, -1)
    assert state
    out = bytearray()
    try:
        LIB.t4_tx_set_tx_encoding(state, _ENCODING[comp])
        LIB.t4_tx_set_min_bits_per_row(state, min_bits)
        assert LIB.t4_tx_start_page(state) == 0
        buf = ctypes.create_string_buffer(65536)
        for _ in range(10_000):  # bounded: a page is far less than 650 MB
            n = LIB.t4_tx_get_chunk(state, buf, len(buf))
            if n <= 0:
                break
            out += buf.raw[:n]
        LIB.t4_tx_end_page(state)
    finally:
        LIB.t4_tx_free(state)
    return bytes(out)


@pytest.mark.parametrize("comp", [MH, MR, MMR], ids=lambda c: c.value)
@pytest.mark.parametrize("min_bits", [0, 144])
def test_we_receive_spandsp_pages(comp, min_bits, tmp_path):
    page = cc.text_page(rows=300, seed=3)
    data = _transmit(page, comp, min_bits, tmp_path)
    out = decode(data, comp, page.shape[1], lsb_first=True)
    assert (out.rows, out.bad_rows) == (page.shape[0], 0)
    assert np.array_equal(out.pixels, page)
