"""The conversion pipeline: any supported document -> fax pages, streamed one page at a time, and
-> a TIFF-F file.

Which library serves which step: PDFium renders PDFs (``pdf.py``); Pillow decodes images and TIFF pages
(``raster.py``) and draws text (``text.py``); numpy makes pages bilevel (``bilevel.py``); libtiff, through
Pillow, codes the stored TIFF-F pages (``tiff_f.py``). Every check that can refuse a document (format, page
limit, password, bomb) runs when ``convert`` is called, before the first page is rendered; the pages
themselves are rendered lazily, so peak memory is one page whatever the page count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from .bilevel import MODES
from .detect import IMAGE_FORMATS, PDF, TEXT, detect_format
from .errors import ImagingError
from .page import FaxPage
from .paper import PAPER_CHOICES, y_dpi_for
from .tiff_f import TiffFWriter

if TYPE_CHECKING:
    from .pdf import PdfDocument
    from .raster import RasterDocument
    from .text import TextDocument

DEFAULT_PAGE_LIMIT = 100
Source = bytes | str | os.PathLike[str]


class Document:
    """An opened, checked input: ``page_count`` is known, ``pages()`` renders lazily."""

    def __init__(
        self, source: Source, *, resolution: str = "fine", paper: str = "auto", bilevel: str = "auto",
        page_limit: int = DEFAULT_PAGE_LIMIT,
    ) -> None:
        self.y_dpi = y_dpi_for(resolution)
        if paper not in PAPER_CHOICES:
            raise ImagingError(f"unknown paper {paper!r}: use auto, a4, letter or legal")
        if bilevel not in MODES:
            raise ImagingError(f"unknown bilevel mode {bilevel!r}: use auto, text or photo")
        if not isinstance(page_limit, int) or page_limit < 1:
            raise ImagingError(f"page limit must be a positive number, not {page_limit!r}")
        self.paper, self.bilevel = paper, bilevel
        self.format = detect_format(_head(source))
        # Each reader (and the libraries behind it) is imported only for its format: start-up time is a
        # large part of converting a short document.
        self._doc: PdfDocument | RasterDocument | TextDocument
        if self.format == PDF:
            from .pdf import PdfDocument

            self._doc = PdfDocument(source, page_limit=page_limit)
        elif self.format in IMAGE_FORMATS:
            from .raster import RasterDocument

            self._doc = RasterDocument(source, page_limit=page_limit)
        elif self.format == TEXT:
            from .text import TextDocument

            self._doc = TextDocument(_whole(source), page_limit=page_limit)
        else:  # pragma: no cover - detect_format names only the formats above
            raise ImagingError(f"unsupported format {self.format}")
        self.page_count: int = self._doc.page_count

    def pages(self) -> Iterator[FaxPage]:
        return self._doc.pages(y_dpi=self.y_dpi, paper=self.paper, bilevel=self.bilevel)


def convert(
    source: Source, *, resolution: str = "fine", paper: str = "auto", bilevel: str = "auto",
    page_limit: int = DEFAULT_PAGE_LIMIT,
) -> Iterator[FaxPage]:
    """Fax pages of a document (bytes or a path), one at a time. Raises ``ImagingError`` at once for input
    that cannot be converted; a page that fails later raises it from the iterator."""
    return Document(source, resolution=resolution, paper=paper, bilevel=bilevel, page_limit=page_limit).pages()


@dataclass
class ConversionResult:
    pages: int
    data_bytes: int  # coded image data (strips), without TIFF overhead
    file_bytes: int


def convert_to_tiff(
    source: Source, out: str | os.PathLike[str] | BinaryIO, *, compression: str = "mmr", fill_order: int = 1,
    resolution: str = "fine", paper: str = "auto", bilevel: str = "auto", page_limit: int = DEFAULT_PAGE_LIMIT,
    progress: Callable[[int, int], None] | None = None,
) -> ConversionResult:
    """Convert a document into a TIFF-F file, page by page. ``progress(done, total)`` after each page."""
    document = Document(source, resolution=resolution, paper=paper, bilevel=bilevel, page_limit=page_limit)
    data_bytes = 0
    with TiffFWriter(out, compression=compression, fill_order=fill_order) as writer:
        for page in document.pages():
            data_bytes += writer.add_page(page)
            if progress:
                progress(writer.pages, document.page_count)
        pages = writer.pages
    file_bytes = os.path.getsize(out) if not hasattr(out, "write") else 0
    return ConversionResult(pages, data_bytes, file_bytes)


def _head(source: Source) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source[:65536])
    try:
        with open(source, "rb") as fh:
            return fh.read(65536)
    except IsADirectoryError:
        raise ImagingError(f"{os.fspath(source)} is a directory, not a document") from None
    except OSError as exc:
        raise ImagingError(f"cannot read {os.fspath(source)}: {exc.strerror}") from None


def _whole(source: Source) -> bytes:
    from .text import MAX_TEXT_BYTES

    if isinstance(source, bytes | bytearray):
        return bytes(source)
    size = os.path.getsize(source)
    if size > MAX_TEXT_BYTES:
        raise ImagingError(f"text is {size} bytes, over the {MAX_TEXT_BYTES // (1024 * 1024)} MB limit")
    with open(source, "rb") as fh:
        return fh.read()
