"""Email-to-fax: mail to ``<number>@<account's fax domain>`` from an allowed sender becomes a fax job.

Every message (accepted or not) is recorded in the account's smtplog, and a refused one gets a real
SMTP 5xx reply, never a "250 queued" for a mail that will not be sent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from api.body import DOCUMENT_TYPES, UploadedFile, sniff_type
from api.envelope import KazooError
from api.jobs import create_job
from api.validation import normalize_number

log = logging.getLogger(__name__)


def _flatten_errors(err: KazooError) -> str:
    if isinstance(err.data, dict):
        parts = []
        for path, rules in err.data.items():
            if isinstance(rules, dict):
                for rule, detail in rules.items():
                    msg = detail.get("message") if isinstance(detail, dict) else detail
                    parts.append(f"{path}: {msg or rule}")
            else:
                parts.append(f"{path}: {rules}")
        if parts:
            return "; ".join(parts)
    return err.message


def sender_allowed(account, sender: str, allow_all_when_empty: bool) -> bool:  # noqa: ANN001
    sender = sender.lower()
    allowed = account.settings.get("smtp_permission_list") or []
    owners = account.settings.get("inbound_email") or []
    owners = [owners] if isinstance(owners, str) else owners
    if not allowed and not owners:
        return allow_all_when_empty
    for entry in list(allowed) + list(owners):
        entry = str(entry).lower()
        if entry == sender:
            return True
        if entry.startswith("@") and sender.endswith(entry):
            return True
        try:
            if re.fullmatch(entry, sender):
                return True
        except re.error:
            continue
    return False


def attachments_of(raw: bytes) -> tuple[list[UploadedFile], str, list[str]]:
    """The faxable parts of a message (PDF, TIFF, images, else the text body) and its subject."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(msg.get("Subject") or "")
    files: list[UploadedFile] = []
    skipped: list[str] = []
    text_body = ""
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename() or ""
        disposition = part.get_content_disposition()
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:
            skipped.append(filename or ctype)
            continue
        if disposition == "attachment" or filename or (ctype not in ("text/plain", "text/html")):
            kind = sniff_type(data, filename, ctype)
            if kind in DOCUMENT_TYPES and data:
                files.append(UploadedFile(kind, data, filename))
            else:
                skipped.append(f"{filename or 'part'} ({kind})")
        elif ctype == "text/plain" and not text_body:
            try:
                text_body = part.get_content()
            except Exception:
                text_body = data.decode("utf-8", "replace")
    if not files and text_body.strip():
        files.append(UploadedFile("text/plain", text_body.encode("utf-8"), "body.txt"))
    return files, subject, skipped


