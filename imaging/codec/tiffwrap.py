"""Minimal single-page TIFF container for raw fax strips, and raw-strip extraction.

Used for interoperability with libtiff (Pillow, tiffcp) in tests and benchmarks; the TIFF-F writer
with Class F tags lives elsewhere in imaging/.
"""

from __future__ import annotations

import struct

_SHORT, _LONG, _RATIONAL = 3, 4, 5


def wrap_strip(
    strip: bytes,
    width: int,
    rows: int,
    compression: str,
    *,
    lsb_first: bool = False,
    byte_align: bool = False,
    y_dpi: int = 196,
) -> bytes:
    """One-strip little-endian TIFF around fax data: Compression 3 (T4Options) or 4, min-is-white."""
    tags: list[tuple[int, int, int, object]] = []
    comp = 4 if compression == "mmr" else 3
    header = 8
    data_off = header
    entries = []
    t4 = (1 if compression == "mr" else 0) | (4 if byte_align else 0)
    entries += [
        (256, _LONG, 1, width),
        (257, _LONG, 1, rows),
        (258, _SHORT, 1, 1),
        (259, _SHORT, 1, comp),
        (262, _SHORT, 1, 0),
        (266, _SHORT, 1, 2 if lsb_first else 1),
        (273, _LONG, 1, data_off),
        (277, _SHORT, 1, 1),
        (278, _LONG, 1, rows),
        (279, _LONG, 1, len(strip)),
        (282, _RATIONAL, 1, (204, 1)),
        (283, _RATIONAL, 1, (y_dpi, 1)),
        (292 if comp == 3 else 293, _LONG, 1, t4 if comp == 3 else 0),
        (296, _SHORT, 1, 2),
    ]
    entries.sort()
    strip_pad = strip + (b"\0" if len(strip) % 2 else b"")
    ifd_off = header + len(strip_pad)
    extra_off = ifd_off + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    extra = b""
    for tag, typ, count, value in entries:
        if typ == _RATIONAL:
            ifd += struct.pack("<HHII", tag, typ, count, extra_off + len(extra))
            extra += struct.pack("<II", *value)
        elif typ == _SHORT:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    del tags
    return b"II*\0" + struct.pack("<I", ifd_off) + strip_pad + ifd + extra


def read_strip(path_or_file) -> tuple[bytes, dict[int, object]]:
    """Concatenated raw strips of the first page and its tags (via Pillow's tag parser)."""
    from PIL import Image

    with Image.open(path_or_file) as im:
        tags = dict(im.tag_v2)
        fp = im.fp
        offsets = tags[273] if isinstance(tags[273], tuple) else (tags[273],)
        counts = tags[279] if isinstance(tags[279], tuple) else (tags[279],)
        out = b""
        for off, cnt in zip(offsets, counts, strict=True):
            fp.seek(off)
            out += fp.read(cnt)
    return out, tags
