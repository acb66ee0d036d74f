"""The few PDFium calls the converter makes, bound with ctypes to the libpdfium.so that pypdfium2 ships.

Why not pypdfium2's own bindings: importing them (a generated module declaring the whole API, plus the
helper classes) costs ~35 ms of every conversion's start-up, more than rendering five pages; this module
declares 14 functions and loads in ~1 ms. The library file is found from the installed pypdfium2_raw
package without importing it. Signatures are those of PDFium's public headers (fpdfview.h,
fpdf_progressive.h). Callers serialise all use through ``imaging.pdf.PDFIUM_LOCK`` (PDFium is not
thread-safe).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from ctypes import POINTER, c_char_p, c_float, c_int, c_size_t, c_ulong, c_void_p

from .errors import ImagingError

# fpdfview.h / fpdf_progressive.h constants
ERR_PASSWORD = 4
ANNOT, RENDER_NO_SMOOTHTEXT, RENDER_NO_SMOOTHPATH = 0x01, 0x1000, 0x4000
BITMAP_GRAY = 1
RENDER_TOBECONTINUED, RENDER_DONE = 1, 2
_ERRORS = {
    1: "unknown error", 2: "file access error", 3: "data format error", 4: "incorrect password error",
    5: "unsupported security scheme error", 6: "page not found or content error",
}


class PdfiumError(Exception):
    def __init__(self, message: str, err_code: int = 0) -> None:
        super().__init__(message)
        self.err_code = err_code


class _Pause(ctypes.Structure):
    pass


PAUSE_CALLBACK = ctypes.CFUNCTYPE(c_int, POINTER(_Pause))
_Pause._fields_ = [("version", c_int), ("NeedToPauseNow", PAUSE_CALLBACK), ("user", c_void_p)]

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            spec = importlib.util.find_spec("pypdfium2_raw")
            try:
                if spec is None or not spec.submodule_search_locations:
                    raise OSError("no pypdfium2_raw package")
                lib = ctypes.CDLL(os.path.join(next(iter(spec.submodule_search_locations)), "libpdfium.so"))
            except OSError as exc:  # not a property of the document: say what is missing
                raise ImagingError(f"PDFium cannot be loaded (is pypdfium2 installed?): {exc}") from None
            signatures = {
                "FPDF_InitLibrary": ([], None),
                "FPDF_GetLastError": ([], c_ulong),
                "FPDF_LoadDocument": ([c_char_p, c_char_p], c_void_p),
                "FPDF_LoadMemDocument64": ([c_char_p, c_size_t, c_char_p], c_void_p),
                "FPDF_CloseDocument": ([c_void_p], None),
                "FPDF_GetPageCount": ([c_void_p], c_int),
                "FPDF_LoadPage": ([c_void_p, c_int], c_void_p),
                "FPDF_ClosePage": ([c_void_p], None),
                "FPDF_GetPageWidthF": ([c_void_p], c_float),
                "FPDF_GetPageHeightF": ([c_void_p], c_float),
                "FPDFBitmap_CreateEx": ([c_int, c_int, c_int, c_void_p, c_int], c_void_p),
                "FPDFBitmap_Destroy": ([c_void_p], None),
                "FPDF_RenderPageBitmap_Start": (
                    [c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_int, POINTER(_Pause)], c_int,
                ),
                "FPDF_RenderPage_Continue": ([c_void_p, POINTER(_Pause)], c_int),
                "FPDF_RenderPage_Close": ([c_void_p], None),
            }
            for name, (args, result) in signatures.items():
                function = getattr(lib, name)
                function.argtypes, function.restype = args, result
            lib.FPDF_InitLibrary()  # a no-op when pypdfium2 in the same process has initialised it
            _lib = lib
    return _lib


class Document:
    """An open PDF: from bytes (kept alive while open: PDFium reads them lazily) or from a path."""

    def __init__(self, source: bytes | str) -> None:
        lib = library()
        self._data = source if isinstance(source, bytes) else None
        if isinstance(source, bytes):
            handle = lib.FPDF_LoadMemDocument64(source, len(source), None)
        else:
            handle = lib.FPDF_LoadDocument(os.fsencode(source), None)
        if not handle:
            code = int(lib.FPDF_GetLastError())
            raise PdfiumError(_ERRORS.get(code, f"error {code}"), code)
        self._handle: int | None = handle

    def __len__(self) -> int:
        return int(library().FPDF_GetPageCount(self._handle))

    def page(self, index: int) -> Page:
        handle = library().FPDF_LoadPage(self._handle, index)
        if not handle:
            raise PdfiumError("the page cannot be loaded")
        return Page(handle)

    def close(self) -> None:
        if self._handle:
            library().FPDF_CloseDocument(self._handle)
            self._handle, self._data = None, None


class Page:
    def __init__(self, handle: int) -> None:
        self.raw = c_void_p(handle)

    def get_size(self) -> tuple[float, float]:
        """Width and height in points, after the page's /Rotate."""
        lib = library()
        return float(lib.FPDF_GetPageWidthF(self.raw)), float(lib.FPDF_GetPageHeightF(self.raw))

    def close(self) -> None:
        if self.raw:
            library().FPDF_ClosePage(self.raw)
            self.raw = c_void_p()


def pause(deadline_passed) -> tuple[_Pause, object]:
    """An IFSDK_PAUSE asking ``deadline_passed()``; keep both returned objects alive while rendering."""
    callback = PAUSE_CALLBACK(lambda _this: int(bool(deadline_passed())))
    return _Pause(version=1, NeedToPauseNow=callback, user=None), callback

