"""PDF -> TIFF-F: our pipeline (PDFium + numpy + libtiff) next to Ghostscript's tiffg4/tiffg3, then the codecs.

Run: .venv/bin/python bench/imaging.py [--reps N] [--quick] [--workers 2]

Builds its own corpus with reportlab (text, table, photo, vector art and scanned-looking pages cycling;
A4 and Letter; 10 and 100 pages), converts each PDF at fine resolution, MMR and MH, in a fresh subprocess
per run (wall time: median of N; peak RSS: ru_maxrss of that child), and prints pages/s, peak MB and
KB/page next to Ghostscript on the same PDFs, with ratios ours/gs. Goals (issue 2): pages/s ratio >= 0.5,
bytes/page ratio <= 1.0 in the default bilevel mode. Then runs bench/imaging_codecs.py's
run_codec_bench() when that module exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

# ------------------------------------------------------------------ corpus


def _photo(seed: int = 1, size: int = 512) -> Image.Image:
    """A photo-like grey image: smooth lit shapes, soft shadows and sensor grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.55 + 0.35 * np.sin(3 * x + 1.3) * np.cos(2 * y)
    for _ in range(9):
        cx, cy, r, v = rng.random(), rng.random(), 0.05 + 0.2 * rng.random(), rng.random() - 0.5
        img += v * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    img += 0.04 * rng.standard_normal((size, size))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "L")


