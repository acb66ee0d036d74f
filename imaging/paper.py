"""Paper lengths in scan lines and the fitting of a source page onto a fax page (1728 px at 204 dpi)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ImagingError
from .page import FAX_WIDTH, X_DPI, Y_DPI

MM_PER_INCH = 25.4
# Portrait (width, length) in mm.
PAPERS_MM = {"a4": (210.0, 297.0), "letter": (215.9, 279.4), "legal": (215.9, 355.6)}
PAPER_CHOICES = ("auto", *PAPERS_MM)


def y_dpi_for(resolution: str) -> int:
    try:
        return Y_DPI[resolution]
    except KeyError:
        raise ImagingError(f"unknown resolution {resolution!r}: use standard, fine or superfine") from None


def page_rows(paper: str, y_dpi: int) -> int:
    """Scan lines of a paper length: A4 2292, Letter 2156, Legal 2744 at fine (196 lpi)."""
    try:
        length_mm = PAPERS_MM[paper][1]
    except KeyError:
        raise ImagingError(f"unknown paper {paper!r}: use auto, a4, letter or legal") from None
    return round(length_mm / MM_PER_INCH * y_dpi)


def choose_paper(paper: str, width: float, height: float) -> str:
    """``auto``: the paper whose shape is nearest the (portrait) source page; otherwise the named one."""
    if paper != "auto":
        page_rows(paper, 196)  # validates the name
        return paper
    if width <= 0 or height <= 0:
        return "letter"
    aspect = max(width, height) / min(width, height)
    return min(PAPERS_MM, key=lambda name: abs(PAPERS_MM[name][1] / PAPERS_MM[name][0] - aspect))


@dataclass(frozen=True)
class Placement:
    """Where a portrait source lands on the fax page: scaled size and offset, in output pixels/rows."""

    rows: int  # page length in scan lines
    width: int  # scaled source width in pixels (<= 1728)
    height: int  # scaled source height in scan lines (<= rows)
    left: int
    top: int


def fit(src_width_in: float, src_height_in: float, paper_rows: int, y_dpi: int, *, enlarge: bool) -> Placement:
    """Place a portrait page of the given size (inches) on the fax page, aspect preserved, centred.

    True size at 204 x y_dpi when it fits; shrunk to fit width and length when it does not (never cropped);
    enlarged to fill the page only when ``enlarge`` (images without a trustworthy physical size)."""
    if src_width_in <= 0 or src_height_in <= 0:
        raise ImagingError("source page has no size")
    page_w_in, page_h_in = FAX_WIDTH / X_DPI, paper_rows / y_dpi
    scale = min(page_w_in / src_width_in, page_h_in / src_height_in)
    if not enlarge:
        scale = min(scale, 1.0)
    width = max(1, min(FAX_WIDTH, round(src_width_in * scale * X_DPI)))
    height = max(1, min(paper_rows, round(src_height_in * scale * y_dpi)))
    return Placement(paper_rows, width, height, (FAX_WIDTH - width) // 2, (paper_rows - height) // 2)
