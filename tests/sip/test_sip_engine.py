"""The SIP channel inside `faxengine serve`: two engine processes configured by one TOML file each,
faxes created over the API go out over SIP + T.38 and land in the owning account's inbox; unknown
DIDs get 404; a far end refusing T.38 (a real pjsua2 endpoint) fails the job with that reason;
/v2/health and `faxengine sip status` show trunk registrations (through a real Kamailio)."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest
from sip_helpers import HERE, free_udp_port

API_TESTS = HERE.parent / "api"
if str(API_TESTS) not in sys.path:
    sys.path.insert(0, str(API_TESTS))

from faxapi_helpers import FAXENGINE, REPO, Api, DocServer, FaxServer, free_port, make_pdf  # noqa: E402
from test_sip_kamailio import kamailio  # noqa: E402, F401 - the Kamailio fixture of tests/sip

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _no_mail() -> SimpleNamespace:
    return SimpleNamespace(port=free_port())   # nobody listens: these accounts have no notification addresses


def _start_pjsua(port: int) -> subprocess.Popen | None:
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        return None
    proc = subprocess.Popen([sys.executable, str(HERE / "pjsua_peer.py"), str(port), "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("READY"):
            break
    return proc


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Engine B answers SIP on its port for account 'Receiver' (number 2002); engine A sends over trunk
    'peer' (to B) by default, and has a trunk 'refuser' whose far end answers 488 to T.38."""
    docs = DocServer()
    docs.files["/doc2.pdf"] = ("application/pdf", make_pdf(2, "sip trunk page"))
    port_a, port_b, port_pj = free_udp_port(), free_udp_port(), free_udp_port()
    pj = _start_pjsua(port_pj)
    uas = None
    if pj is None:   # without pjsua2: a scripted UAS answering 488 to the image re-INVITE
        from sip_helpers import ScriptedUas

        uas = ScriptedUas(lambda req: (488, "Not Acceptable Here", ""))
        port_pj = uas.port
    b = FaxServer(tmp_path_factory.mktemp("sip_b"), _no_mail(), extra_config=f"""
[channels.sip]
pacing = false

[sip]
port = {port_b}
""")
    a = FaxServer(tmp_path_factory.mktemp("sip_a"), _no_mail(), extra_config=f"""
[channels.sip]
pacing = false
trunk = "peer"

[sip]
port = {port_a}

[sip.trunks.peer]
proxy = "127.0.0.1:{port_b}"
t38_request_as_caller = 0.5

[sip.trunks.refuser]
proxy = "127.0.0.1:{port_pj}"
t38_request_as_caller = 0.3
retry_on_t38_refused = false
""")
    b.accounts = {"rx": b.cli("accounts", "create", "Receiver", "--number", "+2002")}
    a.accounts = {"tx": a.cli("accounts", "create", "Sender")}
    started = []
    try:
        for srv in (b, a):
            srv.start()
            started.append(srv)
        yield SimpleNamespace(a=a, b=b, api_a=Api(a, a.accounts["tx"]), api_b=Api(b, b.accounts["rx"]), docs=docs,
                              port_a=port_a, port_b=port_b, pjsua=pj is not None)
    finally:
        for srv in started:
            srv.stop()
        docs.stop()
        if pj is not None:
            pj.kill()
            pj.wait(5)
        if uas is not None:
            uas.close()


def _inbox(api: Api) -> list[dict]:
    r = api.client.get(api.url("/inbox"))
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _wait_inbox(api: Api, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _inbox(api)
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"inbox still has {len(_inbox(api))} fax(es)")


def test_api_fax_goes_out_over_sip_and_lands_in_the_owning_accounts_inbox(engines):
    api_a, api_b = engines.api_a, engines.api_b
    job = api_a.create({"document": {"url": engines.docs.url("/doc2.pdf")}, "from_number": "15550100001",
                        "to_number": "2002", "retries": 1})
    done = api_a.wait_status(job["id"], timeout=120)
    tx = done["tx_result"]
    assert done["status"] == "completed", tx
    assert tx["success"] is True and tx["pages_sent"] == 2, tx
    rows = _wait_inbox(api_b, 1)
    r = api_b.client.get(api_b.url(f"/inbox/{rows[0]['id']}"))
    assert r.status_code == 200, r.text
    fax = r.json()["data"]
    assert fax["rx_result"]["success"] is True and fax["rx_result"]["pages_received"] == 2, fax
    assert fax["to_number"] == "2002" and fax["from_number"] == "15550100001", fax
    r = api_b.client.get(api_b.url(f"/inbox/{rows[0]['id']}/attachment"), headers={"Accept": "image/tiff"})
    assert r.status_code == 200
    from PIL import Image

    with Image.open(io.BytesIO(r.content)) as tiff:
        assert tiff.n_frames == 2


