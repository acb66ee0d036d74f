"""Fixtures for the API tests: a `faxengine serve` process on 127.0.0.1 with a real SQLite file, a local
HTTP server with the documents, and an aiosmtpd server catching notification mail."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (str(HERE), str(HERE.parents[1])):
    if p not in sys.path:
        sys.path.insert(0, p)

from faxapi_helpers import Api, DocServer, FaxServer, MailSink, make_pdf  # noqa: E402


@pytest.fixture(scope="module")
def mail():
    sink = MailSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def docs():
    server = DocServer()
    server.files["/doc.pdf"] = ("application/pdf", make_pdf(1))
    server.files["/doc3.pdf"] = ("application/pdf", make_pdf(3))
    server.files["/corrupt.pdf"] = ("application/pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage\n")
    server.files["/noext"] = ("application/pdf", make_pdf(1))
    server.files["/big.pdf"] = ("application/pdf", b"%PDF-1.4\n" + b"0" * 3_100_000)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, mail):
    root = tmp_path_factory.mktemp("faxserver")
    srv = FaxServer(root, mail)
    srv.accounts = {
        "a": srv.cli("accounts", "create", "Account A", "--inbound-email", "inbox-a@test.localhost",
                     "--allow-sender", "sender@example.com"),
        "b": srv.cli("accounts", "create", "Account B"),
    }
    srv.accounts["child"] = srv.cli("accounts", "create", "Child of A", "--parent", srv.accounts["a"]["account_id"])
    srv.start()
    yield srv
    srv.stop()
    if os.environ.get("FAXENGINE_TEST_LOG"):
        print(srv.log_path.read_text())


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server, server.accounts["a"])


@pytest.fixture(scope="module")
def api_b(server) -> Api:
    return Api(server, server.accounts["b"])


@pytest.fixture(scope="module")
def api_child(server) -> Api:
    return Api(server, server.accounts["child"])


@pytest.fixture
def inbound_fax(api) -> str:
    """A reception recorded by the engine's inbound recorder into the server's store (2 pages)."""
    import asyncio

    from engine.inbound import InboundRecorder
    from engine.result import SessionResult
    from imaging.convert import convert

    pages = list(convert(make_pdf(2, "received")))
    store = api.server.store()
    try:
        rec = InboundRecorder(store)
        f = rec.begin(api.account_id, from_number="15557654321", to_number="15550001234", from_name="Remote",
                      channel="test")
        result = SessionResult(success=True, role="receive", pages_received=2, fax_speed=14400, ecm=True,
                               remote_ident="15557654321")
        asyncio.run(rec.finish(f.id, result, pages))
        return f.id
    finally:
        store.close()


@pytest.fixture
def finished_job(api) -> str:
    """An uploaded job that has been through the scheduler (converted, attempted, finished)."""
    r = api.client.put(api.url(), files=[
        ("content", ("fax.json", json.dumps({"data": {"from_number": "15551112222", "to_number": "15553334444"}}),
                     "application/json")),
        ("content", ("fax.pdf", make_pdf(1), "application/pdf"))])
    assert r.status_code == 201, r.text
    fax_id = r.json()["data"]["id"]
    api.wait_status(fax_id, timeout=120)
    return fax_id


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL URL: FAXENGINE_TEST_PG_URL, or a throwaway cluster; skipped only without the server
    binaries or psycopg (install the Debian package 'postgresql' and the 'pg' extra)."""
    url = os.environ.get("FAXENGINE_TEST_PG_URL", "")
    if url:
        yield url
        return
    from faxapi_pg import PgCluster, server_bin_dir

    if server_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries missing: apt-get install postgresql (or set FAXENGINE_TEST_PG_URL)")
    pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]' (the 'pg' extra)")
    cluster = PgCluster()
    try:
        yield cluster.url
    finally:
        cluster.stop()
