"""The conversion pipeline: geometry, paper, orientation, passthrough, every input type."""

from __future__ import annotations

import io
import types

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4, landscape, letter

from imaging.convert import Document, convert, convert_to_tiff
from imaging.page import FaxPage
from imaging.paper import page_rows
from imaging.tiff_f import TiffFWriter, read_tiff_f


def test_paper_lengths_match_the_reference_table():
    assert [page_rows(p, 196) for p in ("letter", "a4", "legal")] == [2156, 2292, 2744]
    assert [page_rows(p, 98) for p in ("letter", "a4", "legal")] == [1078, 1146, 1372]
    assert page_rows("a4", 391) == 4572


def test_pdf_pages_are_1728_wide_with_the_paper_picked_from_the_page_size(sizes_pdf):
    pages = list(convert(sizes_pdf))
    assert [p.pixels.shape for p in pages] == [(2156, 1728), (2292, 1728), (2744, 1728), (2156, 1728)]
    assert all(p.pixels.dtype == bool and p.y_dpi == 196 and p.x_dpi == 204 for p in pages)


@pytest.mark.parametrize(("resolution", "rows"), [("standard", 1078), ("fine", 2156), ("superfine", 4301)])
def test_resolution_sets_rows_and_y_dpi(letter_pdf, resolution, rows):
    page = next(convert(letter_pdf, resolution=resolution))
    assert page.pixels.shape == (rows, 1728)
    assert page.resolution == resolution


def test_named_paper_overrides_auto(letter_pdf):
    assert next(convert(letter_pdf, paper="a4")).rows == 2292
    assert next(convert(letter_pdf, paper="legal")).rows == 2744


def test_page_frame_is_not_cropped_and_aspect_is_kept(helpers):
    # A frame 0.5 in inside a Letter page: all four sides must be on the fax page, at the right places.
    page = next(convert(helpers.pdf_bytes([(letter, helpers.draw_text("frame"))])))
    cols = np.flatnonzero(page.pixels.mean(axis=0) > 0.5)
    rows = np.flatnonzero(page.pixels.mean(axis=1) > 0.5)
    width_in = (cols[-1] - cols[0]) / 204
    height_in = (rows[-1] - rows[0]) / 196
    assert abs(width_in - 7.5 * 1728 / 1734) < 0.02  # Letter is 1734 px at 204 dpi: scaled to 1728
    assert abs(height_in / width_in - 10 / 7.5) < 0.01


def test_landscape_page_is_rotated_to_portrait(helpers):
    def wide_bar(c, w, h):
        c.rect(36, h / 2 - 10, w - 72, 20, fill=1)  # a horizontal bar across a landscape page

    page = next(convert(helpers.pdf_bytes([(landscape(letter), wide_bar)])))
    assert page.pixels.shape == (2156, 1728)
    tall = page.pixels.any(axis=1).sum()
    wide = page.pixels.any(axis=0).sum()
    assert tall > 1800 and wide < 100  # the bar now runs down the page


def test_a4_is_true_size_and_centred(helpers):
    page = next(convert(helpers.pdf_bytes([(A4, helpers.draw_text("a4"))])))
    cols = np.flatnonzero(page.pixels.mean(axis=0) > 0.5)
    # A4 at 204 dpi is 1687 px wide: not enlarged, so the 0.5 in frame is 210 mm - 1 in wide.
    assert abs((cols[-1] - cols[0]) / 204 - (210 / 25.4 - 1)) < 0.02
    assert abs(cols[0] - (1728 - cols[-1])) <= 3


def test_bilevel_modes(letter_pdf):
    text, auto, photo = (next(convert(letter_pdf, bilevel=m)).pixels for m in ("text", "auto", "photo"))
    # draw_mixed: mid grey 350..500 pt from the top, 72..272 pt from the left; pale tint 200..300 pt down.
    region = (slice(980, 1330), slice(230, 740))
    pale = (slice(570, 790), slice(300, 1400))
    assert text[region].mean() == 1.0  # 45 % grey thresholded to black
    assert 0.35 < auto[region].mean() < 0.65 and 0.35 < photo[region].mean() < 0.65
    assert not auto[pale].any() and not text[pale].any() and not photo[pale].any()  # pale tints to white
    assert photo[region].sum() != auto[region].sum()


def test_convert_streams_pages_lazily(letter_pdf):
    pages = convert(letter_pdf)
    assert isinstance(pages, types.GeneratorType)
    assert len(list(pages)) == 2


