"""Round trips of our encoders through our decoders (hypothesis), and line-format options."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import conftest_codec as cc  # noqa: E402

from imaging.codec import Compression, decode, encode, min_row_bits_for, reverse_bits, strip_rtc  # noqa: E402
from imaging.codec import tables as t  # noqa: E402

MH, MR, MMR = Compression.MH, Compression.MR, Compression.MMR


@st.composite
def pages(draw):
    width = draw(st.sampled_from([1, 2, 7, 63, 64, 65, 200, 1728, 1729, 2048, 2623, 2624, 2700, 5200]))
    rows = draw(st.integers(1, 24))
    kind = draw(st.sampled_from(["noise", "rects", "white", "black", "edges", "runs"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "noise":
        p = rng.random((rows, width)) < draw(st.sampled_from([0.01, 0.3, 0.5, 0.9]))
    elif kind == "white":
        p = np.zeros((rows, width), dtype=bool)
    elif kind == "black":
        p = np.ones((rows, width), dtype=bool)
    elif kind == "edges":  # single-pixel runs at row starts/ends
        p = np.zeros((rows, width), dtype=bool)
        p[rng.random(rows) < 0.5, 0] = True
        p[rng.random(rows) < 0.5, -1] = True
        if width > 2:
            p[rng.random(rows) < 0.3, -2] = True
    elif kind == "runs":  # text-like: rows of runs with small shifts between rows
        row = np.cumsum(rng.integers(1, 40, size=width)) % 2 == 1
        row = np.repeat(row, 1)[:width]
        p = np.stack([np.roll(row, int(s)) for s in rng.integers(-4, 5, size=rows)])
    else:
        p = np.zeros((rows, width), dtype=bool)
        for _ in range(int(rng.integers(1, 8))):
            y0, x0 = int(rng.integers(0, rows)), int(rng.integers(0, width))
            p[y0 : y0 + int(rng.integers(1, rows + 1)), x0 : x0 + int(rng.integers(1, width + 1))] ^= True
    return p


OPTS = st.fixed_dictionaries(
    {
        "comp": st.sampled_from([MH, MR, MMR]),
        "k": st.sampled_from([1, 2, 4, 7]),
        "byte_align": st.booleans(),
        "min_row_bits": st.sampled_from([0, 0, 96, 144, 577]),
        "rtc": st.booleans(),
        "lsb_first": st.booleans(),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=pages(), opts=OPTS)
def test_roundtrip_random_pages(page, opts):
    comp = opts.pop("comp")
    lsb = opts["lsb_first"]
    data = encode(page, comp, **opts)
    out = decode(data, comp, page.shape[1], lsb_first=lsb)
    assert (out.rows, out.bad_rows, out.consecutive_bad_rows) == (page.shape[0], 0, 0)
    assert np.array_equal(out.pixels, page)


@settings(max_examples=40, deadline=None)
@given(page=pages(), comp=st.sampled_from([MH, MR, MMR]), k=st.sampled_from([2, 4]))
def test_roundtrip_random_pages_through_libtiff(page, comp, k):
    data = encode(page, comp, k=k, rtc=False)
    assert np.array_equal(cc.pillow_decode_tiff(cc.wrap(data, page, comp)), page)


@pytest.mark.parametrize("comp,k", [(MH, 2), (MR, 2), (MR, 4), (MMR, 2)])
@pytest.mark.parametrize("kind", ["text", "table", "photo"])
def test_roundtrip_real_pages(comp, k, kind):
    page = {"text": cc.text_page, "table": cc.table_page, "photo": cc.photo_page}[kind](rows=800)
    data = encode(page, comp, k=k)
    out = decode(data, comp, 1728)
    assert out.bad_rows == 0 and np.array_equal(out.pixels, page)


def test_tables_are_prefix_codes_and_complete():
    assert (len(t.WHITE_TERM), len(t.BLACK_TERM), len(t.WHITE_MAKEUP), len(t.BLACK_MAKEUP)) == (64, 64, 27, 27)
    assert len(t.EXT_MAKEUP) == 13
    for colour in (0, 1):
        codes = list(t.all_run_codes(colour)) + [t.EOL_BITS]
        assert len(codes) == len(set(codes)) == 105
        for a in codes:
            assert not any(b != a and b.startswith(a) for b in codes), a
    modes = list(t.mode_codes()) + [t.EOL_BITS]
    for a in modes:
        assert not any(b != a and b.startswith(a) for b in modes), a


def _lines(raw: bytes, comp: Compression) -> np.ndarray:
    """Bits per coded line: from the end of one EOL to the end of the next, RTC excluded."""
    ends = cc.eol_positions(raw)
    gaps = np.diff(ends)
    step = 13 if comp is MR else 12
    body = gaps[gaps != step]  # RTC EOLs follow each other directly
    return body


@pytest.mark.parametrize("comp", [MH, MR])
@pytest.mark.parametrize("mslt_ms,rate", [(10, 14400), (20, 9600), (40, 14400), (10, 4800)])
def test_min_row_bits_honoured(comp, mslt_ms, rate):
    page = cc.text_page(rows=300)
    n = min_row_bits_for(mslt_ms, rate)
    raw = encode(page, comp, k=4, min_row_bits=n)
    lines = _lines(raw, comp)
    assert lines.size == page.shape[0]  # rows, each closed by an EOL (the last by RTC's first)
    assert lines.min() >= n
    plain = _lines(encode(page, comp, k=4), comp)
    assert plain.min() < n  # the page has short lines, so the fill did something
    assert np.array_equal(np.maximum(plain, n), lines)  # no more fill than needed
    assert np.array_equal(decode(raw, comp, 1728).pixels, page)


@pytest.mark.parametrize("comp", [MH, MR])
@pytest.mark.parametrize("min_bits", [0, 144])
def test_byte_align_eol_ends_on_byte_boundary(comp, min_bits):
    page = cc.text_page(rows=600)  # several coding bands
    raw = encode(page, comp, k=2, byte_align=True, min_row_bits=min_bits, rtc=False)
    ends = cc.eol_positions(raw)
    assert ends.size == page.shape[0]
    assert np.all(ends % 8 == 0)
    if min_bits:
        assert np.diff(ends).min() >= min_bits


def test_min_row_bits_for():
    assert min_row_bits_for(10, 14400) == 144
    assert min_row_bits_for(20, 14400) == 288
    assert min_row_bits_for(0, 9600) == 0
    assert min_row_bits_for(5, 2400) == 12
    assert min_row_bits_for(7, 1000) == 7
    assert min_row_bits_for(1, 300) == 1  # rounds up
    with pytest.raises(ValueError):
        min_row_bits_for(-1, 9600)
    with pytest.raises(ValueError):
        min_row_bits_for(10, 0)


@pytest.mark.parametrize("comp", [MH, MR])
def test_rtc_form(comp):
    page = np.zeros((3, 1728), dtype=bool)
    raw = encode(page, comp, k=2)
    ends = cc.eol_positions(raw)
    step = 13 if comp is MR else 12
    assert ends.size == 3 + 6
    assert np.all(np.diff(ends[-6:]) == step)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if comp is MR:
        assert np.all(bits[ends[-6:]] == 1)  # RTC is 6 x (EOL + 1)
    assert not bits[ends[-1] + (1 if comp is MR else 0) :].any()


def test_mmr_eofb_and_strip_rtc():
    page = cc.table_page(rows=100)
    with_eofb = encode(page, MMR)
    without = encode(page, MMR, rtc=False)
    assert strip_rtc(with_eofb, MMR) == without
    assert len(with_eofb) > len(without)
    for comp in (MH, MR):
        for lsb in (False, True):
            full = encode(page, comp, k=2, lsb_first=lsb)
            bare = encode(page, comp, k=2, rtc=False, lsb_first=lsb)
            assert strip_rtc(full, comp, lsb_first=lsb) == bare
            assert strip_rtc(bare, comp, lsb_first=lsb) == bare


def test_lsb_first_is_bit_reversal():
    page = cc.text_page(rows=100)
    for comp in (MH, MR, MMR):
        assert encode(page, comp, lsb_first=True) == reverse_bits(encode(page, comp))
    assert reverse_bits(bytes([0x01, 0x80, 0xF0, 0x35])) == bytes([0x80, 0x01, 0x0F, 0xAC])


def test_k_accepted_by_decode_and_zero_rows():
    page = np.zeros((0, 1728), dtype=bool)
    for comp in (MH, MR, MMR):
        out = decode(encode(page, comp), comp, 1728, k=2)
        assert out.rows == 0 and out.pixels.shape == (0, 1728)


def test_max_rows_limits_decoding():
    page = cc.table_page(rows=100)
    for comp in (MH, MR, MMR):
        out = decode(encode(page, comp), comp, 1728, max_rows=40)
        assert out.rows == 40 and np.array_equal(out.pixels, page[:40])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        encode(np.zeros(10, dtype=bool), MH)
    with pytest.raises(ValueError):
        encode(np.zeros((2, 0), dtype=bool), MH)
    with pytest.raises(ValueError):
        encode(np.zeros((2, 8), dtype=bool), "jpeg")
    with pytest.raises(ValueError):
        encode(np.zeros((2, 8), dtype=bool), MR, k=0)
    with pytest.raises(ValueError):
        decode(b"", MH, 0)
    # non-bool input is accepted as nonzero = black
    assert np.array_equal(decode(encode(np.eye(8, dtype=np.uint8), MH), MH, 8).pixels, np.eye(8, dtype=bool))


@pytest.mark.parametrize("comp,k", [(MH, 2), (MR, 2), (MR, 4), (MMR, 2)])
def test_multi_band_pages_with_all_options(comp, k):
    rng = np.random.default_rng(11)
    page = rng.random((700, 1728)) < 0.02
    page[100:600, 300:1200] = cc.photo_page(rows=500)[:, :900]
    for lsb in (False, True):
        data = encode(page, comp, k=k, byte_align=True, min_row_bits=200, lsb_first=lsb)
        out = decode(data, comp, 1728, lsb_first=lsb)
        assert out.bad_rows == 0 and np.array_equal(out.pixels, page)
