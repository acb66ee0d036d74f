"""Raster images -> fax pages with Pillow: PNG, JPEG, GIF, BMP and multi-page TIFF (any compression,
resolution and mode).

A TIFF page that already has fax geometry (1728 wide, 204 x 98/196/391, bilevel) passes through pixel for
pixel. Everything else is oriented by EXIF, flattened onto white, made grey, rotated to portrait, scaled to
fit the page (aspect preserved, never cropped) and bilevel-converted. Decompression bombs are refused from
the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps

from .bilevel import to_bilevel
from .errors import ImagingError
from .page import FAX_WIDTH, X_DPI, FaxPage
from .paper import choose_paper, fit, page_rows
from .tiff_f import fax_y_dpi, resolution_dpi

# A 600-dpi Legal scan is 43 Mpixel; anything past this is refused as a likely decompression bomb.
MAX_PIXELS = 64_000_000
# A stated resolution at least this high is taken as the physical size (a scan); lower ones (72/96 dpi
# screen images) and none are fitted to the page.
MIN_TRUSTED_DPI = 100


class RasterDocument:
    """An opened image file, checked (readable, not a bomb, 1..page_limit frames) before decoding pixels."""

    def __init__(self, source: bytes | str | os.PathLike[str], *, page_limit: int = 100) -> None:
        fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on bad EXIF: not our user's problem
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                self._image = Image.open(fp, formats=["TIFF", "PNG", "JPEG", "GIF", "BMP"])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImagingError("image too large: refused as a possible decompression bomb") from None
        except FileNotFoundError as exc:
            raise ImagingError(f"cannot read {exc.filename}: no such file") from None
        except Exception as exc:
            raise ImagingError(f"image is corrupt or unsupported ({_reason(exc)})") from None
        self.format = self._image.format
        self.page_count = self._count_tiff_pages(page_limit) if self.format == "TIFF" else 1
        # (an animated GIF or PNG sends its first frame)
        self._check_size(0)

    def _count_tiff_pages(self, page_limit: int) -> int:
        """Pages of a TIFF, walking at most page_limit + 1 directories (a file of millions of tiny
        directories must not keep us counting)."""
        try:
            count = 0
            while count <= page_limit:
                try:
                    self._image.seek(count)
                except EOFError:
                    break
                count += 1
            if count > page_limit:
                raise ImagingError(f"TIFF has more pages than the limit of {page_limit}")
            self._image.seek(0)
            return count
        except ImagingError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ImagingError(f"TIFF is corrupt ({_reason(exc)})") from None

    def close(self) -> None:
        self._image.close()

    def _check_size(self, index: int) -> None:
        width, height = self._image.size
        if width <= 0 or height <= 0:
            raise ImagingError(f"image page {index + 1} is empty (0 pixels)")
        if width * height > MAX_PIXELS:
            self.close()
            raise ImagingError(
                f"image page {index + 1} is {width}x{height} pixels, over the {MAX_PIXELS // 1_000_000} Mpixel "
                "limit (possible decompression bomb)"
            )

    def pages(self, *, y_dpi: int = 196, paper: str = "auto", bilevel: str = "auto") -> Iterator[FaxPage]:
        try:
            for index in range(self.page_count):
                if index:
                    try:
                        self._image.seek(index)
                    except Exception as exc:
                        raise ImagingError(f"image page {index + 1} cannot be read ({_reason(exc)})") from None
                    self._check_size(index)
                try:
                    page = self._page(index, y_dpi, paper, bilevel)
                except ImagingError:
                    raise
                except MemoryError:
                    raise ImagingError(f"image page {index + 1} is too large to convert") from None
                except Exception as exc:  # an exotic mode or a decoder fault: a clear error, not a crash
                    raise ImagingError(f"image page {index + 1} cannot be converted ({_reason(exc)})") from None
                yield page
        finally:
            self.close()

    def _page(self, index: int, y_dpi: int, paper: str, bilevel: str) -> FaxPage:
        image = self._image
        try:
            image.load()
        except Exception as exc:
            raise ImagingError(f"image page {index + 1} cannot be decoded ({_reason(exc)})") from None
        passthrough = fax_geometry(image)
        if passthrough:
            return FaxPage(~np.asarray(image), y_dpi=passthrough)
        x_res, y_res = _dpi(image)
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:
            pass  # a broken EXIF block does not make the picture unusable
        if image.size[0] > 0 and x_res and y_res and _exif_swaps_axes(self._image):
            x_res, y_res = y_res, x_res
        grey = _grey(image)
        width_in, height_in, trusted = _physical_size(grey.size, x_res, y_res)
        if width_in > height_in:
            grey = grey.transpose(Image.Transpose.ROTATE_90)
            width_in, height_in = height_in, width_in
        rows = page_rows(choose_paper(paper, width_in, height_in), y_dpi)
        place = fit(width_in, height_in, rows, y_dpi, enlarge=not trusted)
        scaled = grey.resize((place.width, place.height), _filter(grey.size, (place.width, place.height)))
        canvas = np.full((rows, FAX_WIDTH), 255, dtype=np.uint8)
        canvas[place.top : place.top + place.height, place.left : place.left + place.width] = np.asarray(scaled)
        if bilevel == "auto" and self._image.mode == "1":
            bilevel = "text"  # a bilevel source has no tones to screen: threshold its resampled edges
        return FaxPage(to_bilevel(canvas, bilevel, y_dpi), y_dpi=y_dpi)


def fax_geometry(image: Image.Image) -> int | None:
    """The fax vertical resolution if this (TIFF) page can be sent as is, else None."""
    if image.format != "TIFF" or image.mode != "1" or image.size[0] != FAX_WIDTH:
        return None
    x_dpi, y_dpi = resolution_dpi(image.tag_v2)
    return fax_y_dpi(x_dpi, y_dpi)


def _dpi(image: Image.Image) -> tuple[float, float]:
    if image.format == "TIFF":
        return resolution_dpi(image.tag_v2)
    dpi = image.info.get("dpi")
    try:
        return (float(dpi[0]), float(dpi[1])) if dpi else (0.0, 0.0)
    except (TypeError, ValueError, IndexError):
        return 0.0, 0.0


def _exif_swaps_axes(image: Image.Image) -> bool:
    try:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:
        return False


def _physical_size(size: tuple[int, int], x_res: float, y_res: float) -> tuple[float, float, bool]:
    """(width, height) in inches and whether that is a real size (else only the aspect is meaningful)."""
    width, height = size
    if x_res >= MIN_TRUSTED_DPI and y_res >= MIN_TRUSTED_DPI:
        return width / x_res, height / y_res, True
    if x_res > 0 and y_res > 0:  # keep the stated aspect of non-square pixels
        return width / x_res, height / y_res, False
    return width / X_DPI, height / X_DPI, False


def _grey(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L", transparent areas white, 16-bit and float scaled rather than clipped."""
    mode = image.mode
    if mode == "L":
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(values.max()), 1.0)
        return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return image.convert("L")


def _filter(source: tuple[int, int], target: tuple[int, int]) -> Image.Resampling:
    # Area averaging when shrinking keeps thin lines as grey (the halftone shows them); bilinear when
    # enlarging avoids blocky edges.
    if target[0] <= source[0] and target[1] <= source[1]:
        return Image.Resampling.BOX
    return Image.Resampling.BILINEAR


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
