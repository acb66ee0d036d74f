"""A job's document as attachments: the original (uploaded or fetched), the converted TIFF-F (made
once, so a retry never converts again), and the PDF rendering the API and notifications hand out."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

from engine.fetch import FetchError, FetchPolicy, fetch_document
from engine.store.store import Fax, Store
from imaging.page import FaxPage

log = logging.getLogger(__name__)

EXTENSIONS = {"application/pdf": "pdf", "image/tiff": "tiff", "image/png": "png", "image/jpeg": "jpeg",
              "image/gif": "gif", "text/plain": "txt"}
TIFF_OF = {"out": "fax_file.tiff", "in": "received_file.tiff"}


class DocumentError(Exception):
    """The document cannot be fetched or converted; the job fails without dialling."""


@dataclass
class PreparedDocument:
    pages: list[FaxPage]
    tiff: bytes


def magic_type(data: bytes) -> str | None:
    """The document type its first bytes announce, or None; the one place that reads magic numbers."""
    head = data[:8]
    if head.startswith(b"%PDF"):
        return "application/pdf"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def sniff(data: bytes, declared: str = "") -> str:
    return magic_type(data) or declared or "application/octet-stream"


def pages_to_tiff(pages: list[FaxPage]) -> bytes:
    from imaging.tiff_f import write_tiff_f

    out = io.BytesIO()
    write_tiff_f(out, pages)
    return out.getvalue()


def tiff_to_pages(data: bytes) -> list[FaxPage]:
    from imaging.tiff_f import read_tiff_f

    return [stored.page for stored in read_tiff_f(data)]


def convert_documents(originals: list[tuple[str, bytes]]) -> PreparedDocument:
    """Every original, in order, rendered to fax pages (CPU work: run it in a thread)."""
    from imaging.convert import convert
    from imaging.errors import ImagingError

    pages: list[FaxPage] = []
    for name, data in originals:
        try:
            pages.extend(convert(data))
        except ImagingError as exc:
            raise DocumentError(f"can not convert {name}: {exc}") from None
        except Exception as exc:  # a converter bug must still fail the job cleanly
            log.exception("conversion of %s crashed", name)
            raise DocumentError(f"can not convert {name}: {type(exc).__name__}: {exc}") from None
    if not pages:
        raise DocumentError("the document has no pages")
    return PreparedDocument(pages, pages_to_tiff(pages))


def tiff_to_pdf(data: bytes) -> bytes:
    """A PDF of fax pages (the coded CCITT data passed through; imaging.pdf_out)."""
    from imaging.pdf_out import tiff_to_pdf as write_pdf

    out = io.BytesIO()
    if write_pdf(data, out) == 0:
        raise DocumentError("no pages to render")
    return out.getvalue()


class DocumentService:
    def __init__(self, store: Store, policy: FetchPolicy):
        self.store = store
        self.policy = policy

    def originals(self, fax_id: str) -> list[tuple[str, str]]:
        names = self.store.attachment_names(fax_id)

        def order(name: str) -> int:
            stem = name.split(".", 1)[0]
            return int(stem.rsplit("_", 1)[1]) if stem != "original_file" else 1
        return sorted(((n, t) for n, t in names.items() if n.startswith("original_file")), key=lambda x: order(x[0]))

    async def prepare(self, job: Fax) -> PreparedDocument:
        """The pages to send: the stored TIFF-F, else the originals (fetched if need be) converted once."""
        cached = await asyncio.to_thread(self.store.get_attachment, job.id, "fax_file.tiff")
        if cached is not None:
            try:
                pages = await asyncio.to_thread(tiff_to_pages, cached[1])
            except Exception as exc:
                raise DocumentError(f"stored fax pages unreadable: {exc}") from None
            return PreparedDocument(pages, cached[1])
        originals = await asyncio.to_thread(self._original_bytes, job.id)
        if not originals:
            document = job.doc.get("document")
            if not isinstance(document, dict) or not document.get("url"):
                raise DocumentError("no attachment found")
            try:
                fetched = await fetch_document(document, self.policy)
            except FetchError as exc:
                raise DocumentError(str(exc)) from None
            ctype = sniff(fetched.data, fetched.content_type)
            name = f"original_file.{EXTENSIONS.get(ctype, 'bin')}"
            await asyncio.to_thread(self.store.put_attachment, job.id, name, ctype, fetched.data)
            originals.append((name, fetched.data))
        prepared = await asyncio.to_thread(convert_documents, originals)
        await asyncio.to_thread(self.store.put_attachment, job.id, "fax_file.tiff", "image/tiff", prepared.tiff)
        return prepared

    def _original_bytes(self, fax_id: str) -> list[tuple[str, bytes]]:
        originals = []
        for name, _ctype in self.originals(fax_id):
            found = self.store.get_attachment(fax_id, name)
            if found is not None:
                originals.append((name, found[1]))
        return originals

    async def attachment(self, f: Fax, fmt: str) -> tuple[str, bytes, str] | None:
        """(content type, bytes, extension) of a fax in ``fmt`` (pdf, tiff, original), or None."""
        return await asyncio.to_thread(self.attachment_sync, f, fmt)

    def attachment_sync(self, f: Fax, fmt: str) -> tuple[str, bytes, str] | None:
        """``attachment`` for worker threads (store reads, and the PDF made once and kept)."""
        tiff_name = TIFF_OF[f.direction]
        if fmt == "original":
            if f.direction == "in":
                fmt = "tiff"
            else:
                originals = self.originals(f.id)
                if not originals:
                    return None
                found = self.store.get_attachment(f.id, originals[0][0])
                return (found[0], found[1], originals[0][0].rsplit(".", 1)[-1]) if found else None
        if fmt == "tiff":
            found = self.store.get_attachment(f.id, tiff_name)
            return ("image/tiff", found[1], "tiff") if found else None
        cached = self.store.get_attachment(f.id, "pdf_file.pdf")
        if cached is not None:
            return "application/pdf", cached[1], "pdf"
        found = self.store.get_attachment(f.id, tiff_name)
        if found is None:
            return None
        pdf = tiff_to_pdf(found[1])
        self.store.put_attachment(f.id, "pdf_file.pdf", "application/pdf", pdf)
        return "application/pdf", pdf, "pdf"

    async def pdf_of(self, f: Fax) -> bytes | None:
        found = await self.attachment(f, "pdf")
        return found[1] if found else None
