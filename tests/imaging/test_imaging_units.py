"""Format detection, paper choice, bilevel modes, previews, and memory that does not grow with page count."""

from __future__ import annotations

import gc
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.pagesizes import letter

from imaging.bilevel import to_bilevel
from imaging.convert import convert
from imaging.detect import detect_format
from imaging.errors import ImagingError
from imaging.page import FaxPage
from imaging.paper import choose_paper, fit
from imaging.preview import page_png


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"%PDF-1.7\n", "pdf"),
        (b"junk from a mail gateway\n%PDF-1.4\n", "pdf"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"GIF89a\x01\x00", "gif"),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 10, "bmp"),
        ("Grüße\tand\fform feeds\r\n".encode(), "text"),
        ("ends mid-character é".encode()[:-1], "text"),
        (b"BMP is not enough for a bitmap, this is text\n", "text"),
    ],
)
def test_detect_by_content(head, name):
    assert detect_format(head) == name


@pytest.mark.parametrize("head", [b"\x00\x00\x00", b"\x7fELF\x02\x01", b"PK\x03\x04zipfile", b"\xc3\x28 bad utf8"])
def test_detect_refuses_unknown(head):
    with pytest.raises(ImagingError, match="unknown format"):
        detect_format(head)


def test_choose_paper_by_shape():
    assert choose_paper("auto", 612, 792) == "letter"
    assert choose_paper("auto", 595, 842) == "a4"
    assert choose_paper("auto", 612, 1008) == "legal"
    assert choose_paper("auto", 842, 595) == "a4"  # landscape A4
    assert choose_paper("letter", 595, 842) == "letter"


def test_fit_never_crops_and_shrinks_only_when_needed():
    a4 = fit(210 / 25.4, 297 / 25.4, 2292, 196, enlarge=False)
    assert a4.width == 1687 and a4.left == 20  # true size, centred
    a3 = fit(297 / 25.4, 420 / 25.4, 2292, 196, enlarge=False)
    assert a3.width <= 1728 and a3.height <= 2292 and a3.top >= 0 and a3.left >= 0
    small = fit(2, 3, 2156, 196, enlarge=True)
    assert small.height == 2156 or small.width == 1728


def test_bilevel_modes_on_a_ramp():
    ramp = np.tile(np.linspace(0, 255, 1728).astype(np.uint8), (400, 1))
    text, auto, photo = (to_bilevel(ramp, m, 196) for m in ("text", "auto", "photo"))
    assert text[:, :860].all() and not text[:, 870:].any()
    for result in (auto, photo):
        darkness = result.mean(axis=0)
        assert darkness[:20].min() == 1.0  # near black is solid
        assert darkness[int(1728 * 0.86) :].max() == 0.0  # pale tints are white
        mid = darkness[800:900].mean()
        assert 0.35 < mid < 0.65
        assert np.all(np.diff(np.convolve(darkness, np.ones(64) / 64, "valid")[::64]) <= 0.02)  # monotone


def test_clustered_dots_are_clustered():
    grey = np.full((64, 64), 160, dtype=np.uint8)  # a light mid-tone: a few black pixels per cell
    black = to_bilevel(grey, "auto", 196)
    # Each 4x4 cell holds one connected dot: its black pixels touch each other.
    cell = black[:4, :4]
    ys, xs = np.nonzero(cell)
    assert 1 < len(ys) < 16 and (ys.max() - ys.min()) <= 2 and (xs.max() - xs.min()) <= 2


def test_bilevel_refuses_unknown_mode():
    with pytest.raises(ImagingError):
        to_bilevel(np.zeros((4, 4), np.uint8), "sepia")


def test_preview_keeps_physical_aspect():
    page = FaxPage(np.zeros((1078, 1728), bool), y_dpi=98)
    with Image.open(io.BytesIO(page_png(page, 432))) as image:
        assert image.size == (432, round(1078 * 204 / 98 / 4))


def test_peak_memory_does_not_grow_with_page_count(helpers):
    """Pages stream: converting 40 pages never holds more than a few page rasters (numpy buffers are
    traced). The bound leaves room for the renderer's read-ahead; holding every page would be 40 rasters."""
    data = helpers.pdf_bytes([(letter, helpers.draw_mixed)] * 40)
    raster = 2156 * 1728  # bytes of one fine Letter page, as bool or grey
    gc.collect()
    tracemalloc.start()
    try:
        for page in convert(data):
            page.pixels.sum()
        _, top = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert top < 10 * raster, top / raster


def test_abandoned_pdf_conversion_stops_its_render_thread(helpers):
    import threading

    data = helpers.pdf_bytes([(letter, helpers.draw_mixed)] * 12)
    before = threading.active_count()
    pages = convert(data)
    first = next(pages)
    assert first.rows == 2156
    pages.close()  # the caller stops after one page
    assert threading.active_count() == before


def test_concurrent_conversions_in_threads_agree_with_serial(helpers):
    """PDFium is not thread-safe; a server converting two documents at once must still get exact pages."""
    from concurrent.futures import ThreadPoolExecutor

    from reportlab.lib.pagesizes import A4

    documents = [
        helpers.pdf_bytes([(letter, helpers.draw_mixed), (letter, helpers.draw_text("one"))] * 3),
        helpers.pdf_bytes([(A4, helpers.draw_text("two")), (A4, helpers.draw_mixed)] * 3),
    ]
    serial = [[p.pixels for p in convert(d)] for d in documents]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda d: [p.pixels for p in convert(d)], documents * 2))
    for got, want in zip(results, serial * 2, strict=True):
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_page_preview_picks_one_page():
    from imaging.preview import page_preview

    text = b"one\fthree lines\nof\ntext\f"
    with Image.open(io.BytesIO(page_preview(text, 2, width=200))) as image:
        assert image.size == (200, round(2156 * 204 / 196 * 200 / 1728))
    with pytest.raises(ImagingError, match="2 pages, no page 3"):
        page_preview(text, 3)
