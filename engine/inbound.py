"""Inbound faxes: an ``incoming`` record from the moment a call is answered (also when it fails), which
becomes an ``inbox`` fax with its pages when the reception succeeds."""

from __future__ import annotations

import asyncio
import logging
import time

from engine.result import SessionResult
from engine.store.documents import pages_to_tiff
from engine.store.store import Fax, Store
from imaging.page import FaxPage

log = logging.getLogger(__name__)


def rx_result(result: SessionResult, pages: int) -> dict:
    return {
        "success": result.success,
        "pages_received": pages,
        "fax_speed": result.fax_speed,
        "fax_error_correction": result.ecm,
        "fax_bad_rows": result.bad_rows,
        "fax_remote_station_id": result.remote_ident,
        "fax_modulation": result.modulation,
        "fax_resolution": result.resolution,
        "time_elapsed": int(round(result.duration)),
        "error_message": result.error_message,
        "result_text": "OK" if result.success else result.error_message,
    }


class InboundRecorder:
    def __init__(self, store: Store, notifier=None, node: str | None = None):  # noqa: ANN001
        self.store = store
        self.notifier = notifier
        self.node = node

    def begin(self, account_id: str, *, from_number: str, to_number: str, from_name: str = "",
              call_id: str = "", channel: str = "") -> Fax:
        doc = {
            "from_number": from_number,
            "to_number": to_number,
            "from_name": from_name,
            "name": time.strftime("fax message received at %Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "description": "fax document received",
            "source_type": "incoming_fax",
            "media_type": "tiff",
            "call_id": call_id,
            "channel": channel,
        }
        return self.store.insert_fax(account_id, "in", "receiving", doc, progress={"phase": "answered"},
                                     node=self.node)

    def account_for(self, to_number: str, default_account: str | None = None) -> str | None:
        """Which account an inbound call to ``to_number`` belongs to (None: nobody's, refuse the call)."""
        account = self.store.account_for_number(to_number)
        return account.id if account else default_account

    def progress(self, fax_id: str, state: dict) -> None:
        """Called from the receiving T.30 session on the event loop: the write is queued, not awaited."""
        self.store.set_progress_later(fax_id, state)

    async def begin_async(self, account_id: str, **fields: str) -> Fax:
        """``begin`` off the event loop."""
        return await asyncio.to_thread(lambda: self.begin(account_id, **fields))

    async def finish(self, fax_id: str, result: SessionResult, pages: list[FaxPage]) -> Fax:
        """Store the pages and the outcome; a 'successful' reception without pages is a failure.
        The store work runs on a worker thread; the notifier is called back on the loop."""
        new = await asyncio.to_thread(self.finish_sync, fax_id, result, pages)
        if self.notifier is not None:
            self.notifier.inbound_finished(new)
        return new

    def finish_sync(self, fax_id: str, result: SessionResult, pages: list[FaxPage]) -> Fax:
        if result.success and not pages:
            result.success = False
            result.error_message = "no pages received"
        cur = self.store.get_fax(fax_id, include_deleted=True)
        doc = dict(cur.doc)
        doc["remote_station_id"] = result.remote_ident
        doc["pages"] = len(pages)
        if pages:
            try:
                tiff = pages_to_tiff(pages)
                self.store.put_attachment(fax_id, "received_file.tiff", "image/tiff", tiff)
            except Exception as exc:
                log.exception("received pages of %s not stored", fax_id)
                result.success = False
                result.error_message = f"received pages could not be stored: {exc}"
        doc["rx_result"] = rx_result(result, len(pages))
        status = "completed" if result.success else "failed"
        return self.store.update_fax(fax_id, doc=doc, status=status, progress={"phase": "done", "status": status})
