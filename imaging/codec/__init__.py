"""Fax codecs: T.4 one-dimensional MH, two-dimensional MR, T.6 MMR; encode and decode.

Written for the fax line rather than for files: EOL before every row, RTC/EOFB, byte-aligned
EOLs, a per-row minimum length (minimum scan-line time), bit order per byte, and a decoder that
conceals and counts bad rows like a receiving fax. Which path serves which use:

* Sending on the line (T.30 engine): ``encode`` here. libtiff cannot add the minimum-scan-line
  fill or RTC, and its output would need re-framing anyway.
* Receiving from the line: ``decode`` here: it counts bad rows, conceals them and resynchronises
  at the next EOL (libtiff only stops or garbles), which BadFaxLines/CleanFaxData need.
* Stored pages (document -> TIFF-F, TIFF-F -> preview/PDF): libtiff through Pillow is as good and
  faster (encode about 1.5-2x, decode 10-40x, see bench/imaging_codecs.py), so use it there. Our
  encoder's strips are byte-identical to libtiff's (MH; MR with K=2/4; MMR; with or without
  byte-aligned EOLs; tests compare), so either may fill a TIFF-F strip.
"""

from __future__ import annotations

import enum

import numpy as np

from .decoder import Decoded, decode_eol, decode_mmr
from .encoder import encode_page, reverse_bits

__all__ = [
    "Compression",
    "Decoded",
    "decode",
    "encode",
    "min_row_bits_for",
    "reverse_bits",
    "strip_rtc",
]

MAX_WIDTH = 1 << 16
MAX_DATA_BYTES = 4 << 20  # more than a fax page: a fine A4 page of error-diffused grey is 1.4 MB
DEFAULT_MAX_ROWS = 1 << 15  # rows per page at most (4 m at fine): bounds memory and work on garbage input


class Compression(enum.Enum):
    MH = "mh"
    MR = "mr"
    MMR = "mmr"


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"pixels must be a 2-D array (rows, width), got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError("pixels must be at least one column wide")
    if arr.dtype != bool:
        arr = arr != 0
    return np.ascontiguousarray(arr)


def encode(
    pixels: np.ndarray,
    compression: Compression,
    *,
    k: int = 2,
    eol: bool = True,
    byte_align: bool = False,
    min_row_bits: int = 0,
    rtc: bool = True,
    lsb_first: bool = False,
) -> bytes:
    """Code a page (True = black).

    MH/MR: EOL (+ MR tag bit) before each row; `byte_align` puts fill before each EOL so it ends
    on a byte boundary (TIFF T4Options bit 2); `min_row_bits` zero-fills before the EOL so every
    coded line (data + fill + EOL, + tag bit in MR) has at least that many bits; `rtc` appends
    RTC, then one zero byte (spandsp's receiver only recognises an EOL once another bit has
    arrived; zeros after RTC are harmless). MR codes every `k`-th row one-dimensionally (k=2
    standard, 4 fine). MMR: `rtc` appends EOFB (and the zero byte); `k`, `byte_align` and
    `min_row_bits` do not apply (MMR is ECM-only). `eol=False` is not supported for MH/MR (the
    TIFF "no EOL" form is not needed on the line).
    """
    compression = Compression(compression)
    arr = _check_pixels(pixels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if min_row_bits < 0:
        raise ValueError("min_row_bits must be >= 0")
    if not eol and compression is not Compression.MMR:
        raise ValueError("eol=False is not supported for MH/MR")
    data = encode_page(arr, compression.value, k=k, byte_align=byte_align, min_row_bits=min_row_bits, rtc=rtc)
    return reverse_bits(data) if lsb_first else data


def decode(
    data: bytes,
    compression: Compression,
    width: int,
    *,
    lsb_first: bool = False,
    k: int | None = None,
    max_rows: int | None = None,
) -> Decoded:
    """Decode one page as a receiving fax does (see decoder.py for the error behaviour).

    `k` is accepted for symmetry: MR rows carry their own 1-D/2-D tag bit, so it is not needed.
    Without `max_rows`, at most DEFAULT_MAX_ROWS rows are decoded (garbage can look like
    millions of 1-bit MMR rows).
    """
    compression = Compression(compression)
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"width must be 1..{MAX_WIDTH}, got {width}")
    if max_rows is not None and not 0 <= max_rows <= DEFAULT_MAX_ROWS:
        raise ValueError(f"max_rows must be 0..{DEFAULT_MAX_ROWS}, got {max_rows}")
    data = bytes(data)
    if len(data) > MAX_DATA_BYTES:  # decoding needs ~30-50 bytes of memory per input byte
        raise ValueError(f"{len(data)} bytes of coded data is more than a fax page (limit {MAX_DATA_BYTES})")
    if compression is not Compression.MMR and max_rows is None:
        max_rows_eol = DEFAULT_MAX_ROWS
    else:
        max_rows_eol = max_rows
    if lsb_first:
        data = reverse_bits(data)
    if compression is Compression.MMR:
        return decode_mmr(data, width, max_rows, DEFAULT_MAX_ROWS)
    return decode_eol(data, width, compression is Compression.MR, max_rows_eol)


def min_row_bits_for(mslt_ms: int, bit_rate: int) -> int:
    """Minimum bits per coded line for a minimum scan-line time (ms) at a bit rate (bit/s)."""
    if mslt_ms < 0 or bit_rate <= 0:
        raise ValueError("mslt_ms must be >= 0 and bit_rate > 0")
    return -(-mslt_ms * bit_rate // 1000)


def strip_rtc(data: bytes, compression: Compression, *, lsb_first: bool = False) -> bytes:
    """Drop RTC (MH/MR) or EOFB (MMR) and anything after it, e.g. before storing a page in a TIFF.

    The cut is at the first EOL of the terminating sequence; trailing bits of the last byte that
    belonged to it are zeroed (they read as fill).
    """
    compression = Compression(compression)
    raw = reverse_bits(bytes(data)) if lsb_first else bytes(data)
    cut = _terminator_start(raw, compression)
    if cut is None:
        return bytes(data)
    nbytes = (cut + 7) // 8
    out = bytearray(raw[:nbytes])
    if cut % 8:
        out[-1] &= (0xFF << (8 - cut % 8)) & 0xFF
    out_b = bytes(out)
    return reverse_bits(out_b) if lsb_first else out_b


def _terminator_start(raw: bytes, compression: Compression) -> int | None:
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    ones = np.flatnonzero(bits)
    if ones.size == 0:
        return None
    gap = np.empty_like(ones)
    gap[0] = ones[0]
    gap[1:] = ones[1:] - ones[:-1] - 1
    eol_end = ones[gap >= 11] + 1  # position after each EOL
    tag = 1 if compression is Compression.MR else 0
    need = 2 if compression is Compression.MMR else 6
    # a terminator: `need` EOLs back to back (each followed by the tag bit in MR)
    step = 12 + tag
    for i in range(eol_end.size - need + 1):
        run = eol_end[i : i + need]
        if np.all(np.diff(run) == step):
            return int(run[0]) - 12
    return None
