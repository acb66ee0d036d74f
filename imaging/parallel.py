"""Optional: PDF -> TIFF-F with worker processes (render + bilevel + libtiff coding per page in parallel).

Worker k renders pages k, k+W, k+2W, ... and hands coded strips back through its own queue of two slots;
the parent takes them in page order and only writes the file. Memory stays bounded (each worker holds one
page, each queue two strips) whatever the page count. Workers are spawned (not forked) so that a threaded
parent (the server) is safe; the spawn costs ~0.3 s, so this pays only for long documents on idle cores.
Non-PDF inputs and short PDFs take the serial path.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from typing import BinaryIO

from .bilevel import to_bilevel
from .convert import DEFAULT_PAGE_LIMIT, ConversionResult, Document, Source, convert_to_tiff
from .detect import PDF
from .errors import ImagingError
from .page import FaxPage
from .pdf import PdfDocument
from .tiff_f import TiffFWriter, encode_strip

MIN_PAGES_PER_WORKER = 8
WORKER_TIMEOUT_S = 120  # per page: a page PDFium cannot finish in two minutes is treated as hostile


def _work(source: Source, first: int, step: int, options: dict, out: multiprocessing.Queue) -> None:
    try:
        document = PdfDocument(source, page_limit=options["page_limit"])
        for index in range(first, document.page_count, step):
            grey = document.render_grey(index, y_dpi=options["y_dpi"], paper=options["paper"])
            page = FaxPage(to_bilevel(grey, options["bilevel"], options["y_dpi"]), y_dpi=options["y_dpi"])
            out.put(("page", page.rows, encode_strip(page, options["compression"])))
        document.close()
    except ImagingError as exc:
        out.put(("error", str(exc), b""))
    except Exception as exc:  # reported, not raised: the parent decides
        out.put(("error", f"page rendering failed ({type(exc).__name__}: {exc})", b""))


def _next(source: multiprocessing.Queue, worker: multiprocessing.Process, index: int) -> tuple[str, int, bytes]:
    for _ in range(WORKER_TIMEOUT_S):
        try:
            return source.get(timeout=1)
        except queue_module.Empty:
            if not worker.is_alive():
                try:
                    return source.get(timeout=1)  # it may have put its last item just before exiting
                except queue_module.Empty:
                    raise ImagingError(f"the worker rendering page {index + 1} died") from None
    raise ImagingError(f"page {index + 1} took too long to render")


def convert_to_tiff_parallel(
    source: Source, out: str | os.PathLike[str] | BinaryIO, *, workers: int = 2, compression: str = "mmr",
    resolution: str = "fine", paper: str = "auto", bilevel: str = "auto", page_limit: int = DEFAULT_PAGE_LIMIT,
    progress=None,
) -> ConversionResult:
    document = Document(source, resolution=resolution, paper=paper, bilevel=bilevel, page_limit=page_limit)
    workers = min(workers, document.page_count // MIN_PAGES_PER_WORKER)
    if document.format != PDF or workers < 2:
        return convert_to_tiff(source, out, compression=compression, resolution=resolution, paper=paper,
                               bilevel=bilevel, page_limit=page_limit, progress=progress)
    total = document.page_count
    document._doc.close()  # the parent only checked it; workers open their own
    context = multiprocessing.get_context("spawn")
    options = {"y_dpi": document.y_dpi, "paper": paper, "bilevel": bilevel, "compression": compression,
               "page_limit": page_limit}
    queues = [context.Queue(maxsize=2) for _ in range(workers)]
    procs = [context.Process(target=_work, args=(source, k, workers, options, queues[k]), daemon=True)
             for k in range(workers)]
    for proc in procs:
        proc.start()
    data_bytes = 0
    try:
        with TiffFWriter(out, compression=compression) as writer:
            for index in range(total):
                kind, value, strip = _next(queues[index % workers], procs[index % workers], index)
                if kind == "error":
                    raise ImagingError(value)
                data_bytes += writer.add_coded(strip, value, document.y_dpi)
                if progress:
                    progress(index + 1, total)
    finally:
        for proc in procs:
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
    file_bytes = os.path.getsize(out) if not hasattr(out, "write") else 0
    return ConversionResult(total, data_bytes, file_bytes)
