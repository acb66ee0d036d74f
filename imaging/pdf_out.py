"""Fax pages (TIFF-F) -> PDF, losslessly: the coded CCITT data goes into a /CCITTFaxDecode image as is.

No re-rasterising and (for G3/G4 pages) no re-coding: a page costs the bytes it already has, and
conversion runs at thousands of pages/s. FillOrder 2 data is bit-reversed (PDF's filter reads MSB first);
pages in other compressions (or G4 split across strips) are decoded by libtiff and re-coded G4. The PDF is
written here, object by object, so memory holds one page whatever the page count (Pillow's PDF writer is
not used: it corrupts FillOrder 2 pages, reference §6.1.6).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
from PIL import Image

from .errors import ImagingError
from .page import FaxPage
from .tiff_f import T4_2D, RawPage, encode_strip, raw_pages, reverse_bits, source_bytes


class _PdfWriter:
    def __init__(self, fp: BinaryIO) -> None:
        self.fp, self.offsets, self.kids = fp, {}, []
        self._start = fp.tell()
        fp.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._next = 3  # 1: catalog, 2: page tree (written last, once the kids are known)
        self.object(1, b"<< /Type /Catalog /Pages 2 0 R >>")

    def new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def object(self, number: int, body: bytes, stream: bytes | None = None) -> None:
        self.offsets[number] = self.fp.tell() - self._start
        self.fp.write(b"%d 0 obj\n" % number + body)
        if stream is not None:
            self.fp.write(b"\nstream\n" + stream + b"\nendstream")
        self.fp.write(b"\nendobj\n")

    def add_page(self, width: int, rows: int, x_dpi: int, y_dpi: int, data: bytes, params: bytes) -> None:
        image, content, page = self.new_id(), self.new_id(), self.new_id()
        # One rounded size for both the MediaBox and the image matrix: a mismatch of 0.00005 pt makes
        # renderers pick different rows (reference §5). Rounded down: poppler sizes its raster by rounding
        # up, so 1728.0001 px would become 1729.
        w, h = _points(width, x_dpi), _points(rows, y_dpi)
        self.object(
            image,
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 1"
            b" /Filter /CCITTFaxDecode /DecodeParms << %s >> /Length %d >>" % (width, rows, params, len(data)),
            data,
        )
        drawing = b"q " + w + b" 0 0 " + h + b" 0 0 cm /Im0 Do Q"
        self.object(content, b"<< /Length %d >>" % len(drawing), drawing)
        self.object(
            page,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + w + b" " + h + b"] /Contents %d 0 R"
            b" /Resources << /XObject << /Im0 %d 0 R >> >> >>" % (content, image),
        )
        self.kids.append(page)

    def close(self) -> None:
        kids = b" ".join(b"%d 0 R" % k for k in self.kids)
        self.object(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.kids)))
        xref_at = self.fp.tell() - self._start
        count = self._next
        lines = [b"xref\n0 %d\n" % count, b"0000000000 65535 f \n"]
        lines += [b"%010d 00000 n \n" % self.offsets[n] for n in range(1, count)]
        self.fp.write(b"".join(lines))
        self.fp.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref_at))


def _points(pixels: int, dpi: int) -> bytes:
    return b"%.4f" % (math.floor(pixels * 72 / dpi * 10_000) / 10_000)


def _ccitt(raw: RawPage) -> tuple[bytes, bytes] | None:
    """(data, DecodeParms) for a page whose strips can go into the PDF as they are, else None."""
    black_is_1 = b"true" if raw.photometric == 1 else b"false"
    if raw.compression == 4 and len(raw.strips) == 1:
        data, k, extra = raw.strips[0], -1, b""
    elif raw.compression == 3 and not raw.t4_options & 2:  # bit 1: uncompressed mode, not in PDF's filter
        data = b"".join(raw.strips)  # every G3 strip starts with an EOL and a 1-D row: they concatenate
        k = raw.rows if raw.t4_options & T4_2D else 0
        # /EncodedByteAlign stays false even for T4Options fill bits: PDF's byte alignment is of the coded
        # rows, TIFF's of the EOLs (PDFium misreads such pages with it true), and fill bits before an EOL
        # are legal T.4 that every decoder skips.
        extra = b" /EndOfLine true"
    else:
        return None
    if raw.fill_order == 2:
        data = reverse_bits(data)
    params = b"/K %d /Columns %d /Rows %d /BlackIs1 %s%s" % (k, raw.width, raw.rows, black_is_1, extra)
    return data, params


def tiff_to_pdf(source: bytes | str | os.PathLike[str], out: str | os.PathLike[str] | BinaryIO) -> int:
    """Write every page of a bilevel TIFF as a PDF page of the same physical size; returns the page count."""
    data = source_bytes(source)
    owns = not hasattr(out, "write")
    fp: BinaryIO = open(out, "wb") if owns else out  # type: ignore[arg-type]  # noqa: SIM115
    try:
        writer = _PdfWriter(fp)
        for index, raw in enumerate(raw_pages(data)):
            coded = _ccitt(raw)
            if coded is None:  # decode with libtiff, re-code G4
                page = _decode_page(data, index)
                coded = encode_strip(page, "mmr"), b"/K -1 /Columns %d /Rows %d" % (page.width, page.rows)
            writer.add_page(raw.width, raw.rows, raw.x_dpi, raw.y_dpi, *coded)
        if not writer.kids:
            raise ImagingError("TIFF has no pages")
        writer.close()
        return len(writer.kids)
    finally:
        if owns:
            fp.close()


def _decode_page(data: bytes, index: int) -> FaxPage:
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
            image.seek(index)
            if image.mode != "1":
                raise ImagingError(f"TIFF page {index + 1} is not bilevel: convert it to a fax first")
            image.load()
            return FaxPage(~np.asarray(image))
    except ImagingError:
        raise
    except Exception as exc:
        raise ImagingError(f"TIFF page {index + 1} cannot be decoded ({exc})") from None


def pages_to_pdf(pages: Iterable[FaxPage], out: BinaryIO | None = None) -> bytes | None:
    """Fax pages held in memory -> PDF (G4-coded by libtiff). Returns the bytes when ``out`` is None."""
    fp = out or io.BytesIO()
    writer = _PdfWriter(fp)
    for page in pages:
        writer.add_page(
            page.width, page.rows, page.x_dpi, page.y_dpi, encode_strip(page, "mmr"),
            b"/K -1 /Columns %d /Rows %d" % (page.width, page.rows),
        )
    if not writer.kids:
        raise ImagingError("no pages to write")
    writer.close()
    return fp.getvalue() if out is None else None

