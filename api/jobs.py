"""Creating outbound jobs, shared by the REST API and the email-to-fax gateway."""

from __future__ import annotations

import time
from typing import Any

from api.body import DOCUMENT_TYPES, UploadedFile
from api.envelope import KazooError
from api.validation import TX_RESULT_DEFAULTS, validate_fax
from engine.store import Fax


def default_tx_result() -> dict:
    return dict(TX_RESULT_DEFAULTS)


def original_names(files: list[UploadedFile]) -> list[str]:
    """original_file.<ext>, then original_file_2.<ext>, ... (all are sent, in order)."""
    return [f"original_file.{f.extension}" if i == 0 else f"original_file_{i + 1}.{f.extension}"
            for i, f in enumerate(files)]


def check_files(files: list[UploadedFile]) -> None:
    for up in files:
        if up.content_type not in DOCUMENT_TYPES:
            raise KazooError.system("unsupported_media_type",
                                    f"unsupported document type {up.content_type}; send PDF, TIFF, PNG, JPEG "
                                    "or plain text")


def channel_errors(ctx: Any, doc: dict) -> dict:
    """A ``channel`` the server does not have is refused here: the scheduler would send on the default."""
    if "channel" not in doc:
        return {}
    channel = doc["channel"]
    if not isinstance(channel, str):
        return {"channel": {"type": {"message": "Value did not match type(s): string", "value": channel}}}
    names = sorted(ctx.channel_names())
    if channel not in names:
        return {"channel": {"enum": {"message": "Value not found in enumerated list of values", "value": channel,
                                     "target": names}}}
    return {}


def prepare_doc(ctx: Any, account_id: str, data: Any, has_files: bool) -> dict:
    doc, errors = validate_fax(data)
    errors = {**errors, **channel_errors(ctx, doc)}
    if not errors and not has_files and not (isinstance(doc.get("document"), dict) and doc["document"].get("url")):
        errors = {"document.url": {"required": {"message": "add document url or upload a document"}}}
    if errors:
        raise KazooError.validation(errors)
    doc["attempts"] = 0
    doc["tx_result"] = {**TX_RESULT_DEFAULTS}
    account = ctx.account(account_id)
    tz = doc.pop("timezone", None) if isinstance(doc.get("timezone"), str) else None
    doc["fax_timezone"] = tz or (account.settings.get("timezone") if account else None) or "UTC"
    return doc


def create_job(ctx: Any, account_id: str, data: Any, files: list[UploadedFile]) -> Fax:
    check_files(files)
    doc = prepare_doc(ctx, account_id, data, bool(files))
    stored = {name: (up.content_type, up.data) for name, up in zip(original_names(files), files, strict=True)}
    f = ctx.store.insert_fax(account_id, "out", "pending", doc, next_attempt=time.time(), files=stored)
    ctx.wake()
    return f