def _scan(seed: int = 2) -> Image.Image:
    """A scanned-looking page: text on paper with uneven illumination, blur and noise (grey raster)."""
    rng = np.random.default_rng(seed)
    w, h = 850, 1100  # 100 dpi Letter
    page = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSerif.ttf"), 15)
    words = "the quick brown fox jumps over a lazy dog while fax machines hum in the night".split()
    for line in range(48):
        text = " ".join(rng.choice(words, 11))
        draw.text((70, 70 + line * 20), text, font=font, fill=int(rng.integers(20, 70)))
    arr = np.asarray(page, dtype=np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    light = 0.78 + 0.2 * np.cos((xx - w * 0.3) / w * 2.2) * np.cos((yy - h * 0.6) / h * 1.7)
    arr = arr * light + 6 * rng.standard_normal((h, w))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def build_corpus(directory: Path) -> dict[str, Path]:
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4, letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    rl_config.invariant = 1
    pdfmetrics.registerFont(TTFont("DejaVuSerif", str(FONT_DIR / "DejaVuSerif.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(FONT_DIR / "DejaVuSans.ttf")))
    photo = ImageReader(_photo())
    scan = ImageReader(_scan())
    ramp = ImageReader(Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8), (8, 1)), "L"))
    lorem = ("Facsimile transmission sends a scanned page over a telephone line or an IP network as a sequence "
             "of run lengths; every receiver must print what it gets on paper of a known width. ") * 3

    def paragraph(c, x, y, text, font, size, width):
        words, line, lines = text.split(), "", []
        for word in words:
            if c.stringWidth(line + " " + word, font, size) > width:
                lines.append(line)
                line = word
            else:
                line = (line + " " + word).strip()
        lines.append(line)
        c.setFont(font, size)
        for i, item in enumerate(lines):
            c.drawString(x, y - i * size * 1.25, item)
        return y - len(lines) * size * 1.25 - size

    def text_page(c, w, h):
        c.setFont("Helvetica-Bold", 18)
        c.drawString(54, h - 60, "ACME Fax Services Ltd. - Letterhead")
        y = h - 100
        for _ in range(6):
            y = paragraph(c, 54, y, lorem, "DejaVuSerif", 10, w - 108)
        c.setFont("Courier", 10)
        for i in range(5):
            c.drawString(54, y - i * 12, f"{i:04d}  ref=FX-{i * 7919 % 10000:04d}  amount={i * 12.5:9.2f} EUR")
        y -= 80
        y = paragraph(c, 54, y, lorem, "DejaVuSans", 7, w - 108)
        paragraph(c, 54, y, lorem, "DejaVuSans", 6, w - 108)

    def table_page(c, w, h):
        top, rows, cols = h - 72, 29, 5
        cw, rh = (w - 108) / cols, 20
        for r in range(rows):
            if r == 0 or r % 2 == 0:
                c.setFillGray(0.75 if r == 0 else 0.92)
                c.rect(54, top - (r + 1) * rh, w - 108, rh, fill=1, stroke=0)
            c.setFillGray(0)
            c.setFont("DejaVuSans", 9 if r == 0 else 8)
            for k in range(cols):
                c.drawString(58 + k * cw, top - (r + 1) * rh + 6, f"H{k}" if r == 0 else f"{r * 31 + k * 17:,}.{k}0")
        c.setLineWidth(0.5)
        for r in range(rows + 1):
            c.line(54, top - r * rh, w - 54, top - r * rh)
        for k in range(cols + 1):
            c.line(54 + k * cw, top, 54 + k * cw, top - rows * rh)

    def photo_page(c, w, h):
        c.drawImage(photo, (w - 288) / 2, h - 360, 288, 288)
        c.drawImage(ramp, 54, h - 420, w - 108, 30)
        y = h - 450
        for _ in range(3):
            y = paragraph(c, 54, y, lorem, "DejaVuSerif", 10, w - 108)

    def vector_page(c, w, h):
        for i, v in enumerate((0.3, 0.7, 0.3, 0.7, 0.5)):
            c.setFillGray(v)
            c.rect(72 + i * 50, h - 300, 36, 60 + i * 40, fill=1, stroke=0)
        greys = (0.1, 0.3, 0.5, 0.7, 0.9)
        start = 0
        for i, g in enumerate(greys):
            c.setFillGray(g)
            extent = 40 + i * 30
            c.wedge(w - 260, h - 300, w - 80, h - 120, start, extent, fill=1, stroke=0)
            start += extent
        colours = ((1, 0, 0), (0, 0.5, 0), (0, 0, 1), (0.8, 0.6, 0))
        for i, (r, g, b) in enumerate(colours):
            c.setStrokeColorRGB(r, g, b)
            c.setLineWidth(0.3 + i * 0.4)
            pts = [(72 + k * 12, h - 500 + 60 * np.sin(k / 5 + i)) for k in range(38)]
            for a, bpt in zip(pts, pts[1:], strict=False):
                c.line(*a, *bpt)
        c.setStrokeGray(0)
        c.setLineWidth(0.25)
        for k in range(60):
            c.line(72 + k * 8, 150, 72 + k * 8, 160 if k % 5 else 168)
        for r in range(5, 80, 6):
            c.circle(w - 170, 230, r)
        c.setFont("Helvetica", 6)
        c.drawString(72, 140, "6-pt label: axis in millimetres")
        c.setFont("Helvetica", 4)
        c.drawString(72, 132, "4-pt label: fine print")

    def scan_page(c, w, h):
        c.drawImage(scan, 0, 0, w, h)

    makers = (text_page, table_page, photo_page, vector_page, scan_page)
    files = {}
    for paper, size in (("letter", letter), ("a4", A4)):
        for pages in (10, 100):
            path = directory / f"corpus_{paper}_{pages}.pdf"
            c = canvas.Canvas(str(path), pagesize=size, invariant=1)
            for i in range(pages):
                makers[i % len(makers)](c, *size)
                c.showPage()
            c.save()
            files[f"{paper}_{pages}"] = path
    return files


# ------------------------------------------------------------------ runs

# Each child also writes the seconds spent converting (after its imports) to {timing}: the "warm" rate a
# long-lived server sees, next to the "cold" rate of a fresh process (the way Ghostscript is run).
OURS = """
import sys, time
sys.path.insert(0, {repo!r})
from imaging.convert import convert_to_tiff
started = time.perf_counter()
convert_to_tiff({src!r}, {out!r}, compression={comp!r}, resolution="fine", bilevel={bilevel!r})
open({timing!r}, "w").write(str(time.perf_counter() - started))
"""

OURS_2 = """
import sys, time
sys.path.insert(0, {repo!r})
from imaging.parallel import convert_to_tiff_parallel
started = time.perf_counter()
convert_to_tiff_parallel({src!r}, {out!r}, compression={comp!r}, resolution="fine", bilevel={bilevel!r}, workers=2)
open({timing!r}, "w").write(str(time.perf_counter() - started))
"""


def _gs(paper: str, device: str, src: Path, out: Path) -> list[str]:
    res = "-r203.29x196" if paper == "letter" else "-r209.10x196"
    return ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", f"-sDEVICE={device}", f"-sPAPERSIZE={paper}",
            "-dFIXEDMEDIA", "-dMaxStripSize=0", res, f"-sOutputFile={out}", str(src)]


LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_child(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one child process.

    The child is started by a small launcher (GNU time, else a bare Python): ru_maxrss counts the memory of
    the process that forked before exec, so forking straight from this (large) process would report our
    size instead of the child's."""
    started = time.perf_counter()
    if os.path.exists("/usr/bin/time"):
        with tempfile.NamedTemporaryFile("r") as report:
            proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *argv],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wall = time.perf_counter() - started
            peak_kb, code = int(report.read().split()[-1]), proc.returncode
    else:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_kb, code = (int(v) for v in proc.stdout.split())
    if code != 0:
        raise RuntimeError(f"{argv[:3]}... failed: {proc.stderr.strip()[:300]}")
    return wall, peak_kb / 1024


