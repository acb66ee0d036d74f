"""``faxengine convert | topdf | preview``: the imaging commands of the CLI (composed by api/cli.py).

Bad input prints one line on stderr and exits 2; never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable

from .errors import ImagingError
from .page import Y_DPI
from .paper import PAPER_CHOICES
from .tiff_f import COMPRESSIONS

DEFAULT_PAGE_LIMIT = 100     # imaging.convert's default, repeated so building the parser does not load PIL

LONG_DOCUMENT = 20  # pages: progress is shown for documents this long even when stderr is not a terminal
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a document (PDF, TIFF, image, text) to a TIFF-F fax file")
    p.add_argument("input", help="document to convert (format detected from its content)")
    p.add_argument("-o", "--output", required=True, help="TIFF-F file to write")
    p.add_argument("--resolution", choices=tuple(Y_DPI), default="fine")
    p.add_argument("--compression", choices=COMPRESSIONS, default="mmr")
    p.add_argument("--paper", choices=PAPER_CHOICES, default="auto")
    p.add_argument("--bilevel", choices=("auto", "text", "photo"), default="auto")
    p.add_argument("--page-limit", type=int, default=DEFAULT_PAGE_LIMIT, metavar="N",
                   help=f"refuse documents of more than N pages (default {DEFAULT_PAGE_LIMIT})")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="render long PDFs in N processes (default 1; pays on idle cores only)")
    p.set_defaults(func=_guarded(_convert, "convert"))

    p = subparsers.add_parser("topdf", help="convert a TIFF-F fax file to PDF without loss")
    p.add_argument("input", help="TIFF file")
    p.add_argument("-o", "--output", required=True, help="PDF file to write")
    p.set_defaults(func=_guarded(_topdf, "topdf"))

    p = subparsers.add_parser("preview", help="write a PNG preview of every page")
    p.add_argument("input", help="document or TIFF-F file")
    p.add_argument("-o", "--output", default="page-%d.png", help="file name pattern, %%d = page number")
    p.add_argument("--width", type=int, default=600, help="preview width in pixels (default 600)")
    p.add_argument("--page-limit", type=int, default=DEFAULT_PAGE_LIMIT, metavar="N")
    p.set_defaults(func=_guarded(_preview, "preview"))


def _guarded(command: Callable[[argparse.Namespace], int], name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's notes on damaged files: the outcome is what counts
                return command(args)
        except ImagingError as exc:
            print(f"faxengine {name}: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"faxengine {name}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        except MemoryError:
            print(f"faxengine {name}: out of memory", file=sys.stderr)
        except Exception as exc:  # a bug, still reported on one line: the CLI never shows a traceback
            print(f"faxengine {name}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    return run


class _Progress:
    """A one-line bar on stderr: redrawn in place on a terminal; on a pipe, a line per 10 % of a long doc."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.shown, self._last_decile = False, -1

    def __call__(self, done: int, total: int) -> None:
        if total < 2 or (not self.tty and total < LONG_DOCUMENT):
            return
        if self.tty:
            filled = 30 * done // total
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} pages")
            self.shown = True
        elif (decile := 10 * done // total) != self._last_decile:
            self._last_decile = decile
            self.stream.write(f"{done}/{total} pages\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _convert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    progress = _Progress()
    partial = args.output + ".part"
    options = dict(compression=args.compression, resolution=args.resolution, paper=args.paper,
                   bilevel=args.bilevel, page_limit=args.page_limit, progress=progress)
    try:
        if args.workers > 1:
            from .parallel import convert_to_tiff_parallel

            result = convert_to_tiff_parallel(args.input, partial, workers=args.workers, **options)
        else:
            from .convert import convert_to_tiff

            result = convert_to_tiff(args.input, partial, **options)
        os.replace(partial, args.output)
    finally:
        progress.finish()
        if os.path.exists(partial):
            os.unlink(partial)
    elapsed = time.perf_counter() - started
    print(
        f"{args.output}: {result.pages} pages, {result.file_bytes} bytes "
        f"({result.file_bytes // max(result.pages, 1)} bytes/page), {elapsed:.2f} s"
    )
    return 0


def _topdf(args: argparse.Namespace) -> int:
    from .pdf_out import tiff_to_pdf

    started = time.perf_counter()
    partial = args.output + ".part"
    try:
        pages = tiff_to_pdf(args.input, partial)
        os.replace(partial, args.output)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    size = os.path.getsize(args.output)
    print(f"{args.output}: {pages} pages, {size} bytes, {time.perf_counter() - started:.2f} s")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from .preview import previews

    try:
        if args.output % 1 == args.output % 2:
            raise ValueError
    except (TypeError, ValueError):
        raise ImagingError("output pattern needs one %d for the page number, e.g. page-%d.png") from None
    written = []
    for number, png in enumerate(previews(args.input, args.width, page_limit=args.page_limit), start=1):
        name = args.output % number
        with open(name, "wb") as fh:
            fh.write(png)
        written.append(name)
    print(f"{len(written)} previews: {written[0]}{' .. ' + written[-1] if len(written) > 1 else ''}")
    return 0
