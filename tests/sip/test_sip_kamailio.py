"""Through a real Kamailio (Debian package): digest REGISTER, refresh, a wrong password refused,
and a call routed by number with proxy authentication, switched to T.38 through the proxy."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
from sip_helpers import free_udp_port

from t38.sip import CallFailure, SipCall
from t38.trunk import SipConfig, Trunk

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
USERS = {"1001": "secret", "2002": "hunter2"}

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "htable.so"
loadmodule "auth.so"
modparam("htable", "htable", "users=>size=4;")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 120)
modparam("registrar", "min_expires", 10)

event_route[htable:mod-init] {{
{users}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$sht(users=>$au)", "0")) {{ www_challenge("$td", "0"); exit; }}
        if ($au != $tU) {{ sl_send_reply("403", "Forbidden auth ID"); exit; }}
        save("location");
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("$fd", "$sht(users=>$au)", "0")) {{ proxy_challenge("$fd", "0"); exit; }}
        consume_credentials();
        record_route();
        if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
        t_relay();
        exit;
    }}
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK"); exit; }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


@pytest.fixture
def kamailio(tmp_path):
    if not shutil.which(KAMAILIO) and not __import__("os").path.exists(KAMAILIO):
        pytest.skip("kamailio not installed")
    port = free_udp_port()
    users = "\n".join(f'    $sht(users=>{u}) = "{p}";' for u, p in USERS.items())
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(port=port, modules=MODULES, users=users))
    log = open(tmp_path / "kamailio.log", "w")
    proc = subprocess.Popen([KAMAILIO, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "8", "-w", str(tmp_path),
                             "-P", str(tmp_path / "k.pid")], stdout=log, stderr=subprocess.STDOUT)
    # wait until it answers OPTIONS
    import socket
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    probe.settimeout(0.3)
    deadline = time.monotonic() + 15
    up = False
    while time.monotonic() < deadline and proc.poll() is None:
        pport = probe.getsockname()[1]
        probe.sendto((f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{pport};branch=z9hG4bKp"
                      f"{time.monotonic_ns()}\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
                      f"Call-ID: probe{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\n"
                      "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        try:
            data = probe.recv(4096)
            if data.startswith(b"SIP/2.0 200"):
                up = True
                break
        except OSError:
            pass
    probe.close()
    if not up:
        proc.kill()
        proc.wait(5)
        log.close()
        pytest.fail(f"kamailio did not start:\n{(tmp_path / 'kamailio.log').read_text()[-3000:]}")
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log.close()


def kam_trunk(port: int, user: str, password: str, **kw) -> Trunk:
    return Trunk(name=kw.pop("name", "kam"), registrar=f"127.0.0.1:{port}", proxy=f"127.0.0.1:{port}",
                 domain="127.0.0.1", username=user, password=password, register=True, **kw)


async def test_register_refresh_and_wrong_password(endpoints, kamailio):
    good = kam_trunk(kamailio, "1001", "secret", register_expires=10)
    bad = kam_trunk(kamailio, "2002", "not-the-password", name="kam-bad")
    ep = await endpoints(SipConfig(port=0, trunks=(good, bad)))
    state = await ep.wait_registration("kam", 10)
    assert state.state == "registered" and state.code == 200
    assert state.expires_at > time.time()
    failed = await ep.wait_registration("kam-bad", 10)
    assert failed.state == "failed" and failed.code == 401
    assert "401" in failed.reason
    # refreshed before it runs out (10 s granted -> refresh after 5 s)
    first_expiry = state.expires_at
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = ep.registration_state("kam")
        if now.refreshes >= 2:
            break
        await asyncio.sleep(0.2)
    now = ep.registration_state("kam")
    assert now.refreshes >= 2 and now.state == "registered"
    assert now.changed_at < first_expiry, "refreshed before the first registration ran out"
    table = ep.registration_state()
    assert set(table) == {"kam", "kam-bad"} and table["kam"].to_dict()["state"] == "registered"
    health = ep.health()
    assert health["registrations"]["kam"]["state"] == "registered"
    assert health["registrations"]["kam-bad"]["state"] == "failed" and health["active_calls"] == {"kam": 0,
                                                                                                 "kam-bad": 0}
    # closing un-REGISTERs (Expires: 0, digest again): Kamailio no longer finds 1001
    other = await endpoints(SipConfig(port=0, trunks=(kam_trunk(kamailio, "2002", "hunter2"),)))
    assert (await other.wait_registration("kam", 10)).state == "registered"
    await ep.close()
    with pytest.raises(CallFailure) as info:
        await other.call("1001", "kam", caller="2002")
    assert info.value.error_code == "not_found"


async def test_call_routed_by_number_through_kamailio_switches_to_t38(endpoints, kamailio):
    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    routed: list[tuple[str, str, str]] = []

    def router(did: str, caller: str, trunk: Trunk):
        routed.append((did, caller, trunk.name))
        return "acct-2002" if did == "2002" else None

    ep_b = await endpoints(SipConfig(port=0, trunks=(kam_trunk(kamailio, "2002", "hunter2",
                                                               t38_request_as_callee=None),)),
                           router=router, on_incoming=inbound.put)
    ep_a = await endpoints(SipConfig(port=0, trunks=(kam_trunk(kamailio, "1001", "secret",
                                                               t38_request_as_caller=0.0),)))
    assert (await ep_b.wait_registration("kam", 10)).state == "registered"
    assert (await ep_a.wait_registration("kam", 10)).state == "registered"
    call_a = await ep_a.call("2002", "kam", caller="1001")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    assert routed == [("2002", "1001", "kam")]
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    assert ma.remote_address == mb.local_address and mb.remote_address == ma.local_address
    loop = asyncio.get_running_loop()
    ma.sock.sendto(b"\x00\x00\x01\x02\x00\x00", ma.remote_address)
    assert await asyncio.wait_for(loop.sock_recv(mb.sock, 2048), 5) == b"\x00\x00\x01\x02\x00\x00"
    await call_a.hangup()                    # BYE goes through the record-routed proxy
    assert (await asyncio.wait_for(call_b.ended, 5)).by == "remote"
    # a number nobody registered: Kamailio says 404 -> "not found"
    with pytest.raises(CallFailure) as info:
        await ep_a.call("3003", "kam")
    assert info.value.error_code == "not_found" and info.value.sip_code == 404
    # wrong credentials for the proxy: 407 again after our answer -> "forbidden"
    wrong = await endpoints(SipConfig(port=0, trunks=(Trunk(name="kam", proxy=f"127.0.0.1:{kamailio}",
                                                            domain="127.0.0.1", username="1001",
                                                            password="wrong"),)))
    with pytest.raises(CallFailure) as info:
        await wrong.call("2002", "kam", caller="1001")
    assert info.value.error_code == "forbidden" and info.value.sip_code == 407


async def test_register_and_call_over_tcp_through_kamailio(endpoints, kamailio):
    inbound: asyncio.Queue[SipCall] = asyncio.Queue()
    ep_b = await endpoints(SipConfig(port=0, trunks=(kam_trunk(kamailio, "2002", "hunter2", transport="tcp",
                                                               t38_request_as_callee=0.0),)),
                           router=lambda did, caller, trunk: "acct", on_incoming=inbound.put)
    ep_a = await endpoints(SipConfig(port=0, trunks=(kam_trunk(kamailio, "1001", "secret", transport="tcp",
                                                               t38_request_as_caller=None),)))
    assert (await ep_b.wait_registration("kam", 10)).state == "registered"
    assert (await ep_a.wait_registration("kam", 10)).state == "registered"
    call_a = await ep_a.call("2002", "kam", caller="1001")
    call_b = await asyncio.wait_for(inbound.get(), 5)
    ma = await asyncio.wait_for(call_a.t38_ready, 10)
    mb = await asyncio.wait_for(call_b.t38_ready, 10)
    assert ma.remote_address == mb.local_address
    assert ep_a._side.gc["_fax_tcp"].conns and ep_b._side.gc["_fax_tcp"].conns
    await call_a.hangup()
    assert (await asyncio.wait_for(call_b.ended, 5)).by == "remote"
