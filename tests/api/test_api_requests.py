"""Bad input, auth, account isolation, listings and edits against a running server."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from faxapi_helpers import make_pdf

BASE = {"from_number": "15550001000", "to_number": "15550002000"}


def put_raw(api, body: bytes, ctype: str | None = "application/json") -> httpx.Response:  # noqa: ANN001
    headers = {"Content-Type": ctype} if ctype else {}
    return api.client.put(api.url(), content=body, headers=headers)


# ------------------------------------------------------------------ bad input

def test_invalid_json(api):
    r = put_raw(api, b'{"data": {"to_number": ')
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and body["error"] == "400" and "invalid" in body["data"]["json"]
    r = put_raw(api, b"[1, 2]")
    assert r.status_code == 400


@pytest.mark.parametrize("data, path, rule", [
    ({"to_number": "15550002000"}, "from_number", "required"),
    ({**BASE, "retries": "abc"}, "retries", "type"),
    ({**BASE, "retries": 9}, "retries", "maximum"),
    ({**BASE, "document": {"url": "ftp://example.com/x.pdf"}}, "document.url", "pattern"),
    ({**BASE, "document": {"method": "get"}}, "document.url", "required"),
    ({**BASE, "document": {"url": "http://example.com/x.pdf", "method": "put"}}, "document.method", "enum"),
    ({**BASE, "document": {"url": "http://example.com/x.pdf", "content": "x" * 300}}, "document.content",
     "maxLength"),
    ({**BASE, "notifications": {"email": {"send_to": "not-an-email"}}}, "notifications.email.send_to", "format"),
    ({**BASE, "to_number": "call me"}, "to_number", "invalid"),
    ({**BASE, "to_number": 15550002000}, "to_number", "type"),
    (BASE, "document.url", "required"),
])
def test_schema_violations(api, data, path, rule):
    r = api.client.put(api.url(), json={"data": data})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["message"] == "validation error" and rule in body["data"][path], body["data"]
    assert "message" in body["data"][path][rule]


def test_unknown_channel_refused_at_create_and_update(api, docs):
    """A job naming a channel the server lacks is a validation error, not a fax on the default channel."""
    r = api.client.put(api.url(), json={"data": {**BASE, "document": {"url": docs.url("/doc.pdf")},
                                                 "channel": "sip:carrier"}})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "error" and body["message"] == "validation error"
    assert body["data"]["channel"]["enum"]["value"] == "sip:carrier"
    assert body["data"]["channel"]["enum"]["target"] == ["loopback"]
    r = api.client.put(api.url(), json={"data": {**BASE, "document": {"url": docs.url("/doc.pdf")}, "channel": 7}})
    assert r.status_code == 400 and "type" in r.json()["data"]["channel"], r.text
    job = api.create({**BASE, "document": {"url": docs.url("/doc.pdf")}, "channel": "loopback"})
    assert api.wait_status(job["id"])["status"] == "completed"
    for method in (api.client.patch, api.client.post):
        r = method(api.url(f"/outgoing/{job['id']}"), json={"data": {
            **BASE, "document": {"url": docs.url("/doc.pdf")}, "channel": "sip:carrier"}})
        assert r.status_code == 400, r.text
        assert r.json()["data"]["channel"]["enum"]["value"] == "sip:carrier"
    kept = api.job(job["id"])
    assert kept["channel"] == "loopback" and kept["status"] == "completed"


def test_coercion_unknown_fields_kept_private_dropped(api, docs):
    data = {**BASE, "retries": "2", "document": {"url": docs.url("/doc.pdf"), "method": "GET"},
            "custom": {"nested": [1, 2]}, "pvt_job_status": "completed", "_id": "x", "id": "mine",
            "to_number": "+1 (555) 000-2000"}
    r = api.client.put(api.url(), json={"data": data})
    assert r.status_code == 201, r.text
    job = r.json()["data"]
    assert job["retries"] == 2 and job["custom"] == {"nested": [1, 2]} and job["document"]["method"] == "get"
    assert job["to_number"] == "+15550002000" and job["id"] != "mine"
    assert "pvt_job_status" not in job and "_id" not in job
    assert api.job(job["id"])["custom"] == {"nested": [1, 2]}


def test_oversize_body(api):
    r = put_raw(api, b"%PDF-1.4\n" + b"0" * 4_100_000, "application/pdf")
    assert r.status_code == 413 and r.json()["error"] == "413"


def test_unsupported_media_types(api):
    assert put_raw(api, b"a,b\n1,2\n", "text/csv").status_code == 415
    r = api.client.put(api.url(), files=[
        ("content", ("fax.json", json.dumps({"data": BASE}), "application/json")),
        ("content", ("x.zip", b"PK\x03\x04" + b"\x00" * 64, "application/zip"))])
    assert r.status_code == 415 and "unsupported document type" in r.json()["data"]["message"]
    r = api.client.patch(api.url("/outgoing/" + "0" * 32), content=b"x", headers={"Content-Type": "text/csv"})
    assert r.status_code in (404, 415)


def test_multipart_form_data_and_bare_pdf(api):
    r = api.client.put(api.url(), data={"data": json.dumps(BASE)}, files={"file": ("f.pdf", make_pdf(1),
                                                                                    "application/pdf")})
    # form-data with a JSON "data" field is not the spec's shape; the JSON part is what counts
    assert r.status_code in (201, 400)
    r = api.client.put(api.url(), files=[("json", ("fax.json", json.dumps({"data": BASE}), "application/json")),
                                         ("file", ("f.pdf", make_pdf(1), "application/pdf"))])
    assert r.status_code == 201, r.text
    r = api.client.put(api.url(), content=make_pdf(1), headers={"Content-Type": "application/pdf"})
    assert r.status_code == 400 and "to_number" in r.json()["data"]     # no fields: Kazoo's answer
    r = api.client.put(api.url(), content=make_pdf(1), headers={"Content-Type": "application/pdf"}, params=BASE)
    assert r.status_code == 201


@pytest.mark.parametrize("path, needle", [
    ("/missing.pdf", "http response 404"),
    ("/corrupt.pdf", "can not convert"),
    ("/big.pdf", "byte limit"),
    ("/redirect/9", "redirects"),
])
def test_bad_documents_fail_the_job_with_the_reason(api, docs, path, needle):
    job = api.create({**BASE, "document": {"url": docs.url(path)}, "retries": 3})
    done = api.wait_status(job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1, done
    assert needle in done["tx_result"]["error_message"]
    assert done["tx_result"]["pages_sent"] == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "169.254.169.254", "10.1.2.3"])
def test_private_destinations_refused(api, docs, host):
    job = api.create({**BASE, "document": {"url": f"http://{host}:{docs.port}/doc.pdf"}})
    done = api.wait_status(job["id"])
    assert done["status"] == "failed" and "refused" in done["tx_result"]["error_message"]
    assert not any(r["path"] == "/doc.pdf" and r["headers"].get("Host", "").startswith(host.strip("[]"))
                   for r in docs.requests if host == "127.0.0.1")


def test_redirects_within_limit_and_post_fetch(api, docs):
    job = api.create({**BASE, "document": {"url": docs.url("/redirect/2")}})
    assert api.wait_status(job["id"])["status"] == "completed"
    job = api.create({**BASE, "document": {"url": docs.url("/doc.pdf"), "method": "post", "content": "id=42",
                                           "content_type": "application/x-www-form-urlencoded",
                                           "referer": "http://portal.example/", "host": f"localhost:{docs.port}"}})
    assert api.wait_status(job["id"])["status"] == "completed"
    req = next(r for r in reversed(docs.requests) if r["method"] == "POST")
    assert req["body"] == b"id=42" and req["headers"]["Referer"] == "http://portal.example/"
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_corrupt_upload_fails_without_disturbing_others(api, docs):
    r = api.client.put(api.url(), files=[("c", ("fax.json", json.dumps({"data": BASE}), "application/json")),
                                         ("c", ("bad.pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf"))])
    assert r.status_code == 201
    good = api.create({**BASE, "document": {"url": docs.url("/doc.pdf")}})
    bad = api.wait_status(r.json()["data"]["id"])
    assert bad["status"] == "failed" and "can not convert" in bad["tx_result"]["error_message"]
    assert api.wait_status(good["id"])["status"] == "completed"


# ------------------------------------------------------------------ auth and isolation

def test_no_route_without_a_valid_token(server, api):
    paths = [api.url(), api.url("/outgoing"), api.url("/inbox"), api.url("/smtplog"), "/v2/whatever", "/",
             "/docs", "/openapi.json"]
    for path in paths:
        for method in ("GET", "PUT", "DELETE"):
            r = httpx.request(method, server.base + path, timeout=10)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"] == "401" and r.json()["auth_token"] == "undefined"
    r = httpx.get(server.base + api.url("/outgoing"), headers={"X-Auth-Token": "f" * 64}, timeout=10)
    assert r.status_code == 401


def test_token_forms_and_expiry(server, api):
    url = server.base + api.url("/outgoing")
    assert httpx.get(url, headers={"Authorization": f"Bearer {api.token}"}).status_code == 200
    assert httpx.get(url, params={"auth_token": api.token}).status_code == 200
    store = server.store()
    try:
        token, _ = store.create_token(api.account_id, -1)   # already expired
    finally:
        store.close()
    assert httpx.get(url, headers={"X-Auth-Token": token}).status_code == 401


def test_api_auth_errors(server):
    r = httpx.put(server.base + "/v2/api_auth", json={"data": {"api_key": "nope"}})
    assert r.status_code == 404 and r.json()["message"] == "bad identifier"
    r = httpx.put(server.base + "/v2/api_auth", json={"data": {}})
    assert r.status_code == 400 and "api_key" in r.json()["data"]
    r = httpx.put(server.base + "/v2/api_auth", content=b"{bad")
    assert r.status_code == 400


def test_accounts_are_isolated(api, api_b, api_child, docs):
    job = api.create({**BASE, "document": {"url": docs.url("/doc.pdf")}})
    # B asking under A's account: forbidden; under its own account: unknown id
    r = api_b.client.get(api_b.url(f"/outgoing/{job['id']}", account_id=api.account_id))
    assert r.status_code == 403 and r.json()["message"] == "forbidden"
    r = api_b.client.get(api_b.url(f"/outgoing/{job['id']}"))
    assert r.status_code == 404 and r.json()["message"] == "bad_identifier"
    assert api_b.client.delete(api_b.url(f"/outgoing/{job['id']}")).status_code == 404
    assert api_b.client.put(api_b.url(account_id=api.account_id), json={"data": BASE}).status_code == 403
    # the child cannot reach its parent; the parent reaches its child
    assert api_child.client.get(api_child.url("/outgoing", account_id=api.account_id)).status_code == 403
    child_job = api_child.create({**BASE, "document": {"url": docs.url("/doc.pdf")}})
    r = api.client.get(api.url(f"/outgoing/{child_job['id']}", account_id=api_child.account_id))
    assert r.status_code == 200
    rows = api.client.get(api.url("/outgoing", account_id=api_child.account_id)).json()["data"]
    assert [row["id"] for row in rows] == [child_job["id"]]
    assert child_job["id"] not in [row["id"] for row in api.client.get(api.url("/outgoing")).json()["data"]]


# ------------------------------------------------------------------ listings

def test_pagination_newest_first(api_b, docs):
    ids = [api_b.create({**BASE, "to_number": f"1555777000{i}", "document": {"url": docs.url("/doc.pdf")}})["id"]
           for i in range(7)]
    seen, key, pages = [], None, 0
    while True:
        params = {"page_size": 3}
        if key:
            params["start_key"] = key
        body = api_b.client.get(api_b.url("/outgoing"), params=params).json()
        assert body["page_size"] == len(body["data"]) <= 3
        seen += [r["id"] for r in body["data"]]
        pages += 1
        key = body.get("next_start_key")
        if not key:
            break
    assert pages == 3 and sorted(seen) == sorted(set(seen)) and set(ids) <= set(seen)
    created = [api_b.job(i)["created"] for i in seen]
    assert created == sorted(created, reverse=True)
    everything = api_b.client.get(api_b.url("/outgoing"), params={"paginate": "false"}).json()
    assert "page_size" not in everything and len(everything["data"]) == len(seen)
    asc = api_b.client.get(api_b.url("/outgoing"), params={"ascending": "true", "paginate": "false"}).json()
    assert [r["id"] for r in asc["data"]] == list(reversed(seen))


def test_listing_parameters(api_b):
    for bad in ("0", "-1", "x"):
        r = api_b.client.get(api_b.url("/outgoing"), params={"page_size": bad})
        assert r.status_code == 404 and r.json()["message"] == "faulty_request"
    r = api_b.client.get(api_b.url("/outbox"), params={"created_from": 63900000000, "created_to": 63800000000})
    assert r.status_code == 400 and "date_range" in r.json()["data"]["created_from"]
    future = int(time.time()) + 62167219200 + 86400
    assert api_b.client.get(api_b.url("/outgoing"), params={"created_from": future}).json()["data"] == []
    past = api_b.client.get(api_b.url("/outgoing"), params={"created_to": future, "paginate": "false"}).json()
    assert past["data"]
    one = api_b.client.get(api_b.url("/outgoing"), params={"filter_to_number": "15557770003"}).json()["data"]
    assert [r["to"] for r in one] == ["15557770003"]
    none = api_b.client.get(api_b.url("/outgoing"), params={"filter_not_from_number": BASE["from_number"]})
    assert none.json()["data"] == []
    assert api_b.client.get(api_b.url("/outgoing"), params={"start_key": "!!"}).status_code == 404
    r = api_b.client.get(api_b.url("/outgoing"), headers={"X-Request-ID": "req-123"})
    assert r.json()["request_id"] == "req-123" and r.headers["x-request-id"] == "req-123"
    assert r.headers["etag"].strip('"') == r.json()["revision"]


def test_methods_not_allowed(api):
    assert api.client.get(api.url()).status_code == 405
    r = api.client.delete(api.url("/smtplog"))
    assert r.status_code == 405 and r.json()["message"] == "invalid_method"
    assert api.client.post(api.url("/outbox/" + "0" * 32)).status_code == 405
    assert api.client.get(api.url("/nothing")).status_code == 404


# ------------------------------------------------------------------ edits

def test_post_replaces_and_patch_merges(api, docs):
    job = api.create({**BASE, "document": {"url": docs.url("/doc.pdf")}, "to_name": "Old", "custom": 1})
    first = api.wait_status(job["id"])
    assert first["status"] == "completed" and first["attempts"] == 1
    r = api.client.patch(api.url(f"/outgoing/{job['id']}"), json={"data": {"to_name": None, "extra": "x"}})
    assert r.status_code == 200
    patched = r.json()["data"]
    assert "to_name" not in patched and patched["extra"] == "x" and patched["custom"] == 1
    assert patched["attempts"] == 0 and patched["status"] in ("pending", "processing")
    assert api.wait_status(job["id"])["attempts"] == 1
    r = api.client.post(api.url(f"/outgoing/{job['id']}"), json={"data": {**BASE, "document": {
        "url": docs.url("/doc3.pdf")}}})
    assert r.status_code == 200
    posted = r.json()["data"]
    assert "custom" not in posted and "extra" not in posted and posted["attempts"] == 0
    done = api.wait_status(job["id"])
    assert done["status"] == "completed" and done["tx_result"]["pages_sent"] == 3   # the new document
    r = api.client.post(api.url(f"/outgoing/{job['id']}"), json={"data": {"to_number": "1"}})
    assert r.status_code == 400 and "from_number" in r.json()["data"]


def test_attachment_formats_and_etag(api, finished_job):
    pdf = api.client.get(api.url(f"/outbox/{finished_job}/attachment"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment; filename=fax_document_")
    assert ":" not in pdf.headers["content-disposition"]
    tiff = api.client.get(api.url(f"/outbox/{finished_job}/attachment"), params={"format": "tiff"})
    assert tiff.content[:4] == b"II*\x00"
    original = api.client.get(api.url(f"/outbox/{finished_job}/attachment"), params={"format": "original"})
    assert original.content.startswith(b"%PDF") and original.content != pdf.content
    again = api.client.get(api.url(f"/outbox/{finished_job}/attachment"),
                           headers={"If-None-Match": pdf.headers["etag"]})
    assert again.status_code == 304
    bad = api.client.get(api.url(f"/outbox/{finished_job}/attachment"), params={"format": "doc"})
    assert bad.status_code == 400


def test_gets_answer_while_a_write_waits_on_the_store(api, docs):
    """A request stuck on the store (here: another process holds SQLite's write lock) waits on a worker
    thread; GETs on the same server keep answering meanwhile (on the event loop it would stall them all)."""
    import sqlite3
    import threading

    if not api.server.storage_url.startswith("sqlite"):
        pytest.skip("the lock is taken on the SQLite file")
    known = api.create({**BASE, "document": {"url": docs.url("/doc.pdf")}})
    other = sqlite3.connect(api.server.storage_url.split("///", 1)[1], isolation_level=None, timeout=30)
    other.execute("BEGIN IMMEDIATE")
    put: dict = {}

    def create() -> None:
        with httpx.Client(base_url=api.server.base, headers={"X-Auth-Token": api.token}, timeout=60) as client:
            put["r"] = client.put(api.url(), json={"data": {**BASE, "document": {"url": docs.url("/doc.pdf")}}})
    writer = threading.Thread(target=create)
    try:
        writer.start()
        writer.join(0.5)
        with httpx.Client(base_url=api.server.base, headers={"X-Auth-Token": api.token}, timeout=10) as client:
            listing = client.get(api.url("/outgoing"), params={"page_size": 5})
            one = client.get(api.url(f"/outgoing/{known['id']}"))
        assert listing.status_code == 200 and one.status_code == 200, (listing.text, one.text)
        assert writer.is_alive() and "r" not in put   # the create really was waiting on the lock
    finally:
        other.rollback()
        other.close()
    writer.join(60)
    assert put["r"].status_code == 201, put["r"].text


def test_auth_token_in_the_envelope_and_verb_tunnelling(server, api, docs):
    """crossbar's request values: auth_token in the JSON body (also sent form-encoded by curl -d), and a
    POST carrying ``verb`` (query or envelope) handled as that verb."""
    url = server.base + api.url()
    data = {**BASE, "document": {"url": docs.url("/doc.pdf")}}
    r = httpx.put(url, json={"data": data, "auth_token": api.token}, timeout=10)
    assert r.status_code == 201 and r.json()["auth_token"] == api.token, r.text
    r = httpx.put(url, content=json.dumps({"data": data, "auth_token": api.token}).encode(), timeout=10,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    r = httpx.put(url, json={"data": data, "auth_token": "f" * 64}, timeout=10)
    assert r.status_code == 401
    r = httpx.put(url, json={"data": data, "auth_token": "f" * 64}, headers={"X-Auth-Token": api.token}, timeout=10)
    assert r.status_code == 201   # the header comes first
    # verb tunnelling
    r = api.client.post(api.url("/outgoing"), params={"verb": "PUT"}, json={"data": data})
    assert r.status_code == 201, r.text
    tunnelled = r.json()["data"]["id"]
    r = api.client.post(api.url("/outgoing"), json={"data": data, "verb": "put"})
    assert r.status_code == 201, r.text
    for _ in range(300):   # 409 while the job is on the line: try again after
        r = api.client.post(api.url(f"/outgoing/{tunnelled}"), json={"data": {"to_name": "X"}, "verb": "PATCH"})
        if r.status_code != 409:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.json()["data"]["to_name"] == "X", r.text
    r = httpx.post(server.base + api.url(f"/outgoing/{tunnelled}"), params={"verb": "DELETE"},
                   json={"auth_token": api.token}, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["_read_only"], r.text
    r = httpx.post(server.base + "/v2/api_auth", params={"verb": "PUT"}, json={"data": {"api_key": api.api_key}})
    assert r.status_code == 201 and r.json()["auth_token"]
    r = api.client.post(api.url("/smtplog"), json={"verb": "DELETE"})
    assert r.status_code == 405 and r.json()["message"] == "invalid_method"


def test_folder_listing_range_is_capped(api):
    now = int(time.time()) + 62167219200
    for path in ("/outbox", "/inbox", "/incoming", "/smtplog"):
        r = api.client.get(api.url(path), params={"created_from": now - 40 * 86400})
        assert r.status_code == 400, (path, r.text)
        err = r.json()["data"]["created_from"]["date_range"]
        assert "more than 2682000 seconds from created_from" in err["message"]
        r = api.client.get(api.url(path), params={"created_from": now - 50 * 86400, "created_to": now - 40 * 86400})
        assert r.status_code == 200, (path, r.text)
    # on outgoing created_* are plain filters
    assert api.client.get(api.url("/outgoing"), params={"created_from": now - 400 * 86400}).status_code == 200


def test_smtp_sessions_are_limited(server):
    """Kazoo's fax_smtp: at most 50 sessions; one more gets 421 and is closed; a freed slot is reused."""
    import socket

    def connect() -> tuple[socket.socket, bytes]:
        s = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=10)
        return s, s.recv(512)
    held = []
    try:
        for _ in range(50):
            s, greeting = connect()
            held.append(s)
            assert greeting.startswith(b"220"), greeting
        extra, greeting = connect()
        assert greeting.startswith(b"421") and b"too busy" in greeting
        assert extra.recv(512) == b""   # closed by the server
        extra.close()
        held.pop().close()
        for _ in range(50):   # the freed slot comes back once the server has seen the close
            s, greeting = connect()
            if greeting.startswith(b"220"):
                held.append(s)
                break
            s.close()
            time.sleep(0.05)
        assert greeting.startswith(b"220"), greeting
    finally:
        for s in held:
            s.close()


