"""T.4 MH/MR and T.6 MMR encoders, vectorised with numpy.

How it works, so nobody has to rediscover it:
* The page is coded in bands of rows (BAND_ROWS) so the working arrays stay in the CPU cache;
  within a band everything is whole-array numpy, no loop per row or per pixel.
* Changing elements of every row come from one ``np.flatnonzero`` over a band-sized mask with
  sentinel columns (value = width) at the end of each row.
* 1-D rows: runs are differences of consecutive changing elements; a run is one code word
  (make-up and terminating code merged, at most 25 bits; runs >= 2624 add 2560 make-ups).
* 2-D rows (MR, MMR): when the coder looks for the next a1 = a_k, a0 is always a_{k-1}
  (after a vertical step a0 = a1, after a horizontal step a0 = a2, the element just before the
  next a1), moved on only by pass modes, whose number follows from how many reference changes
  lie before a1 (a rank query on the bit-packed mask: prefix popcounts of 64-bit words). So
  every a_k's mode is found in parallel; the only sequential part, "a_k was consumed as a2 of a
  horizontal step", is a parity over runs of consecutive horizontal candidates
  (``np.maximum.accumulate``).
* Code words are (end bit position, value) pairs, ends from cumulative sums; packing adds each
  value, shifted into place, to a uint64 per 32-bit word that holds the codes ending in that word
  as bits of it and the word before (``np.add.at``, whose fast path beats ``np.bincount`` with
  float weights; codes never overlap, so sum == OR), then folds neighbouring halves together.
* Gathers with int32 indices go through ``ndarray.take``: fancy indexing converts them to intp
  first and is about 3x slower in numpy 2.x.
"""

from __future__ import annotations

import numpy as np

from . import tables as t

EOL_LEN = 12
LONG_RUN = 2624  # runs from here on need 2560 make-up codes first
BAND_ROWS = 256
_U64 = np.uint64
_I = np.int32  # index dtype inside a band: halves memory traffic


def _run_tables() -> tuple[np.ndarray, np.ndarray]:
    """Merged make-up + terminating code for every run 0..2623, colour-major: index colour * 2624 + run."""
    val = np.zeros(2 * LONG_RUN, dtype=np.uint64)
    ln = np.zeros(2 * LONG_RUN, dtype=_I)
    for colour in (0, 1):
        cv, cl = t.run_code_arrays(colour)
        for run in range(LONG_RUN):
            mk, term = run >> 6, run & 63
            v, n = int(cv[term]), int(cl[term])
            if mk:
                v |= int(cv[64 + mk]) << n
                n += int(cl[64 + mk])
            val[colour * LONG_RUN + run] = v
            ln[colour * LONG_RUN + run] = n
    return val, ln


_RUN_VAL, _RUN_LEN = _run_tables()
_EXT_VAL = int(t.run_code_arrays(0)[0][64 + 40])  # 2560 make-up, same for both colours
_EXT_LEN = len(t.EXT_MAKEUP[-1])
_VERT_VAL8 = np.array([int(c, 2) for c in t.MODE_VERT] + [0], dtype=np.uint64)  # index (a1 - b1 + 3) & 7
_VERT_LEN8 = np.array([len(c) for c in t.MODE_VERT] + [0], dtype=_I)
_MAX_MERGED_PASSES = 6  # 6 pass codes + a 7-bit mode code fit one 31-bit word
_PASSES = np.array([sum(1 << (4 * i) for i in range(n)) for n in range(_MAX_MERGED_PASSES + 1)], dtype=np.uint64)
_SHIFT = np.arange(31, -1, -1, dtype=np.uint64)  # left shift that puts a code ending at bit i of a word in place
_LOW_BITS = np.array([(1 << i) - 1 for i in range(64)], dtype=np.uint64)
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def reverse_bits(data: bytes) -> bytes:
    """Swap the bit order inside every byte (FillOrder 1 <-> 2)."""
    return data.translate(_REVERSE)


