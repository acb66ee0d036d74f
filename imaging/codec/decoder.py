"""T.4/T.6 decoders that behave like a receiving fax machine.

MH/MR: all EOLs are found at once with numpy (11+ zeros then a one never occurs inside valid
code words), each row is decoded from its own EOL-delimited segment, so a corrupt row costs that
row only: it is counted, replaced by the last good row, and decoding resumes at the next EOL. In
MR, 2-D rows after a bad row are also bad (their reference is wrong) until the next 1-D row.
RTC (or any run of 3+ EOLs with nothing between them) ends the page.

MMR has no EOLs, so nothing can resynchronise: at the first error the rest of the page is lost.
If `max_rows` is known the missing rows are counted bad and filled with the last good row,
otherwise decoding stops there. EOFB ends the page.

Bit reading: a 13-bit window at every bit position is computed with numpy in one pass. 1-D rows
(all MH rows, MR's 1-D rows) are decoded all at once: one numpy step per code word advances every
row in parallel (the last few long rows finish in a Python loop, cheaper than numpy calls on tiny
arrays). 2-D rows depend on the row above, so they are decoded one after another with a
plain Python loop per code word over lookup lists (read through a memoryview). Work is bounded by
the input length (every step consumes bits or ends the row).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from . import tables as t

_LW = t.decode_lut(t.all_run_codes(0), t.WINDOW)
_LB = t.decode_lut(t.all_run_codes(1), t.WINDOW)
_LM = t.decode_lut(t.mode_codes(), 7)
_LEAD_ONES = [13 - (~w & 0x1FFF).bit_length() for w in range(1 << 13)]  # leading one bits of a window


@dataclass
class Decoded:
    pixels: np.ndarray  # bool, True = black, (rows, width)
    rows: int
    bad_rows: int
    consecutive_bad_rows: int


_POPCOUNT8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)
_POP_TOP = np.array([bin(v >> (8 - q)).count("1") if q else 0 for v in range(256) for q in range(8)], np.int32)
_POP_TOP_L = _POP_TOP.tolist()  # ones in the first q bits of byte v: index v * 8 + q


class _Bits:
    """The coded data with the lookups the decoders need: about 22 bytes of memory per input byte."""

    def __init__(self, data: bytes) -> None:
        self.nbits = 8 * len(data)
        padded = np.frombuffer(data + bytes(4), dtype=np.uint8)
        n = len(data) + 2
        win = np.empty((n, 8), dtype=np.uint16)
        step = 1 << 16
        for i in range(0, n, step):  # in slices: the 32-bit temporaries stay small
            b = padded[i : min(i + step, n) + 2].astype(np.uint32)
            w24 = (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
            for s in range(8):
                win[i : i + w24.size, s] = (w24 >> (11 - s)) & 0x1FFF
        self.win_np = win.reshape(-1)
        self.win = memoryview(self.win_np)
        raw = np.frombuffer(data, dtype=np.uint8)
        self.raw = raw
        self.raw_l = memoryview(raw.tobytes() + b"\0")
        cum = np.zeros(raw.size + 1, dtype=np.int32)  # ones in the bytes before each byte
        np.cumsum(_POPCOUNT8[raw], out=cum[1:])
        self.cum = cum

    def ones_before(self, pos: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.asarray(pos, dtype=np.int64), self.nbits)
        byte = pos >> 3
        padded = np.append(self.raw, np.uint8(0))
        return self.cum[byte] + _POP_TOP[(padded[byte].astype(np.int64) << 3) | (pos & 7)]

    def eol_ends(self) -> np.ndarray:
        """Bit positions just after every EOL (a one preceded by at least 11 zeros), slice by slice."""
        out = []
        last_one = -(1 << 40)  # the start counts as a long run of zeros only if 11 zeros follow
        step = 1 << 16
        for i in range(0, self.raw.size, step):
            ones = np.flatnonzero(np.unpackbits(self.raw[i : i + step])) + 8 * i
            if ones.size:
                gap = np.diff(ones, prepend=last_one) - 1
                if last_one < 0:
                    gap[0] = ones[0]
                out.append(ones[gap >= 11] + 1)
                last_one = int(ones[-1])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def ones_between(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Number of one bits in [start, end) for arrays of ranges."""
        return self.ones_before(end) - self.ones_before(start)

    def zeros_between(self, start: int, end: int) -> bool:
        if start >= end:
            return True
        end = min(end, self.nbits)
        sb, eb = start >> 3, end >> 3
        cum = self.cum
        raw = self.raw_l
        before_end = int(cum[eb]) + _POP_TOP_L[(raw[eb] << 3) | (end & 7)]
        before_start = int(cum[sb]) + _POP_TOP_L[(raw[sb] << 3) | (start & 7)]
        return before_end == before_start


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
    append = chg.append
    jj = 0
    lm = _LM
    nref = len(ref) - 3  # real reference changes; ref[nref] is the first `width` sentinel
    while a0 < width:
        w = win[p]
        while ref[jj] <= a0:
            jj += 1
        j = jj + ((jj & 1) ^ colour)
        if w >= 4096:  # a run of V0 codes ("1" each): a1 = b1 each time, the next b1 is the next change
            k = _LEAD_ONES[w]
            if j >= nref:  # b1 is the end of the line: one V0 ends the row
                k = 1
                j = nref
            elif k > nref - j + 1:
                k = nref - j + 1
            p += k
            if p > end:
                return None
            last = j + k - 1
            if last == nref:  # the row ends on width
                chg.extend(ref[j:last])
            else:
                chg.extend(ref[j : last + 1])
            a0 = ref[last]
            colour ^= k & 1
            jj = last + 1
            continue
        e = lm[w >> 6]
        if not e:
            return None
        p += e & 31
        if p > end:
            return None
        mode = e >> 5
        if mode < 7:  # vertical: a1 > a0 >= every change so far, so no duplicate
            a1 = ref[j] + mode - 3
            if a1 <= a0 or a1 > width:
                return None
            if a1 < width:
                append(a1)
            a0 = a1
            colour ^= 1
        elif mode == 7:  # pass
            a0 = ref[j + 1]
        elif mode == 8:  # horizontal: two runs, usually one terminating code each
            lut = _LB if colour else _LW
            e = lut[win[p]]
            if 0 < e < 2048:  # terminating code (run < 64)
                r1 = e >> 5
                p += e & 31
            else:
                r1, p = _run(win, p, end, lut)
                if r1 < 0:
                    return None
            lut = _LW if colour else _LB
            e = lut[win[p]]
            if 0 < e < 2048:
                r2 = e >> 5
                p += e & 31
            else:
                r2, p = _run(win, p, end, lut)
                if r2 < 0:
                    return None
            if p > end:
                return None
            a1 = (a0 if a0 > 0 else 0) + r1
            a2 = a1 + r2
            if a2 > width:
                return None
            for x in (a1, a2):  # zero-length runs put two changes on one spot: they cancel
                if x < width:
                    if chg and chg[-1] == x:
                        chg.pop()
                    else:
                        append(x)
            a0 = a2
        else:
            return None
    if a0 > width:
        return None
    return p, chg


