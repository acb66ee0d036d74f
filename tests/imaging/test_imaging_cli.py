"""faxengine convert / topdf / preview, through the real CLI composer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from api.cli import main
from imaging.tiff_f import read_tiff_f

REPO = Path(__file__).resolve().parents[2]


def test_convert_topdf_preview(tmp_path, helpers, letter_pdf, capsys):
    source = tmp_path / "in.pdf"
    source.write_bytes(letter_pdf)
    tif = tmp_path / "out.tif"
    assert main(["convert", str(source), "-o", str(tif), "--resolution", "standard", "--compression", "mh",
                 "--paper", "a4", "--bilevel", "text"]) == 0
    printed = capsys.readouterr().out
    assert "2 pages" in printed and "bytes" in printed and " s" in printed
    directories = helpers.tiffinfo(tif)
    assert [d["length"] for d in directories] == ["1146", "1146"]
    assert directories[0]["Resolution"] == "204, 98 pixels/inch"
    assert not list(tmp_path.glob("*.part"))

    pdf = tmp_path / "out.pdf"
    assert main(["topdf", str(tif), "-o", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF-")

    pattern = str(tmp_path / "page-%d.png")
    assert main(["preview", str(tif), "-o", pattern, "--width", "300"]) == 0
    with Image.open(tmp_path / "page-2.png") as image:
        # A4 standard: 1146 rows of 1/98 in, 1728 px of 1/204 in: shown at its physical aspect.
        assert image.size == (300, round(1146 * 204 / 98 * 300 / 1728))
    assert main(["preview", str(source), "-o", pattern, "--width", "100"]) == 0  # a document, not a fax file


def test_convert_options_reach_the_pipeline(tmp_path, letter_pdf):
    source = tmp_path / "in.pdf"
    source.write_bytes(letter_pdf)
    tif = tmp_path / "out.tif"
    assert main(["convert", str(source), "-o", str(tif), "--resolution", "superfine", "--compression", "mr"]) == 0
    stored = list(read_tiff_f(tif))
    assert stored[0].page.y_dpi == 391 and stored[0].compression == 3 and stored[0].t4_options & 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02\x03junk", "unknown format"),
        (b"%PDF-1.4\ntruncated", "truncated"),
    ],
)
def test_bad_input_one_line_nonzero_exit_no_traceback(tmp_path, content, words):
    source = tmp_path / "bad"
    source.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "convert", str(source), "-o", str(tmp_path / "out.tif")],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tif").exists()


def test_page_limit_option(tmp_path, helpers, capsys):
    source = tmp_path / "many.pdf"
    source.write_bytes(helpers.many_pages_pdf(12))
    assert main(["convert", str(source), "-o", str(tmp_path / "o.tif"), "--page-limit", "10"]) == 2
    assert "12 pages, more than the limit of 10" in capsys.readouterr().err
    assert main(["convert", str(source), "-o", str(tmp_path / "o.tif"), "--page-limit", "12"]) == 0


def test_topdf_and_preview_errors(tmp_path, capsys):
    text = tmp_path / "note.txt"
    text.write_text("hello\n")
    assert main(["topdf", str(text), "-o", str(tmp_path / "x.pdf")]) == 2
    assert "not a TIFF" in capsys.readouterr().err
    assert main(["preview", str(text), "-o", str(tmp_path / "fixed.png")]) == 2
    assert "%d" in capsys.readouterr().err
    assert main(["topdf", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "x.pdf")]) == 2


def test_long_document_shows_progress_on_a_pipe(tmp_path, helpers, capsys):
    source = tmp_path / "long.txt"
    source.write_text("\f".join(f"page {n}" for n in range(25)))
    assert main(["convert", str(source), "-o", str(tmp_path / "o.tif")]) == 0
    err = capsys.readouterr().err
    assert "25/25 pages" in err and "\r" not in err
    assert np.asarray(list(read_tiff_f(tmp_path / "o.tif"))[24].page.pixels).any()


def test_two_workers_write_the_same_file_as_one(tmp_path, helpers):
    from reportlab.lib.pagesizes import letter

    from imaging.parallel import convert_to_tiff_parallel

    source = tmp_path / "long.pdf"
    source.write_bytes(helpers.pdf_bytes([(letter, helpers.draw_mixed), (letter, helpers.draw_text("t"))] * 8))
    serial, parallel = tmp_path / "serial.tif", tmp_path / "parallel.tif"
    assert main(["convert", str(source), "-o", str(serial)]) == 0
    result = convert_to_tiff_parallel(source, parallel, workers=2)
    assert result.pages == 16
    one, two = list(read_tiff_f(serial)), list(read_tiff_f(parallel))
    assert all(np.array_equal(a.page.pixels, b.page.pixels) for a, b in zip(one, two, strict=True))