class _Words:
    """Accumulates code words given as (end position, value) into a big-endian bit stream."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray]] = []  # (first word, word-pair sums)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, end, val) -> None:
        end = np.asarray(end, dtype=np.int64)
        if end.size:
            self.pending.append((end, np.broadcast_to(np.asarray(val, dtype=np.uint64), end.shape)))

    def flush(self) -> None:
        """Pack the pending words (one band) into a local range of word-pair accumulators."""
        if not self.pending:
            return
        lo_word = min(int(e.min()) - 1 for e, _ in self.pending) >> 5
        hi_word = max(int(e.max()) - 1 for e, _ in self.pending) >> 5
        # acc[i]: the codes ending in word lo_word + i, shifted into place as the 64 bits of words
        # (lo_word + i - 1, lo_word + i); codes never overlap, so sum == OR and no carry occurs
        acc = np.zeros(hi_word - lo_word + 1, dtype=np.uint64)
        for end, val in self.pending:
            last = end - (1 + 32 * lo_word)
            np.add.at(acc, last >> 5, val << _SHIFT.take(last & 31))  # value <= 33 bits, so it fits 64 bits
        self.parts.append((lo_word, acc))
        self.pending.clear()

    def pack(self, total_bits: int) -> bytes:
        self.flush()
        nwords = total_bits // 32 + 1
        pairs = np.zeros(nwords + 1, dtype=np.uint64)
        for base, acc in self.parts:
            pairs[base : base + acc.size] += acc
        words = (pairs[:nwords] & _U64(0xFFFFFFFF)) + (pairs[1:] >> _U64(32))
        return words.astype(">u4").tobytes()[: (total_bits + 7) // 8]


def _run_words(length: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(value, bits) of each run's merged code word; plus extra 2560 make-ups for very long runs."""
    long_sel = None
    if length.size and int(length.max()) >= LONG_RUN:
        n_ext = np.where(length >= LONG_RUN, (length - LONG_RUN) // 2560 + 1, 0).astype(_I)
        length = length - 2560 * n_ext
        long_sel = np.flatnonzero(n_ext)
    ix = colour * LONG_RUN + length
    val = _RUN_VAL.take(ix)
    bits = _RUN_LEN.take(ix)
    if long_sel is None:
        return val, bits, None
    ext = n_ext[long_sel]
    bits = bits + n_ext * _EXT_LEN
    return val, bits, (long_sel, ext)


def _add_runs(words: _Words, end: np.ndarray, val: np.ndarray, bits: np.ndarray, ext) -> None:
    words.add(end, val)
    if ext is not None:
        sel, cnt = ext
        rep = np.repeat(sel, cnt)
        within = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        last_ext_end = end[rep] - (bits[rep] - cnt.repeat(cnt) * _EXT_LEN)
        words.add(last_ext_end - within * _EXT_LEN, _EXT_VAL)


def _ends(bits: np.ndarray, first: np.ndarray, counts: np.ndarray, data_start: np.ndarray) -> np.ndarray:
    """End bit of each code unit, given units grouped by row and each row's data start bit."""
    end = np.cumsum(bits, dtype=np.int64)
    row_base = end[first] - bits[first]
    end += np.repeat(data_start - row_base, counts)
    return end


class _OneD:
    """MH coding of a set of rows."""

    def __init__(self, pixels: np.ndarray) -> None:
        rows, width = pixels.shape
        wp = width + 1
        mask = np.empty((rows, wp), dtype=bool)  # mask[:, c]: the run that ends at column c (colour 0 before column 0)
        mask[:, 0] = pixels[:, 0]
        np.not_equal(pixels[:, 1:], pixels[:, :-1], out=mask[:, 1:width])
        mask[:, width] = True  # row end
        flat = np.flatnonzero(mask).astype(_I)
        last = np.searchsorted(flat, np.arange(rows, dtype=_I) * wp + width)  # each row's end entry
        first = np.empty(rows, dtype=np.int64)
        first[0] = 0
        first[1:] = last[:-1] + 1
        length = np.diff(flat, prepend=_I(-1))
        length[first] -= 1
        # runs alternate white, black, ... from each row's start: colour = parity of the entry's index in its row
        colour = np.empty(flat.size, dtype=_I)
        colour[0::2] = 0
        colour[1::2] = 1
        colour ^= np.repeat((first & 1).astype(_I), last - first + 1)
        self.val, self.bits, self.ext = _run_words(length, colour)
        self.first = first
        self.row_bits = np.add.reduceat(self.bits, first, dtype=np.int64)
        self.counts = last - first + 1

    def place(self, words: _Words, data_start: np.ndarray) -> None:
        end = _ends(self.bits, self.first, self.counts, data_start)
        _add_runs(words, end, self.val, self.bits, self.ext)


class _OneDEntries:
    """MH coding of some rows of a _TwoD band, from its changing elements (saves a second mask)."""

    def __init__(self, colc: np.ndarray, start: np.ndarray, counts: np.ndarray, mask_rows: np.ndarray) -> None:
        cnt = counts[mask_rows] - 2  # changes + the first sentinel (= width): one entry per run
        first = np.cumsum(cnt) - cnt
        total = int(cnt.sum())
        # one repeat carries both the entry offset of the row (high bits) and its first index's parity (bit 0)
        row_info = np.repeat((start[mask_rows] - first) * 2 + (first & 1), cnt)
        idx = np.arange(total)
        ent = idx + (row_info >> 1)
        prev = colc.take(ent - 1)
        prev[first] = 0
        colour = (idx ^ row_info) & 1  # parity of the entry's index within its row
        self.val, self.bits, self.ext = _run_words(colc.take(ent) - prev, colour)
        self.first = first
        self.counts = cnt
        self.row_bits = np.add.reduceat(self.bits, first, dtype=np.int64) if total else np.zeros(0, np.int64)

    def place(self, words: _Words, data_start: np.ndarray) -> None:
        if self.first.size:
            _add_runs(words, _ends(self.bits, self.first, self.counts, data_start), self.val, self.bits, self.ext)


class _TwoD:
    """2-D coding of rows against the previous row; `ref` is the line above the first row (None = white)."""

    def __init__(self, pixels: np.ndarray, ref: np.ndarray | None, coded_rows: np.ndarray | None) -> None:
        rows, width = pixels.shape
        wp = width + 3
        mask = np.empty((rows + 1, wp), dtype=bool)  # mask row 0: the reference line above row 0
        if ref is None:
            mask[0, :width] = False
        else:
            mask[0, 0] = ref[0]
            np.not_equal(ref[1:], ref[:-1], out=mask[0, 1:width])
        mask[1:, 0] = pixels[:, 0]
        np.not_equal(pixels[:, 1:], pixels[:, :-1], out=mask[1:, 1:width])
        mask[:, width:] = True  # three sentinels: b1, b2 and a2 may lie past the last change
        mflat = mask.reshape(-1)
        flat = np.flatnonzero(mflat).astype(_I)
        start = np.searchsorted(flat, np.arange(rows + 1, dtype=_I) * wp).astype(_I)  # first entry of each row
        counts = np.diff(np.append(start, _I(flat.size)))
        col = flat - np.repeat(np.arange(rows + 1, dtype=_I) * _I(wp), counts)
        colc = np.empty(flat.size + 2, dtype=_I)
        np.minimum(col, width, out=colc[: flat.size])
        colc[flat.size :] = width
        # rank structure: bit p of the mask is bit (p & 63) of little-endian word p >> 6
        packed = np.packbits(mflat, bitorder="little")
        packed = np.concatenate([packed, np.zeros(-packed.size % 8 + 8, dtype=np.uint8)]).view("<u8")
        pop = np.bitwise_count(packed).astype(_I)
        pop_before = np.cumsum(pop, dtype=_I) - pop

        # candidates: all entries from mask row 1 on (in MR the 1-D rows' are dropped at the end,
        # cheaper than gathering the 2-D rows' entries first)
        c0 = int(start[1])
        n = flat.size - c0
        cand = np.arange(c0, c0 + n, dtype=_I)
        cur, prev = slice(c0, c0 + n), slice(c0 - 1, c0 - 1 + n)
        row_first = start[1:] - c0  # candidate index of each row's first entry
        row_counts = counts[1:]
        self.one_d = None
        if coded_rows is not None:  # MR: the 1-D rows are run-length coded from the same entries
            self.one_d = _OneDEntries(colc, start, counts, np.flatnonzero(~coded_rows) + 1)
        a1 = colc[cur]
        a0 = col[prev].copy()  # previous entry's column
        a0[row_first] = -1
        # rank: number of mask entries before (reference row, a1) = reference changes left of a1
        pos = flat[cur] - _I(wp)
        wi = pos >> 6
        m = pop_before.take(wi) + np.bitwise_count(packed.take(wi) & _LOW_BITS.take(pos & 63))
        # j0 = first reference entry > a0 = rank(a0) + [reference has a change at a0]
        j0 = np.empty(n, dtype=_I)
        j0[1:] = m[:-1]
        j0[0] = 0
        j0 += mflat.view(np.uint8).take(flat[prev] - _I(wp))
        j0[row_first] = start[:-1]
        # b1 changes to a1's colour: its index within the reference row has the parity of k, a1's index
        # within the coding row; (j0 - ref_start) ^ (c - row_start) folds into a per-row parity
        par = (start[1:] ^ start[:-1]) & 1
        row_par = np.repeat(par.astype(_I), row_counts)
        j = j0 + ((j0 ^ cand ^ row_par) & 1)
        npass = np.maximum(m - j, 0) >> 1
        jb1 = j + 2 * npass
        d = a1 - colc.take(jb1)
        ad = np.abs(d)
        g = np.empty(n, dtype=bool)  # a new run of horizontal candidates may start here
        np.less_equal(ad[:-1], 3, out=g[1:])
        g[row_first] = True
        idx = np.arange(n, dtype=_I)
        s = np.maximum.accumulate(idx * g)  # multiply: several times faster than np.where
        valid = ((idx ^ s) & 1) == 0
        valid[row_first[1:] - 1] = False  # the last two sentinels of each row are never a1
        valid[row_first[1:] - 2] = False
        valid[n - 2 :] = False
        if coded_rows is not None:
            valid &= np.repeat(coded_rows, row_counts)
        st = np.flatnonzero(valid)
        npass = npass[st]
        hs = np.flatnonzero(ad[st] > 3)
        self.hs = hs
        sth = st[hs]
        colour = (sth - row_first[np.searchsorted(row_first, sth, side="right") - 1]) & 1  # k & 1
        a1h = a1[sth]
        a0h = np.where(npass[hs] > 0, colc.take(np.maximum(jb1[sth] - 1, 0)), np.maximum(a0[sth], 0))
        a2 = colc.take(cand[sth] + 1)
        self.r1 = _run_words(a1h - a0h, colour)
        self.r2 = _run_words(a2 - a1h, 1 - colour)
        dv = d.take(st).astype(np.intp)  # intp: the two takes below would each convert int32 indices
        dv += 3
        dv &= 7
        mode_val = _VERT_VAL8.take(dv)
        mode_len = _VERT_LEN8.take(dv)
        mode_val[hs] = 1
        mode_len[hs] = 3
        bits = 4 * npass + mode_len
        self.many = np.flatnonzero(npass > _MAX_MERGED_PASSES)
        ps = np.flatnonzero(npass > 0)  # on a bool mask: several times faster than on int32
        if ps.size:
            merged = npass[ps]
            merged[merged > _MAX_MERGED_PASSES] = 0
            mode_val[ps] |= _PASSES[merged] << mode_len[ps].astype(_U64)
        self.mode_val = mode_val
        self.npass = npass
        bits[hs] += self.r1[1] + self.r2[1]
        self.bits = bits
        self.first = np.searchsorted(st, row_first if coded_rows is None else row_first[coded_rows])
        self.counts = np.diff(np.append(self.first, st.size))
        self.rows = np.arange(rows) if coded_rows is None else np.flatnonzero(coded_rows)  # coded band rows
        self.row_bits = np.add.reduceat(bits, self.first, dtype=np.int64) if st.size else np.zeros(0, np.int64)

    def place(self, words: _Words, data_start: np.ndarray) -> None:
        if not self.first.size:
            return
        end = _ends(self.bits, self.first, self.counts, data_start)
        hs = self.hs
        r1v, r1b, r1x = self.r1
        r2v, r2b, r2x = self.r2
        end_h = end[hs]
        mode_end = end.copy()
        mode_end[hs] = end_h - r1b - r2b
        words.add(mode_end, self.mode_val)
        _add_runs(words, end_h - r2b, r1v, r1b, r1x)
        _add_runs(words, end_h, r2v, r2b, r2x)
        if self.many.size:
            cnt = self.npass[self.many]
            rep = np.repeat(self.many, cnt)
            within = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            step_start = end[rep] - self.bits[rep]
            words.add(step_start + 4 * (within + 1), 1)


def encode_page(
    pixels: np.ndarray,
    scheme: str,
    *,
    k: int = 2,
    byte_align: bool = False,
    min_row_bits: int = 0,
    rtc: bool = True,
) -> bytes:
    """Code a page MSB-first. `scheme` is "mh", "mr" or "mmr"."""
    rows = pixels.shape[0]
    words = _Words()
    mmr = scheme == "mmr"
    tag = 1 if scheme == "mr" else 0
    head = 0 if mmr else EOL_LEN + tag  # bits before each row's data: EOL (+ 1-D/2-D tag)
    pos = 4 if byte_align and not mmr else 0  # fill so the first EOL ends on a byte boundary
    if mmr:
        one_d_all = np.zeros(rows, dtype=bool)
    elif scheme == "mh":
        one_d_all = np.ones(rows, dtype=bool)
    else:
        one_d_all = np.arange(rows) % k == 0
    fill = np.zeros(0, dtype=np.int64)
    for r0 in range(0, rows, BAND_ROWS):
        band = pixels[r0 : r0 + BAND_ROWS]
        one_d = one_d_all[r0 : r0 + BAND_ROWS]
        data_bits = np.zeros(band.shape[0], dtype=np.int64)
        coder_1d = None
        coder_2d = None
        if one_d.all():
            coder_1d = _OneD(band)
        else:
            coder_2d = _TwoD(band, pixels[r0 - 1] if r0 else None, None if mmr else ~one_d)
            if one_d.any():
                coder_1d = coder_2d.one_d
        if coder_1d is not None:
            data_bits[one_d] = coder_1d.row_bits
        if coder_2d is not None:
            data_bits[coder_2d.rows] = coder_2d.row_bits
        if mmr:
            fill = np.zeros(band.shape[0], dtype=np.int64)
        else:  # fill after each row's data pads the line (tag + data + fill + next EOL)
            line = tag + data_bits + EOL_LEN
            fill = np.maximum(min_row_bits - line, 0)
            if byte_align:
                fill += -(line + fill) % 8
        unit = head + data_bits + fill
        unit_start = pos + np.cumsum(unit) - unit
        data_start = unit_start + head
        if not mmr:
            words.add(data_start, (2 | one_d) if tag else 1)  # EOL (+ tag bit) ends where the data starts
        if coder_1d is not None:
            coder_1d.place(words, data_start[one_d])
        if coder_2d is not None:
            coder_2d.place(words, data_start[coder_2d.rows])
        words.flush()
        pos += int(unit.sum())
    if rtc:
        step = 2 * EOL_LEN if mmr else EOL_LEN + tag
        count = 1 if mmr else 6
        value = 1 if mmr else (3 if tag else 1)  # EOFB = EOL EOL; RTC = 6 x (EOL [+ 1])
        if mmr:
            words.add(np.array([pos + EOL_LEN]), 1)
        words.add(pos + step * np.arange(1, count + 1), value)
        pos += count * step
        pos = (pos + 7) // 8 * 8 + 8  # a zero byte after RTC/EOFB: spandsp sees an EOL only once a bit follows it
    elif fill.size:
        pos -= int(fill[-1])  # no EOL follows the last row: its fill would be pointless
    return words.pack(pos)
