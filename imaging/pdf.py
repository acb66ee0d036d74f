"""PDF pages -> fax pages with PDFium (the library pypdfium2 ships, bound in pdfium.py), rendered straight onto
the fax grid.

Each page is rendered once into an 8-bit grey bitmap 1728 pixels wide at 204 x y_dpi (anisotropic in one
pass, no resize), with text and path anti-aliasing off so that the bilevel step sees crisp edges
(reference §0, §2.4). Page count, sizes and /Rotate come from the same PDFium parse (a second parse of
every document would cost time and attack surface). pypdf is asked only when PDFium refuses a document,
to name the reason: PDFium reports a zero-page PDF as a password error.
"""

from __future__ import annotations

import ctypes
import io
import os
import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from . import pdfium
from .bilevel import to_bilevel
from .errors import ImagingError
from .page import FAX_WIDTH, FaxPage
from .paper import choose_paper, fit, page_rows

RENDER_FLAGS = pdfium.ANNOT | pdfium.RENDER_NO_SMOOTHTEXT | pdfium.RENDER_NO_SMOOTHPATH
ROTATE_CCW = 3  # FPDF_RenderPageBitmap: 3 = 90 degrees counter-clockwise (landscape -> portrait)
# A page PDFium has not finished in this time is abandoned (a hostile or pathological page must not hang
# the converter). Ordinary pages take 5-40 ms.
PAGE_RENDER_SECONDS = 30.0
FOLD_BELOW_DPI = 150
READ_AHEAD = 2
# PDFium is not thread-safe: every call into it, from any document in this process, holds this lock.
# (Coding and bilevel work run outside it, so one document's rendering still overlaps its coding.)
PDFIUM_LOCK = threading.RLock()  # rendered pages waiting for the caller: bounds memory at a few rasters