_LUT_1D = np.array([_LW, _LB], dtype=np.int32).reshape(-1)  # index: colour << 13 | window


_SCALAR_BELOW = 64  # a numpy step costs about as much as this many Python steps


def _finish_1d(win, p: int, x: int, colour: int, lim: int, width: int) -> tuple[int, list[int], bool] | None:
    """Continue one MH row from a decoder state; (end bit, changes, saw a zero-length run) or None."""
    chg: list[int] = []
    zero = False
    lut = _LB if colour else _LW
    while True:
        e = lut[win[p]]
        if not e:
            return None
        p += e & 31
        if p > lim:
            return None
        run = e >> 5
        x += run
        if run < 64:
            if x >= width:
                return (p, chg, zero) if x == width else None
            zero = zero or run == 0
            chg.append(x)
            colour ^= 1
            lut = _LB if colour else _LW


def _rows_1d_batch(bits: _Bits, cs: np.ndarray, end: np.ndarray, width: int):
    """Decode many MH rows at once: one numpy step per code word, all rows in parallel.

    Returns (ok, end bit of each row's data, pixels of every row (False rows where not ok)).
    """
    n = cs.size
    win = bits.win_np
    act = np.arange(n)
    p = cs.astype(np.int64)
    lim = end.astype(np.int64)
    x = np.zeros(n, dtype=np.int64)
    colour = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    pend = np.zeros(n, dtype=np.int64)
    rec_row: list[np.ndarray] = []
    rec_x: list[np.ndarray] = []
    zero_runs = False
    first = True
    while act.size:
        if act.size < _SCALAR_BELOW:  # a few long rows left: a Python loop per code is cheaper
            for i, row in enumerate(act.tolist()):
                res = _finish_1d(bits.win, int(p[i]), int(x[i]), int(colour[i]), int(lim[i]), width)
                if res is not None:
                    ok[row] = True
                    pend[row] = res[0]
                    rec_row.append(np.full(len(res[1]), row))
                    rec_x.append(np.array(res[1], dtype=np.int64))
                    zero_runs = zero_runs or res[2]
            break
        e = _LUT_1D[(colour << 13) | win[p]]
        ln = e & 31
        run = e >> 5
        p += ln
        x += run
        term = run < 64
        over = term & (x >= width)
        stop = over | (ln == 0) | (p > lim)
        rec = term & ~stop
        if not first and not zero_runs:
            zero_runs = bool((rec & (run == 0)).any())
        first = False
        rec_row.append(act[rec])
        rec_x.append(x[rec])
        colour ^= term
        if stop.any():
            fin = stop & over & (x == width) & (ln > 0) & (p <= lim)
            ok[act[fin]] = True
            pend[act[fin]] = p[fin]
            keep = ~stop
            act, p, lim, x, colour = act[keep], p[keep], lim[keep], x[keep], colour[keep]
    rows = np.concatenate(rec_row) if rec_row else np.zeros(0, np.int64)
    xs = np.concatenate(rec_x) if rec_x else np.zeros(0, np.int64)
    good = ok[rows]
    idx = rows[good] * width + xs[good]
    if zero_runs:  # a zero-length run repeats a change position: toggles must cancel
        tog = (np.bincount(idx, minlength=n * width) & 1).astype(np.uint8)
    else:
        tog = np.zeros(n * width, dtype=np.uint8)
        tog[idx] = 1
    pixels = (np.cumsum(tog.reshape(n, width), axis=1, dtype=np.uint8) & 1).astype(bool)
    return ok, pend, pixels


