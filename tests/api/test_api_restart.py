"""Transmissions in progress (paced loopback, so a call lasts seconds): live progress, 409 on edits,
DELETE ends the call cleanly, and SIGKILL of the server mid-call loses nothing."""

from __future__ import annotations

import signal
import time

import pytest
from faxapi_helpers import Api, FaxServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paced(tmp_path_factory, mail):
    root = tmp_path_factory.mktemp("paced")
    srv = FaxServer(root, mail, extra_config="\n[channels.loopback]\npacing = true\n")
    srv.accounts = {"a": srv.cli("accounts", "create", "Paced")}
    srv.start()
    yield srv
    srv.stop()


def wait_in_call(api: Api, fax_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.job(fax_id)
        if job["status"] == "processing" and job.get("progress", {}).get("phase") in ("B", "C", "D"):
            return job
        assert job["status"] in ("pending", "processing"), job
        time.sleep(0.05)
    raise AssertionError("the call did not start")


def upload(api: Api, docs, **fields) -> str:  # noqa: ANN001, ANN003
    data = {"document": {"url": docs.url("/doc.pdf")}, "from_number": "15551000001", "to_number": "15552000002"}
    data.update(fields)
    return api.create(data)["id"]


def test_progress_conflicts_and_delete_during_transmission(paced, docs):
    api = Api(paced, paced.accounts["a"])
    fax_id = upload(api, docs, to_number="15552000003")
    job = wait_in_call(api, fax_id)
    assert job["progress"]["phase"] in ("B", "C", "D") and "speed" in job["progress"]
    listing = api.client.get(api.url("/outgoing")).json()["data"]
    assert next(r for r in listing if r["id"] == fax_id)["status"] == "processing"

    r = api.client.patch(api.url(f"/outgoing/{fax_id}"), json={"data": {"to_name": "x"}})
    assert r.status_code == 409 and r.json()["error"] == "409"
    r = api.client.post(api.url(f"/outgoing/{fax_id}"), json={"data": {"from_number": "1", "to_number": "22"}})
    assert r.status_code == 409

    r = api.client.delete(api.url(f"/outgoing/{fax_id}"))
    assert r.status_code == 200 and r.json()["data"]["_read_only"]["cancelled"] is True
    done = api.wait_status(fax_id, timeout=30)
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "cancelled" in done["tx_result"]["error_message"]
    # the receiving side saw the call end and recorded a failed reception, nothing in the inbox
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = api.client.get(api.url("/incoming"), params={"filter_to_number": "15552000003"}).json()["data"]
        if rows and rows[0]["status"] != "receiving":
            break
        time.sleep(0.1)
    assert rows[0]["status"] == "failed"
    assert api.client.get(api.url("/inbox"), params={"filter_to_number": "15552000003"}).json()["data"] == []


def test_delete_pending_job_cancels_it(paced, docs):
    api = Api(paced, paced.accounts["a"])
    busy = upload(api, docs, to_number="15552000009")
    wait_in_call(api, busy)
    queued = upload(api, docs, to_number="15552000009")   # same number: waits for the first call to end
    assert api.job(queued)["status"] == "pending"
    r = api.client.delete(api.url(f"/outgoing/{queued}"))
    assert r.status_code == 200 and r.json()["data"]["_read_only"]["deleted"] is True
    assert api.client.get(api.url(f"/outgoing/{queued}")).status_code == 404
    assert api.wait_status(busy, timeout=60)["status"] == "completed"
    store = paced.store()
    try:
        f = store.get_fax(queued, include_deleted=True)
        assert f.deleted and f.status == "pending" and f.attempts == 0   # never dialled
    finally:
        store.close()


def test_sigkill_mid_transmission_then_restart(paced, docs):
    api = Api(paced, paced.accounts["a"])
    others = [upload(api, docs, to_number=f"1555300000{i}", retries=2) for i in range(3)]
    fax_id = upload(api, docs, to_number="15552000005", retries=2)
    wait_in_call(api, fax_id)
    paced.stop(signal.SIGKILL)
    paced.start()
    api = Api(paced, paced.accounts["a"])
    first = api.job(fax_id)
    assert first["attempts"] >= 1
    done = api.wait_status(fax_id, ("completed",), timeout=90)
    assert done["attempts"] == 2 and done["tx_result"]["success"] is True
    for other in others:   # in the air or queued at the kill: all delivered after the restart
        assert api.wait_status(other, ("completed",), timeout=60)["tx_result"]["success"] is True
    # the reception cut by the kill is closed as failed, the retried one is in the inbox
    rows = api.client.get(api.url("/incoming"), params={"filter_to_number": "15552000005",
                                                        "paginate": "false"}).json()["data"]
    assert sorted(r["status"] for r in rows) == ["completed", "failed"]
    failed = next(r for r in rows if r["status"] == "failed")
    assert "interrupted" in failed["rx_result"]["error_message"]


def test_first_start_creates_a_default_account(tmp_path, mail):
    import json

    srv = FaxServer(tmp_path, mail)
    srv.start()
    try:
        info = json.loads((srv.data_dir / "default_account.json").read_text())
        api = Api(srv, info)
        assert api.client.get(api.url("/outgoing")).json()["data"] == []
    finally:
        srv.stop()
    srv.start()   # a second start keeps the same single account
    try:
        store = srv.store()
        try:
            assert store.count_accounts() == 1
        finally:
            store.close()
    finally:
        srv.stop()