class PdfDocument:
    """An opened PDF, checked (readable, not password-protected, 1..page_limit pages) before any rendering."""

    def __init__(self, source: bytes | str | os.PathLike[str], *, page_limit: int = 100) -> None:
        if isinstance(source, bytes | bytearray):
            data = bytes(source)
            tail = data[-2048:]
        else:
            data = os.fspath(source)
            tail = _tail(data)
        try:
            with PDFIUM_LOCK:
                self._doc = pdfium.Document(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium.ERR_PASSWORD:
                raise ImagingError(_password_or_not(data)) from None
            if b"%%EOF" not in tail:
                raise ImagingError("PDF is truncated or corrupt: no end-of-file marker, cannot be read") from None
            raise ImagingError(f"PDF is corrupt and cannot be read ({_reason(exc)})") from None
        with PDFIUM_LOCK:
            self.page_count = len(self._doc)
        if self.page_count == 0:
            self.close()
            raise ImagingError("PDF has no pages")
        if self.page_count > page_limit:
            self.close()
            raise ImagingError(f"PDF has {self.page_count} pages, more than the limit of {page_limit}")

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._doc.close()

    def pages(self, *, y_dpi: int = 196, paper: str = "auto", bilevel: str = "auto") -> Iterator[FaxPage]:
        """Render, bilevel-convert and yield one page at a time.

        One helper thread renders ahead (at most ``READ_AHEAD`` pages) while the caller codes the previous
        page: PDFium runs without the GIL (ctypes releases it), so on two cores rendering and coding overlap.
        Only that thread touches PDFium until it has finished."""
        ahead: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()

        def render_all() -> None:
            try:
                for index in range(self.page_count):
                    item: object = FaxPage(
                        to_bilevel(self.render_grey(index, y_dpi=y_dpi, paper=paper), bilevel, y_dpi), y_dpi=y_dpi
                    )
                    if not _put(ahead, item, stop):
                        return
            except BaseException as exc:  # handed to the consumer, raised there
                _put(ahead, exc, stop)

        worker = threading.Thread(target=render_all, name="pdf-render", daemon=True)
        worker.start()
        try:
            for _ in range(self.page_count):
                item = ahead.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join()
            self.close()

    def render_grey(self, index: int, *, y_dpi: int, paper: str) -> np.ndarray:
        with PDFIUM_LOCK:
            grey = self._render_locked(index, y_dpi, paper)
        return _fold_rows(grey) if y_dpi < FOLD_BELOW_DPI else grey

    def _render_locked(self, index: int, y_dpi: int, paper: str) -> np.ndarray:
        try:
            page = self._doc.page(index)
        except pdfium.PdfiumError as exc:
            raise ImagingError(f"PDF page {index + 1} cannot be read ({_reason(exc)})") from None
        try:
            width_pt, height_pt = page.get_size()  # after /Rotate
            if not (width_pt > 0 and height_pt > 0):
                raise ImagingError(f"PDF page {index + 1} has no size")
            rotate = ROTATE_CCW if width_pt > height_pt else 0
            if rotate:
                width_pt, height_pt = height_pt, width_pt
            # Standard resolution is rendered at twice the rows and folded (see _fold_rows): an aliased
            # render at 98 lpi drops hairlines that fall between row centres.
            fold = 2 if y_dpi < FOLD_BELOW_DPI else 1
            rows = page_rows(choose_paper(paper, width_pt, height_pt), y_dpi) * fold
            place = fit(width_pt / 72, height_pt / 72, rows, y_dpi * fold, enlarge=False)
            canvas = np.full((rows, FAX_WIDTH), 255, dtype=np.uint8)
            lib = pdfium.library()
            bitmap = lib.FPDFBitmap_CreateEx(FAX_WIDTH, rows, pdfium.BITMAP_GRAY, canvas.ctypes.data, FAX_WIDTH)
            if not bitmap:
                raise ImagingError(f"PDF page {index + 1}: cannot allocate the render bitmap")
            try:
                _render_with_deadline(bitmap, page, place, rotate, index)
            finally:
                lib.FPDFBitmap_Destroy(bitmap)
            return canvas
        finally:
            page.close()


def _fold_rows(grey: np.ndarray) -> np.ndarray:
    """Pairs of rows -> one: the darker sample where either is dark (ink: lines and text strokes survive),
    else their mean (tones keep their level)."""
    top, bottom = grey[0::2], grey[1::2]
    darker = np.minimum(top, bottom)
    mean = ((top.astype(np.uint16) + bottom) >> 1).astype(np.uint8)
    return np.where(darker < 128, darker, mean)


def _put(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless the consumer has gone away; False when it has."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _render_with_deadline(bitmap, page: pdfium.Page, place, rotate: int, index: int) -> None:
    """PDFium's progressive renderer, asked every few objects whether to pause: it pauses only when the
    deadline has passed, and then the page is abandoned. Same pixels and speed as FPDF_RenderPageBitmap."""
    deadline = time.monotonic() + PAGE_RENDER_SECONDS
    pause, _callback = pdfium.pause(lambda: time.monotonic() > deadline)
    lib = pdfium.library()
    status = lib.FPDF_RenderPageBitmap_Start(
        bitmap, page.raw, place.left, place.top, place.width, place.height, rotate, RENDER_FLAGS,
        ctypes.byref(pause),
    )
    try:
        while status == pdfium.RENDER_TOBECONTINUED:
            if time.monotonic() > deadline:
                raise ImagingError(f"PDF page {index + 1} takes too long to render (over {PAGE_RENDER_SECONDS:g} s)")
            status = lib.FPDF_RenderPage_Continue(page.raw, ctypes.byref(pause))
    finally:
        lib.FPDF_RenderPage_Close(page.raw)
    if status != pdfium.RENDER_DONE:
        raise ImagingError(f"PDF page {index + 1} cannot be rendered")


def _password_or_not(data: bytes | str) -> str:
    import pypdf  # only here: importing it costs more than converting a page

    try:
        reader = pypdf.PdfReader(io.BytesIO(data) if isinstance(data, bytes) else data, strict=False)
        if not reader.is_encrypted:
            return "PDF has no pages" if len(reader.pages) == 0 else "PDF is corrupt and cannot be read"
    except Exception:  # pypdf could not read it either: trust PDFium's verdict
        pass
    return "PDF is password-protected: remove the password and send it again"


def _reason(exc: Exception) -> str:
    return str(exc).lower() or "unknown error"


def _tail(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2048))
            return fh.read()
    except OSError as exc:
        raise ImagingError(f"cannot read {path}: {exc.strerror}") from None