def test_call_to_a_number_no_account_owns_is_refused_404(engines):
    """Through engine A's API: the far engine answers 404, the job fails at once with 'number not found'."""
    api_a = engines.api_a
    job = api_a.create({"document": {"url": engines.docs.url("/doc2.pdf")}, "from_number": "15550100001",
                        "to_number": "9999", "retries": 3})
    done = api_a.wait_status(job["id"], timeout=60)
    tx = done["tx_result"]
    assert done["status"] == "failed", done
    assert tx["success"] is False and tx["error_message"].startswith("number not found (SIP 404"), tx
    assert done["attempts"] == 1    # not retryable
    r = engines.api_b.client.get(engines.api_b.url("/incoming"))
    assert all(f.get("to_number") != "9999" for f in r.json()["data"])


def test_far_end_refusing_t38_fails_the_job_with_remote_refused_t38(engines):
    api_a = engines.api_a
    job = api_a.create({"document": {"url": engines.docs.url("/doc2.pdf")}, "from_number": "15550100001",
                        "to_number": "3003", "retries": 3, "channel": "sip:refuser"})
    done = api_a.wait_status(job["id"], timeout=90)
    tx = done["tx_result"]
    assert done["status"] == "failed", done
    assert tx["error_message"].startswith("remote refused T.38 (SIP 488"), tx
    assert tx["result_code"] == "t38_refused"
    assert done["attempts"] == 1    # retry_on_t38_refused = false for this trunk


def test_job_naming_an_unknown_trunk_is_refused(engines):
    """``sip:carrier`` is no trunk of engine A: 400 validation error listing the channels it has."""
    api_a = engines.api_a
    r = api_a.client.put(api_a.url(), json={"data": {
        "document": {"url": engines.docs.url("/doc2.pdf")}, "from_number": "15550100001", "to_number": "2002",
        "channel": "sip:carrier"}})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["message"] == "validation error"
    enum = body["data"]["channel"]["enum"]
    assert enum["value"] == "sip:carrier" and {"sip", "sip:peer", "sip:refuser"} <= set(enum["target"])


