"""Helpers for tests that use spandsp as the far end: fax TIFFs, page comparison, back-to-back loops.

Kept in the package (not in a test folder) so every area's tests can import them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .fax_terminal import FaxAudioTerminal
from .t38_terminal import T38Terminal

FAX_WIDTH = 1728


def make_fax_tiff(path: str | os.PathLike[str], pages: int = 3, *, height: int = 1100,
                  compression: str = "group4", dpi: tuple[int, int] = (204, 196), seed: int = 1) -> list[np.ndarray]:
    """Write a multi-page bilevel fax TIFF (1728 wide) with Pillow; returns each page as a bool array
    (True = black).  Every page differs, so a page swap or loss is detected."""
    if height < 100:
        raise ValueError("height must be at least 100 lines")
    if compression not in ("group3", "group4"):
        raise ValueError("compression must be group3 or group4")
    rng = np.random.default_rng(seed)
    images = []
    for page in range(pages):
        im = Image.new("1", (FAX_WIDTH, height), 1)
        draw = ImageDraw.Draw(im)
        for line in range(0, height - 40, 24):
            draw.text((40 + (line * 7) % 300, line + 10), f"faxengine page {page + 1} line {line // 24} " * 3, fill=0)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, FAX_WIDTH - 400)), int(rng.integers(0, max(1, height - 200)))
            draw.rectangle((x0, y0, x0 + int(rng.integers(20, 400)), y0 + int(rng.integers(10, min(200, height // 2)))),
                           fill=0 if rng.random() < 0.5 else None, outline=0, width=3)
        # a page-number bar, so pages cannot be confused
        draw.rectangle((FAX_WIDTH - 60, 20, FAX_WIDTH - 20, 20 + 30 * (page + 1)), fill=0)
        images.append(im)
    images[0].save(os.fspath(path), save_all=True, append_images=images[1:], compression=compression, dpi=dpi)
    return [~np.array(im, dtype=bool) for im in images]


def read_fax_pages(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every page of a bilevel TIFF as a bool array, True = black (photometric handled by Pillow)."""
    pages = []
    with Image.open(os.fspath(path)) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            pages.append(np.array(im.convert("L")) < 128)
    return pages


def pages_identical(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def run_t38_pair(caller: dict[str, Any], answerer: dict[str, Any], *, max_seconds: float = 900.0,
                 step_samples: int = 160) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two spandsp T.38 terminals back to back in simulated time (no sleeping); returns their stats.

    ``caller``/``answerer`` are keyword arguments for :class:`T38Terminal`.  Packets produced in
    one step are delivered before the next one, as a zero-delay network would.
    """
    to_b: list[tuple[bytes, int]] = []
    to_a: list[tuple[bytes, int]] = []
    a = T38Terminal(True, lambda d, s: to_b.append((d, s)), **caller)
    b = T38Terminal(False, lambda d, s: to_a.append((d, s)), **answerer)
    try:
        steps = int(max_seconds * 8000 / step_samples)
        for _ in range(steps):
            a.step(step_samples)
            b.step(step_samples)
            while to_a or to_b:
                batch, to_b[:] = list(to_b), []
                for data, seq in batch:
                    b.rx_ifp(data, seq)
                batch, to_a[:] = list(to_a), []
                for data, seq in batch:
                    a.rx_ifp(data, seq)
            if a.done and b.done:
                break
        return a.stats(), b.stats()
    finally:
        a.close()
        b.close()


def run_audio_pair(caller: dict[str, Any], answerer: dict[str, Any], *, max_seconds: float = 900.0,
                   step_samples: int = 160) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two spandsp audio fax terminals wired back to back in memory, in simulated time."""
    a = FaxAudioTerminal(True, **caller)
    b = FaxAudioTerminal(False, **answerer)
    try:
        for _ in range(int(max_seconds * 8000 / step_samples)):
            from_a = a.tx_audio(step_samples)
            from_b = b.tx_audio(step_samples)
            b.rx_audio(from_a)
            a.rx_audio(from_b)
            if a.done and b.done:
                break
        return a.stats(), b.stats()
    finally:
        a.close()
        b.close()
