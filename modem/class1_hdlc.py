"""Software HDLC for ECM over a Class 1 modem.

A non-V.34 Class 1 modem carries ECM blocks as a raw +FTM/+FRM bit stream, so the DTE makes the
flags, zero-bit insertion and FCS itself.  Bits are LSB-first in each byte (T.31 DTE order)."""

from __future__ import annotations

import numpy as np

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x8408 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc16(data: bytes) -> int:
    """CRC-16/X.25 (the T.30 HDLC FCS): reflected 0x1021, init and final XOR 0xFFFF."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def with_fcs(frame: bytes) -> bytes:
    c = crc16(frame)
    return frame + bytes([c & 0xFF, c >> 8])


def fcs_ok(frame_with_fcs: bytes) -> bool:
    return len(frame_with_fcs) >= 3 and with_fcs(frame_with_fcs[:-2]) == frame_with_fcs


_FLAG_BITS = np.array([0, 1, 1, 1, 1, 1, 1, 0], dtype=np.uint8)


def _stuff(bits: np.ndarray) -> np.ndarray:
    """Insert a 0 after every run of five 1s."""
    if bits.size == 0:
        return bits
    padded = np.concatenate(([0], bits, [0])).astype(np.int8)
    d = np.diff(padded)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    positions = []
    for s, e in zip(starts, ends, strict=True):
        length = e - s
        if length >= 5:
            positions.extend(range(s + 5, s + length + 1, 5))
    if not positions:
        return bits
    return np.insert(bits, positions, 0)


def encode(frames: list[bytes], preamble_flags: int = 1, closing_flags: int = 2) -> bytes:
    """Frames (without FCS) -> bytes for +FTM: flags, stuffed frames with FCS, flags, 1-fill."""
    parts = [np.tile(_FLAG_BITS, max(1, preamble_flags))]
    for f in frames:
        bits = np.unpackbits(np.frombuffer(with_fcs(f), dtype=np.uint8), bitorder="little")
        parts.append(_stuff(bits))
        parts.append(_FLAG_BITS)
    parts.append(np.tile(_FLAG_BITS, max(0, closing_flags - 1)))
    allbits = np.concatenate(parts)
    pad = (-allbits.size) % 8
    if pad:
        allbits = np.concatenate((allbits, np.ones(pad, dtype=np.uint8)))
    return np.packbits(allbits, bitorder="little").tobytes()


class Decoder:
    """Streaming flag hunt, zero-bit removal and FCS check; ``feed`` returns (frame, fcs_ok) pairs.

    Frames come back without their FCS.  Aborts (seven 1s) and fragments shorter than an address,
    control and FCS are dropped; a frame whose length is not a whole number of octets counts as bad."""

    def __init__(self, max_frame: int = 600) -> None:
        self._bits = np.zeros(0, dtype=np.uint8)
        self._synced = False
        self.max_bits = max_frame * 8 + 64
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        if not data:
            return []
        new = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        bits = np.concatenate((self._bits, new))
        out: list[tuple[bytes, bool]] = []
        padded = np.concatenate(([0], bits, [0])).astype(np.int8)
        d = np.diff(padded)
        starts = np.flatnonzero(d == 1)
        ends = np.flatnonzero(d == -1)
        lengths = ends - starts
        # A flag: exactly six 1s with a 0 on both sides inside the buffer.
        is_flag = (lengths == 6) & (starts > 0) & (ends < bits.size)
        flag_idx = np.flatnonzero(is_flag)
        if flag_idx.size == 0:
            keep_from = max(0, bits.size - 16) if not self._synced else 0
            self._bits = bits[keep_from:]
            if self._bits.size > self.max_bits:       # runaway: no flag for a whole frame
                self._bits = self._bits[-16:]
                self._synced = False
            return out
        for a, b in zip(flag_idx[:-1], flag_idx[1:], strict=True):
            seg_start = ends[a] + 1               # after the flag's closing 0
            seg_end = starts[b] - 1               # before the next flag's opening 0
            if seg_end - seg_start <= 0:
                continue
            frame = self._segment(bits, seg_start, seg_end, starts, ends, lengths, a, b)
            if frame is not None:
                out.append(frame)
        last = flag_idx[-1]
        self._bits = bits[starts[last] - 1:]      # keep from the last flag (its opening 0)
        self._synced = True
        return out

    def _segment(self, bits, seg_start, seg_end, starts, ends, lengths, a, b):
        inner = slice(a + 1, b)
        if np.any(lengths[inner] >= 7):
            return None                          # abort sequence
        stuffed = ends[inner][lengths[inner] == 5]
        seg = bits[seg_start:seg_end]
        if stuffed.size:
            seg = np.delete(seg, stuffed - seg_start)
        if seg.size < 32:
            return None
        if seg.size % 8:
            self.bad_frames += 1
            return (np.packbits(seg[: seg.size - seg.size % 8], bitorder="little").tobytes()[:-2], False)
        raw = np.packbits(seg, bitorder="little").tobytes()
        good = fcs_ok(raw)
        if not good:
            self.bad_frames += 1
        return (raw[:-2], good)
