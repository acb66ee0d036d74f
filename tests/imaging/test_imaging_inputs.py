"""Input cases the issue names that the other files do not reach: TIFF in every compression and mode, PDF
/Rotate, 6-point text in the default mode, superfine for every input type, oversize scans, the progress bar."""

from __future__ import annotations

import io

import numpy as np
import pypdf
import pytest
from PIL import Image
from reportlab.lib.pagesizes import letter

from imaging.commands import _Progress
from imaging.convert import convert


def _bar_image(mode: str) -> Image.Image:
    """A 200-dpi Letter page (1700 x 2200) with a black bar 1 inch down, across the middle."""
    image = Image.new("L", (1700, 2200), 255)
    image.paste(0, (200, 200, 1500, 300))
    if mode == "I;16":
        return Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    return image.convert(mode)


@pytest.mark.parametrize(
    ("mode", "compression"),
    [
        ("L", "raw"), ("L", "packbits"), ("L", "tiff_adobe_deflate"), ("L", "jpeg"), ("RGB", "jpeg"),
        ("RGB", "tiff_lzw"), ("CMYK", "raw"), ("CMYK", "packbits"), ("P", "tiff_lzw"), ("LA", "raw"),
        ("I;16", "raw"), ("1", "group4"), ("1", "group3"), ("1", "packbits"),
    ],
)
def test_tiff_of_any_compression_and_mode(mode, compression):
    buf = io.BytesIO()
    _bar_image(mode).save(buf, "TIFF", compression=compression, dpi=(200, 200))
    page = next(convert(buf.getvalue()))
    assert page.pixels.shape == (2156, 1728) and page.y_dpi == 196
    # 1 inch down at 196 lpi, 1 inch from the left at 204 dpi (+ the centring of 8.5 in on 1728 px)
    bar = page.pixels[200:290, 220:1490]
    assert bar.mean() > 0.97, (mode, compression)
    assert not page.pixels[500:2000].any()  # nothing else: no noise, no inverted page


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_pdf_rotate_attribute_is_honoured(helpers, rotate):
    def draw(c, w, h):
        c.rect(72, h - 144, w - 144, 36, fill=1, stroke=0)  # a bar across the top of the portrait page

    reader = pypdf.PdfReader(io.BytesIO(helpers.pdf_bytes([(letter, draw)])))
    writer = pypdf.PdfWriter()
    writer.add_page(reader.pages[0]).rotate(rotate)
    out = io.BytesIO()
    writer.write(out)
    page = next(convert(out.getvalue()))
    assert page.pixels.shape == (2156, 1728)
    rows = np.flatnonzero(page.pixels.mean(axis=1) > 0.5)
    cols = np.flatnonzero(page.pixels.mean(axis=0) > 0.01)
    assert rows.size and cols[-1] - cols[0] > 1200  # still a horizontal bar: portrait again
    if rotate == 180:  # shown upside down, so sent upside down (a portrait page is never turned)
        assert rows.min() > 2156 // 2
    else:  # displayed landscape, turned back to portrait: the bar is at the top or the bottom
        assert rows.max() < 2156 // 4 or rows.min() > 3 * 2156 // 4


@pytest.mark.parametrize("resolution", ["fine", "superfine"])
def test_six_point_text_is_untouched_by_the_default_halftone(letter_pdf, resolution):
    """The default mode's screen leaves aliased text pure: 6-pt glyphs come out exactly as in text mode."""
    auto, text = (next(convert(letter_pdf, bilevel=m, resolution=resolution)) for m in ("auto", "text"))
    y = auto.y_dpi
    region = (slice(round(80 / 72 * y), round(95 / 72 * y)), slice(190, 800))  # "six point text stays..."
    glyphs = auto.pixels[region]
    assert np.array_equal(glyphs, text.pixels[region])
    assert 0.02 < glyphs.mean() < 0.3  # ink is there, and not a smudge
    # letters stay apart: many separate ink columns across the line
    ink_cols = glyphs.any(axis=0)
    assert np.count_nonzero(np.diff(ink_cols.astype(np.int8)) == 1) > 25


def test_superfine_for_images_and_text(helpers):
    image = Image.new("L", (850, 1100), 255)  # 100 dpi Letter
    image.paste(0, (100, 100, 750, 150))
    page = next(convert(helpers.png_bytes(image, dpi=(100, 100)), resolution="superfine"))
    assert page.pixels.shape == (4301, 1728) and page.y_dpi == 391
    rows = np.flatnonzero(page.pixels.mean(axis=1) > 0.5)
    assert abs(rows[0] - 391) < 8 and abs(rows[-1] - 1.5 * 391) < 8  # physical size kept: 1 in .. 1.5 in down
    page = next(convert(b"superfine text\n", resolution="superfine"))
    assert page.pixels.shape == (4301, 1728) and page.pixels.any()


def test_scan_larger_than_any_paper_is_shrunk_whole():
    image = Image.new("L", (1754, 2480), 0)  # A3 at 150 dpi: 11.7 x 16.5 in, a black frame 20 px wide
    image.paste(255, (20, 20, 1734, 2460))
    buf = io.BytesIO()
    image.save(buf, "PNG", dpi=(150, 150))
    page = next(convert(buf.getvalue()))
    rows = np.flatnonzero(page.pixels.mean(axis=1) > 0.5)  # the top and bottom edges of the frame
    cols = np.flatnonzero(page.pixels.mean(axis=0) > 0.5)  # the left and right edges
    assert rows.size and cols.size
    assert rows[0] >= 0 and rows[-1] < page.rows and rows[-1] - rows[0] > 0.9 * page.rows
    assert cols[-1] - cols[0] > 0.6 * 1728  # aspect kept: shrunk to fit the length, centred
    assert abs(cols[0] - (1727 - cols[-1])) <= 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_in_place_on_a_terminal():
    stream = _Terminal()
    progress = _Progress(stream)
    for done in range(1, 4):
        progress(done, 3)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r[") == 3 and text.endswith("] 3/3 pages\n")
    assert "[" + "#" * 30 + "]" in text
    quiet = _Terminal()
    single = _Progress(quiet)
    single(1, 1)  # one page: no bar
    single.finish()
    assert quiet.getvalue() == ""


def test_wider_fax_tiff_is_scaled_to_1728_not_cropped():
    """A received B4 page (2048 pels at 204 x 196) sent on: scaled to the A4 line, its right edge kept."""
    pixels = np.zeros((2000, 2048), dtype=bool)
    pixels[:, 2008:2048] = True  # a bar at the right edge, 40 pels wide
    pixels[100:140, :] = True  # a rule across the whole width
    buf = io.BytesIO()
    Image.fromarray(~pixels).save(buf, "TIFF", compression="group4", dpi=(204, 196))
    page = next(convert(buf.getvalue(), bilevel="text"))
    assert page.pixels.shape[1] == 1728 and page.y_dpi == 196
    rule = np.flatnonzero(page.pixels.mean(axis=0) > 0.01)
    assert rule[0] < 120 and rule[-1] > 1728 - 120  # the whole rule, both ends
    right_bar = page.pixels[:, rule[-1] - 20 : rule[-1] + 1]
    assert right_bar.mean() > 0.5  # the bar at the far right survives


def test_missing_pdfium_library_is_named_not_blamed_on_the_document(letter_pdf, monkeypatch):
    import importlib.util

    from imaging import pdfium
    from imaging.errors import ImagingError

    monkeypatch.setattr(pdfium, "_lib", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImagingError, match="PDFium cannot be loaded"):
        list(convert(letter_pdf))
