"""End to end over the loopback channel: API (or email) -> scheduler -> T.30 over T.38/UDPTL on
127.0.0.1 -> our own receiver -> inbox, with the notification mails."""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
import time
from email.message import EmailMessage

import numpy as np
import pytest
from faxapi_helpers import make_pdf

from imaging.tiff_f import read_tiff_f


def tiff_pages(data: bytes) -> list[np.ndarray]:
    return [p.page.pixels for p in read_tiff_f(data)]


def find_inbox(api, from_number: str, to_number: str, timeout: float = 30) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = api.client.get(api.url("/inbox"), params={"filter_from_number": from_number,
                                                          "filter_to_number": to_number}).json()["data"]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no inbox fax from {from_number} to {to_number}")


def attachments_of_mail(raw: bytes) -> list[tuple[str, bytes]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in msg.iter_attachments()]


def test_api_fax_delivered_to_inbox_with_same_pages_and_mails(api, docs, mail):
    job = api.create({"document": {"url": docs.url("/doc3.pdf")}, "from_number": "15550100001",
                      "to_number": "15550200002", "from_name": "Loop Test",
                      "notifications": {"email": {"send_to": "owner@test.localhost"}}})
    done = api.wait_status(job["id"], timeout=90)
    assert done["status"] == "completed", done["tx_result"]
    tx = done["tx_result"]
    assert tx["success"] is True and tx["pages_sent"] == 3 and tx["fax_speed"] >= 9600
    assert tx["error_message"] == "" and done["attempts"] == 1 and "delivered" in done

    out = api.client.get(api.url(f"/outbox/{job['id']}"))
    assert out.status_code == 200 and out.json()["data"]["tx_result"]["success"] is True
    sent = api.client.get(api.url(f"/outbox/{job['id']}/attachment"), params={"format": "tiff"})
    assert sent.status_code == 200 and sent.headers["content-type"] == "image/tiff"

    row = find_inbox(api, "15550100001", "15550200002")
    assert row["rx_result"]["pages_received"] == 3 and row["rx_result"]["success"] is True
    received = api.client.get(api.url(f"/inbox/{row['id']}/attachment"), headers={"Accept": "image/tiff"})
    assert received.status_code == 200 and received.headers["content-type"] == "image/tiff"
    a, b = tiff_pages(sent.content), tiff_pages(received.content)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and np.array_equal(x, y)
    incoming = api.client.get(api.url(f"/incoming/{row['id']}")).json()["data"]
    assert incoming["status"] == "completed"

    pdf = api.client.get(api.url(f"/inbox/{row['id']}/attachment"), params={"disposition": "inline"})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("inline; filename=fax_document_")
    assert pdf.headers["etag"]

    sent_mail = mail.wait_for(lambda m: "owner@test.localhost" in m["to"])
    parts = attachments_of_mail(sent_mail["data"])
    assert parts and parts[0][0] == "application/pdf" and parts[0][1].startswith(b"%PDF")
    assert b"Fax has been sent to" in sent_mail["data"]
    inbound_mail = mail.wait_for(lambda m: "inbox-a@test.localhost" in m["to"] and b"15550100001" in m["data"])
    assert attachments_of_mail(inbound_mail["data"])[0][0] == "application/pdf"


def test_failure_mail_carries_the_reason(api, docs, mail):
    job = api.create({"document": {"url": docs.url("/corrupt.pdf")}, "from_number": "15550100009",
                      "to_number": "15550200009", "notifications": {"email": {"send_to": ["fail@test.localhost"]}}})
    done = api.wait_status(job["id"])
    assert done["status"] == "failed" and done["tx_result"]["success"] is False
    assert "convert" in done["tx_result"]["error_message"]
    m = mail.wait_for(lambda m: "fail@test.localhost" in m["to"])
    assert b"Error sending Fax" in m["data"] and b"convert" in m["data"]
    assert not attachments_of_mail(m["data"])


