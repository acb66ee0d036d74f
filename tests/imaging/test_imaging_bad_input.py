"""Bad input: each case gives one clear ImagingError naming the problem; never a crash or a hang."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from reportlab.lib.pagesizes import letter

from imaging.convert import convert, convert_to_tiff
from imaging.errors import ImagingError
from imaging.pdf_out import tiff_to_pdf
from imaging.preview import previews

pytestmark = pytest.mark.timeout(60)


def error_of(source, **options) -> str:
    with pytest.raises(ImagingError) as info:
        list(convert(source, **options))
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_empty_input():
    assert "empty" in error_of(b"")


def test_unknown_format():
    assert "unknown format" in error_of(b"\x00\x01\x02\x03 binary junk \xff\xfe")
    assert "unknown format" in error_of(bytes(range(256)) * 4)


def test_corrupt_pdf():
    assert "corrupt" in error_of(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage\n%%EOF\n")


def test_truncated_pdf(helpers):
    data = helpers.pdf_bytes([(letter, helpers.draw_mixed)] * 3)
    assert "truncated" in error_of(data[: len(data) // 2])


def test_empty_pdf_file():
    assert "PDF" in error_of(b"%PDF-1.4\n")


def test_password_protected_pdf(helpers):
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(helpers.pdf_bytes([(letter, None)]))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    assert "password" in error_of(buf.getvalue())


def test_owner_password_only_pdf_still_converts(helpers):
    # Restrictions without a user password: readers open it without asking, so must we.
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(helpers.pdf_bytes([(letter, None)]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    assert len(list(convert(buf.getvalue()))) == 1


def test_zero_page_pdf():
    writer = pypdf.PdfWriter()
    buf = io.BytesIO()
    writer.write(buf)
    assert "no pages" in error_of(buf.getvalue())


def test_ten_thousand_page_pdf_is_refused_before_rendering(helpers):
    data = helpers.many_pages_pdf(10_000)
    message = error_of(data)
    assert "10000 pages" in message and "limit of 100" in message
    assert "limit of 20000" not in error_of(data, page_limit=50)
    pages = convert(helpers.many_pages_pdf(3), page_limit=3)
    assert len(list(pages)) == 3


def test_page_limit_applies_to_tiff_and_text():
    frames = [Image.new("L", (100, 100), 255) for _ in range(5)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    assert "more pages than the limit of 4" in error_of(buf.getvalue(), page_limit=4)
    assert len(list(convert(buf.getvalue(), page_limit=5))) == 5
    assert "limit" in error_of(b"page\f" * 10, page_limit=5)


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (what a decompression bomb looks like)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * width
    data = zlib.compress(row * 2)  # far fewer rows than claimed
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_decompression_bomb_image():
    message = error_of(png_with_size(50_000, 50_000))
    assert "decompression bomb" in message
    message = error_of(png_with_size(9_000, 9_000))  # 81 Mpixel: over our limit, under Pillow's error level
    assert "decompression bomb" in message


def test_corrupt_and_truncated_images():
    image = Image.new("RGB", (400, 500), (10, 200, 30))
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        buf = io.BytesIO()
        image.save(buf, fmt)
        data = buf.getvalue()
        truncated = data[: max(len(data) // 3, 40)]
        try:
            list(convert(truncated))  # a decoder may recover what is there; it must not crash
        except ImagingError as exc:
            assert "\n" not in str(exc)
    assert "corrupt" in error_of(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert "corrupt" in error_of(b"II*\x00" + b"\xff" * 40)


def test_exotic_image_mode_and_looping_tiff():
    buf = io.BytesIO()
    Image.new("LAB", (50, 60)).save(buf, "TIFF")
    assert "cannot be converted" in error_of(buf.getvalue())
    buf = io.BytesIO()
    Image.new("L", (100, 100), 128).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[ifd : ifd + 2])[0]
    data[ifd + 2 + 12 * entries : ifd + 6 + 12 * entries] = struct.pack("<I", ifd)  # next IFD = itself
    assert len(list(convert(bytes(data)))) == 1  # the loop is cut, no hang


def test_invalid_utf8_text():
    assert "UTF-8" in error_of(b"plain start " + b"\xc3\x28" * 3 + b" more text\n" * 10)


def test_invalid_options(helpers):
    data = helpers.pdf_bytes([(letter, None)])
    assert "resolution" in error_of(data, resolution="ultra")
    assert "paper" in error_of(data, paper="a3")
    assert "bilevel" in error_of(data, bilevel="sepia")
    assert "page limit" in error_of(data, page_limit=0)


def test_missing_file_and_directory(tmp_path):
    assert "cannot read" in error_of(tmp_path / "missing.pdf")
    assert "directory" in error_of(tmp_path)


def test_errors_surface_before_any_output(tmp_path, helpers):
    out = tmp_path / "out.tif"
    with pytest.raises(ImagingError, match="limit"):
        convert_to_tiff(helpers.many_pages_pdf(200), out)


def test_topdf_and_preview_refuse_bad_input(tmp_path):
    with pytest.raises(ImagingError, match="not a TIFF"):
        tiff_to_pdf(b"%PDF-1.4 not a tiff", tmp_path / "x.pdf")
    with pytest.raises(ImagingError):
        tiff_to_pdf(b"II*\x00" + b"\x00" * 20, tmp_path / "x.pdf")
    with pytest.raises(ImagingError, match="width"):
        list(previews(b"hello\n", width=5))


def test_page_render_deadline(helpers, monkeypatch):
    import imaging.pdf

    monkeypatch.setattr(imaging.pdf, "PAGE_RENDER_SECONDS", 0.0)
    assert "takes too long to render" in error_of(helpers.pdf_bytes([(letter, helpers.draw_mixed)]))


def _seed_documents() -> dict[str, bytes]:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1)
    c.drawString(72, 700, "fuzz seed")
    c.rect(100, 100, 200, 200, fill=1)
    c.showPage()
    c.save()
    seeds = {"pdf": buf.getvalue()}
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        out = io.BytesIO()
        Image.new("RGB", (120, 90), (30, 90, 200)).save(out, fmt)
        seeds[fmt] = out.getvalue()
    out = io.BytesIO()
    Image.new("1", (1728, 50), 1).save(out, "TIFF", compression="group4", dpi=(204, 196))
    seeds["fax"] = out.getvalue()
    return seeds


SEEDS = _seed_documents()


@settings(max_examples=int(os.environ.get("IMAGING_FUZZ_EXAMPLES", "60")), deadline=None)
@given(
    name=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255), st.integers(0, 2)),
                   min_size=1, max_size=8),
)
def test_damaged_documents_never_crash(name, edits):
    data = bytearray(SEEDS[name])
    for where, value, kind in edits:
        at = int(where * len(data))
        if kind == 0:
            data[at] = value
        elif kind == 1:
            del data[at : at + value // 8 + 1]
        else:
            data[at:at] = bytes([value]) * 4
    for attempt in (lambda: list(convert(bytes(data))), lambda: tiff_to_pdf(bytes(data), io.BytesIO())):
        try:
            attempt()
        except ImagingError as exc:
            assert "\n" not in str(exc)
