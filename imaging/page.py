"""A fax page as the engine handles it: bilevel pixels plus the vertical resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAX_WIDTH = 1728
X_DPI = 204
Y_DPI = {"standard": 98, "fine": 196, "superfine": 391}


@dataclass
class FaxPage:
    """``pixels`` is a 2-D bool array, True = black, shape (rows, width)."""

    pixels: np.ndarray
    y_dpi: int = 196
    x_dpi: int = X_DPI

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def resolution(self) -> str:
        for name, dpi in Y_DPI.items():
            if dpi == self.y_dpi:
                return name
        raise ValueError(f"not a fax resolution: {self.y_dpi} lpi")
