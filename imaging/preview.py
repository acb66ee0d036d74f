"""PNG previews of fax pages (any input the pipeline reads, received TIFF-F included) at a chosen width.

Pages are shown at their physical aspect (a standard-resolution page's rows are twice as tall as they are
wide) and reduced by area averaging, so small text stays legible as grey rather than dropping out."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image

from .convert import DEFAULT_PAGE_LIMIT, convert
from .errors import ImagingError
from .page import FaxPage

MAX_PREVIEW_WIDTH = 4096


def page_png(page: FaxPage, width: int = 600) -> bytes:
    if not 16 <= width <= MAX_PREVIEW_WIDTH:
        raise ImagingError(f"preview width must be 16..{MAX_PREVIEW_WIDTH} pixels, not {width}")
    height = max(1, round(page.rows * (page.x_dpi / page.y_dpi) * width / page.width))
    image = Image.fromarray(np.where(page.pixels, np.uint8(0), np.uint8(255)), "L")
    resample = Image.Resampling.BOX if width <= page.width else Image.Resampling.NEAREST
    out = io.BytesIO()
    image.resize((width, height), resample).save(out, "PNG", optimize=False)
    return out.getvalue()


def previews(
    source: bytes | str | os.PathLike[str], width: int = 600, *, page_limit: int = DEFAULT_PAGE_LIMIT
) -> Iterator[bytes]:
    """One PNG per page. A TIFF page with fax geometry is shown exactly as stored (the pipeline passes it
    through); any other document is shown as it would be sent (fine resolution, default settings)."""
    if not 16 <= width <= MAX_PREVIEW_WIDTH:
        raise ImagingError(f"preview width must be 16..{MAX_PREVIEW_WIDTH} pixels, not {width}")
    for page in convert(source, page_limit=page_limit):
        yield page_png(page, width)



def page_preview(
    source: bytes | str | os.PathLike[str], number: int, width: int = 600, *, page_limit: int = DEFAULT_PAGE_LIMIT
) -> bytes:
    """The PNG of page ``number`` (1-based); the pages before it are rendered and dropped, none are kept."""
    if number < 1:
        raise ImagingError(f"page numbers start at 1, not {number}")
    count = 0
    for count, page in enumerate(convert(source, page_limit=page_limit), start=1):
        if count == number:
            return page_png(page, width)
    raise ImagingError(f"the document has {count} pages, no page {number}")
