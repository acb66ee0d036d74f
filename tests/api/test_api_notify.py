"""Notifications in-process against real local servers: SMTP (aiosmtpd), an HTTP SMS gateway and a
webhook receiver; failures are retried and logged and never touch the job."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest
from faxapi_helpers import DocServer, MailSink

from engine.config import load_config
from engine.notify import Notifier
from engine.store import Store


@pytest.fixture
def setup(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'n.sqlite3'}")
    web = DocServer()
    web.files["/sms"] = ("application/json", b"{}")
    web.files["/hook"] = ("application/json", b"{}")
    mail = MailSink()
    yield store, web, mail
    mail.stop()
    web.stop()
    store.close()


def finished_job(store, account, status="completed", **doc):  # noqa: ANN001, ANN003
    body = {"from_number": "15550001", "to_number": "15550002", "attempts": 1, "retries": 1,
            "tx_result": {"success": status == "completed", "pages_sent": 1,
                          "error_message": "" if status == "completed" else "line busy"}, **doc}
    f = store.insert_fax(account.id, "out", "processing", body)
    return store.update_fax(f.id, status=status)


async def test_email_sms_and_signed_webhook(setup):
    store, web, mail = setup
    cfg = load_config(None)
    cfg["notifications"]["smtp"].update(host="127.0.0.1", port=mail.port)
    cfg["notifications"]["sms"].update(url=f"http://127.0.0.1:{web.port}/sms", token="t0k")
    cfg["notifications"]["webhook"].update(url=f"http://127.0.0.1:{web.port}/hook", secret="s3cret")
    account = store.create_account("n")
    f = finished_job(store, account, status="failed",
                     notifications={"email": {"send_to": ["a@x.localhost"]}, "sms": {"send_to": "15559998888"}})
    notifier = Notifier(store, cfg)
    notifier.outbound_finished(f)
    await notifier.drain(20)
    m = mail.wait_for(lambda m: "a@x.localhost" in m["to"], 5)
    assert b"Error sending Fax" in m["data"] and b"line busy" in m["data"]
    sms = next(r for r in web.requests if r["path"] == "/sms")
    assert json.loads(sms["body"])["to"] == "15559998888" and "line busy" in json.loads(sms["body"])["text"]
    assert sms["headers"]["Authorization"] == "Bearer t0k"
    hook = next(r for r in web.requests if r["path"] == "/hook")
    expected = hmac.new(b"s3cret", hook["body"], hashlib.sha256).hexdigest()
    assert hook["headers"]["X-Faxengine-Signature"] == f"sha256={expected}"
    assert json.loads(hook["body"])["event"] == "outbound_fax_error"
    log = store.notifications_for(f.id)
    assert sorted(r["kind"] for r in log if r["ok"]) == ["email", "sms", "webhook"]


async def test_failed_notification_is_retried_logged_and_harmless(setup):
    store, web, _ = setup
    cfg = load_config(None)
    cfg["notifications"].update(retries=3, retry_delay=0.05)
    cfg["notifications"]["smtp"].update(host="127.0.0.1", port=1, timeout=1)   # nothing listens there
    cfg["notifications"]["webhook"].update(url=f"http://127.0.0.1:{web.port}/missing")
    account = store.create_account("n")
    f = finished_job(store, account, notifications={"email": {"send_to": "b@x.localhost"}})
    before = store.get_fax(f.id)
    notifier = Notifier(store, cfg)
    notifier.outbound_finished(f)
    await asyncio.wait_for(notifier.drain(30), 30)
    log = store.notifications_for(f.id)
    assert {r["kind"]: (r["ok"], r["tries"]) for r in log} == {"email": (False, 3), "webhook": (False, 3)}
    assert all(r["error"] for r in log)
    after = store.get_fax(f.id)
    assert after.status == before.status == "completed" and after.rev == before.rev