def test_attachment_accept_header_and_inline(api, finished_job):
    url = api.url(f"/outbox/{finished_job}/attachment")
    tiff = api.client.get(url, headers={"Accept": "image/tiff"})
    assert tiff.status_code == 200 and tiff.headers["content-type"] == "image/tiff" and tiff.content[:4] == b"II*\x00"
    assert tiff.headers["content-disposition"].endswith(".tiff")
    both = api.client.get(url, headers={"Accept": "application/pdf, image/tiff"})
    assert both.content.startswith(b"%PDF")
    inline = api.client.get(url, params={"disposition": "inline"})
    assert inline.headers["content-disposition"].startswith("inline; filename=fax_document_")
    assert inline.headers["etag"] == tiff.headers["etag"] and inline.headers["etag"].strip('"')


def test_modified_range_filters(api, docs):
    job = api.create({**BASE, "to_number": "15550003131", "document": {"url": docs.url("/doc.pdf")}})
    done = api.wait_status(job["id"])
    store = api.server.store()
    try:
        modified = store.get_fax(job["id"]).modified
    finally:
        store.close()
    assert done["status"] == "completed"

    def ids(path: str, **params) -> list[str]:  # noqa: ANN003
        r = api.client.get(api.url(path), params={"paginate": "false", **params})
        assert r.status_code == 200, r.text
        return [row["id"] for row in r.json()["data"]]
    for path in ("/outgoing", "/outbox"):
        assert job["id"] in ids(path, modified_from=modified, modified_to=modified)
        assert job["id"] not in ids(path, modified_from=modified + 1)
        assert job["id"] not in ids(path, modified_to=modified - 1)
    r = api.client.get(api.url("/outgoing"), params={"modified_from": "yesterday"})
    assert r.status_code == 400 and "modified_from" in r.json()["data"]