def _changes(row: np.ndarray) -> list[int]:
    """Changing elements of a pixel row (for use as a 2-D reference)."""
    d = np.flatnonzero(row[1:] != row[:-1]) + 1
    return ([0] if row[0] else []) + d.tolist()


def _pixels_from_changes(counts: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """Rows given as strictly increasing change positions -> bool pixels, by one np.repeat of runs."""
    n = counts.size
    seg_counts = counts + 1  # a row start, then one segment per change
    row_seg = np.cumsum(seg_counts) - seg_counts
    total = int(seg_counts.sum())
    is_start = np.zeros(total, dtype=bool)
    is_start[row_seg] = True
    bounds = np.empty(total, dtype=np.int64)
    bounds[row_seg] = np.arange(n, dtype=np.int64) * width
    bounds[~is_start] = pos + np.repeat(np.arange(n, dtype=np.int64) * width, counts)
    colour = ((np.arange(total) - np.repeat(row_seg, seg_counts)) & 1).astype(bool)
    lengths = np.diff(bounds, append=n * width)
    return np.repeat(colour, lengths).reshape(n, width)


class _Page:
    """Collects rows (as batch rows or change lists), with concealment and bad-row statistics."""

    def __init__(self, width: int, batch: np.ndarray | None = None) -> None:
        self.width = width
        self.batch = batch
        self.src: list[int] = []  # >= 0: batch row; < 0: -1 - index into self.lists
        self.lists: list[list[int]] = [[]]
        self.last_good = -1  # all white until a good row arrives
        self.bad = 0
        self.run_bad = 0
        self.max_run_bad = 0

    @property
    def count(self) -> int:
        return len(self.src)

    def good_list(self, chg: list[int]) -> None:
        self.lists.append(chg)
        self._good(-len(self.lists))

    def good_batch(self, index: int) -> None:
        self._good(index)

    def _good(self, key: int) -> None:
        self.src.append(key)
        self.last_good = key
        self.run_bad = 0

    def bad_row(self) -> None:
        self.src.append(self.last_good)
        self.bad += 1
        self.run_bad += 1
        self.max_run_bad = max(self.max_run_bad, self.run_bad)

    def last_changes(self) -> list[int]:
        key = self.last_good
        return self.lists[-1 - key] if key < 0 else _changes(self.batch[key])

    def result(self) -> Decoded:
        n = len(self.src)
        w = self.width
        lists = self.lists
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        pos = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(counts.sum()))
        list_pixels = _pixels_from_changes(counts, pos, w)
        src = np.array(self.src, dtype=np.int64)
        pixels = np.empty((n, w), dtype=bool)
        from_list = src < 0
        pixels[from_list] = list_pixels[-1 - src[from_list]]
        if self.batch is not None:
            pixels[~from_list] = self.batch[src[~from_list]]
        return Decoded(pixels, n, self.bad, self.max_run_bad)


