"""T.4/T.6 decoders that behave like a receiving fax machine.

MH/MR: all EOLs are found at once with numpy (11+ zeros then a one never occurs inside valid
code words), each row is decoded from its own EOL-delimited segment, so a corrupt row costs that
row only: it is counted, replaced by the last good row, and decoding resumes at the next EOL. In
MR, 2-D rows after a bad row are also bad (their reference is wrong) until the next 1-D row.
RTC (or any run of 3+ EOLs with nothing between them) ends the page.

MMR has no EOLs, so nothing can resynchronise: at the first error the rest of the page is lost.
If `max_rows` is known the missing rows are counted bad and filled with the last good row,
otherwise decoding stops there. EOFB ends the page.

Bit reading: a 13-bit window at every bit position is computed with numpy in one pass and read
through a memoryview; the per-code-word loop is plain Python over lookup lists. Work is bounded by
the input length (every step consumes bits or ends the row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import tables as t

_LW = t.decode_lut(t.all_run_codes(0), t.WINDOW)
_LB = t.decode_lut(t.all_run_codes(1), t.WINDOW)
_LM = t.decode_lut(t.mode_codes(), 7)


@dataclass
class Decoded:
    pixels: np.ndarray  # bool, True = black, (rows, width)
    rows: int
    bad_rows: int
    consecutive_bad_rows: int


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.nbits = 8 * len(data)
        b = np.frombuffer(data + bytes(4), dtype=np.uint8).astype(np.uint32)
        w24 = (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
        n = len(data) + 2
        win = np.empty((n, 8), dtype=np.uint16)
        for s in range(8):
            win[:, s] = (w24[:n] >> (11 - s)) & 0x1FFF
        self.win = memoryview(win.reshape(-1))
        self.ones = np.flatnonzero(np.unpackbits(np.frombuffer(data, dtype=np.uint8)))

    def eol_ends(self) -> np.ndarray:
        """Bit positions just after every EOL (a one preceded by at least 11 zeros)."""
        ones = self.ones
        if ones.size == 0:
            return ones
        gap = np.empty_like(ones)
        gap[0] = ones[0]
        gap[1:] = ones[1:] - ones[:-1] - 1
        return ones[gap >= 11] + 1

    def zeros_between(self, start: int, end: int) -> bool:
        i = int(np.searchsorted(self.ones, start))
        return i >= self.ones.size or self.ones[i] >= end


def _toggle(chg: list[int], x: int, width: int) -> None:
    if x >= width:
        return
    if chg and chg[-1] == x:
        chg.pop()
    else:
        chg.append(x)


def _row_1d(win, p: int, end: int, width: int) -> tuple[int, list[int]] | None:
    """Decode one MH row starting at bit p; None if corrupt or crossing `end`."""
    x = 0
    colour = 0
    chg: list[int] = []
    lut = _LW
    while True:
        e = lut[win[p]]
        if not e:
            return None
        p += e & 31
        if p > end:
            return None
        run = e >> 5
        x += run
        if run < 64:
            if x > width:
                return None
            if x == width:
                return p, chg
            if chg and chg[-1] == x:
                chg.pop()
            else:
                chg.append(x)
            colour ^= 1
            lut = _LB if colour else _LW


def _run(win, p: int, end: int, lut) -> tuple[int, int]:
    """One run (make-ups + terminating code); (-1, p) on error."""
    total = 0
    while True:
        e = lut[win[p]]
        if not e:
            return -1, p
        p += e & 31
        if p > end:
            return -1, p
        run = e >> 5
        total += run
        if run < 64:
            return total, p
        if total > 1 << 20:
            return -1, p


def _row_2d(win, p: int, end: int, width: int, ref: list[int]) -> tuple[int, list[int]] | None:
    """Decode one 2-D row; `ref` = reference changes followed by three `width` sentinels."""
    a0 = -1
    colour = 0
    chg: list[int] = []
    jj = 0
    lm = _LM
    while a0 < width:
        e = lm[win[p] >> 6]
        if not e:
            return None
        p += e & 31
        if p > end:
            return None
        mode = e >> 5
        while ref[jj] <= a0:
            jj += 1
        j = jj + ((jj & 1) ^ colour)
        if mode < 7:  # vertical
            a1 = ref[j] + mode - 3
            if a1 <= a0 or a1 > width:
                return None
            _toggle(chg, a1, width)
            a0 = a1
            colour ^= 1
        elif mode == 7:  # pass
            a0 = ref[j + 1]
        elif mode == 8:  # horizontal
            r1, p = _run(win, p, end, _LB if colour else _LW)
            if r1 < 0:
                return None
            r2, p = _run(win, p, end, _LW if colour else _LB)
            if r2 < 0:
                return None
            a1 = max(a0, 0) + r1
            a2 = a1 + r2
            if a2 > width:
                return None
            _toggle(chg, a1, width)
            _toggle(chg, a2, width)
            a0 = a2
        else:
            return None
    if a0 > width:
        return None
    return p, chg


class _Page:
    """Collects rows as change lists, with concealment and bad-row statistics."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[int]] = []
        self.last_good: list[int] = []
        self.bad = 0
        self.run_bad = 0
        self.max_run_bad = 0

    def good(self, chg: list[int]) -> None:
        self.rows.append(chg)
        self.last_good = chg
        self.run_bad = 0

    def bad_row(self) -> None:
        self.rows.append(self.last_good)
        self.bad += 1
        self.run_bad += 1
        self.max_run_bad = max(self.max_run_bad, self.run_bad)

    def result(self) -> Decoded:
        n = len(self.rows)
        w = self.width
        counts = np.fromiter((len(r) for r in self.rows), dtype=np.int64, count=n)
        pos = np.fromiter((x for r in self.rows for x in r), dtype=np.int64, count=int(counts.sum()))
        tog = np.zeros((n, w), dtype=np.uint8)
        tog[np.repeat(np.arange(n), counts), pos] = 1
        pixels = (np.cumsum(tog, axis=1, dtype=np.uint8) & 1).astype(bool)
        return Decoded(pixels, n, self.bad, self.max_run_bad)


