"""Every curl example of the spec (shared/spec/faxes.md), run as written against a running server."""

from __future__ import annotations

import json
import subprocess

import pytest
from faxapi_helpers import CURL, make_pdf

pytestmark = pytest.mark.skipif(CURL is None, reason="curl not installed")

CREATE = ('{"data":{"document":{"url":"http://myserver.com/fax.pdf","method":"get"},"retries":3,'
          '"from_name":"Test Fax","from_number":"18884732963","to_name":"To Name","to_number":"18884732963"}}')
POST_BODY = ('{"data":{"attempts": 0,"document": {"method": "get","url": "http://myserver.com/fax.pdf"},'
             '"fax_timezone": "undefined","from_name": "Test Fax","from_number": "18884732963","key": "value",'
             '"retries": 3,"to_name": "To Name","to_number": "18884732963","tx_result": {"error_message": "",'
             '"fax_bad_rows": 0,"fax_error_correction": false,"fax_receiver_id": "","fax_speed": 0,"pages_sent": 0,'
             '"success": false,"time_elapsed": 0}}}')


def run_curl(api, *args: str, cwd=None) -> tuple[int, bytes, dict]:  # noqa: ANN001
    """curl exactly as the spec writes it, plus -s and a trailer with the HTTP status."""
    subst = [a.replace("{AUTH_TOKEN}", api.token).replace("http://{SERVER}:8000", api.server.base)
             .replace("{ACCOUNT_ID}", api.account_id) for a in args]
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}"] + subst, capture_output=True, timeout=30, cwd=cwd)
    body, _, code = out.stdout.rpartition(b"\n")
    try:
        parsed = json.loads(body) if body.strip().startswith(b"{") else {}
    except ValueError:
        parsed = {}
    return int(code), body, parsed


def url(path: str) -> str:
    return "http://{SERVER}:8000/v2/accounts/{ACCOUNT_ID}/faxes" + path


def test_create_json_then_fetch_patch_post_delete(api):
    code, _, resp = run_curl(api, "-v", "-X", "PUT", "-H", "X-Auth-Token: {AUTH_TOKEN}", "-d", CREATE, url(""))
    assert code == 201
    data = resp["data"]
    assert resp["status"] == "success" and resp["auth_token"] == api.token and resp["request_id"]
    assert resp["revision"].startswith("1-")
    for key, value in {"retries": 3, "from_name": "Test Fax", "from_number": "18884732963", "to_name": "To Name",
                       "to_number": "18884732963", "attempts": 0}.items():
        assert data[key] == value
    assert data["document"] == {"url": "http://myserver.com/fax.pdf", "method": "get"}
    assert data["tx_result"] == {"error_message": "", "fax_bad_rows": 0, "fax_error_correction": False,
                                 "fax_receiver_id": "", "fax_speed": 0, "pages_sent": 0, "success": False,
                                 "time_elapsed": 0}
    fax_id = data["id"]
    assert len(fax_id) == 32

    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url("/outgoing"))
    assert code == 200
    row = next(r for r in resp["data"] if r["id"] == fax_id)
    assert set(row) >= {"created", "from", "id", "status", "to"}
    assert row["from"] == "18884732963" and row["to"] == "18884732963"
    assert resp["page_size"] == len(resp["data"]) and "start_key" in resp

    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/outgoing/{fax_id}"))
    assert code == 200
    assert resp["data"]["id"] == fax_id and resp["data"]["created"] > 63_000_000_000
    assert resp["data"]["status"] in ("pending", "processing", "failed")

    # myserver.com cannot be fetched here: the job fails without dialling, with the reason.
    job = api.wait_status(fax_id, ("failed",))
    assert "document URL" in job["tx_result"]["error_message"] and job["attempts"] == 1

    code, _, resp = run_curl(api, "-v", "-X", "PATCH", "-H", "X-Auth-Token: {AUTH_TOKEN}", "-d",
                             '{"data":{"key":"value"}}', url(f"/outgoing/{fax_id}"))
    assert code == 200, resp
    assert resp["data"]["key"] == "value" and resp["data"]["attempts"] == 0
    assert resp["data"]["status"] in ("pending", "processing", "failed")
    assert resp["data"]["retries"] == 3 and resp["data"]["document"]["url"] == "http://myserver.com/fax.pdf"
    api.wait_status(fax_id, ("failed",))

    # The spec's POST example lacks the line-continuation before the URL; the URL is passed here.
    code, _, resp = run_curl(api, "-v", "-X", "POST", "-H", "X-Auth-Token: {AUTH_TOKEN}", "-d", POST_BODY,
                             url(f"/outgoing/{fax_id}"))
    assert code == 200, resp
    assert resp["data"]["key"] == "value" and resp["data"]["attempts"] == 0
    assert int(resp["revision"].split("-")[0]) >= 2
    api.wait_status(fax_id, ("failed",))

    code, _, resp = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/outgoing/{fax_id}"))
    assert code == 200 and resp["data"]["_read_only"]["deleted"] is True
    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/outgoing/{fax_id}"))
    assert code == 404 and resp["message"] == "bad_identifier" and resp["data"]["cause"] == fax_id


