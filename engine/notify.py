"""Notifications: email (SMTP), SMS (an HTTP gateway) and signed webhooks.

Each delivery runs in the background, is retried a few times and logged (``notify_log``); a failed
notification never changes a job's outcome."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.request
from email.message import EmailMessage

from engine.config import Config
from engine.store.store import GREGORIAN_OFFSET, Fax, Store

log = logging.getLogger(__name__)


def recipients(value) -> list[str]:  # noqa: ANN001
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _stamp(f: Fax) -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(f.created - GREGORIAN_OFFSET))


class Notifier:
    def __init__(self, store: Store, config: Config, documents=None):  # noqa: ANN001
        self.store = store
        self.config = config
        self.cfg = config["notifications"]
        self.documents = documents
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ events

    def outbound_finished(self, f: Fax) -> None:
        self._spawn(self._outbound(f))

    def inbound_finished(self, f: Fax) -> None:
        self._spawn(self._inbound(f))

    async def drain(self, timeout: float = 30) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _spawn(self, coro) -> None:  # noqa: ANN001
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            log.error("notification dropped: no event loop")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outbound(self, f: Fax) -> None:
        doc = f.doc
        tx = doc.get("tx_result") or {}
        ok = f.status == "completed"
        event = "outbound_fax" if ok else "outbound_fax_error"
        notes = doc.get("notifications") if isinstance(doc.get("notifications"), dict) else {}
        to = f"{doc.get('to_name') or ''} {f.to_number}".strip()
        if ok:
            subject = f"Fax has been sent to {to}"
            text = (f"Your fax to {to} was delivered.\n\nPages: {tx.get('pages_sent', 0)}\n"
                    f"Receiver: {tx.get('fax_receiver_id', '')}\nSpeed: {tx.get('fax_speed', 0)} bit/s\n"
                    f"Fax id: {f.id}\n")
        else:
            subject = f"Error sending Fax to {to}"
            text = (f"Your fax to {to} could not be sent.\n\nReason: {tx.get('error_message') or 'unknown error'}\n"
                    f"Attempts: {doc.get('attempts', 0)}\nFax id: {f.id}\n")
        email = notes.get("email") if isinstance(notes.get("email"), dict) else {}
        email_to = recipients(email.get("send_to"))
        jobs = []
        if email_to:
            attachment = await self._pdf(f) if ok else None
            jobs.append(self._deliver(f.id, "email", ",".join(email_to), event,
                                      lambda: self._send_email(email_to, subject, text, attachment, f)))
        sms_to = recipients((notes.get("sms") or {}).get("send_to") if isinstance(notes.get("sms"), dict) else None)
        for number in sms_to:
            sms_text = subject if ok else f"{subject}: {tx.get('error_message') or 'unknown error'}"
            jobs.append(self._deliver(f.id, "sms", number, event,
                                      lambda n=number, t=sms_text: self._send_sms(n, doc.get("from_number", ""), t)))
        jobs += await self._webhooks(f, event)
        await asyncio.gather(*jobs)

    async def _inbound(self, f: Fax) -> None:
        account = await asyncio.to_thread(self.store.get_account, f.account_id)
        ok = f.status == "completed"
        event = "inbound_fax" if ok else "inbound_fax_error"
        rx = f.doc.get("rx_result") or {}
        sender = f"{f.doc.get('from_name') or ''} {f.from_number or ''}".strip() or "unknown"
        jobs = []
        email_to = recipients(account.settings.get("inbound_email")) if account else []
        if email_to:
            if ok:
                subject = f"New fax from {sender}"
                text = (f"A fax from {sender} to {f.to_number} arrived.\n\nPages: {rx.get('pages_received', 0)}\n"
                        f"Remote station: {rx.get('fax_remote_station_id', '')}\nFax id: {f.id}\n")
                attachment = await self._pdf(f)
            else:
                subject = f"Error receiving fax from {sender}"
                text = f"A fax from {sender} could not be received: {rx.get('error_message') or 'unknown error'}\n"
                attachment = None
            jobs.append(self._deliver(f.id, "email", ",".join(email_to), event,
                                      lambda: self._send_email(email_to, subject, text, attachment, f)))
        jobs += await self._webhooks(f, event)
        await asyncio.gather(*jobs)

    async def _pdf(self, f: Fax) -> bytes | None:
        if self.documents is None:
            return None
        try:
            return await self.documents.pdf_of(f)
        except Exception:
            log.exception("no PDF for the notification of %s", f.id)
            return None

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, fax_id: str, kind: str, target: str, event: str, send) -> bool:  # noqa: ANN001
        tries = max(int(self.cfg["retries"]), 1)
        error = ""
        for attempt in range(1, tries + 1):
            try:
                await asyncio.to_thread(send)
                await asyncio.to_thread(self._log, fax_id, kind, target, event, True, attempt, "")
                return True
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("%s notification %s to %s failed (try %d/%d): %s", kind, event, target, attempt, tries,
                            error)
                if attempt < tries:
                    await asyncio.sleep(float(self.cfg["retry_delay"]))
        await asyncio.to_thread(self._log, fax_id, kind, target, event, False, tries, error)
        return False

    def _log(self, fax_id: str, kind: str, target: str, event: str, ok: bool, tries: int, error: str) -> None:
        with contextlib.suppress(Exception):
            self.store.log_notification(fax_id, kind, target, event, ok, tries, error)

    def _send_email(self, to: list[str], subject: str, text: str, pdf: bytes | None, f: Fax) -> None:
        smtp = self.cfg["smtp"]
        if not smtp["host"]:
            raise RuntimeError("no SMTP server configured (notifications.smtp.host)")
        msg = EmailMessage()
        msg["From"] = smtp["sender"]
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["X-Fax-Id"] = f.id
        msg.set_content(text)
        if pdf:
            msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"fax_document_{_stamp(f)}.pdf")
        with smtplib.SMTP(smtp["host"], int(smtp["port"]), timeout=float(smtp["timeout"])) as client:
            if smtp["starttls"]:
                client.starttls()
            if smtp["username"]:
                client.login(smtp["username"], smtp["password"])
            client.send_message(msg)

    def _post_json(self, url: str, payload: dict | bytes, headers: dict, timeout: float) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}")

    def _send_sms(self, to: str, sender: str, text: str) -> None:
        sms = self.cfg["sms"]
        if not sms["url"]:
            raise RuntimeError("no SMS gateway configured (notifications.sms.url)")
        headers = {"Authorization": f"Bearer {sms['token']}"} if sms["token"] else {}
        self._post_json(sms["url"], {"to": to, "from": sender, "text": text}, headers, float(sms["timeout"]))

    async def _webhooks(self, f: Fax, event: str) -> list:
        hook = self.cfg["webhook"]
        account = await asyncio.to_thread(self.store.get_account, f.account_id)
        urls = [hook["url"]] if hook["url"] else []
        if account and isinstance(account.settings.get("webhook_url"), str):
            urls.append(account.settings["webhook_url"])
        payload = {"event": event, "account_id": f.account_id, "fax_id": f.id, "status": f.status,
                   "direction": "outgoing" if f.direction == "out" else "incoming", "to": f.to_number,
                   "from": f.from_number, "result": f.doc.get("tx_result") or f.doc.get("rx_result") or {},
                   "timestamp": int(time.time())}
        return [self._deliver(f.id, "webhook", url, event, lambda u=url: self._send_webhook(u, payload))
                for url in urls]

    def _send_webhook(self, url: str, payload: dict) -> None:
        hook = self.cfg["webhook"]
        body = json.dumps(payload, sort_keys=True)
        headers = {}
        if hook["secret"]:
            sig = hmac.new(hook["secret"].encode(), body.encode(), hashlib.sha256).hexdigest()
            headers["X-Faxengine-Signature"] = f"sha256={sig}"
        self._post_json(url, body.encode(), headers, float(hook["timeout"]))
