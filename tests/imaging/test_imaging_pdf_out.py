"""Received TIFF-F -> PDF: lossless (rendered back on the native pixel grid), small, any TIFF-F flavour."""

from __future__ import annotations

import ctypes
import io
import shutil
import subprocess

import numpy as np
import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from imaging.page import FaxPage
from imaging.pdf_out import pages_to_pdf, tiff_to_pdf
from imaging.tiff_f import TiffFWriter


def render_native(pdf: bytes, index: int, width: int, rows: int) -> np.ndarray:
    """Render a PDF page onto exactly width x rows pixels (the fax grid) with PDFium; True = black."""
    document = pdfium.PdfDocument(pdf)
    page = document[index]
    buf = np.full((rows, width), 255, dtype=np.uint8)
    bitmap = pdfium_c.FPDFBitmap_CreateEx(
        width, rows, pdfium_c.FPDFBitmap_Gray, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)), width
    )
    pdfium_c.FPDF_RenderPageBitmap(bitmap, page.raw, 0, 0, width, rows, 0, 0)
    pdfium_c.FPDFBitmap_Destroy(bitmap)
    page.close()
    document.close()
    return buf < 128


def fax_pages(helpers) -> list[FaxPage]:
    return [FaxPage(helpers.random_page(2156, seed=11), 196), FaxPage(helpers.random_page(1146, seed=12), 98)]


@pytest.mark.parametrize("compression", ["mh", "mr", "mmr"])
@pytest.mark.parametrize("fill_order", [1, 2])
@pytest.mark.parametrize("byte_align", [True, False])
def test_tiff_f_to_pdf_is_lossless_and_small(helpers, compression, fill_order, byte_align):
    pages = fax_pages(helpers)
    tiff = io.BytesIO()
    with TiffFWriter(tiff, compression=compression, fill_order=fill_order, byte_align=byte_align) as writer:
        for page in pages:
            writer.add_page(page)
    pdf = io.BytesIO()
    assert tiff_to_pdf(tiff.getvalue(), pdf) == 2
    for index, page in enumerate(pages):
        assert np.array_equal(render_native(pdf.getvalue(), index, 1728, page.rows), page.pixels)
    assert len(pdf.getvalue()) < len(tiff.getvalue()) + 2 * 1024  # the coded data as is, plus ~1 KB a page
    opened = pypdf.PdfReader(io.BytesIO(pdf.getvalue()))  # pypdf: a declared dependency (pikepdf is not)
    images = [p["/Resources"]["/XObject"]["/Im0"].get_object() for p in opened.pages]
    assert all(img["/Filter"] == "/CCITTFaxDecode" for img in images)
    # The page has the physical size of the fax page: 1728 / 204 in wide, rows / y_dpi in long.
    box = [float(v) for v in opened.pages[1].mediabox]
    assert abs(box[2] - 1728 / 204 * 72) < 0.01 and abs(box[3] - 1146 / 98 * 72) < 0.01


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (Debian poppler-utils) not installed")
@pytest.mark.parametrize("compression", ["mh", "mr"])
def test_poppler_reads_g3_passthrough_like_g4(tmp_path, helpers, compression):
    # Poppler resamples images on its own grid, so compare it with itself: our G3 passthrough PDF (FillOrder 2,
    # byte-aligned EOLs) must render byte-identical to the same page coded G4.
    page = fax_pages(helpers)[0]
    tiff = tmp_path / "rx.tif"
    with TiffFWriter(tiff, compression=compression, fill_order=2) as writer:
        writer.add_page(page)
    (tmp_path / "g3.pdf").write_bytes(tiff_to_pdf_bytes(tiff))
    (tmp_path / "g4.pdf").write_bytes(pages_to_pdf([page]))
    rendered = []
    for name in ("g3", "g4"):
        subprocess.run(["pdftoppm", "-gray", "-r", "100", str(tmp_path / f"{name}.pdf"), str(tmp_path / name)],
                       check=True, timeout=60)
        rendered.append(next(tmp_path.glob(f"{name}*.pgm")).read_bytes())
    assert rendered[0] == rendered[1]
    assert b"\x00" in rendered[0]  # not a blank page


@pytest.mark.parametrize("device", ["tiffg3", "tiffg32d", "tiffg4"])
def test_ghostscript_tiff_f_passes_through(tmp_path, letter_pdf, device):
    source = tmp_path / "in.pdf"
    source.write_bytes(letter_pdf)
    tiff = tmp_path / "gs.tif"
    subprocess.run(
        ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", f"-sDEVICE={device}", "-sPAPERSIZE=letter", "-dFIXEDMEDIA",
         "-dMaxStripSize=0", "-r203.29x196", f"-sOutputFile={tiff}", str(source)],
        check=True, timeout=120,
    )
    pdf = tiff_to_pdf_bytes(tiff)
    with Image.open(tiff) as image:
        for index in range(2):
            image.seek(index)
            expected = ~np.asarray(image)
            assert np.array_equal(render_native(pdf, index, 1728, image.size[1]), expected)


def tiff_to_pdf_bytes(tiff) -> bytes:
    out = io.BytesIO()
    tiff_to_pdf(tiff, out)
    return out.getvalue()


def test_multi_strip_and_uncompressed_pages_are_recoded(helpers):
    pixels = helpers.random_page(2156, seed=13)
    for options in ({"compression": "group4"}, {"compression": "raw"}, {"compression": "group3"}):
        buf = io.BytesIO()
        # Pillow's default 64 KB strips split a G4 page into several strips: not one T.6 stream.
        Image.fromarray(~pixels).save(buf, "TIFF", dpi=(204, 196), **options)
        pdf = tiff_to_pdf_bytes(buf.getvalue())
        assert np.array_equal(render_native(pdf, 0, 1728, 2156), pixels), options


def test_pages_to_pdf(helpers):
    pages = fax_pages(helpers)
    pdf = pages_to_pdf(pages)
    assert all(np.array_equal(render_native(pdf, i, 1728, p.rows), p.pixels) for i, p in enumerate(pages))


def _viewfax():
    import os
    from pathlib import Path

    for candidate in (os.environ.get("FAXENGINE_VIEWFAX", ""), "/usr/share/doc/mgetty-viewfax/viewfax.tif",
                      "/tmp/vf/x/usr/share/doc/mgetty-viewfax/viewfax.tif"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(_viewfax() is None, reason="viewfax.tif (Debian mgetty-viewfax) not present")
def test_real_received_fax_viewfax():
    """A real TIFF-F page written by fax2tiff: G4, FillOrder 2, A4 fine."""
    from imaging.convert import convert
    from imaging.tiff_f import read_tiff_f

    path = _viewfax()
    stored = list(read_tiff_f(path))
    assert len(stored) == 1 and stored[0].fill_order == 2 and stored[0].compression == 4
    page = stored[0].page
    assert page.pixels.shape == (2292, 1728) and page.y_dpi == 196
    assert np.array_equal(next(convert(path)).pixels, page.pixels)  # passthrough
    pdf = tiff_to_pdf_bytes(path)
    assert np.array_equal(render_native(pdf, 0, 1728, 2292), page.pixels)
    assert len(pdf) < path.stat().st_size + 1024
