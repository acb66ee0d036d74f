"""Coding a stored page with libtiff called directly (ctypes), without Pillow's TIFF writer in between.

Pillow hands libtiff one scan line at a time from its 1-byte-per-pixel mode "1" image and writes a
container we throw away; calling ``TIFFWriteEncodedStrip`` once with the page bit-packed by numpy gives
the same strip (byte for byte, tests compare) in about half the time: 5.9 vs 9.4 ms for an MMR page,
2.5 vs 6.0 ms for MH (measured 2026-11-27). The libtiff used is Pillow's own copy when its wheel ships
one, so writer and reader agree; else the system's libtiff. The strip is written into a memory file
(memfd): no disk, no temporary name. ``encode`` returns None when no libtiff can be loaded; the caller
then codes through Pillow.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import numpy as np

_TAG_WIDTH, _TAG_LENGTH, _TAG_BITS, _TAG_COMPRESSION, _TAG_PHOTOMETRIC, _TAG_FILL_ORDER = 256, 257, 258, 259, 262, 266
_TAG_STRIP_OFFSETS, _TAG_SAMPLES, _TAG_ROWS_PER_STRIP, _TAG_STRIP_BYTE_COUNTS = 273, 277, 278, 279
_TAG_XRES, _TAG_YRES, _TAG_T4_OPTIONS, _TAG_RES_UNIT = 282, 283, 292, 296

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


def _candidates() -> list[str]:
    paths = []
    try:
        import PIL

        libs = os.path.join(os.path.dirname(os.path.dirname(PIL.__file__)), "pillow.libs")
        paths += sorted(glob.glob(os.path.join(libs, "libtiff*.so*")))
    except ImportError:  # pragma: no cover - Pillow is a dependency
        pass
    return [*paths, "libtiff.so.6", "libtiff.so.5"]


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    with _lock:
        if not _tried:
            _tried = True
            for path in _candidates():
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                lib.TIFFFdOpen.restype = ctypes.c_void_p
                lib.TIFFFdOpen.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
                lib.TIFFWriteEncodedStrip.restype = ctypes.c_ssize_t
                lib.TIFFWriteEncodedStrip.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p,
                                                      ctypes.c_ssize_t]
                lib.TIFFClose.argtypes = [ctypes.c_void_p]
                lib.TIFFClose.restype = None
                lib.TIFFSetField.restype = ctypes.c_int  # variadic: arguments typed at each call
                lib.TIFFGetField.restype = ctypes.c_int
                _lib = lib
                break
    return _lib


def encode(pixels: np.ndarray, compression: int, t4_options: int, x_dpi: int, y_dpi: int) -> bytes | None:
    """One-strip coding of a page (True = black) as libtiff writes it, FillOrder 1, min-is-white.

    ``compression`` is the TIFF tag value (3 G3, 4 G4); MR's K follows from ``y_dpi`` as in libtiff."""
    lib = _load()
    if lib is None or not hasattr(os, "memfd_create"):
        return None
    rows, width = pixels.shape
    packed = np.packbits(pixels, axis=1)  # rows padded to whole bytes, as TIFF stores them
    fd = os.memfd_create("faxengine-strip", os.MFD_CLOEXEC)
    try:
        tif = lib.TIFFFdOpen(os.dup(fd), b"strip", b"w")  # TIFFClose closes the duplicate
        if not tif:
            raise OSError("libtiff could not open a memory file")
        handle = ctypes.c_void_p(tif)
        try:
            def setf(tag: int, value: int) -> None:
                if not lib.TIFFSetField(handle, ctypes.c_uint32(tag), ctypes.c_uint32(value)):
                    raise OSError(f"libtiff refused tag {tag}")

            setf(_TAG_WIDTH, width)
            setf(_TAG_LENGTH, rows)
            setf(_TAG_BITS, 1)
            setf(_TAG_SAMPLES, 1)
            setf(_TAG_COMPRESSION, compression)
            setf(_TAG_PHOTOMETRIC, 0)
            setf(_TAG_FILL_ORDER, 1)
            setf(_TAG_ROWS_PER_STRIP, rows)
            setf(_TAG_RES_UNIT, 2)
            for tag, value in ((_TAG_XRES, x_dpi), (_TAG_YRES, y_dpi)):
                if not lib.TIFFSetField(handle, ctypes.c_uint32(tag), ctypes.c_double(value)):
                    raise OSError(f"libtiff refused tag {tag}")
            if compression == 3:
                setf(_TAG_T4_OPTIONS, t4_options)
            if lib.TIFFWriteEncodedStrip(handle, 0, packed.ctypes.data, packed.nbytes) < 0:
                raise OSError("libtiff could not code the page")
            offsets, counts = ctypes.POINTER(ctypes.c_uint64)(), ctypes.POINTER(ctypes.c_uint64)()
            if not (lib.TIFFGetField(handle, ctypes.c_uint32(_TAG_STRIP_OFFSETS), ctypes.byref(offsets))
                    and lib.TIFFGetField(handle, ctypes.c_uint32(_TAG_STRIP_BYTE_COUNTS), ctypes.byref(counts))):
                raise OSError("libtiff wrote no strip")
            offset, size = int(offsets[0]), int(counts[0])
        finally:
            lib.TIFFClose(handle)
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
