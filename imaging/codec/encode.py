"""T.4 MH/MR and T.6 MMR encoders, vectorised over the whole page.

How it works, so nobody has to rediscover it:
* Changing elements of every row come from one ``np.flatnonzero`` over the page with three
  sentinel columns (value = width) per row.
* 1-D rows: runs are differences of consecutive changing elements; each run becomes up to
  (n x 2560 extended make-up) + make-up + terminating code.
* 2-D rows (MR, MMR): when the coder looks for the next a1 = a_k, a0 is always a_{k-1}
  (after a vertical step a0 = a1, after a horizontal step a0 = a2, the element just before the
  next a1), shifted only by pass modes, whose number is a ``searchsorted`` count. So every
  a_k's mode can be found in parallel; the only sequential part is "a_k was consumed as a2 of
  a horizontal step", which is a parity over runs of consecutive horizontal candidates.
* Every code word gets a bit offset from cumulative sums; packing adds each word, shifted into
  place, to 32-bit big-endian words with ``np.bincount`` (words never overlap, so sum == OR).
"""

from __future__ import annotations

import numpy as np

from . import tables as t

EOL_LEN = 12
_RUN_VAL = np.stack([t.run_code_arrays(0)[0], t.run_code_arrays(1)[0]])  # (2, 105)
_RUN_LEN = np.stack([t.run_code_arrays(0)[1], t.run_code_arrays(1)[1]])
_EXT_IDX = 64 + 40  # 2560 extended make-up
_EXT_LEN = int(_RUN_LEN[0, _EXT_IDX])
_VERT_VAL = np.array([int(c, 2) for c in t.MODE_VERT], dtype=np.uint64)
_VERT_LEN = np.array([len(c) for c in t.MODE_VERT], dtype=np.int64)
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def reverse_bits(data: bytes) -> bytes:
    """Swap the bit order inside every byte (FillOrder 1 <-> 2)."""
    return data.translate(_REVERSE)


class _Items:
    """Code words to place in the bit stream: offset, value, length (order does not matter)."""

    def __init__(self) -> None:
        self.off: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.nb: list[np.ndarray] = []

    def add(self, off, val, nb) -> None:
        off = np.asarray(off, dtype=np.int64)
        self.off.append(off)
        self.val.append(np.broadcast_to(np.asarray(val, dtype=np.uint64), off.shape))
        self.nb.append(np.broadcast_to(np.asarray(nb, dtype=np.int64), off.shape))

    def pack(self, total_bits: int) -> bytes:
        nbytes = (total_bits + 7) // 8
        if not self.off:
            return bytes(nbytes)
        off = np.concatenate(self.off)
        val = np.concatenate(self.val)
        nb = np.concatenate(self.nb)
        nwords = total_bits // 32 + 2
        word = off >> 5
        x = val << (64 - (off & 31) - nb).astype(np.uint64)
        hi = (x >> np.uint64(32)).astype(np.float64)
        lo = (x & np.uint64(0xFFFFFFFF)).astype(np.float64)
        words = np.bincount(word, weights=hi, minlength=nwords)
        words += np.bincount(word + 1, weights=lo, minlength=nwords)[:nwords]
        return words.astype(">u4").tobytes()[:nbytes]