def _mail(sender: str, to: str, attachment: tuple[str, bytes, str] | None, body: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "fax by mail"
    msg.set_content(body or "see attachment")
    if attachment:
        maintype, subtype = attachment[0].split("/")
        msg.add_attachment(attachment[1], maintype=maintype, subtype=subtype, filename=attachment[2])
    return msg


def test_email_to_fax_delivered_and_logged(api, mail):
    to = f"1-555-0300-003@{api.account['fax_domain']}"
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s:
        refused = s.send_message(_mail("Sender@Example.com", to, ("application/pdf", make_pdf(2), "doc.PDF")))
    assert refused == {}
    log = api.client.get(api.url("/smtplog")).json()["data"]
    row = next(r for r in log if r["to"] == to)
    entry = api.client.get(api.url(f"/smtplog/{row['id']}")).json()["data"]
    assert entry["outcome"] == "queued" and entry["translated_number"] == "15550300003"
    job = api.wait_status(entry["faxdoc_id"], timeout=90)
    assert job["status"] == "completed" and job["tx_result"]["pages_sent"] == 2
    assert job["subject"] == "fax by mail"
    mail.wait_for(lambda m: "sender@example.com" in [t.lower() for t in m["to"]])


def test_email_text_body_becomes_a_page(api):
    to = f"15550300004@{api.account['fax_domain']}"
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s:
        s.send_message(_mail("sender@example.com", to, None, body="Hello fax world\nsecond line\n"))
    row = next(r for r in api.client.get(api.url("/smtplog")).json()["data"] if r["to"] == to)
    entry = api.client.get(api.url(f"/smtplog/{row['id']}")).json()["data"]
    job = api.wait_status(entry["faxdoc_id"], timeout=90)
    assert job["status"] == "completed" and job["tx_result"]["pages_sent"] == 1


def test_email_refusals_get_smtp_errors_and_are_logged(api):
    domain = api.account["fax_domain"]
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            s.send_message(_mail("sender@example.com", "nonumber@" + domain, None))
        assert 554 in [v[0] for v in exc.value.recipients.values()]
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.send_message(_mail("sender@example.com", "15550001111@unknown.example", None))
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            s.send_message(_mail("sender@example.com", f"15550300005@{domain}",
                                 ("application/zip", b"PK\x03\x04zipzip", "a.zip"), body=" "))
        assert exc.value.smtp_code == 554 and b"no valid attachment" in exc.value.smtp_error
    log = api.client.get(api.url("/smtplog")).json()["data"]
    errors = {r["to"]: r["error"] for r in log}
    assert "is empty" in errors["nonumber@" + domain]
    assert errors[f"15550300005@{domain}"] == "no valid attachment"


def test_forward_really_sends_the_received_pages(api, inbound_fax):
    r = api.client.put(api.url(f"/inbox/{inbound_fax}"),
                       json={"action": "forward", "data": {"to_number": "15550400004", "from_number": "15550000000"}})
    assert r.status_code == 201, r.text
    new = r.json()["data"]
    assert new["id"] != inbound_fax and new["to_number"] == "15550400004" and new["attempts"] == 0
    assert "rx_result" not in new
    done = api.wait_status(new["id"], timeout=90)
    assert done["status"] == "completed" and done["tx_result"]["pages_sent"] == 2
    row = find_inbox(api, "15550000000", "15550400004")
    original = api.client.get(api.url(f"/inbox/{inbound_fax}/attachment"), params={"format": "tiff"}).content
    forwarded = api.client.get(api.url(f"/inbox/{row['id']}/attachment"), params={"format": "tiff"}).content
    for x, y in zip(tiff_pages(original), tiff_pages(forwarded), strict=True):
        assert np.array_equal(x, y)


def test_resubmit_copies_the_document(api, finished_job):
    r = api.client.put(api.url(f"/outbox/{finished_job}"), json={"action": "resubmit", "data": {"to_number":
                                                                                               "15550500005"}})
    assert r.status_code == 201, r.text
    new = r.json()["data"]
    assert new["id"] != finished_job and new["to_number"] == "15550500005"
    done = api.wait_status(new["id"], timeout=90)
    assert done["status"] == "completed", done
    # the 4.x outbox id form works as well
    created = time.gmtime(done["created"] - 62167219200)
    r = api.client.get(api.url(f"/outbox/{created.tm_year:04d}{created.tm_mon:02d}-{new['id']}"))
    assert r.status_code == 200 and r.json()["data"]["id"] == new["id"]
    r = api.client.get(api.url(f"/outbox/199001-{new['id']}"))
    assert r.status_code == 404


def test_bad_actions(api, finished_job):
    r = api.client.put(api.url(f"/outbox/{finished_job}"), json={"data": {}})
    assert r.status_code == 400 and "action" in r.json()["data"]
    r = api.client.put(api.url(f"/outbox/{finished_job}"), json={"action": "forward", "data": {}})
    assert r.status_code == 400 and r.json()["data"]["action"]["enum"]["message"] == "invalid action"


def test_tiff_upload_bare_body(api):
    buf = io.BytesIO()
    from imaging.convert import convert
    from imaging.tiff_f import write_tiff_f

    write_tiff_f(buf, list(convert(make_pdf(1))))
    r = api.client.put(api.url(), content=buf.getvalue(), headers={"Content-Type": "image/tiff"},
                       params={"from_number": "15550600006", "to_number": "15550700007"})
    assert r.status_code == 201, r.text
    done = api.wait_status(r.json()["data"]["id"], timeout=90)
    assert done["status"] == "completed" and done["tx_result"]["pages_sent"] == 1


def test_resubmit_without_a_document_left(api, finished_job):
    assert api.client.delete(api.url(f"/outbox/{finished_job}/attachment")).status_code == 200
    r = api.client.put(api.url(f"/outbox/{finished_job}"), json={"action": "resubmit", "data": {}})
    assert r.status_code == 500 and r.json()["message"] == "error when resubmitting fax"


def test_email_with_several_attachments_sends_them_all(api):
    from imaging.convert import convert
    from imaging.tiff_f import write_tiff_f

    tiff = io.BytesIO()
    write_tiff_f(tiff, list(convert(make_pdf(1, "tiff page"))))
    msg = _mail("sender@example.com", f"15550800008@{api.account['fax_domain']}",
                ("application/pdf", make_pdf(2), "two.pdf"))
    msg.add_attachment(tiff.getvalue(), maintype="application", subtype="octet-stream", filename="three.TIF")
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s:
        s.send_message(msg)
    row = next(r for r in api.client.get(api.url("/smtplog")).json()["data"]
               if r["to"].startswith("15550800008@"))
    entry = api.client.get(api.url(f"/smtplog/{row['id']}")).json()["data"]
    assert entry["content_type"] == "application/pdf,image/tiff"
    job = api.wait_status(entry["faxdoc_id"], timeout=90)
    assert job["status"] == "completed" and job["tx_result"]["pages_sent"] == 3


def test_email_over_the_size_limit_is_refused(api):
    big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 100)
    msg = _mail("sender@example.com", f"15550900009@{api.account['fax_domain']}", ("application/pdf", big, "b.pdf"))
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=30) as s, \
            pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected)) as exc:
        s.send_message(msg)
    if isinstance(exc.value, smtplib.SMTPDataError):
        assert exc.value.smtp_code == 552
