"""Interoperability of our MH/MR/MMR codecs with libtiff (Pillow and libtiff-tools), a peer we did not write."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import conftest_codec as cc  # noqa: E402

from imaging.codec import Compression, decode, encode  # noqa: E402
from imaging.codec.tiffwrap import read_strip  # noqa: E402

MH, MR, MMR = Compression.MH, Compression.MR, Compression.MMR
CASES = [(MH, 2), (MR, 2), (MR, 4), (MMR, 2)]


def _pages():
    rng = np.random.default_rng(7)
    noise = rng.random((120, 1728)) < 0.3
    edges = np.zeros((40, 1728), dtype=bool)
    edges[::2, 0] = True
    edges[1::2, -1] = True
    edges[5, :] = True
    odd = rng.random((50, 1001)) < 0.4
    return {
        "text": cc.text_page(rows=600),
        "table": cc.table_page(rows=400),
        "photo": cc.photo_page(rows=300),
        "noise": noise,
        "edges": edges,
        "odd_width": odd,
        "wide": rng.random((30, 5500)) < 0.002,
    }


PAGES = _pages()


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("comp,k", CASES, ids=lambda v: str(getattr(v, "value", v)))
@pytest.mark.parametrize("lsb_first", [False, True], ids=["fo1", "fo2"])
def test_pillow_decodes_ours(name, comp, k, lsb_first):
    page = PAGES[name]
    data = encode(page, comp, k=k, rtc=False, lsb_first=lsb_first)
    tiff = cc.wrap(data, page, comp, lsb_first=lsb_first)
    assert np.array_equal(cc.pillow_decode_tiff(tiff), page)


@pytest.mark.parametrize("comp,k", CASES, ids=lambda v: str(getattr(v, "value", v)))
def test_ours_is_byte_identical_to_libtiff(comp, k):
    """Same coding decisions as libtiff (a stronger check than decodability)."""
    for name in ("text", "photo", "edges", "odd_width"):
        page = PAGES[name]
        ours = encode(page, comp, k=k, rtc=comp is MMR)
        if comp is MMR:  # libtiff's G4 strip ends with EOFB; ours adds one zero byte after it
            assert ours[-1] == 0
            ours = ours[:-1]
        assert ours == cc.libtiff_encode(page, comp, k=k), name


@pytest.mark.parametrize("comp,k", [(MH, 2), (MR, 2), (MR, 4)], ids=lambda v: str(getattr(v, "value", v)))
def test_byte_aligned_eols_identical_to_libtiff(comp, k):
    """T4Options bit 2 (EOL padding): same fill as libtiff."""
    for name in ("text", "noise", "odd_width"):
        page = PAGES[name]
        ours = encode(page, comp, k=k, rtc=False, byte_align=True)
        assert ours == cc.libtiff_encode(page, comp, k=k, byte_align=True), name


@pytest.mark.skipif(not cc.HAVE_TIFFCP, reason="libtiff-tools not installed")
@pytest.mark.parametrize("comp,k", CASES, ids=lambda v: str(getattr(v, "value", v)))
@pytest.mark.parametrize("byte_align", [False, True], ids=["plain", "aligned"])
def test_tiffcp_decodes_ours(comp, k, byte_align, tmp_path):
    for name in ("text", "photo", "odd_width"):
        page = PAGES[name]
        lsb = name == "photo"
        data = encode(page, comp, k=k, rtc=False, byte_align=byte_align, lsb_first=lsb)
        tiff = cc.wrap(data, page, comp, lsb_first=lsb, byte_align=byte_align and comp is not MMR)
        assert np.array_equal(cc.tiffcp_decode(tiff, tmp_path), page), name


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("comp,k", CASES, ids=lambda v: str(getattr(v, "value", v)))
def test_we_decode_libtiff(name, comp, k):
    page = PAGES[name]
    strip = cc.libtiff_encode(page, comp, k=k)
    out = decode(strip, comp, page.shape[1])
    assert (out.rows, out.bad_rows) == (page.shape[0], 0)
    assert np.array_equal(out.pixels, page)


@pytest.mark.parametrize("comp", [MH, MR])
def test_we_decode_libtiff_byte_aligned(comp):
    page = PAGES["text"]
    strip = cc.libtiff_encode(page, comp, k=4, byte_align=True)
    out = decode(strip, comp, page.shape[1])
    assert out.bad_rows == 0 and np.array_equal(out.pixels, page)


@pytest.mark.skipif(not cc.HAVE_TIFFCP, reason="libtiff-tools not installed")
@pytest.mark.parametrize("comp,k", CASES, ids=lambda v: str(getattr(v, "value", v)))
def test_we_decode_tiffcp_fill_order2(comp, k, tmp_path):
    page = PAGES["text"]
    src = cc.wrap(cc.libtiff_encode(page, comp, k=k), page, comp)
    fo2 = cc.tiffcp_fill_order2(src, tmp_path)
    strip, tags = read_strip(tmp_path / "fo2.tif")
    assert tags[266] == 2
    out = decode(strip, comp, page.shape[1], lsb_first=True)
    assert out.bad_rows == 0 and np.array_equal(out.pixels, page)
    assert len(fo2) > 0


def test_real_fax_viewfax():
    """mgetty's viewfax.tif: a real G4 FillOrder=2 page written by fax2tiff."""
    path = cc.viewfax_path()
    if path is None:
        pytest.skip("viewfax.tif not available (apt-get download mgetty-viewfax; dpkg-deb -x into /tmp/vf/x)")
    strip, tags = read_strip(path)
    width, rows = tags[256], tags[257]
    out = decode(strip, MMR, width, lsb_first=tags.get(266) == 2, max_rows=rows)
    assert (out.rows, out.bad_rows) == (rows, 0)
    ref = cc.pillow_decode_tiff(path.read_bytes())
    assert np.array_equal(out.pixels, ref)
    for comp, k in CASES:  # re-encode the real page every way and read it back with libtiff
        data = encode(ref, comp, k=k, rtc=False, lsb_first=True)
        assert np.array_equal(cc.pillow_decode_tiff(cc.wrap(data, ref, comp, lsb_first=True)), ref)
        assert np.array_equal(decode(data, comp, width, lsb_first=True).pixels, ref)