def test_create_multipart_mixed(api, tmp_path):
    (tmp_path / "fax.json").write_text(json.dumps({"data": {"from_number": "15551230000", "to_number": "15559870000",
                                                            "from_name": "Portal"}}))
    (tmp_path / "fax.pdf").write_bytes(make_pdf(2))
    code, body, resp = run_curl(api, "-v", "-X", "PUT", "-H", "Content-Type: multipart/mixed",
                                "-F", "content=@fax.json; type=application/json",
                                "-F", "content=@fax.pdf; type=application/pdf",
                                "-H", "X-Auth-Token: {AUTH_TOKEN}", url(""), cwd=tmp_path)
    assert code == 201, body
    fax_id = resp["data"]["id"]
    assert resp["data"]["from_name"] == "Portal" and "document" not in resp["data"]
    store = api.server.store()
    try:
        names = store.attachment_names(fax_id)
        assert names.get("original_file.pdf") == "application/pdf"
        assert store.get_attachment(fax_id, "original_file.pdf")[1] == (tmp_path / "fax.pdf").read_bytes()
    finally:
        store.close()


def test_put_outgoing_without_document_is_a_validation_error(api):
    code, _, resp = run_curl(api, "-v", "-X", "PUT", "-H", "X-Auth-Token: {AUTH_TOKEN}", url("/outgoing"))
    assert code == 400
    assert resp["error"] == "400" and resp["message"] == "validation error"
    assert resp["data"]["to_number"]["required"]["message"] == "Field is required but missing"
    assert "from_number" in resp["data"]


@pytest.mark.parametrize("folder", ["outbox", "incoming", "inbox", "smtplog"])
def test_folder_listings(api, folder):
    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/{folder}"))
    assert code == 200 and resp["status"] == "success" and isinstance(resp["data"], list)


def test_folder_documents_and_attachments(api, inbound_fax, finished_job):
    # outbox
    fid = finished_job
    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/outbox/{fid}"))
    assert code == 200 and resp["data"]["folder"] == "outbox" and resp["data"]["id"] == fid
    code, body, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/outbox/{fid}/attachment"))
    assert code == 200 and body.startswith(b"%PDF")
    code, _, resp = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/outbox/{fid}/attachment"))
    assert code == 200 and resp["data"]["_read_only"]["deleted"] is True
    code, _, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/outbox/{fid}/attachment"))
    assert code == 404
    code, _, resp = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/outbox/{fid}"))
    assert code == 200
    code, _, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/outbox/{fid}"))
    assert code == 404

    # inbox / incoming
    iid = inbound_fax
    for folder in ("inbox", "incoming"):
        code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/{folder}/{iid}"))
        assert code == 200 and resp["data"]["id"] == iid and resp["data"]["rx_result"]["pages_received"] == 2
        code, body, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                                 url(f"/{folder}/{iid}/attachment"))
        assert code == 200 and body.startswith(b"%PDF")
    code, _, resp = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                             url(f"/incoming/{iid}/attachment"))
    assert code == 200
    code, _, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                          url(f"/inbox/{iid}/attachment"))
    assert code == 404
    code, _, _ = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                          url(f"/inbox/{iid}/attachment"))
    assert code == 200
    code, _, _ = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/inbox/{iid}"))
    assert code == 200
    for folder in ("inbox", "incoming"):
        code, _, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/{folder}/{iid}"))
        assert code == 404


def test_incoming_delete(api, inbound_fax):
    code, _, _ = run_curl(api, "-v", "-X", "DELETE", "-H", "X-Auth-Token: {AUTH_TOKEN}",
                          url(f"/incoming/{inbound_fax}"))
    assert code == 200
    code, _, _ = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/incoming/{inbound_fax}"))
    assert code == 404


def test_smtplog_entry(api):
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "stranger@example.org"
    msg["To"] = f"15550001111@{api.account['fax_domain']}"
    msg["Subject"] = "not allowed"
    msg.set_content("hello")
    with smtplib.SMTP("127.0.0.1", api.server.smtp_port, timeout=10) as s, pytest.raises(smtplib.SMTPRecipientsRefused):
        s.send_message(msg)
    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url("/smtplog"))
    assert code == 200
    row = next(r for r in resp["data"] if r["from"] == "stranger@example.org")
    assert "not allowed" in row["error"]
    code, _, resp = run_curl(api, "-v", "-X", "GET", "-H", "X-Auth-Token: {AUTH_TOKEN}", url(f"/smtplog/{row['id']}"))
    assert code == 200 and resp["data"]["outcome"] == "refused" and resp["data"]["errors"]
