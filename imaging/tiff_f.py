"""TIFF Class F (fax) files: writer and reader.

Which code does what:
* Coding a stored page (MH, MR, MMR) is libtiff's, called directly (``imaging.libtiff``; through Pillow
  only as a fallback): 2-3x faster than our numpy coders and what every TIFF reader is tested against.
  ``imaging.codec`` (our own T.4/T.6 coders) serves the fax line, which needs EOL/RTC framing, minimum
  scan-line bits and bad-row counting that a file library does not offer.
* The TIFF container is written here, not by Pillow: Pillow writes PageNumber as garbage, cannot stream
  pages without holding them, splits pages into strips (a G4 page must be one strip) and writes min-is-black
  for mode "1" (reference §6.1). Ours writes one strip per page, min-is-white, every Class F tag, streams
  page by page (the file is patched in place: next-IFD links as pages arrive, PageNumber totals on close).
* Reading decodes with libtiff through Pillow (any compression, FillOrder 1 or 2); ``raw_pages`` hands
  out the coded strips untouched for the lossless PDF export.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from . import libtiff
from .errors import ImagingError
from .page import FAX_WIDTH, X_DPI, FaxPage

if TYPE_CHECKING:
    from PIL import Image, TiffImagePlugin

COMPRESSIONS = ("mh", "mr", "mmr")
TIFF_COMPRESSION = {"mh": 3, "mr": 3, "mmr": 4}
SOFTWARE = "faxengine"

# Tag numbers (TIFF 6.0 and TIFF Class F).
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION = 254, 256, 257, 258, 259
PHOTOMETRIC, FILL_ORDER, STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP = 262, 266, 273, 277, 278
STRIP_BYTE_COUNTS, X_RESOLUTION, Y_RESOLUTION, PLANAR_CONFIG = 279, 282, 283, 284
T4_OPTIONS, T6_OPTIONS, RESOLUTION_UNIT, PAGE_NUMBER, SOFTWARE_TAG, DATE_TIME = 292, 293, 296, 297, 305, 306
BAD_FAX_LINES, CLEAN_FAX_DATA, CONSECUTIVE_BAD_FAX_LINES = 326, 327, 328
T4_2D, T4_FILL_BITS = 1, 4

_SHORT, _ASCII, _LONG, _RATIONAL = 3, 2, 4, 5
# T.4 line widths: A4/B4/A3 at 8 pels/mm, at 300 dpi and at 16 pels/mm. What we send is 1728; a received
# page is stored at the width it came in.
FAX_WIDTHS = frozenset({1728, 2048, 2432, 2592, 3072, 3648, 3456, 4096, 4864})
_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def reverse_bits(data: bytes) -> bytes:
    """FillOrder 1 <-> 2: reverse the bit order within each byte."""
    return data.translate(_REVERSE_BITS)


# ---------------------------------------------------------------- coding through libtiff


_SAVE_LOCK = threading.Lock()


class _MinIsWhite:
    """Make Pillow hand libtiff min-is-white rows for mode "1" without a per-pixel Python loop.

    Passing the Photometric tag makes Pillow invert pixel by pixel in Python, 100x slower (reference
    §6.1.2). Instead the image is built from the True = black array as is (Pillow then holds black as 255)
    and saved with Photometric 0: its C packer writes 255 as a 1 bit, which min-is-white reads as black.
    SAVE_INFO is module state, hence the lock."""

    def __enter__(self) -> None:
        from PIL import TiffImagePlugin

        _SAVE_LOCK.acquire()
        self._saved = TiffImagePlugin.SAVE_INFO["1"]
        TiffImagePlugin.SAVE_INFO["1"] = (self._saved[0], self._saved[1], 0, *self._saved[3:])

    def __exit__(self, *exc: object) -> None:
        from PIL import TiffImagePlugin

        TiffImagePlugin.SAVE_INFO["1"] = self._saved
        _SAVE_LOCK.release()


def encode_strip(page: FaxPage, compression: str = "mmr", *, byte_align: bool = True) -> bytes:
    """The page coded as one TIFF strip by libtiff, FillOrder 1 (MSB first), no RTC/EOFB.

    MH and MR strips start every row with an EOL (byte-aligned when ``byte_align``); MR uses K=2 below
    150 lpi and K=4 above, as libtiff derives from the Y resolution. libtiff is called directly
    (``imaging.libtiff``, half the time); through Pillow only when it cannot be loaded that way."""
    if compression not in TIFF_COMPRESSION:
        raise ImagingError(f"unknown compression {compression!r}: use mh, mr or mmr")
    t4_options = (T4_2D if compression == "mr" else 0) | (T4_FILL_BITS if byte_align else 0)
    pixels = np.ascontiguousarray(page.pixels, dtype=bool)
    strip = libtiff.encode(pixels, TIFF_COMPRESSION[compression], t4_options, page.x_dpi, page.y_dpi)
    if strip is None:
        strip = _encode_strip_pillow(pixels, compression, t4_options, page.x_dpi, page.y_dpi)
    return strip


def _encode_strip_pillow(pixels: np.ndarray, compression: str, t4_options: int, x_dpi: int, y_dpi: int) -> bytes:
    from PIL import Image

    info = {X_RESOLUTION: x_dpi, Y_RESOLUTION: y_dpi, RESOLUTION_UNIT: 2}
    if compression != "mmr":
        info[T4_OPTIONS] = t4_options
    buffer = io.BytesIO()
    with _MinIsWhite():
        Image.fromarray(pixels).save(
            buffer, "TIFF", compression="group4" if compression == "mmr" else "group3",
            tiffinfo=info, strip_size=1 << 30,
        )
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as stored:
        offsets, counts = stored.tag_v2[STRIP_OFFSETS], stored.tag_v2[STRIP_BYTE_COUNTS]
    if len(offsets) != 1:
        raise RuntimeError("libtiff wrote more than one strip")
    return data[offsets[0] : offsets[0] + counts[0]]


# ---------------------------------------------------------------- writer


@dataclass(frozen=True)
class ReceptionQuality:
    """Class F reception tags for a received page."""

    bad_rows: int = 0
    consecutive_bad_rows: int = 0
    clean: int | None = None  # 0 clean, 1 regenerated (bad rows concealed), 2 unclean; None: derived

    @property
    def clean_fax_data(self) -> int:
        if self.clean is not None:
            return self.clean
        return 0 if self.bad_rows == 0 else 1


class TiffFWriter:
    """Writes a multi-page TIFF-F file page by page; memory holds one page at a time.

    The output must be seekable (a path, a file or a BytesIO): links and page totals are patched in place."""

    def __init__(
        self, out: str | os.PathLike[str] | BinaryIO, *, compression: str = "mmr", fill_order: int = 1,
        byte_align: bool = True, software: str = SOFTWARE,
    ) -> None:
        if compression not in TIFF_COMPRESSION:
            raise ImagingError(f"unknown compression {compression!r}: use mh, mr or mmr")
        if fill_order not in (1, 2):
            raise ImagingError(f"FillOrder must be 1 or 2, not {fill_order!r}")
        self.compression, self.fill_order = compression, fill_order
        self.byte_align, self.software = byte_align, software
        self._owns = not hasattr(out, "write")
        self._fp: BinaryIO = open(out, "wb") if self._owns else out  # type: ignore[arg-type]  # noqa: SIM115
        self._base = self._fp.tell()
        self._fp.write(b"II*\x00" + struct.pack("<I", 0))
        self._link_at = self._base + 4  # where the offset of the next IFD goes
        self._page_number_at: list[int] = []
        self.pages = 0

    def __enter__(self) -> TiffFWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_page(
        self, page: FaxPage, *, quality: ReceptionQuality | None = None, when: dt.datetime | None = None,
        strip: bytes | None = None,
    ) -> int:
        """Append one page (``strip``: already coded by ``encode_strip`` with this writer's settings).
        Returns the bytes of coded data."""
        if page.width not in FAX_WIDTHS:
            raise ImagingError(f"a TIFF-F page is {FAX_WIDTH} pixels wide (or a T.4 B4/A3 width), not {page.width}")
        if strip is None:
            strip = encode_strip(page, self.compression, byte_align=self.byte_align)
        return self.add_coded(
            strip, page.rows, page.y_dpi, quality=quality, when=when, x_dpi=page.x_dpi, width=page.width
        )

    def add_coded(
        self, strip: bytes, rows: int, y_dpi: int, *, quality: ReceptionQuality | None = None,
        when: dt.datetime | None = None, x_dpi: int = X_DPI, width: int = FAX_WIDTH,
    ) -> int:
        """Append a page already coded (FillOrder 1) with this writer's compression and EOL alignment."""
        if self.fill_order == 2:
            strip = reverse_bits(strip)
        fp = self._fp
        fp.seek(0, io.SEEK_END)
        strip_at = fp.tell() - self._base
        fp.write(strip)
        if fp.tell() % 2:
            fp.write(b"\x00")
        when = when or dt.datetime.now()
        entries: list[tuple[int, int, int, bytes]] = [
            (NEW_SUBFILE_TYPE, _LONG, 1, struct.pack("<I", 2)),
            (IMAGE_WIDTH, _LONG, 1, struct.pack("<I", width)),
            (IMAGE_LENGTH, _LONG, 1, struct.pack("<I", rows)),
            (BITS_PER_SAMPLE, _SHORT, 1, struct.pack("<H", 1)),
            (COMPRESSION, _SHORT, 1, struct.pack("<H", TIFF_COMPRESSION[self.compression])),
            (PHOTOMETRIC, _SHORT, 1, struct.pack("<H", 0)),
            (FILL_ORDER, _SHORT, 1, struct.pack("<H", self.fill_order)),
            (STRIP_OFFSETS, _LONG, 1, struct.pack("<I", strip_at)),
            (SAMPLES_PER_PIXEL, _SHORT, 1, struct.pack("<H", 1)),
            (ROWS_PER_STRIP, _LONG, 1, struct.pack("<I", rows)),
            (STRIP_BYTE_COUNTS, _LONG, 1, struct.pack("<I", len(strip))),
            (X_RESOLUTION, _RATIONAL, 1, struct.pack("<II", x_dpi, 1)),
            (Y_RESOLUTION, _RATIONAL, 1, struct.pack("<II", y_dpi, 1)),
            (PLANAR_CONFIG, _SHORT, 1, struct.pack("<H", 1)),
            (RESOLUTION_UNIT, _SHORT, 1, struct.pack("<H", 2)),
            (PAGE_NUMBER, _SHORT, 2, struct.pack("<HH", self.pages, 0)),
            (SOFTWARE_TAG, _ASCII, len(self.software) + 1, self.software.encode("ascii", "replace") + b"\x00"),
            (DATE_TIME, _ASCII, 20, when.strftime("%Y:%m:%d %H:%M:%S").encode() + b"\x00"),
        ]
        if self.compression == "mmr":
            entries.append((T6_OPTIONS, _LONG, 1, struct.pack("<I", 0)))
        else:
            options = (T4_2D if self.compression == "mr" else 0) | (T4_FILL_BITS if self.byte_align else 0)
            entries.append((T4_OPTIONS, _LONG, 1, struct.pack("<I", options)))
        if quality is not None:
            entries += [
                (BAD_FAX_LINES, _LONG, 1, struct.pack("<I", quality.bad_rows)),
                (CLEAN_FAX_DATA, _SHORT, 1, struct.pack("<H", quality.clean_fax_data)),
                (CONSECUTIVE_BAD_FAX_LINES, _LONG, 1, struct.pack("<I", quality.consecutive_bad_rows)),
            ]
        entries.sort()
        ifd_at = fp.tell() - self._base
        extra_at = ifd_at + 2 + 12 * len(entries) + 4
        table, extra = [struct.pack("<H", len(entries))], []
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                if tag == PAGE_NUMBER:
                    self._page_number_at.append(self._base + ifd_at + 2 + 12 * len(table[1:]) + 8)
                table.append(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00"))
            else:
                table.append(struct.pack("<HHII", tag, kind, count, extra_at + sum(map(len, extra))))
                extra.append(value + b"\x00" * (len(value) % 2))
        table.append(struct.pack("<I", 0))
        fp.write(b"".join(table) + b"".join(extra))
        fp.seek(self._link_at)
        fp.write(struct.pack("<I", ifd_at))
        self._link_at = self._base + ifd_at + 2 + 12 * len(entries)
        self.pages += 1
        return len(strip)

    def close(self) -> None:
        if self._fp is None:
            return
        for at in self._page_number_at:
            self._fp.seek(at + 2)
            self._fp.write(struct.pack("<H", self.pages))
        self._fp.seek(0, io.SEEK_END)
        self._fp.flush()
        if self._owns:
            self._fp.close()
        self._fp = None  # type: ignore[assignment]


def write_tiff_f(out: str | os.PathLike[str] | BinaryIO, pages: Iterator[FaxPage] | list[FaxPage], **options) -> int:
    """Write pages to a TIFF-F file; returns the page count."""
    with TiffFWriter(out, **options) as writer:
        for page in pages:
            writer.add_page(page)
        return writer.pages


# ---------------------------------------------------------------- reader


@dataclass
class StoredPage:
    """One page of a TIFF file with its fax-relevant tags."""

    page: FaxPage
    compression: int  # TIFF Compression tag (1 none, 2 RLE, 3 G3, 4 G4, ...)
    fill_order: int
    t4_options: int
    quality: ReceptionQuality | None
    software: str | None
    date_time: str | None


@dataclass
class RawPage:
    """One page's coded strips, untouched, with what a decoder needs to know about them."""

    width: int
    rows: int
    x_dpi: int
    y_dpi: int
    compression: int
    fill_order: int
    t4_options: int
    strips: list[bytes]
    photometric: int


def _open_tiff(source: bytes | str | os.PathLike[str]) -> Image.Image:
    data = source_bytes(source)
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise ImagingError("not a TIFF file")
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data), formats=["TIFF"])
    except Exception as exc:
        raise ImagingError(f"unreadable TIFF: {exc}") from None


