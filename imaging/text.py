"""Plain UTF-8 text -> fax pages: 80 columns by 66 lines a page in DejaVu Sans Mono, form feeds honoured.

66 lines of 80 columns is the line-printer page (6 lines and 10 characters per inch on Letter); other
papers spread the same 66 lines over their length. Long lines wrap (nothing is cut off), tabs stop every 8
columns, a form feed starts a new page (a trailing one does not add a blank page). Glyphs are drawn by
Pillow's FreeType on a square grid, resampled to 204 x y_dpi and thresholded: text has no tones to screen.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import ImagingError
from .page import FAX_WIDTH, X_DPI, FaxPage
from .paper import page_rows

COLUMNS, LINES, TAB = 80, 66, 8
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",  # Debian fonts-dejavu-core
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
)
SIDE_MARGIN_IN, TOP_MARGIN_IN = 0.25, 0.2
MAX_TEXT_BYTES = 16 * 1024 * 1024


def decode_text(data: bytes) -> str:
    if len(data) > MAX_TEXT_BYTES:
        raise ImagingError(f"text is {len(data)} bytes, over the {MAX_TEXT_BYTES // (1024 * 1024)} MB limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImagingError(f"text is not valid UTF-8 (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def layout(text: str, page_limit: int | None = None) -> list[list[str]]:
    """Split text into pages of at most 66 lines of at most 80 columns.

    Raises as soon as the page count passes ``page_limit`` (before any drawing)."""
    pages: list[list[str]] = []
    chunks = text.split("\f")
    if len(chunks) > 1 and not chunks[-1].strip("\n"):
        chunks.pop()  # a form feed at the very end closes the last page, it does not open a new one
    for chunk in chunks:
        if chunk.endswith("\n"):
            chunk = chunk[:-1]
        lines: list[str] = []
        for line in chunk.split("\n"):
            line = _printable(line.expandtabs(TAB))
            lines.extend(line[i : i + COLUMNS] for i in range(0, len(line), COLUMNS)) if line else lines.append("")
        page_chunks = [lines[i : i + LINES] for i in range(0, len(lines), LINES)] or [[]]
        pages.extend(page_chunks)
        if page_limit is not None and len(pages) > page_limit:
            raise ImagingError(f"text has more than {page_limit} pages, the limit")
    return pages


def _printable(line: str) -> str:
    return "".join(ch for ch in line if unicodedata.category(ch)[0] != "C")


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_PATHS:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    raise ImagingError("DejaVu Sans Mono not found: install the fonts-dejavu-core package")


class TextDocument:
    def __init__(self, data: bytes, *, page_limit: int = 100) -> None:
        self._pages = layout(decode_text(data), page_limit)
        self.page_count = len(self._pages)

    def pages(self, *, y_dpi: int = 196, paper: str = "auto", bilevel: str = "auto") -> Iterator[FaxPage]:
        del bilevel  # text has no tones: always a threshold
        rows = page_rows("letter" if paper == "auto" else paper, y_dpi)
        for lines in self._pages:
            yield render_page(lines, rows, y_dpi)


def render_page(lines: list[str], rows: int, y_dpi: int) -> FaxPage:
    scale = 2 if y_dpi > X_DPI else 1  # superfine: draw at twice the grid, then reduce
    width = FAX_WIDTH * scale
    height = round(rows * X_DPI / y_dpi) * scale
    dpi = X_DPI * scale
    left, top = round(SIDE_MARGIN_IN * dpi), round(TOP_MARGIN_IN * dpi)
    pitch = (height - 2 * top) / LINES
    column = (width - 2 * left) / COLUMNS
    font = _font(max(6, int(min(pitch * 0.92, column / 0.6021))))
    left += round((width - 2 * left - COLUMNS * font.getlength("M")) / 2)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        if line.strip():
            draw.text((left, top + number * pitch), line, font=font, fill=0)
    image = image.resize((FAX_WIDTH, rows), Image.Resampling.BOX)
    return FaxPage(np.asarray(image) < 160, y_dpi=y_dpi)