def decode_eol(data: bytes, width: int, two_d: bool, max_rows: int | None) -> Decoded:
    """MH (two_d False) or MR data with an EOL before every row."""
    bits = _Bits(data)
    win = bits.win
    eol = bits.eol_ends()
    tag = 1 if two_d else 0
    nseg = eol.size
    seg_start = eol + tag
    seg_end = np.empty(nseg, dtype=np.int64)
    seg_end[:-1] = eol[1:] - 12
    if nseg:
        seg_end[-1] = bits.nbits
    empty = (seg_start >= seg_end) | (bits.ones_between(seg_start, seg_end) == 0)
    if two_d:
        at = np.minimum(eol, bits.nbits - 1)
        tagbit = ((bits.raw[at >> 3] >> (7 - (at & 7))) & 1) == 1
        one_d = tagbit & ~empty
    else:
        one_d = ~empty
    sel = np.flatnonzero(one_d)
    ok, pend, batch = _rows_1d_batch(bits, seg_start[sel], seg_end[sel], width)
    clean = ok & (bits.ones_between(pend, seg_end[sel]) == 0)
    batch_row = np.full(nseg, -1, dtype=np.int64)
    batch_row[sel] = np.arange(sel.size)
    ok_l, clean_l, batch_row_l = ok.tolist(), clean.tolist(), batch_row.tolist()
    empty_l, one_d_l = empty.tolist(), one_d.tolist()
    starts, ends = seg_start.tolist(), seg_end.tolist()

    page = _Page(width, batch)
    ref_ok = False  # MR: previous row decoded correctly (usable as reference)
    empty_run = 0
    limit = max_rows if max_rows is not None else 1 << 31
    for i in range(nseg):
        if page.count >= limit:
            break
        if empty_l[i]:
            empty_run += 1
            if empty_run >= 2 or i + 1 == nseg:
                break
            continue
        empty_run = 0
        if one_d_l[i]:
            b = batch_row_l[i]
            good, trailing_garbage = ok_l[b], ok_l[b] and not clean_l[b]
            if good:
                page.good_batch(b)
        else:
            res = _row_2d(win, starts[i], ends[i], width, page.last_changes() + [width] * 3) if ref_ok else None
            good = res is not None
            trailing_garbage = good and not bits.zeros_between(res[0], ends[i])
            if good:
                page.good_list(res[1])
        if good:
            ref_ok = True
            if trailing_garbage and page.count < limit:  # an EOL was lost, and with it a row
                page.bad_row()
        else:
            page.bad_row()
            ref_ok = False
    return page.result()


def decode_mmr(data: bytes, width: int, max_rows: int | None, cap: int) -> Decoded:
    bits = _Bits(data)
    win = bits.win
    page = _Page(width)
    p = 0
    end = bits.nbits
    ref: list[int] = []
    limit = max_rows if max_rows is not None else cap
    while page.count < limit:
        if p >= end or (win[p] >> 1) == 1 or bits.zeros_between(p, end):  # end of data, EOFB or only fill
            break
        res = _row_2d(win, p, end, width, ref + [width] * 3)
        if res is None:
            if max_rows is None:  # count the failing row (concealed) and stop: the rest is unknowable
                page.bad_row()
                break
            while page.count < limit:
                page.bad_row()
            break
        p, ref = res
        page.good_list(ref)
    return page.result()
