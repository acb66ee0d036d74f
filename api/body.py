"""Request bodies as crossbar reads them: JSON, url-encoded JSON (curl -d), multipart, bare documents."""

from __future__ import annotations

import email.parser
import email.policy
import json
import mimetypes
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request

from api.envelope import KazooError
from engine.store.documents import magic_type

JSON_TYPES = ("application/json", "application/x-json")
DOCUMENT_TYPES = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "image/tiff": "tiff",
    "image/tif": "tiff",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "text/plain": "txt",
}
BARE_UPLOAD_TYPES = ("application/pdf", "application/x-pdf", "image/tiff")
MULTIPART_TYPES = ("multipart/mixed", "multipart/form-data")
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class UploadedFile:
    content_type: str
    data: bytes
    filename: str = ""

    @property
    def extension(self) -> str:
        return DOCUMENT_TYPES.get(self.content_type, "bin")


@dataclass
class RequestBody:
    envelope: dict = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def sniff_type(data: bytes, filename: str = "", declared: str = "") -> str:
    """The document type from its magic bytes, else the declared type, else the file name."""
    magic = magic_type(data)
    if magic:
        return magic
    declared = media_type(declared)
    if declared and declared != "application/octet-stream":
        return "image/tiff" if declared == "image/tif" else declared
    guess = mimetypes.guess_type(filename.lower())[0] if filename else None
    return guess or declared or "application/octet-stream"


async def read_body(request: Request, cap: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > cap:
                raise KazooError.system("too_large", f"request body larger than {cap} bytes")
        except ValueError as exc:
            raise KazooError.system("parse_error", "bad Content-Length") from exc
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise KazooError.system("too_large", f"request body larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_envelope(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KazooError.validation({"json": {"invalid": {"message": f"invalid JSON: {exc}", "target": "body"}}}) \
            from exc
    if not isinstance(value, dict):
        raise KazooError.validation({"json": {"invalid": {"message": "the body must be a JSON object",
                                                           "target": "body"}}})
    return value


def _form_envelope(raw: bytes) -> dict:
    """curl -d sends JSON as x-www-form-urlencoded; crossbar then falls back to JSON, and so do we."""
    stripped = raw.strip()
    if stripped.startswith(b"{") or not stripped:
        return _json_envelope(raw) if stripped else {}
    try:
        fields = parse_qs(raw.decode(), strict_parsing=True)
    except (ValueError, UnicodeDecodeError):
        return _json_envelope(raw)
    envelope: dict = {k: v[-1] for k, v in fields.items()}
    if isinstance(envelope.get("data"), str):
        envelope["data"] = _json_envelope(envelope["data"].encode())
    return envelope


def _multipart(content_type: str, raw: bytes) -> RequestBody:
    if "boundary=" not in content_type:
        raise KazooError.system("parse_error", "multipart body without a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + raw)
    if not msg.is_multipart():
        raise KazooError.system("parse_error", "malformed multipart body")
    body = RequestBody()
    for part in msg.get_payload():
        data = part.get_payload(decode=True) or b""
        ctype = part.get_content_type()
        filename = part.get_filename() or ""
        looks_json = ctype in JSON_TYPES or filename.lower().endswith(".json") or (
            ctype in ("text/plain", "application/octet-stream") and data.lstrip()[:1] == b"{" and not filename)
        if looks_json:
            body.envelope = _json_envelope(data)
        elif data:
            body.files.append(UploadedFile(sniff_type(data, filename, ctype), data, filename))
    return body


def parse_body(content_type_header: str | None, raw: bytes, *, allow_files: bool = True) -> RequestBody:
    ctype = media_type(content_type_header)
    if not raw.strip() and ctype not in BARE_UPLOAD_TYPES:
        return RequestBody()
    if ctype in JSON_TYPES or (not ctype and raw.lstrip()[:1] == b"{"):
        return RequestBody(_json_envelope(raw))
    if ctype == FORM_TYPE:
        return RequestBody(_form_envelope(raw))
    if allow_files and ctype in MULTIPART_TYPES:
        return _multipart(content_type_header or "", raw)
    if allow_files and ctype in BARE_UPLOAD_TYPES:
        if not raw:
            raise KazooError.validation({"document": {"required": {"message": "empty document body"}}})
        return RequestBody(files=[UploadedFile(sniff_type(raw, "", ctype), raw)])
    raise KazooError.system("unsupported_media_type", f"unsupported media type {ctype or '(none)'}")