class FaxMailHandler:
    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.cfg = ctx.config["email_gateway"]
        self.sessions = 0   # SMTP sessions open now (SessionLimitedSMTP counts them)

    def _log(self, account_id: str | None, doc: dict) -> None:
        try:
            self.ctx.store.insert_smtplog(account_id, doc)
        except Exception:
            log.exception("smtplog entry lost: %s", doc)

    # The handlers' store work runs on worker threads: the event loop also carries T.38 calls.
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list) -> str:
        return await asyncio.to_thread(self._rcpt, session, envelope, address)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        return await asyncio.to_thread(self._data, session, envelope)

    def _rcpt(self, session: Session, envelope: Envelope, address: str) -> str:
        sender = (envelope.mail_from or "").strip()
        local, _, domain = address.partition("@")
        account = self.ctx.store.account_by_domain(domain) if domain else None
        entry = {"to": address, "from": sender, "original_number": local, "faxbox_domain": domain.lower(),
                 "errors": [], "outcome": "refused"}
        if account is None:
            log.info("email-to-fax: no account for domain %r (from %s)", domain, sender)
            entry["errors"].append(f"no fax account for domain {domain}")
            self._log(None, entry)   # recorded, but no account can list it
            return f"550 5.1.1 Not Found: no fax account for domain {domain or '(none)'}"
        entry["account_id"] = account.id
        digits = re.sub(r"[^0-9+]", "", local)
        if not digits:
            entry["errors"].append(f"fax number {local} is empty")
            self._log(account.id, entry)
            return f"554 5.1.1 Not Found: fax number {local} is empty"
        number = normalize_number(digits)
        if number is None:
            entry["errors"].append(f"fax number {local} is invalid")
            self._log(account.id, entry)
            return f"554 5.1.1 Not Found: fax number {local} is invalid"
        if not sender_allowed(account, sender, bool(self.cfg["allow_all_when_empty"])):
            entry["errors"].append(f"address {sender} is not allowed on account {account.name}")
            self._log(account.id, entry)
            return f"554 5.7.1 not allowed: address {sender} may not send faxes to {domain}"
        envelope.rcpt_tos.append(address)
        session.__dict__.setdefault("fax_targets", []).append((address, account.id, number))
        return "250 OK"

    def _data(self, session: Session, envelope: Envelope) -> str:
        targets = session.__dict__.pop("fax_targets", [])
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        sender = (envelope.mail_from or "").strip()
        try:
            files, subject, skipped = attachments_of(raw)
        except Exception as exc:
            for address, account_id, number in targets:
                self._log(account_id, {"to": address, "from": sender, "original_number": number,
                                       "errors": [f"Message decode failed: {exc}"], "outcome": "refused"})
            return "554 5.6.0 Message decode failed"
        replies = []
        for address, account_id, number in targets:
            entry = {"to": address, "from": sender, "original_number": address.split("@")[0],
                     "translated_number": number, "subject": subject, "errors": [], "outcome": "refused",
                     "content_type": ",".join(f.content_type for f in files),
                     "filename": ",".join(f.filename for f in files), "skipped": skipped, "account_id": account_id}
            if not files:
                entry["errors"].append("no valid attachment")
                self._log(account_id, entry)
                replies.append("554 5.6.0 no valid attachment: send a PDF, TIFF or image, or a text body")
                continue
            account = self.ctx.account(account_id)
            data = {"to_number": number, "to_name": number,
                    "from_number": str(account.settings.get("caller_id") or ""),
                    "from_name": str(account.settings.get("caller_name") or ""),
                    "retries": int(account.settings.get("retries") or 3),
                    "subject": subject,
                    "notifications": {"email": {"send_to": [sender]}} if sender else {},
                    "source": "email"}
            try:
                job = create_job(self.ctx, account_id, data, files)
            except KazooError as exc:
                entry["errors"].append(_flatten_errors(exc))
                self._log(account_id, entry)
                replies.append(f"554 5.6.0 {_flatten_errors(exc)}")
                continue
            entry["outcome"] = "queued"
            entry["faxdoc_id"] = job.id
            self._log(account_id, entry)
            replies.append(f"250 OK queued as {job.id}")
        if not replies:
            return "554 5.5.1 no valid recipients"
        refused = [r for r in replies if not r.startswith("250")]
        return refused[0] if refused and len(refused) == len(replies) else replies[0]


class SessionLimitedSMTP(SMTP):
    """At most ``max_sessions`` SMTP sessions at once; beyond that the client gets Kazoo's
    ``421 ... too busy`` greeting and the connection is closed (a mail flood cannot exhaust us)."""

    def __init__(self, handler: FaxMailHandler, max_sessions: int, **kwargs: Any):
        self._refused = False
        self._counted = False
        self._max_sessions = max_sessions
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None and not self._counted   # not the STARTTLS re-handshake
        if first and self.event_handler.sessions >= self._max_sessions:
            self._refused = True
            log.warning("email-to-fax: %d sessions open, refusing %s", self.event_handler.sessions,
                        transport.get_extra_info("peername"))
            transport.write(b"421 faxengine is too busy to accept mail right now\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        if first:
            self._counted = True
            self.event_handler.sessions += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._counted:
            self._counted = False
            self.event_handler.sessions -= 1
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()


async def start_gateway(ctx: Any, host: str, port: int) -> asyncio.AbstractServer:
    handler = FaxMailHandler(ctx)
    cfg = ctx.config["email_gateway"]
    size = int(cfg["max_message_size"])
    max_sessions = int(cfg["max_sessions"])
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SessionLimitedSMTP(handler, max_sessions, hostname="faxengine", ident="faxengine email-to-fax",
                                   data_size_limit=size, enable_SMTPUTF8=True),
        host=host, port=port)
