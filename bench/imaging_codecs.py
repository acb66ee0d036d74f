"""Our MH/MR/MMR codecs against libtiff (through Pillow) on realistic fine A4 pages.

Run: .venv/bin/python bench/imaging_codecs.py [--repeat N]. bench/imaging.py imports
run_codec_bench(). Prints ms/page for encode and decode and the ratio ours/libtiff (lower is
better; "within 2x" means ratio <= 2). Times are best-of-N with our call and libtiff's
interleaved in a rotating order: on a shared machine that is far steadier than a median of separate batches.
The corpus is built here: a letter of text rendered with Pillow, a table with shaded rows, a
letter with an error-diffused photo, a clustered-dot halftone page, and (reported apart) a
worst case: a whole page of error-diffused grey.
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imaging import libtiff  # noqa: E402
from imaging.codec import Compression, decode, encode  # noqa: E402

ROWS, WIDTH = 2292, 1728  # A4 fine
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]


def _font(size: int):
    for path in FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def text_page(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = Image.new("L", (WIDTH, ROWS), 255)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    words = "the quick brown fox jumps over lazy dog fax modem page scan line code 1728 T.4 READ Huffman".split()
    draw.text((120, 80), "FAXENGINE LETTERHEAD", font=_font(64), fill=0)
    y, size = 240, 34
    while y < ROWS - 120:
        if y > ROWS * 0.75:
            size = 20  # small print
        line = " ".join(rng.choice(words, size=40))
        draw.text((120, y), line[: int(WIDTH / (size * 0.55))], font=_font(size), fill=0)
        y += int(size * 1.5)
    return np.array(img) < 128


def table_page() -> np.ndarray:
    img = Image.new("L", (WIDTH, ROWS), 255)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    f = _font(26)
    for i, y in enumerate(range(150, ROWS - 150, 70)):
        if i % 2:
            draw.rectangle((100, y, WIDTH - 100, y + 70), fill=235)
        draw.line((100, y, WIDTH - 100, y), fill=0, width=2)
        for c, x in enumerate(range(100, WIDTH - 100, 305)):
            draw.line((x, y, x, y + 70), fill=0, width=2)
            draw.text((x + 12, y + 18), f"{i * 7 + c * 13:>6}.{c}{i % 10}", font=f, fill=0)
    grey = np.array(img, dtype=np.float32)
    yy, xx = np.mgrid[0:ROWS, 0:WIDTH]
    screen = ((xx % 4) * 4 + (yy % 4)) * 16 + 8  # clustered dot, pale tints dropped
    grey = np.where(grey > 0.85 * 255, 255, grey)
    return grey < screen


def _fs_dither(grey: np.ndarray) -> np.ndarray:
    return ~np.array(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("1"))  # Floyd-Steinberg


def photo_page() -> np.ndarray:
    """A letter with a 4.4 x 4.6 inch error-diffused photo: the usual 'photo' fax page."""
    page = text_page(seed=1)
    h, w = 900, 900
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 128 + 80 * np.sin(xx / 130.0) * np.cos(yy / 90.0) + 40 * np.sin((xx + 2 * yy) / 47.0)
    grey += 60 * np.exp(-((xx - 450) ** 2 + (yy - 400) ** 2) / 40000.0)
    page[300 : 300 + h, 400 : 400 + w] = _fs_dither(grey)
    return page


def noise_page() -> np.ndarray:
    """Worst case: a whole page of error-diffused mid-grey (about 1.2 MB per page in any scheme)."""
    yy, xx = np.mgrid[0:ROWS, 0:WIDTH].astype(np.float32)
    return _fs_dither(128 + 80 * np.sin(xx / 130.0) * np.cos(yy / 90.0) + 40 * np.sin((xx + 2 * yy) / 47.0))


def halftone_page() -> np.ndarray:
    yy, xx = np.mgrid[0:ROWS, 0:WIDTH].astype(np.float32)
    grey = 127 + 120 * np.cos(np.hypot(xx - 900, yy - 1100) / 180.0)
    screen = (np.sin(xx * np.pi / 4) * np.sin(yy * np.pi / 4) + 1) * 127
    return grey < screen


def corpus(worst_case: bool = True) -> dict[str, np.ndarray]:
    pages = {"text": text_page(), "table": table_page(), "photo": photo_page(), "halftone": halftone_page()}
    if worst_case:
        pages[WORST] = noise_page()
    return pages


WORST = "noise-fs"  # reported, but left out of the summary


def _best_ms(fns, repeat: int) -> list[float]:
    """Best-of-`repeat` time of each function, calls interleaved so load changes hit all alike.

    The order rotates every round: a fixed order measurably favours some positions (running the
    same encoder twice in a row, the first call was 5-15% slower than the second)."""
    for fn in fns:
        fn()  # warm up
    best = [float("inf")] * len(fns)
    for r in range(max(repeat, len(fns))):
        for k in range(len(fns)):
            i = (k + r) % len(fns)
            t0 = time.perf_counter()
            fns[i]()
            best[i] = min(best[i], time.perf_counter() - t0)
    return [b * 1000 for b in best]


SCHEMES = [(Compression.MH, 4), (Compression.MR, 4), (Compression.MMR, 4)]


def _libtiff_save(img: Image.Image, comp: Compression) -> bytes:
    buf = io.BytesIO()
    if comp is Compression.MMR:
        img.save(buf, format="TIFF", compression="group4", strip_size=1 << 30, dpi=(204, 196))
    else:
        t4 = 1 if comp is Compression.MR else 0
        img.save(buf, format="TIFF", compression="group3", tiffinfo={292: t4}, strip_size=1 << 30, dpi=(204, 196))
    return buf.getvalue()


def _libtiff_load(tiff: bytes) -> None:
    with Image.open(io.BytesIO(tiff)) as im:
        im.load()


def _libtiff_direct(px: np.ndarray, comp: Compression) -> bytes | None:
    """The same pixels coded by libtiff called directly (imaging.libtiff, what the pipeline uses): no Pillow
    in between, so the strictest yardstick."""
    return libtiff.encode(px, 4 if comp is Compression.MMR else 3, 1 if comp is Compression.MR else 0, 204, 196)


def run_codec_bench(repeat: int = 5, pages: dict[str, np.ndarray] | None = None, out=sys.stdout) -> list[dict]:
    """Measure and print one row per (page, scheme); returns the rows as dicts."""
    pages = pages if pages is not None else corpus()
    rows = []
    head = (
        f"{'page':10} {'scheme':6} {'KB':>7} {'enc ms':>8} {'libtiff':>8} {'ratio':>6} {'direct':>7} {'ratio':>6} "
        f"{'dec ms':>8} {'libtiff':>8} {'ratio':>6}"
    )
    print(head, file=out)
    for name, px in pages.items():
        img = Image.fromarray(px)  # libtiff gets a ready mode-"1" image: its time excludes this conversion
        for comp, k in SCHEMES:
            ours = encode(px, comp, k=k, rtc=False)
            tiff = _libtiff_save(img, comp)
            check = decode(ours, comp, px.shape[1])
            assert check.bad_rows == 0 and np.array_equal(check.pixels, px), (name, comp)
            part = functools.partial
            calls = [part(encode, px, comp, k=k, rtc=False), part(_libtiff_save, img, comp),
                     part(_libtiff_direct, px, comp)]
            enc, enc_lt, enc_direct = _best_ms(calls, repeat)
            dec, dec_lt = _best_ms([part(decode, ours, comp, px.shape[1]), part(_libtiff_load, tiff)], repeat)
            row = {
                "page": name,
                "scheme": comp.value,
                "kbytes": len(ours) / 1024,
                "encode_ms": enc,
                "libtiff_encode_ms": enc_lt,
                "encode_ratio": enc / enc_lt,
                "libtiff_direct_encode_ms": enc_direct,
                "decode_ms": dec,
                "libtiff_decode_ms": dec_lt,
                "decode_ratio": dec / dec_lt,
            }
            rows.append(row)
            print(
                f"{name:10} {comp.value:6} {row['kbytes']:7.1f} {enc:8.1f} {enc_lt:8.1f} {row['encode_ratio']:6.2f} "
                f"{enc_direct:7.1f} {enc / enc_direct:6.2f} "
                f"{dec:8.1f} {dec_lt:8.1f} {row['decode_ratio']:6.1f}",
                file=out,
            )
    for scheme in ("mh", "mr", "mmr"):
        sel = [r for r in rows if r["scheme"] == scheme and r["page"] != WORST]
        enc = sum(r["encode_ms"] for r in sel) / sum(r["libtiff_encode_ms"] for r in sel)
        direct = sum(r["encode_ms"] for r in sel) / sum(r["libtiff_direct_encode_ms"] for r in sel)
        dec = sum(r["decode_ms"] for r in sel) / sum(r["libtiff_decode_ms"] for r in sel)
        print(f"{'realistic':10} {scheme:6} encode ratio {enc:.2f} (vs libtiff direct {direct:.2f})  "
              f"decode ratio {dec:.1f} (sum of times)", file=out)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    print(
        f"pages {WIDTH}x{ROWS} (A4 fine), best of {args.repeat} (interleaved); MR with K=4; ours: bool array -> "
        "raw strip and back; libtiff: Pillow save/load of a one-strip TIFF in memory (includes the container, excludes "
        "the numpy -> PIL conversion); direct: libtiff's TIFFWriteEncodedStrip via ctypes on the same pixels (what "
        "the pipeline uses); ratio = ours / libtiff, lower is better"
    )
    run_codec_bench(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
