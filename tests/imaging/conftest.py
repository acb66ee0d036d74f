"""Shared builders for the imaging tests: test documents are generated, never checked in."""

from __future__ import annotations

import io
import re
import subprocess
import types

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4, landscape, legal, letter
from reportlab.pdfgen import canvas as rl_canvas

PAGE_SIZES = {"letter": letter, "a4": A4, "legal": legal}


def pdf_bytes(pages: list[tuple[tuple[float, float], callable | None]]) -> bytes:
    """A PDF with one page per (size in points, draw(canvas, w, h) or None)."""
    buf = io.BytesIO()
    c = rl_canvas.Canvas(buf, invariant=1)
    for size, draw in pages:
        c.setPageSize(size)
        if draw:
            draw(c, *size)
        c.showPage()
    c.save()
    return buf.getvalue()


def draw_text(label: str):
    def draw(c, w, h):
        c.setFont("Helvetica", 12)
        c.drawString(72, h - 72, label)
        c.setFont("Helvetica", 6)
        c.drawString(72, h - 90, "six point text stays readable 0123456789")
        c.rect(36, 36, w - 72, h - 72)  # a frame near the edges: shows nothing is cropped

    return draw


def draw_mixed(c, w, h):
    draw_text("mixed page")(c, w, h)
    c.setFillGray(0.92)
    c.rect(72, h - 300, w - 144, 100, fill=1, stroke=0)  # pale table shading
    c.setFillGray(0.45)
    c.rect(72, h - 500, 200, 150, fill=1, stroke=0)  # mid grey
    c.setFillGray(0)
    c.rect(300, h - 500, 100, 150, fill=1, stroke=0)  # solid black


def many_pages_pdf(count: int) -> bytes:
    """A valid PDF of ``count`` empty Letter pages, written directly (reportlab takes seconds for 10,000)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = {}

    def obj(number: int, body: bytes) -> None:
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    obj(2, b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 612 792] >>" % (kids, count))
    for i in range(count):
        obj(3 + i, b"<< /Type /Page /Parent 2 0 R >>")
    xref = out.tell()
    size = 3 + count
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    out.write(b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size)))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def random_page(rows: int = 2156, seed: int = 0) -> np.ndarray:
    """A bilevel page with text-like blocks, a halftone patch, rules and a white margin."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((rows, 1728), dtype=bool)
    pixels[rows // 10 : rows // 10 + 200, 100:1600] = rng.random((200, 1500)) < 0.08
    pixels[rows // 2 : rows // 2 + 300, 300:900] = rng.random((300, 600)) < 0.5
    pixels[rows - 200 : rows - 190, 50:1678] = True
    pixels[:, 1727] = rng.random(rows) < 0.5  # last column: catches width/padding mistakes
    return pixels


def tiffinfo(path) -> list[dict[str, str]]:
    """``tiffinfo`` (libtiff-tools) output, one dict of "Field: value" per directory."""
    text = subprocess.run(["tiffinfo", str(path)], capture_output=True, text=True, timeout=60, check=True).stdout
    directories = []
    for block in re.split(r"=== TIFF directory \d+ ===", text)[1:]:
        fields = {}
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("Image Width:"):
                m = re.match(r"Image Width: (\d+) Image Length: (\d+)", line)
                fields["width"], fields["length"] = m.group(1), m.group(2)
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        directories.append(fields)
    return directories


def png_bytes(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.fixture(scope="session")
def letter_pdf() -> bytes:
    return pdf_bytes([(letter, draw_mixed), (letter, draw_text("page two"))])


@pytest.fixture(scope="session")
def sizes_pdf() -> bytes:
    """Letter, A4, Legal and a landscape Letter page."""
    return pdf_bytes([
        (letter, draw_text("letter")), (A4, draw_text("a4")), (legal, draw_text("legal")),
        (landscape(letter), draw_text("landscape")),
    ])


@pytest.fixture(scope="session")
def helpers() -> types.SimpleNamespace:
    """The builders above, for test modules (importing ``conftest`` by name would clash across folders)."""
    names = ("pdf_bytes", "draw_text", "draw_mixed", "many_pages_pdf", "random_page", "tiffinfo", "png_bytes")
    return types.SimpleNamespace(**{name: globals()[name] for name in names}, PAGE_SIZES=PAGE_SIZES)
