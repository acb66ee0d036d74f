"""The whole server on PostgreSQL (a throwaway cluster unless FAXENGINE_TEST_PG_URL is set): a fax made
over the API is delivered over the loopback channel and lands in the inbox, the listings page, and a
job left claimed by this node when its process is SIGKILLed is counted and retried after the restart."""

from __future__ import annotations

import os
import signal
import time

import pytest
from faxapi_helpers import Api, FaxServer, make_pdf


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory, mail, pg_url):
    srv = FaxServer(tmp_path_factory.mktemp("faxserver-pg"), mail, pg_url=pg_url)
    assert srv.storage_url.startswith("postgresql")
    srv.accounts = {"a": srv.cli("accounts", "create", "PG account")}
    srv.start()
    yield srv
    srv.stop()


def test_fax_delivered_on_postgresql(pg_server):
    api = Api(pg_server, pg_server.accounts["a"])
    r = api.client.put(api.url(), files=[
        ("content", ("fax.json", '{"data":{"from_number":"15551230001","to_number":"15551230002"}}',
                     "application/json")),
        ("content", ("fax.pdf", make_pdf(2), "application/pdf"))])
    assert r.status_code == 201, r.text
    fax_id = r.json()["data"]["id"]
    done = api.wait_status(fax_id, timeout=120)
    assert done["status"] == "completed" and done["tx_result"]["success"] is True
    assert done["tx_result"]["pages_sent"] == 2
    outbox = api.client.get(api.url("/outbox")).json()["data"]
    assert [row["id"] for row in outbox] == [fax_id]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inbox = api.client.get(api.url("/inbox")).json()["data"]
        if inbox:
            break
        time.sleep(0.1)
    assert len(inbox) == 1
    pdf = api.client.get(api.url(f"/inbox/{inbox[0]['id']}/attachment"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # keyset pagination on PostgreSQL's row comparison: pages of 2 walk the whole listing, newest first
    for i in range(4):
        api.create({"from_number": "1555123", "to_number": f"155512300{i}", "document": {"url": "http://x.invalid/"}})
    everything = api.client.get(api.url("/outgoing"), params={"paginate": "false"}).json()["data"]
    assert len(everything) == 5
    keys = [(row["created"], row["id"]) for row in everything]
    assert keys == sorted(keys, reverse=True)
    walked, params = [], {"page_size": 2}
    while True:
        page = api.client.get(api.url("/outgoing"), params=params).json()
        walked += [row["id"] for row in page["data"]]
        if "next_start_key" not in page:
            break
        params["start_key"] = page["next_start_key"]
    assert walked == [row["id"] for row in everything]


def test_store_survives_sigkill_on_postgresql(pg_server):
    api = Api(pg_server, pg_server.accounts["a"])
    store = pg_server.store()
    try:
        account = store.get_account(api.account_id)
        job = store.insert_fax(account.id, "out", "pending", {"from_number": "1", "to_number": "155599",
                                                                "retries": 2, "attempts": 0},
                               next_attempt=time.time() + 3600,
                               files={"original_file.pdf": ("application/pdf", make_pdf(1))})
        store.claim(job.id, os.uname().nodename)   # as if this node (default node_id) was sending it when it died
    finally:
        store.close()
    pg_server.stop(signal.SIGKILL)
    pg_server.start()
    done = api.wait_status(job.id, timeout=120)
    assert done["status"] == "completed" and done["attempts"] == 2   # the lost attempt counted, then retried
    assert "interrupted" not in done["tx_result"]["error_message"]
