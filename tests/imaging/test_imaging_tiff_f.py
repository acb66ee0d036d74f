"""TIFF-F writer and reader: Class F tags as tiffinfo (libtiff-tools) reads them, round trips, streaming."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaging import libtiff
from imaging.convert import convert_to_tiff
from imaging.page import FaxPage
from imaging.tiff_f import (
    ReceptionQuality,
    TiffFWriter,
    _encode_strip_pillow,
    encode_strip,
    read_tiff_f,
    reverse_bits,
)

COMPRESSION_NAME = {"mh": "CCITT Group 3", "mr": "CCITT Group 3", "mmr": "CCITT Group 4"}


@pytest.mark.parametrize("resolution", ["standard", "fine", "superfine"])
@pytest.mark.parametrize("compression", ["mh", "mr", "mmr"])
def test_every_page_reads_as_tiff_f(tmp_path, helpers, letter_pdf, compression, resolution):
    out = tmp_path / "out.tif"
    result = convert_to_tiff(letter_pdf, out, compression=compression, resolution=resolution)
    y = {"standard": "98", "fine": "196", "superfine": "391"}[resolution]
    directories = helpers.tiffinfo(out)
    assert len(directories) == result.pages == 2
    for number, d in enumerate(directories):
        assert d["width"] == "1728"
        assert d["Resolution"] == f"204, {y} pixels/inch"
        assert d["Compression Scheme"] == COMPRESSION_NAME[compression]
        assert d["Photometric Interpretation"] == "min-is-white"
        assert d["Bits/Sample"] == "1"
        assert d["Rows/Strip"] == d["length"]  # one strip per page
        assert d["Page Number"] == f"{number}-2"
        assert d["Subfile Type"].startswith("multi-page document")
        assert d["Software"] == "faxengine"
        assert re.fullmatch(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d", d["DateTime"])
        assert d["FillOrder"] == "msb-to-lsb"
        if compression == "mmr":
            assert d["Group 4 Options"].startswith("(0 = 0x0)")
        else:
            expected = "2-d encoding+EOL padding (5 = 0x5)" if compression == "mr" else "EOL padding (4 = 0x4)"
            assert d["Group 3 Options"] == expected


def test_libtiff_decodes_what_we_write(tmp_path, helpers):
    pixels = helpers.random_page(2156, seed=7)
    for compression in ("mh", "mr", "mmr"):
        for fill_order in (1, 2):
            path = tmp_path / f"{compression}{fill_order}.tif"
            with TiffFWriter(path, compression=compression, fill_order=fill_order) as writer:
                writer.add_page(FaxPage(pixels, 196))
            plain = tmp_path / "plain.tif"
            subprocess.run(["tiffcp", "-c", "none", str(path), str(plain)], check=True, timeout=60)
            with Image.open(plain) as image:
                assert np.array_equal(~np.asarray(image), pixels), (compression, fill_order)


@pytest.mark.parametrize("compression", ["mh", "mr", "mmr"])
@pytest.mark.parametrize("fill_order", [1, 2])
def test_round_trip_with_reception_tags(helpers, compression, fill_order):
    pages = [FaxPage(helpers.random_page(2292, seed=1), 196), FaxPage(helpers.random_page(1146, seed=2), 98)]
    when = dt.datetime(2026, 11, 27, 12, 34, 56)
    buf = io.BytesIO()
    with TiffFWriter(buf, compression=compression, fill_order=fill_order) as writer:
        writer.add_page(pages[0], when=when)
        writer.add_page(pages[1], quality=ReceptionQuality(bad_rows=12, consecutive_bad_rows=5), when=when)
    stored = list(read_tiff_f(buf.getvalue()))
    assert [np.array_equal(s.page.pixels, p.pixels) for s, p in zip(stored, pages, strict=True)] == [True, True]
    assert [s.page.y_dpi for s in stored] == [196, 98]
    assert stored[0].quality is None
    assert stored[1].quality == ReceptionQuality(12, 5, 1)  # bad rows concealed: "regenerated"
    assert stored[0].fill_order == fill_order
    assert stored[0].compression == (4 if compression == "mmr" else 3)
    assert stored[0].date_time == "2026:11:27 12:34:56"


def test_reception_tags_in_tiffinfo(tmp_path, helpers):
    path = tmp_path / "rx.tif"
    with TiffFWriter(path, compression="mmr") as writer:
        writer.add_page(FaxPage(helpers.random_page(2156), 196), quality=ReceptionQuality(3, 2, clean=2))
    d = helpers.tiffinfo(path)[0]
    assert d["Bad Fax Lines"] == "3"
    assert d["Consecutive Bad Fax Lines"] == "2"
    assert d["Fax Data"].startswith("uncorrected errors")


def test_fill_order_2_is_the_bit_reverse_of_fill_order_1(helpers):
    page = FaxPage(helpers.random_page(1078, seed=4), 98)
    strips = []
    for fill_order in (1, 2):
        buf = io.BytesIO()
        with TiffFWriter(buf, compression="mh", fill_order=fill_order) as writer:
            writer.add_page(page)
        strips.append(buf.getvalue())
    strip = encode_strip(page, "mh")
    assert strip in strips[0] and reverse_bits(strip) in strips[1]


def test_mr_uses_k4_at_fine_and_k2_at_standard(helpers):
    # With byte-aligned EOLs the tag bit after each EOL is the first bit of the next byte: 1 = 1-D row.
    pixels = helpers.random_page(1078, seed=5)
    for y_dpi, k in ((196, 4), (98, 2)):
        strip = encode_strip(FaxPage(pixels, y_dpi), "mr", byte_align=True)
        data = np.frombuffer(strip, dtype=np.uint8)
        # An aligned EOL (11 zeros, a one) ends a byte: a 0x01 byte after a byte whose low nibble is zero.
        eol_last_bytes = np.flatnonzero((data[:-2] & 0x0F == 0) & (data[1:-1] == 0x01)) + 1
        tags = [int(data[i + 1] >> 7) for i in eol_last_bytes[:12]]
        assert tags[: 2 * k] == ([1] + [0] * (k - 1)) * 2


@pytest.mark.parametrize("compression", ["mh", "mr", "mmr"])
@pytest.mark.parametrize("byte_align", [True, False])
def test_direct_libtiff_strip_is_pillows_strip(helpers, compression, byte_align):
    """encode_strip calls libtiff directly; its strips are byte for byte those of Pillow's libtiff writer."""
    rng = np.random.default_rng(11)
    pages = [
        FaxPage(helpers.random_page(2156, seed=6), 196), FaxPage(helpers.random_page(1078, seed=7), 98),
        FaxPage(rng.random((400, 2048)) < 0.3, 391), FaxPage(rng.random((9, 13)) < 0.5, 196),  # odd width
        FaxPage(np.zeros((1, 1728), dtype=bool), 196),
    ]
    options = (1 if compression == "mr" else 0) | (4 if byte_align else 0)
    for page in pages:
        direct = libtiff.encode(page.pixels, 4 if compression == "mmr" else 3, options, page.x_dpi, page.y_dpi)
        assert direct is not None  # libtiff is loadable here (Pillow's copy or the system's)
        assert direct == _encode_strip_pillow(page.pixels, compression, options, page.x_dpi, page.y_dpi)
        assert encode_strip(page, compression, byte_align=byte_align) == direct