def test_health_shows_the_sip_endpoint_and_trunks(engines):
    r = httpx.get(engines.a.base + "/v2/health", timeout=10)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "ok"
    assert data["sip"]["running"] is True
    assert data["sip"]["listening"] == f"127.0.0.1:{engines.port_a}"
    assert data["sip"]["registrations"] == {}
    assert data["channels"]["sip"]["trunk"] == "peer"
    assert data["channels"]["sip:refuser"]["registration"] == "not registering"
    out = subprocess.run(FAXENGINE + ["sip", "status", "--url", engines.a.base], cwd=REPO, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"listening on 127.0.0.1:{engines.port_a}" in out.stdout
    assert "trunk peer: not registering" in out.stdout


def test_registration_state_in_health_and_cli_through_kamailio(tmp_path, kamailio):  # noqa: F811
    port = free_udp_port()
    srv = FaxServer(tmp_path, _no_mail(), extra_config=f"""
[sip]
port = {port}

[sip.trunks.kam]
registrar = "127.0.0.1:{kamailio}"
domain = "127.0.0.1"
username = "1001"
password = "secret"
register = true

[sip.trunks.wrong]
registrar = "127.0.0.1:{kamailio}"
domain = "127.0.0.1"
username = "2002"
password = "not-the-password"
register = true
""")
    srv.start()
    try:
        deadline = time.monotonic() + 20
        regs: dict = {}
        while time.monotonic() < deadline:
            data = httpx.get(srv.base + "/v2/health", timeout=10).json()["data"]
            regs = data["sip"]["registrations"]
            if regs.get("kam", {}).get("state") == "registered" and regs.get("wrong", {}).get("state") == "failed":
                break
            time.sleep(0.2)
        assert regs["kam"]["state"] == "registered", regs
        assert regs["kam"]["expires_at"] > time.time()
        assert regs["wrong"]["state"] == "failed" and regs["wrong"]["code"] in (401, 403), regs
        assert data["status"] == "degraded"
        assert data["channels"]["sip:kam"]["registration"] == "registered"
        cli_config = tmp_path / "cli.toml"     # the server got --port on its command line; the CLI reads a file
        cli_config.write_text(f"[server]\nhost = \"127.0.0.1\"\nport = {srv.port}\n")
        out = subprocess.run(FAXENGINE + ["sip", "status", "--config", str(cli_config)], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, out.stdout + out.stderr      # one trunk failed
        assert "trunk kam: registered" in out.stdout
        assert "trunk wrong: failed" in out.stdout
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "trunk kam: registration registered" not in srv.log_path.read_text():
            time.sleep(0.2)
    finally:
        srv.stop()
    log = srv.log_path.read_text()
    assert "trunk kam: registration registered" in log
    assert "trunk wrong: registration failed (401" in log


def _kam_engine(root, kamailio: int, user: str, password: str) -> FaxServer:  # noqa: F811
    root.mkdir(parents=True, exist_ok=True)
    return FaxServer(root, _no_mail(), extra_config=f"""
[channels.sip]
pacing = false

[sip]
port = {free_udp_port()}

[sip.trunks.kam]
registrar = "127.0.0.1:{kamailio}"
proxy = "127.0.0.1:{kamailio}"
domain = "127.0.0.1"
username = "{user}"
password = "{password}"
register = true
t38_request_as_caller = 0.5
""")


def test_fax_between_two_engines_registered_at_kamailio_routed_by_number(tmp_path, kamailio):  # noqa: F811
    """Both engines register with digest auth; A's job to 2002 goes through Kamailio (proxy auth, lookup by
    number) to B, whose account owns 2002."""
    a = _kam_engine(tmp_path / "a", kamailio, "1001", "secret")
    b = _kam_engine(tmp_path / "b", kamailio, "2002", "hunter2")
    a.accounts = {"tx": a.cli("accounts", "create", "Sender")}
    b.accounts = {"rx": b.cli("accounts", "create", "Receiver", "--number", "2002")}
    docs = DocServer()
    docs.files["/doc1.pdf"] = ("application/pdf", make_pdf(1, "through kamailio"))
    started = []
    try:
        for srv in (b, a):
            srv.start()
            started.append(srv)
        for srv in (a, b):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                reg = httpx.get(srv.base + "/v2/health", timeout=10).json()["data"]["sip"]["registrations"]["kam"]
                if reg["state"] in ("registered", "failed"):
                    break
                time.sleep(0.2)
            assert reg["state"] == "registered", reg
        api_a, api_b = Api(a, a.accounts["tx"]), Api(b, b.accounts["rx"])
        job = api_a.create({"document": {"url": docs.url("/doc1.pdf")}, "from_number": "1001", "to_number": "2002"})
        done = api_a.wait_status(job["id"], timeout=120)
        assert done["status"] == "completed" and done["tx_result"]["success"] is True, done["tx_result"]
        rows = _wait_inbox(api_b, 1)
        fax = api_b.client.get(api_b.url(f"/inbox/{rows[0]['id']}")).json()["data"]
        assert fax["to_number"] == "2002" and fax["rx_result"]["pages_received"] == 1, fax
    finally:
        for srv in started:
            srv.stop()
        docs.stop()


def test_bad_sip_section_is_a_clear_configuration_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[sip]\nport = 5070\n[sip.trunks.x]\ntransport = "sctp"\nproxy = "127.0.0.1"\n')
    out = subprocess.run(FAXENGINE + ["serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "bad configuration: [sip]: trunk x: transport must be one of" in out.stderr


def test_cli_send_takes_trunks_from_the_engine_config_file(engines, tmp_path):
    """`faxengine send --via sip:NUMBER@TRUNK --config FILE`: the same TOML file that configures `serve`."""
    before = len(_inbox(engines.api_b))
    doc = tmp_path / "doc.pdf"
    doc.write_bytes(make_pdf(1, "from the command line"))
    cfg = tmp_path / "engine.toml"
    cfg.write_text(f"""
[server]
port = {free_port()}

[channels.sip]
pacing = false

[sip]
port = 0

[sip.trunks.peer]
proxy = "127.0.0.1:{engines.port_b}"
t38_request_as_caller = 0.3
""")
    out = subprocess.run(FAXENGINE + ["send", str(doc), "--to", "2002", "--via", "sip:2002@peer", "--config", str(cfg),
                                      "--no-pacing", "--ident", "CLI SENDER"],
                         cwd=REPO, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = _wait_inbox(engines.api_b, before + 1)
    idents = [engines.api_b.client.get(engines.api_b.url(f"/inbox/{row['id']}")).json()["data"]["remote_station_id"]
              for row in rows]
    assert "CLI SENDER" in idents


def test_health_without_sip_and_sip_status_says_so(tmp_path):
    srv = FaxServer(tmp_path, _no_mail())
    srv.start()
    try:
        r = httpx.get(srv.base + "/v2/health", timeout=10)
        assert r.status_code == 200, r.text          # open: no token needed
        data = r.json()["data"]
        assert data["status"] == "ok" and data["sip"] is None and "loopback" in data["channels"]
        out = subprocess.run(FAXENGINE + ["sip", "status", "--url", srv.base], cwd=REPO, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 1 and "no SIP endpoint" in out.stdout
    finally:
        srv.stop()
    out = subprocess.run(FAXENGINE + ["sip", "status", "--url", srv.base, "--timeout", "2"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "no fax server answering" in out.stderr
