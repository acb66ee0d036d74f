"""Grey page -> bilevel page, three modes (measurements in reference/imaging.md §2.4 and §4).

* ``text``: threshold at 50 % of an aliased render. Smallest pages, crisp small text; photos become silhouettes.
* ``auto`` (default): pale tints (table shading, light backgrounds) to white, near-black to black and the
  mid-tones through a 4x4 clustered-dot screen (~51 lpi). Aliased text is already pure black/white, so it
  stays crisp; the clustered screen compresses like Ghostscript's halftone while keeping photos' tones.
* ``photo``: error diffusion (Floyd-Steinberg) after the same tint clipping; best photos, most bytes.

Input is uint8 grey (0 black, 255 white), output a bool array True = black. Everything is whole-array
numpy except the error diffusion, which is Pillow's C Floyd-Steinberg (a serial recurrence along each row:
C does it faster than any row-wise numpy formulation).
"""

from __future__ import annotations

import functools

import numpy as np

from .errors import ImagingError

MODES = ("auto", "text", "photo")

WHITE_ABOVE = 215  # greys at least this light print white (0.92 and 0.85 tints); 0.75 still shows
BLACK_BELOW = 24

# Clustered-dot order: the dot grows from the centre of each 4x4 cell as the grey darkens.
_CLUSTER_ORDER = np.array([[12, 5, 6, 13], [4, 0, 1, 7], [11, 3, 2, 8], [15, 10, 9, 14]], dtype=np.int32)
# A cell pixel of order m turns black when grey < threshold[m]; centre first.
_CLUSTER_THRESHOLD = (255.0 * (16 - _CLUSTER_ORDER - 0.5) / 16).astype(np.uint8)


def to_bilevel(grey: np.ndarray, mode: str = "auto", y_dpi: int = 196) -> np.ndarray:
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError("grey must be a 2-D uint8 array")
    if mode == "text":
        return grey < 128
    if mode == "auto":
        return _clustered(grey, y_dpi)
    if mode == "photo":
        return _diffused(grey)
    raise ImagingError(f"unknown bilevel mode {mode!r}: use auto, text or photo")


@functools.lru_cache(maxsize=8)
def _screen(rows: int, width: int, y_dpi: int) -> np.ndarray:
    """The threshold screen over the page, square in physical units (at 98 lpi every other cell row is
    used, at 391 lpi each cell row is repeated), with the tint clipping folded in: black iff grey < screen."""
    cell_rows = (np.arange(rows) * 196 // y_dpi) % 4
    # the four possible screen rows, clipped once; the page is a row gather of them (20 ms -> 2 ms a page size)
    lines = np.clip(_CLUSTER_THRESHOLD[:, np.arange(width) % 4], BLACK_BELOW, WHITE_ABOVE).astype(np.uint8)
    screen = np.take(lines, cell_rows, axis=0)
    screen.setflags(write=False)
    return screen


def _clustered(grey: np.ndarray, y_dpi: int) -> np.ndarray:
    return grey < _screen(grey.shape[0], grey.shape[1], y_dpi)


def _diffused(grey: np.ndarray) -> np.ndarray:
    from PIL import Image  # only here: the other modes need no Pillow (start-up time of short conversions)

    clipped = np.where(grey >= WHITE_ABOVE, np.uint8(255), grey)
    image = Image.fromarray(clipped, "L").convert("1", dither=Image.Dither.FLOYDSTEINBERG)
    return ~np.asarray(image)


def is_bilevel(grey: np.ndarray) -> bool:
    """True when a grey page holds only black and white (nothing for a halftone to do)."""
    return not np.any((grey > 0) & (grey < 255))