def _run_codes(length: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split runs into code words; returns (n2560, make-up index or 0, terminating index, bits)."""
    n_ext = np.where(length >= 2624, (length - 2624) // 2560 + 1, 0)
    rest = length - 2560 * n_ext
    mk = rest >> 6
    mk_idx = np.where(mk > 0, 64 + mk, 0)
    term = rest & 63
    bits = _RUN_LEN[colour, term] + np.where(mk > 0, _RUN_LEN[colour, mk_idx], 0) + n_ext * _EXT_LEN
    return n_ext, mk_idx, term, bits


def _place_runs(items: _Items, off, length, colour, parts=None) -> None:
    """Add the code words of runs starting at bit offsets `off`."""
    n_ext, mk_idx, term, _ = parts if parts is not None else _run_codes(length, colour)
    ext_bits = n_ext * _EXT_LEN
    has_mk = mk_idx > 0
    mk_len = np.where(has_mk, _RUN_LEN[colour, mk_idx], 0)
    items.add(off + ext_bits + mk_len, _RUN_VAL[colour, term], _RUN_LEN[colour, term])
    if has_mk.any():
        sel = np.flatnonzero(has_mk)
        items.add(off[sel] + ext_bits[sel], _RUN_VAL[colour[sel], mk_idx[sel]], mk_len[sel])
    if n_ext.any():
        sel = np.flatnonzero(n_ext)
        cnt = n_ext[sel]
        rep = np.repeat(sel, cnt)
        within = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        items.add(off[rep] + within * _EXT_LEN, _RUN_VAL[0, _EXT_IDX], _EXT_LEN)


def _segment_offsets(bits: np.ndarray, group: np.ndarray, group_first: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of `bits` restarted at each group (groups are contiguous, sorted)."""
    excl = np.cumsum(bits) - bits
    return excl - excl[group_first[group]]


class _PageChanges:
    """Changing elements of all rows, each row followed by three sentinels equal to the width."""

    def __init__(self, pixels: np.ndarray) -> None:
        rows, width = pixels.shape
        mask = np.empty((rows, width + 3), dtype=bool)
        mask[:, 0] = pixels[:, 0]
        np.not_equal(pixels[:, 1:], pixels[:, :-1], out=mask[:, 1:width])
        mask[:, width:] = True
        idx = np.flatnonzero(mask)
        self.row = idx // (width + 3)
        self.pos = np.minimum(idx - self.row * (width + 3), width)
        counts = np.bincount(self.row, minlength=rows)
        self.start = np.cumsum(counts) - counts  # index of each row's first entry
        self.nchg = counts - 3  # real changing elements per row
        self.local = np.arange(idx.size) - self.start[self.row]
        self.width = width
        self.rows = rows


def _code_1d(pc: _PageChanges, rows_1d: np.ndarray, items: _Items, data_bits: np.ndarray, row_data_off_fn):
    """MH rows: returns a closure placing code words once row offsets are known."""
    sel_row = np.zeros(pc.rows, dtype=bool)
    sel_row[rows_1d] = True
    ent = np.flatnonzero(sel_row[pc.row] & (pc.local <= pc.nchg[pc.row]))
    if ent.size == 0:
        return lambda row_off: None
    local = pc.local[ent]
    row = pc.row[ent]
    prev = np.where(local > 0, pc.pos[ent - 1], 0)
    length = pc.pos[ent] - prev
    colour = local & 1
    parts = _run_codes(length, colour)
    bits = parts[3]
    data_bits += np.bincount(row, weights=bits, minlength=pc.rows).astype(np.int64)
    first = np.zeros(pc.rows, dtype=np.int64)
    first[row[local == 0]] = np.flatnonzero(local == 0)
    in_row = _segment_offsets(bits, row, first)

    def place(row_off: np.ndarray) -> None:
        _place_runs(items, row_off[row] + in_row, length, colour, parts)

    return place


def _code_2d(pc: _PageChanges, rows_2d: np.ndarray, items: _Items, data_bits: np.ndarray):
    """2-D rows (reference = previous row, or white for row 0)."""
    if rows_2d.size == 0:
        return lambda row_off: None
    width = pc.width
    span = width + 3
    sel_row = np.zeros(pc.rows, dtype=bool)
    sel_row[rows_2d] = True
    # reference entries: row r-1's entries keyed under row r; row 0 gets three sentinels only
    ref_src = np.flatnonzero(sel_row[np.minimum(pc.row + 1, pc.rows - 1)] & (pc.row + 1 < pc.rows))
    ref_key = (pc.row[ref_src] + 1) * span + pc.pos[ref_src]
    ref_pos = pc.pos[ref_src]
    ref_local = pc.local[ref_src]
    if sel_row[0]:
        ref_key = np.concatenate([np.full(3, width), ref_key])
        ref_pos = np.concatenate([np.full(3, width), ref_pos])
        ref_local = np.concatenate([np.arange(3), ref_local])
    ref_start = np.flatnonzero(ref_local == 0)  # in order of rows_2d
    ref_row_start = np.zeros(pc.rows, dtype=np.int64)
    ref_row_start[rows_2d] = ref_start

    # candidates a1 = a_k for k = 0..n (n real changes, a_n = width)
    cand = np.flatnonzero(sel_row[pc.row] & (pc.local <= pc.nchg[pc.row]))
    k = pc.local[cand]
    row = pc.row[cand]
    a1 = pc.pos[cand]
    a0 = np.where(k > 0, pc.pos[cand - 1], -1)
    base = row * span
    j = np.searchsorted(ref_key, base + a0, side="right")
    j += ((j - ref_row_start[row]) ^ k) & 1  # b1 has the colour of a1: parity of k
    m = np.searchsorted(ref_key, base + a1, side="left")
    npass = np.maximum(m - j, 0) // 2
    jb1 = j + 2 * npass
    b1 = ref_pos[jb1]
    d = a1 - b1
    horiz = np.abs(d) > 3
    # is a_k the a1 of a coding step, or the a2 of the previous horizontal step?
    n = cand.size
    idx = np.arange(n)
    g = k == 0
    g[1:] |= ~horiz[:-1]
    s = np.maximum.accumulate(np.where(g, idx, 0))
    step = ((idx - s) & 1) == 0
    st = np.flatnonzero(step)
    k, row, a1, a0, npass, d, horiz = k[st], row[st], a1[st], a0[st], npass[st], d[st], horiz[st]
    a0h = np.where(npass > 0, ref_pos[np.maximum(jb1[st] - 1, 0)], np.maximum(a0, 0))
    colour = k & 1
    hsel = np.flatnonzero(horiz)
    a2 = pc.pos[cand[st[hsel]] + 1]
    r1 = _run_codes(a1[hsel] - a0h[hsel], colour[hsel])
    r2 = _run_codes(a2 - a1[hsel], 1 - colour[hsel])
    dv = np.clip(d + 3, 0, 6)
    bits = 4 * npass + np.where(horiz, 0, _VERT_LEN[dv])
    bits[hsel] += 3 + r1[3] + r2[3]
    data_bits += np.bincount(row, weights=bits, minlength=pc.rows).astype(np.int64)
    first = np.zeros(pc.rows, dtype=np.int64)
    first[row[k == 0]] = np.flatnonzero(k == 0)
    in_row = _segment_offsets(bits, row, first)

    def place(row_off: np.ndarray) -> None:
        off = row_off[row] + in_row
        if npass.any():
            ps = np.flatnonzero(npass)
            cnt = npass[ps]
            rep = np.repeat(ps, cnt)
            within = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            items.add(off[rep] + 4 * within, 1, 4)
        moff = off + 4 * npass
        vs = np.flatnonzero(~horiz)
        items.add(moff[vs], _VERT_VAL[dv[vs]], _VERT_LEN[dv[vs]])
        hoff = moff[hsel]
        items.add(hoff, 1, 3)
        _place_runs(items, hoff + 3, a1[hsel] - a0h[hsel], colour[hsel], r1)
        _place_runs(items, hoff + 3 + r1[3], a2 - a1[hsel], 1 - colour[hsel], r2)

    return place


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
    rows, width = pixels.shape
    pc = _PageChanges(pixels)
    items = _Items()
    data_bits = np.zeros(rows, dtype=np.int64)
    all_rows = np.arange(rows)
    if scheme == "mh":
        rows_1d, rows_2d = all_rows, all_rows[:0]
    elif scheme == "mr":
        is1d = all_rows % k == 0
        rows_1d, rows_2d = all_rows[is1d], all_rows[~is1d]
    else:
        rows_1d, rows_2d = all_rows[:0], all_rows
    place_1d = _code_1d(pc, rows_1d, items, data_bits, None)
    place_2d = _code_2d(pc, rows_2d, items, data_bits)

    if scheme == "mmr":
        row_off = np.cumsum(data_bits) - data_bits
        end = int(data_bits.sum())
        if rtc:  # EOFB
            items.add(np.array([end, end + EOL_LEN]), 1, EOL_LEN)
            end += 2 * EOL_LEN
    else:
        tag = 1 if scheme == "mr" else 0
        # fill before each EOL: fill[i] pads the line that EOL i terminates (line i-1)
        line = tag + data_bits + EOL_LEN
        fill = np.maximum(min_row_bits - line, 0)
        if byte_align:
            fill += -(line + fill) % 8
        fill_before = np.empty(rows + 1, dtype=np.int64)
        fill_before[0] = 4 if byte_align else 0
        fill_before[1:] = fill
        head = fill_before[:rows] + EOL_LEN + tag
        unit = head + data_bits
        unit_start = np.cumsum(unit) - unit
        eol_off = unit_start + fill_before[:rows]
        items.add(eol_off, 1, EOL_LEN)
        if tag:
            one_d = np.zeros(rows, dtype=bool)
            one_d[rows_1d] = True
            items.add(eol_off[one_d] + EOL_LEN, 1, 1)
        row_off = unit_start + head
        end = int(unit.sum())
        if rtc:
            end += int(fill_before[rows])
            step = EOL_LEN + tag
            rtc_off = end + step * np.arange(6)
            items.add(rtc_off, 1, EOL_LEN)
            if tag:
                items.add(rtc_off + EOL_LEN, 1, 1)
            end += 6 * step
    place_1d(row_off)
    place_2d(row_off)
    return items.pack(end)