def measure(runs: dict[str, tuple[list[str], Path, Path | None]], pages: int, reps: int) -> dict[str, dict]:
    """Run each labelled command ``reps`` times, interleaved (gs, ours, gs, ours, ...) so that load from
    other processes on the shared machine falls on all of them alike; medians of wall time."""
    walls: dict[str, list[float]] = {label: [] for label in runs}
    peaks: dict[str, list[float]] = {label: [] for label in runs}
    warms: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(reps):
        for label, (argv, out, timing) in runs.items():
            if out.exists():
                out.unlink()
            wall, peak = run_child(argv)
            walls[label].append(wall)
            peaks[label].append(peak)
            if timing is not None:
                warms[label].append(float(timing.read_text()))
    results = {}
    for label, (_, out, _) in runs.items():
        wall = statistics.median(walls[label])
        results[label] = {
            "pages_s": pages / wall, "peak_mb": max(peaks[label]), "kb_page": out.stat().st_size / pages / 1024,
            "warm_pages_s": pages / statistics.median(warms[label]) if warms[label] else None,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="Letter documents only")
    parser.add_argument("--bilevel", default="auto")
    parser.add_argument("--workers", type=int, default=1, help="2: also time the two-process variant")
    parser.add_argument("--no-codecs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="faxbench-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        corpus = build_corpus(tmpdir)
        print(f"corpus built in {time.perf_counter() - t0:.1f} s: {', '.join(corpus)} (reps={args.reps})\n")
        print("pages/s: wall time of a fresh process per conversion, as Ghostscript is run; warm: our conversion")
        print("time without interpreter start and imports (what the long-lived server pays); ratios are ours/gs.\n")
        head = (f"{'document':11} {'coding':6} {'tool':9} {'pages/s':>8} {'peak MB':>8} {'KB/page':>8} "
                f"{'pages/s ratio':>14} {'bytes ratio':>12} {'warm pages/s':>13} {'warm ratio':>11}")
        print(head)
        print("-" * len(head))
        summary = []
        for name, src in corpus.items():
            if args.quick and not name.startswith("letter"):
                continue
            paper, pages = name.split("_")
            pages = int(pages)
            for comp, device in (("mmr", "tiffg4"), ("mh", "tiffg3")):
                gs_out = tmpdir / f"gs_{name}_{comp}.tif"
                runs = {"gs": (_gs(paper, device, src, gs_out), gs_out, None)}
                variants = [("ours", OURS)] + ([("ours x2", OURS_2)] if args.workers > 1 else [])
                for label, template in variants:
                    out = tmpdir / f"{label.replace(' ', '_')}_{name}_{comp}.tif"
                    timing = tmpdir / f"timing_{label.replace(' ', '_')}"
                    code = template.format(repo=str(REPO), src=str(src), out=str(out), comp=comp,
                                           bilevel=args.bilevel, timing=str(timing))
                    runs[label] = ([sys.executable, "-c", code], out, timing)
                results = measure(runs, pages, args.reps)
                gs = results["gs"]
                print(f"{name:11} {comp:6} {'gs ' + device:9} {gs['pages_s']:8.1f} {gs['peak_mb']:8.0f} "
                      f"{gs['kb_page']:8.1f}")
                for label, _ in variants:
                    ours = results[label]
                    speed, size = ours["pages_s"] / gs["pages_s"], ours["kb_page"] / gs["kb_page"]
                    warm = ours["warm_pages_s"] / gs["pages_s"]
                    summary.append((name, comp, label, speed, size, ours["peak_mb"], warm))
                    print(f"{name:11} {comp:6} {label:9} {ours['pages_s']:8.1f} {ours['peak_mb']:8.0f} "
                          f"{ours['kb_page']:8.1f} {speed:14.2f} {size:12.2f} {ours['warm_pages_s']:13.1f} "
                          f"{warm:11.2f}")
        print()
        speeds = [s[3] for s in summary if s[2] == "ours"]
        sizes = [s[4] for s in summary if s[2] == "ours"]
        print(f"pages/s ours/gs: min {min(speeds):.2f}, median {statistics.median(speeds):.2f}  (goal >= 0.5)")
        warms = [s[6] for s in summary if s[2] == "ours"]
        print(f"warm pages/s ours/gs: min {min(warms):.2f}, median {statistics.median(warms):.2f}")
        print(f"bytes/page ours/gs: max {max(sizes):.2f}, median {statistics.median(sizes):.2f}  (goal <= 1.0)")
        peaks = {s[0]: s[5] for s in summary if s[2] == "ours" and s[1] == "mmr"}
        for paper in ("letter", "a4"):
            if f"{paper}_10" in peaks and f"{paper}_100" in peaks:
                print(f"peak MB {paper}: 10 pages {peaks[f'{paper}_10']:.0f}, 100 pages {peaks[f'{paper}_100']:.0f}")

    codec_bench = Path(__file__).with_name("imaging_codecs.py")
    if codec_bench.exists() and not args.no_codecs:
        spec = importlib.util.spec_from_file_location("imaging_codecs", codec_bench)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "run_codec_bench"):
            print("\nCodecs: ours vs libtiff (bench/imaging_codecs.py)")
            module.run_codec_bench()


if __name__ == "__main__":
    main()