def source_bytes(source: bytes | str | os.PathLike[str]) -> bytes:
    """A TIFF given as bytes or as a path, as bytes; an unreadable path is an ImagingError."""
    if isinstance(source, bytes | bytearray):
        return source
    try:
        with open(source, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImagingError(f"cannot read {os.fspath(source)}: {exc.strerror}") from None


def resolution_dpi(tags: TiffImagePlugin.ImageFileDirectory_v2) -> tuple[float, float]:
    """(x, y) resolution in dots per inch from a TIFF IFD; (0, 0) when absent."""
    unit = tags.get(RESOLUTION_UNIT, 2)
    try:
        xres, yres = float(tags.get(X_RESOLUTION, 0) or 0), float(tags.get(Y_RESOLUTION, 0) or 0)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0, 0.0
    if not (math.isfinite(xres) and math.isfinite(yres) and xres > 0 and yres > 0):
        return 0.0, 0.0  # 0/0 rationals and the like: no usable resolution
    if unit == 3:
        return xres * 2.54, yres * 2.54
    if unit == 1:  # no absolute unit: aspect only
        return 0.0, 0.0
    return xres, yres


def fax_y_dpi(x_dpi: float, y_dpi: float) -> int | None:
    """The fax vertical resolution (98/196/391) of a resolution pair, or None. X 203-209 counts as 204
    (Ghostscript writes its scaled -r value); 3.85/7.7/15.4 lines/mm count as 98/196/391."""
    if not 200 <= x_dpi <= 210:
        return None
    for nominal in (98, 196, 391):
        if abs(y_dpi - nominal) <= nominal * 0.02:
            return nominal
    return None


def _frames(image: Image.Image) -> Iterator[int]:
    index = 0
    while True:
        try:
            image.seek(index)
        except EOFError:
            return
        except Exception as exc:
            raise ImagingError(f"unreadable TIFF page {index + 1}: {exc}") from None
        yield index
        index += 1


def read_tiff_f(source: bytes | str | os.PathLike[str]) -> Iterator[StoredPage]:
    """Decode every page of a bilevel TIFF (TIFF-F or any compression) one at a time."""
    image = _open_tiff(source)
    with image:
        for index in _frames(image):
            tags = image.tag_v2
            if image.mode != "1":
                raise ImagingError(f"TIFF page {index + 1} is not bilevel (mode {image.mode})")
            try:
                image.load()
            except Exception as exc:
                raise ImagingError(f"TIFF page {index + 1} cannot be decoded: {exc}") from None
            x_dpi, y_dpi = resolution_dpi(tags)
            pixels = ~np.asarray(image)
            y = fax_y_dpi(x_dpi, y_dpi) or round(y_dpi) or 196
            quality = None
            if BAD_FAX_LINES in tags or CLEAN_FAX_DATA in tags:
                quality = ReceptionQuality(
                    int(tags.get(BAD_FAX_LINES, 0)), int(tags.get(CONSECUTIVE_BAD_FAX_LINES, 0)),
                    int(tags.get(CLEAN_FAX_DATA, 0)),
                )
            yield StoredPage(
                FaxPage(pixels, y_dpi=y, x_dpi=X_DPI if fax_y_dpi(x_dpi, y_dpi) else round(x_dpi) or X_DPI),
                int(tags.get(COMPRESSION, 1)), int(tags.get(FILL_ORDER, 1)), int(tags.get(T4_OPTIONS, 0)),
                quality, tags.get(SOFTWARE_TAG), tags.get(DATE_TIME),
            )


def raw_pages(source: bytes | str | os.PathLike[str]) -> Iterator[RawPage]:
    """The coded strips of every page, without decoding (for passthrough into PDF)."""
    data = source_bytes(source)
    image = _open_tiff(data)
    with image:
        for index in _frames(image):
            tags = image.tag_v2
            offsets, counts = tags.get(STRIP_OFFSETS), tags.get(STRIP_BYTE_COUNTS)
            if not offsets or not counts or len(offsets) != len(counts):
                raise ImagingError(f"TIFF page {index + 1} has no image strips")
            strips = []
            for offset, count in zip(offsets, counts, strict=True):
                if offset + count > len(data):
                    raise ImagingError(f"TIFF page {index + 1} is truncated")
                strips.append(bytes(data[offset : offset + count]))
            x_dpi, y_dpi = resolution_dpi(tags)
            yield RawPage(
                int(tags[IMAGE_WIDTH]), int(tags[IMAGE_LENGTH]), round(x_dpi) or X_DPI, round(y_dpi) or 196,
                int(tags.get(COMPRESSION, 1)), int(tags.get(FILL_ORDER, 1)), int(tags.get(T4_OPTIONS, 0)),
                strips, int(tags.get(PHOTOMETRIC, 0)),
            )