def fax_tiff(pages: list[FaxPage], **options) -> bytes:
    buf = io.BytesIO()
    with TiffFWriter(buf, **options) as writer:
        for page in pages:
            writer.add_page(page)
    return buf.getvalue()


@pytest.mark.parametrize("compression", ["mh", "mr", "mmr"])
def test_fax_geometry_tiff_passes_through_pixel_for_pixel(helpers, compression):
    fine, standard = helpers.random_page(2292, seed=1), helpers.random_page(1100, seed=2)
    data = fax_tiff([FaxPage(fine, 196), FaxPage(standard, 98)], compression=compression, fill_order=2)
    pages = list(convert(data, resolution="fine", bilevel="photo"))
    assert np.array_equal(pages[0].pixels, fine) and pages[0].y_dpi == 196
    assert np.array_equal(pages[1].pixels, standard) and pages[1].y_dpi == 98  # no resampling to fine


def test_pillow_written_fax_tiff_passes_through(helpers):
    pixels = helpers.random_page(2156, seed=3)
    image = Image.fromarray(~pixels)  # mode "1", min-is-black as Pillow writes it
    data = helpers.png_bytes(image, "TIFF", compression="group4", dpi=(204, 196))
    assert np.array_equal(next(convert(data)).pixels, pixels)


