"""Shared helpers for the codec tests: test pages and libtiff (Pillow / tiffcp) round trips.

Imported by the test_codec_* modules via sys.path (not a pytest conftest).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imaging.codec import Compression
from imaging.codec.tiffwrap import read_strip, wrap_strip

FONT_PATHS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
]
VIEWFAX_PATHS = [
    os.environ.get("FAXENGINE_VIEWFAX", ""),
    "/usr/share/doc/mgetty-viewfax/viewfax.tif",
    "/tmp/vf/x/usr/share/doc/mgetty-viewfax/viewfax.tif",
]
HAVE_TIFFCP = shutil.which("tiffcp") is not None


def font(size: int):
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def text_page(rows: int = 1100, width: int = 1728, size: int = 22, seed: int = 0) -> np.ndarray:
    """A letter-like page: aliased text rendered with Pillow, a rule and a box."""
    rng = np.random.default_rng(seed)
    img = Image.new("1", (width, rows), 1)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    f = font(size)
    words = ["fax", "engine", "T.4", "coding", "scan", "line", "Modified", "READ", "page", "ÄÖÜ", "1728", "x"]
    y = 40
    while y < rows - size * 2:
        line = " ".join(rng.choice(words, size=int(rng.integers(4, 14))))
        draw.text((int(rng.integers(20, 120)), y), line, font=f, fill=0)
        y += int(size * 1.4)
    draw.rectangle((10, 10, width - 11, rows - 11), outline=0, width=3)
    draw.line((0, rows // 2, width - 1, rows // 2), fill=0, width=1)
    return ~np.array(img)


def table_page(rows: int = 1100, width: int = 1728) -> np.ndarray:
    p = np.zeros((rows, width), dtype=bool)
    p[50 : rows - 50 : 40, 80 : width - 80] = True
    p[50 : rows - 50, 80 : width - 80 : 300] = True
    p[50:90, 80 : width - 80][::2, ::2] = True  # shaded header
    return p


def photo_page(rows: int = 1100, width: int = 1728, seed: int = 0) -> np.ndarray:
    """Error-diffusion-like dithered gradient with blobs (Pillow's Floyd-Steinberg)."""
    yy, xx = np.mgrid[0:rows, 0:width]
    grey = 128 + 90 * np.sin(xx / 97.0) * np.cos(yy / 61.0) + 30 * np.sin((xx + yy) / 23.0)
    img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("1")
    return ~np.array(img)


def libtiff_encode(pixels: np.ndarray, compression: Compression, *, k: int = 4, byte_align: bool = False) -> bytes:
    """libtiff's raw strip for a page (Pillow). K comes from YResolution: 196 -> 4, 98 -> 2."""
    buf = io.BytesIO()
    img = Image.fromarray(pixels)  # True -> 1 bits, which libtiff codes as black runs
    if compression is Compression.MMR:
        img.save(buf, format="TIFF", compression="group4", strip_size=1 << 30, dpi=(204, 196))
    else:
        t4 = (1 if compression is Compression.MR else 0) | (4 if byte_align else 0)
        y = 196 if k == 4 else 98
        img.save(buf, format="TIFF", compression="group3", tiffinfo={292: t4}, strip_size=1 << 30, dpi=(204, y))
    buf.seek(0)
    return read_strip(buf)[0]


def pillow_decode_tiff(tiff: bytes) -> np.ndarray:
    """Decode a min-is-white TIFF with Pillow/libtiff; True = black."""
    with Image.open(io.BytesIO(tiff)) as im:
        im.load()
        return ~np.array(im.convert("1"))


def tiffcp_decode(tiff: bytes, tmp: Path) -> np.ndarray:
    """Decode with libtiff-tools: `tiffcp -c none`, then read the uncompressed result."""
    src = tmp / "in.tif"
    dst = tmp / "out.tif"
    src.write_bytes(tiff)
    proc = subprocess.run(["tiffcp", "-c", "none", str(src), str(dst)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"error" not in proc.stderr.lower(), proc.stderr
    with Image.open(dst) as im:
        assert im.info.get("compression") == "raw"
        im.load()
        return ~np.array(im.convert("1"))


def tiffcp_fill_order2(tiff: bytes, tmp: Path) -> bytes:
    """Rewrite a fax TIFF with FillOrder=2 (lsb2msb) using tiffcp; returns the new file."""
    src = tmp / "fo1.tif"
    dst = tmp / "fo2.tif"
    src.write_bytes(tiff)
    proc = subprocess.run(["tiffcp", "-f", "lsb2msb", str(src), str(dst)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dst.read_bytes()


def wrap(data: bytes, pixels: np.ndarray, compression: Compression, **kw) -> bytes:
    return wrap_strip(data, pixels.shape[1], pixels.shape[0], compression.value, **kw)


def viewfax_path() -> Path | None:
    for p in VIEWFAX_PATHS:
        if p and Path(p).is_file():
            return Path(p)
    return None


def eol_positions(raw: bytes) -> np.ndarray:
    """Bit positions just after every EOL in MSB-first data."""
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    ones = np.flatnonzero(bits)
    gap = np.diff(np.concatenate([[-1], ones])) - 1
    return ones[gap >= 11] + 1
