"""ECM (T.30 Annex A) framing: FCD/RCP frames, blocks, and the PPR bitmap."""

from __future__ import annotations

from engine.t30 import fcf

MAX_FRAMES_PER_BLOCK = 256
RCP_REPEATS = 3


def split_blocks(data: bytes, frame_size: int) -> list[list[bytes]]:
    """Page data cut into frames of ``frame_size`` octets (the last one may be short), 256 per block."""
    if frame_size not in (64, 256):
        raise ValueError(f"ECM frame size must be 64 or 256, not {frame_size}")
    frames = [data[i:i + frame_size] for i in range(0, len(data), frame_size)] or [b""]
    return [frames[i:i + MAX_FRAMES_PER_BLOCK] for i in range(0, len(frames), MAX_FRAMES_PER_BLOCK)]


def fcd_frame(number: int, payload: bytes) -> bytes:
    return fcf.build(fcf.FCD, bytes((number & 0xFF,)) + payload, final=False)


def rcp_frame() -> bytes:
    return fcf.build(fcf.RCP, final=False)


def block_frames(block: list[bytes], numbers: list[int]) -> list[bytes]:
    """The frames to send for a block (all or the ones a PPR asked for), then RCP three times."""
    return [fcd_frame(n, block[n]) for n in numbers] + [rcp_frame()] * RCP_REPEATS


def ppr_bitmap(missing: set[int] | list[int]) -> bytes:
    """32 octets; bit n (LSB first within octet n // 8) set = frame n must be resent."""
    bits = bytearray(32)
    for n in missing:
        bits[n // 8] |= 1 << (n % 8)
    return bytes(bits)


def frames_from_bitmap(bitmap: bytes, count: int) -> list[int]:
    return [n for n in range(count) if n // 8 < len(bitmap) and bitmap[n // 8] >> (n % 8) & 1]


def pps_fif(fcf2: int, page: int, block: int, frames: int, *, x: bool) -> bytes:
    """PPS information: the post-page message (with X bit when due), page, block, frame count - 1."""
    code = fcf2 | 1 if (x and fcf2 != fcf.PPS_NULL) else fcf2
    return bytes((code, page & 0xFF, block & 0xFF, (frames - 1) & 0xFF))