def test_multipage_tiff_of_mixed_modes_and_resolutions():
    grey = Image.linear_gradient("L").resize((850, 1100))  # 100 dpi Letter, grey
    colour = Image.new("RGB", (1700, 2200), (255, 255, 255))  # 200 dpi Letter, colour, with a red box
    colour.paste((200, 0, 0), (100, 100, 600, 600))
    bilevel = Image.new("1", (2550, 3300), 1)  # 300 dpi Letter, bilevel, LZW
    bilevel.paste(0, (300, 300, 2250, 400))
    buf = io.BytesIO()
    grey.save(buf, "TIFF", save_all=True, append_images=[colour, bilevel], compression="tiff_lzw", dpi=(100, 100))
    pages = list(convert(buf.getvalue()))
    assert len(pages) == 3
    assert all(p.pixels.shape == (2156, 1728) for p in pages)
    assert 0.3 < pages[0].pixels.mean() < 0.7  # the gradient is halftoned
    assert pages[1].pixels[200:300, 200:500].mean() > 0.2  # the dark red box shows
    assert pages[2].pixels[205:255, 250:1450].mean() > 0.99  # the 300-dpi bilevel bar (1 in down) stays solid


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_images_of_each_format_fill_the_page(helpers, fmt):
    image = Image.new("RGB", (800, 1000), "white")
    image.paste((0, 0, 0), (0, 0, 800, 50))  # top bar across the whole width
    page = next(convert(helpers.png_bytes(image, fmt)))
    assert page.pixels.shape == (2156, 1728)
    top_rows = np.flatnonzero(page.pixels.mean(axis=1) > 0.9)
    assert len(top_rows) > 50  # the bar, scaled up
    bar_cols = np.flatnonzero(page.pixels[top_rows[len(top_rows) // 2]])
    assert bar_cols[-1] - bar_cols[0] > 1500  # scaled to the page width, not left at 800 px


def test_wide_image_is_scaled_to_fit_not_cropped(helpers):
    image = Image.new("L", (4000, 600), 255)
    image.paste(0, (3950, 0, 4000, 600))  # a black stripe at the far right
    page = next(convert(helpers.png_bytes(image)))  # landscape: rotated to portrait, the stripe now at the top
    assert page.pixels.shape == (2744, 1728)  # so long and narrow that auto picks Legal
    rows = np.flatnonzero(page.pixels.any(axis=1))
    assert rows.size and rows[0] < 2744 // 2
    image = Image.new("L", (3000, 4000), 255)  # portrait, wider than the page at any dpi
    image.paste(0, (2950, 0, 3000, 4000))
    page = next(convert(helpers.png_bytes(image)))
    assert page.pixels[:, 1600:].any()


def test_exif_orientation_is_applied(helpers):
    image = Image.new("L", (1000, 800), 255)  # stored landscape with a bar along the top edge
    image.paste(0, (0, 0, 1000, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": displayed portrait, bar on the right
    page = next(convert(helpers.png_bytes(image, "JPEG", exif=exif.tobytes())))
    cols = np.flatnonzero(page.pixels.mean(axis=0) > 0.5)
    assert cols.size and cols.min() > 1728 // 2


def test_alpha_is_flattened_onto_white(helpers):
    image = Image.new("RGBA", (800, 1000), (0, 0, 0, 0))  # fully transparent black
    assert not next(convert(helpers.png_bytes(image))).pixels.any()


def test_sixteen_bit_grey_is_scaled_not_clipped(helpers):
    values = np.full((1000, 800), 32768, dtype=np.uint16)  # mid grey in 16 bits
    page = next(convert(helpers.png_bytes(Image.fromarray(values))))
    assert 0.3 < page.pixels.mean() < 0.7


def test_text_form_feeds_give_pages():
    text = "first page\n\fsecond page\fthird\n" + "line\n" * 70 + "\f"
    document = Document(text.encode())
    assert document.page_count == 4  # "third" + 70 lines spill onto a fourth page; the final FF adds none
    pages = list(document.pages())
    assert len(pages) == 4 and all(p.pixels.shape == (2156, 1728) for p in pages)
    assert all(p.pixels.any() for p in pages)


def test_text_wraps_long_lines_and_counts_66_lines():
    assert Document((("x" * 81 + "\n") * 33).encode()).page_count == 1  # 66 wrapped lines
    assert Document((("x" * 81 + "\n") * 34).encode()).page_count == 2
    assert Document(b"\xef\xbb\xbfBOM text\n").page_count == 1


def test_text_resolution_and_paper():
    page = next(convert(b"hello\n", resolution="standard", paper="a4"))
    assert page.pixels.shape == (1146, 1728)


def test_convert_to_tiff_file(tmp_path, letter_pdf):
    out = tmp_path / "out.tif"
    seen = []
    result = convert_to_tiff(letter_pdf, out, compression="mh", progress=lambda d, t: seen.append((d, t)))
    assert result.pages == 2 and seen == [(1, 2), (2, 2)]
    assert out.stat().st_size == result.file_bytes > result.data_bytes > 0
    stored = [s.page.pixels for s in read_tiff_f(out)]
    fresh = [p.pixels for p in convert(letter_pdf)]
    assert all(np.array_equal(a, b) for a, b in zip(stored, fresh, strict=True))


def test_path_source(helpers, tmp_path):
    path = tmp_path / "doc.bin"  # the name says nothing: content decides
    path.write_bytes(helpers.pdf_bytes([(letter, helpers.draw_mixed)]))
    assert len(list(convert(path))) == 1
    assert len(list(convert(str(path)))) == 1


def test_ghostscript_fax_tiff_passes_through(tmp_path, letter_pdf):
    import subprocess

    source = tmp_path / "in.pdf"
    source.write_bytes(letter_pdf)
    tiff = tmp_path / "gs.tif"  # XResolution 203 (gs writes its scaled -r value): still fax geometry
    subprocess.run(
        ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4", "-sPAPERSIZE=letter", "-dFIXEDMEDIA",
         "-dMaxStripSize=0", "-r203.29x98", f"-sOutputFile={tiff}", str(source)],
        check=True, timeout=120,
    )
    pages = list(convert(tiff, resolution="fine"))
    with Image.open(tiff) as image:
        for index, page in enumerate(pages):
            image.seek(index)
            assert page.y_dpi == 98 and np.array_equal(page.pixels, ~np.asarray(image))


@pytest.mark.parametrize("resolution", ["standard", "fine"])
def test_hairlines_survive_at_every_resolution(helpers, resolution):
    def hairlines(c, w, h):
        c.setLineWidth(0.25)
        for k in range(20):
            y = 100 + k * 30.37  # phases against the row grid vary from line to line
            c.line(72, y, w - 72, y)

    page = next(convert(helpers.pdf_bytes([(letter, hairlines)]), resolution=resolution, bilevel="text"))
    covered = page.pixels[:, 250:1450].any(axis=0).mean()  # columns along the lines hit by some row
    lines = [run for run in np.split(np.flatnonzero(page.pixels[:, 800]), 1 + np.flatnonzero(
        np.diff(np.flatnonzero(page.pixels[:, 800])) > 1)) if run.size]
    assert covered == 1.0 and len(lines) == 20
    for run in lines:  # every line is solid along its length, not dashed
        assert page.pixels[run[0] : run[-1] + 1, 250:1450].any(axis=0).all()
