"""The decoders as a receiving fax: bad rows counted and concealed, resync at the next EOL, no crash or hang."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import conftest_codec as cc  # noqa: E402

from imaging.codec import Compression, decode, encode  # noqa: E402

MH, MR, MMR = Compression.MH, Compression.MR, Compression.MMR
PAGE = cc.text_page(rows=240, size=18)
BAD = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1], dtype=np.uint8)  # 8 zeros: no run or mode code starts so


def _bits(raw: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8)).copy()


def _corrupt_rows(raw: bytes, rows: list[int], tag: int) -> bytes:
    """Overwrite the first data bits of the given rows with an invalid code (no EOL is created)."""
    bits = _bits(raw)
    ends = cc.eol_positions(raw)
    for r in rows:
        start = ends[r] + tag
        assert ends[r + 1] - 12 - start >= 8, "row too short to corrupt"
        bits[start : start + 8] = BAD[1:]  # preceded by the EOL's final 1, followed by whatever
    return np.packbits(bits).tobytes()


def _expected(page: np.ndarray, bad: set[int]) -> np.ndarray:
    out = page.copy()
    last = np.zeros(page.shape[1], dtype=bool)
    for r in range(page.shape[0]):
        if r in bad:
            out[r] = last
        else:
            last = page[r]
    return out


def _row_bits_ok(page: np.ndarray, comp: Compression, k: int) -> list[int]:
    raw = encode(page, comp, k=k)
    ends = cc.eol_positions(raw)
    tag = 1 if comp is MR else 0
    return [r for r in range(page.shape[0]) if ends[r + 1] - 12 - ends[r] - tag >= 8]


@pytest.mark.parametrize("lsb_first", [False, True])
def test_mh_bad_rows_concealed_and_resync(lsb_first):
    ok = _row_bits_ok(PAGE, MH, 2)
    corrupt = [ok[5], ok[40], ok[41], ok[42], ok[-3]]
    assert corrupt[1:4] == [corrupt[1], corrupt[1] + 1, corrupt[1] + 2]
    raw = _corrupt_rows(encode(PAGE, MH), corrupt, 0)
    if lsb_first:
        from imaging.codec import reverse_bits

        raw = reverse_bits(raw)
    out = decode(raw, MH, 1728, lsb_first=lsb_first)
    assert (out.rows, out.bad_rows, out.consecutive_bad_rows) == (PAGE.shape[0], 5, 3)
    assert np.array_equal(out.pixels, _expected(PAGE, set(corrupt)))


@pytest.mark.parametrize("k", [2, 4])
def test_mr_error_propagates_to_next_1d_row(k):
    ok = _row_bits_ok(PAGE, MR, k)
    one_d = [r for r in ok if r % k == 0 and r > 20]
    two_d = [r for r in ok if r % k == 1 and r > one_d[3]]
    corrupt = [one_d[0], two_d[0]]
    raw = _corrupt_rows(encode(PAGE, MR, k=k), corrupt, 1)
    out = decode(raw, MR, 1728)
    bad = set()
    for r in corrupt:  # the corrupt row and the 2-D rows that reference it, up to the next 1-D row
        bad.update(range(r, (r // k + 1) * k))
    assert out.rows == PAGE.shape[0]
    assert out.bad_rows == len(bad)
    assert out.consecutive_bad_rows == max(len(range(r, (r // k + 1) * k)) for r in corrupt)
    assert np.array_equal(out.pixels, _expected(PAGE, bad))


@pytest.mark.parametrize("comp", [MH, MR])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nflips=st.integers(1, 6))
def test_random_bit_errors_resync(comp, seed, nflips):
    """After the last flipped bit, once an EOL (and in MR a 1-D row) has passed, rows are exact again."""
    k = 4
    raw = encode(PAGE, comp, k=k)
    bits = _bits(raw)
    ends = cc.eol_positions(raw)
    rng = np.random.default_rng(seed)
    body_end = ends[PAGE.shape[0]] - 12  # start of RTC
    flips = rng.integers(ends[0], body_end, size=nflips)
    bits[flips] ^= 1
    out = decode(np.packbits(bits).tobytes(), comp, 1728, max_rows=PAGE.shape[0] + 50)
    last_row = int(np.searchsorted(ends, flips.max(), side="right"))  # rows >= this are untouched
    first_ok = last_row + 1
    if comp is MR:
        first_ok = -(-first_ok // k) * k
    tail = PAGE.shape[0] - first_ok
    if tail > 0:
        assert out.rows >= tail
        assert np.array_equal(out.pixels[out.rows - tail :], PAGE[first_ok:])


def test_mmr_error_loses_rest_of_page():
    raw = encode(PAGE, MMR)
    bits = _bits(raw)
    pos = bits.size // 2
    bits[pos : pos + 8] = 0
    bad_raw = np.packbits(bits).tobytes()
    rows = PAGE.shape[0]
    safe = max(j for j in range(rows + 1) if len(encode(PAGE[:j], MMR, rtc=False)) * 8 <= pos - 8)
    out = decode(bad_raw, MMR, 1728, max_rows=rows)
    assert out.rows == rows
    assert out.bad_rows >= 1 and out.consecutive_bad_rows == out.bad_rows  # all bad rows at the end
    good = rows - out.bad_rows
    assert good >= safe
    assert np.array_equal(out.pixels[:safe], PAGE[:safe])
    assert (out.pixels[good:] == out.pixels[good - 1]).all()  # concealed with the last good row
    out2 = decode(bad_raw, MMR, 1728)  # page length unknown: stop at the error
    assert out2.bad_rows == 1 and out2.rows == good + 1


def test_leading_fill_and_garbage_tolerated():
    raw = encode(PAGE[:50], MH)
    for prefix in (bytes(7), b"\xff\xff\x13", b"\x5a\xa5\x13\x77\x01"):  # fill, or line noise without an EOL
        out = decode(prefix + raw, MH, 1728)
        assert out.bad_rows == 0 and np.array_equal(out.pixels, PAGE[:50])
    # noise that happens to contain an EOL: what follows it up to the first real EOL is one bad row
    out = decode(b"\x00\x00\x00\x00\x05\x5a" + raw, MH, 1728)
    assert (out.rows, out.bad_rows) == (51, 1) and np.array_equal(out.pixels[1:], PAGE[:50])
    # MMR has no EOL to hunt for: leading zeros are an error in the first row, reported, no crash
    out = decode(bytes(20) + encode(PAGE[:50], MMR), MMR, 1728)
    assert (out.rows, out.bad_rows) == (1, 1)


def test_doubled_eol_is_skipped_and_rtc_ends_page():
    page = PAGE[:30]
    raw = encode(page, MH, byte_align=True, rtc=False)
    # insert an extra byte-aligned EOL (0x00 0x01) in the middle of the page, then RTC, then junk
    ends = cc.eol_positions(raw)
    cut = ends[10] // 8
    rtc = encode(np.zeros((0, 1728), dtype=bool), MH)
    junk = encode(PAGE[100:110], MH)
    data = raw[:cut] + b"\x00\x01" + raw[cut:] + rtc + junk
    out = decode(data, MH, 1728)
    assert (out.rows, out.bad_rows) == (30, 0)
    assert np.array_equal(out.pixels, page)


@pytest.mark.parametrize("comp", [MH, MR, MMR])
def test_truncated_data(comp):
    raw = encode(PAGE, comp, k=4)
    for frac in (0.0, 0.01, 0.3, 0.77, 0.999):
        cut = raw[: int(len(raw) * frac)]
        out = decode(cut, comp, 1728)
        assert out.pixels.shape == (out.rows, 1728)
        good = out.rows - out.bad_rows
        assert out.rows <= PAGE.shape[0] and out.bad_rows <= 1  # only the cut row is lost
        assert np.array_equal(out.pixels[:good], PAGE[:good])
        if frac > 0.3:
            assert good > 0.3 * PAGE.shape[0]


@pytest.mark.parametrize("comp", [MH, MR, MMR])
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=3000), width=st.sampled_from([1, 8, 100, 1728]), lsb=st.booleans())
def test_fuzz_garbage_never_crashes(comp, data, width, lsb):
    out = decode(data, comp, width, lsb_first=lsb)
    assert out.pixels.shape == (out.rows, width)
    assert out.pixels.dtype == bool
    assert 0 <= out.consecutive_bad_rows <= out.bad_rows <= out.rows


@pytest.mark.parametrize("comp", [MH, MR, MMR])
def test_large_garbage_is_bounded(comp):
    rng = np.random.default_rng(3)
    for data in (rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes(), b"\xff" * 100_000, b"\x00\x01" * 50_000):
        out = decode(data, comp, 1728)
        assert out.rows <= 1 << 15
    with pytest.raises(ValueError):
        decode(b"", comp, 1 << 20)
    with pytest.raises(ValueError):
        decode(b"", comp, 1728, max_rows=10**9)
    with pytest.raises(ValueError, match="more than a fax page"):
        decode(bytes(5 << 20), comp, 1728)


@pytest.mark.parametrize("comp", [MH, MR])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_parallel_and_scalar_1d_paths_agree(comp, seed):
    """Many EOL-framed rows of junk and real rows: numpy-parallel and Python row decoding give the same."""
    from imaging.codec import decoder

    rng = np.random.default_rng(seed)
    good = encode(PAGE[:120], comp, k=2, byte_align=True, rtc=False)
    parts = []
    for _ in range(150):
        if rng.random() < 0.5:
            parts.append(b"\x00\x01" + rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes())
        else:
            a = int(rng.integers(0, len(good) - 40))
            parts.append(good[a : a + int(rng.integers(2, 300))])
    data = b"".join(parts)
    saved = decoder._SCALAR_BELOW
    try:
        decoder._SCALAR_BELOW = 0
        vec = decode(data, comp, 1728)
        decoder._SCALAR_BELOW = 1 << 30
        sca = decode(data, comp, 1728)
    finally:
        decoder._SCALAR_BELOW = saved
    assert (vec.rows, vec.bad_rows, vec.consecutive_bad_rows) == (sca.rows, sca.bad_rows, sca.consecutive_bad_rows)
    assert np.array_equal(vec.pixels, sca.pixels)
    assert vec.rows > 0