def decode_eol(data: bytes, width: int, two_d: bool, max_rows: int | None) -> Decoded:
    """MH (two_d False) or MR data with an EOL before every row."""
    bits = _Bits(data)
    win = bits.win
    ends = bits.eol_ends().tolist()
    page = _Page(width)
    tag = 1 if two_d else 0
    ref_ok = False  # MR: previous row decoded correctly (usable as reference)
    ref: list[int] = []
    empty_run = 0
    limit = max_rows if max_rows is not None else 1 << 31
    nbits = bits.nbits
    for i, start in enumerate(ends):
        if len(page.rows) >= limit:
            break
        end = ends[i + 1] - 12 if i + 1 < len(ends) else nbits
        cs = start + tag
        if cs >= end or bits.zeros_between(cs, end):
            empty_run += 1
            if empty_run >= 2 or i + 1 == len(ends):
                break
            continue
        empty_run = 0
        one_d = True
        if two_d:
            one_d = bool(win[start] >> 12)
        if one_d:
            res = _row_1d(win, cs, end, width)
        elif ref_ok:
            res = _row_2d(win, cs, end, width, ref + [width] * 3)
        else:
            res = None
        if res is None or not bits.zeros_between(res[0], end):
            if res is not None:  # a good row followed by garbage: an EOL was lost, so was a row
                page.good(res[1])
                ref, ref_ok = res[1], True
                if len(page.rows) < limit:
                    page.bad_row()
                continue
            page.bad_row()
            ref_ok = False
            continue
        page.good(res[1])
        ref, ref_ok = res[1], True
    return page.result()


def decode_mmr(data: bytes, width: int, max_rows: int | None, cap: int) -> Decoded:
    bits = _Bits(data)
    win = bits.win
    page = _Page(width)
    p = 0
    end = bits.nbits
    ref: list[int] = []
    limit = max_rows if max_rows is not None else cap
    while len(page.rows) < limit:
        if p >= end or (win[p] >> 1) == 1 or bits.zeros_between(p, end):  # end of data, EOFB or only fill
            break
        res = _row_2d(win, p, end, width, ref + [width] * 3)
        if res is None:
            if max_rows is None:  # count the failing row (concealed) and stop: the rest is unknowable
                page.bad_row()
                break
            while len(page.rows) < limit:
                page.bad_row()
            break
        p, ref = res
        page.good(ref)
    return page.result()
