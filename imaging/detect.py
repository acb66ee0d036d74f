"""Input format by content (magic bytes), never by file name: uploads and email attachments lie about their names."""

from __future__ import annotations

from .errors import ImagingError

PDF, TIFF, PNG, JPEG, GIF, BMP, TEXT = "pdf", "tiff", "png", "jpeg", "gif", "bmp", "text"
IMAGE_FORMATS = (TIFF, PNG, JPEG, GIF, BMP)

_MAGIC = (
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"II+\x00", TIFF),  # BigTIFF
    (b"MM\x00+", TIFF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
)
# Bytes that never appear in a plain text document (C0 controls except tab, LF, FF, CR, and ESC for
# printer-style files).
_BINARY_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 12, 13, 27))


def detect_format(head: bytes) -> str:
    """Name the format of a document given its first bytes (a few KB suffice; text needs the whole of it)."""
    if not head:
        raise ImagingError("empty input: no bytes to convert")
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    # PDF readers accept the header anywhere in the first KB (some mail gateways prepend junk).
    if b"%PDF-" in head[:1024]:
        return PDF
    bmp_header_sizes = (12, 40, 52, 56, 64, 108, 124)
    if head.startswith(b"BM") and len(head) >= 26 and int.from_bytes(head[14:18], "little") in bmp_header_sizes:
        return BMP
    if _looks_like_text(head):
        return TEXT
    raise ImagingError(f"unknown format: not PDF, TIFF, PNG, JPEG, GIF, BMP or UTF-8 text (starts with {head[:8]!r})")


def _looks_like_text(head: bytes) -> bool:
    if any(b in _BINARY_CONTROLS for b in head[:65536]):
        return False
    sample = head[:65536]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"
    return True