def test_encode_strip_falls_back_to_pillow(helpers, monkeypatch):
    page = FaxPage(helpers.random_page(1000, seed=8), 196)
    expected = encode_strip(page, "mr")
    monkeypatch.setattr(libtiff, "encode", lambda *args: None)
    assert encode_strip(page, "mr") == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(1, 300), density=st.floats(0, 1), seed=st.integers(0, 2**32 - 1),
    compression=st.sampled_from(["mh", "mr", "mmr"]), fill_order=st.sampled_from([1, 2]),
    y_dpi=st.sampled_from([98, 196, 391]), byte_align=st.booleans(),
)
def test_round_trip_property(rows, density, seed, compression, fill_order, y_dpi, byte_align):
    pixels = np.random.default_rng(seed).random((rows, 1728)) < density
    buf = io.BytesIO()
    with TiffFWriter(buf, compression=compression, fill_order=fill_order, byte_align=byte_align) as writer:
        writer.add_page(FaxPage(pixels, y_dpi))
    stored = next(read_tiff_f(buf.getvalue()))
    assert stored.page.y_dpi == y_dpi and np.array_equal(stored.page.pixels, pixels)


def test_writer_streams_pages_and_patches_totals(helpers):
    buf = io.BytesIO()
    writer = TiffFWriter(buf, compression="mmr")
    for _ in range(5):
        writer.add_page(FaxPage(helpers.random_page(1078), 98))
    writer.close()
    with Image.open(io.BytesIO(buf.getvalue())) as image:
        numbers = []
        for index in range(image.n_frames):
            image.seek(index)
            numbers.append(image.tag_v2[297])
    assert numbers == [(i, 5) for i in range(5)]


def test_writer_refuses_wrong_width():
    from imaging.errors import ImagingError

    with pytest.raises(ImagingError, match="1728"):
        TiffFWriter(io.BytesIO()).add_page(FaxPage(np.zeros((10, 1700), bool)))


def test_received_b4_page_keeps_its_width(helpers):
    pixels = np.zeros((100, 2048), bool)
    pixels[10:20, 2000:] = True
    buf = io.BytesIO()
    with TiffFWriter(buf, compression="mmr") as writer:
        writer.add_page(FaxPage(pixels, 98), quality=ReceptionQuality())
    assert np.array_equal(next(read_tiff_f(buf.getvalue())).page.pixels, pixels)


def test_reader_accepts_ghostscript_tiff_f(tmp_path, letter_pdf):
    source = tmp_path / "in.pdf"
    source.write_bytes(letter_pdf)
    out = tmp_path / "gs.tif"
    subprocess.run(
        ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg3", "-sPAPERSIZE=letter", "-dFIXEDMEDIA",
         "-dMaxStripSize=0", "-r203.29x196", f"-sOutputFile={out}", str(source)],
        check=True, timeout=120,
    )
    stored = list(read_tiff_f(out))
    assert len(stored) == 2
    assert all(s.page.pixels.shape == (2156, 1728) and s.page.y_dpi == 196 and s.page.x_dpi == 204 for s in stored)
