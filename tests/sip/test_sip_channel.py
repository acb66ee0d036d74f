"""The SIP channel in-process: two engines' SIP services on loopback with a real SQLite store; a trunk's
max_calls holds back the second fax until the first call ends; an abort while ringing or queued for a
line ends the attempt at once."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from sip_helpers import HERE, free_udp_port

API_TESTS = HERE.parent / "api"
if str(API_TESTS) not in sys.path:
    sys.path.insert(0, str(API_TESTS))

from faxapi_helpers import make_pdf  # noqa: E402

from engine.channels import build_channels  # noqa: E402
from engine.channels.base import OutboundCall  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.inbound import InboundRecorder  # noqa: E402
from engine.store import Store  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _config(tmp_path, name: str, text: str):  # noqa: ANN202
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_config(path)


def _pages(n: int):  # noqa: ANN202
    from imaging.convert import convert

    return list(convert(make_pdf(n, "channel page")))


async def test_trunk_line_limit_queues_the_second_fax_and_both_land_in_the_inbox(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'rx.sqlite3'}")
    owner = store.create_account("rx", settings={"numbers": ["2002", "2003"]})
    port_b = free_udp_port()
    cfg_b = _config(tmp_path, "b", f"[channels.sip]\npacing = false\n[sip]\nport = {port_b}\n")
    cfg_a = _config(tmp_path, "a", "[channels.loopback]\nenabled = false\n[channels.sip]\npacing = false\n"
                                   f"[sip]\nport = 0\n[sip.trunks.peer]\nproxy = \"127.0.0.1:{port_b}\"\n"
                                   "max_calls = 1\nt38_request_as_caller = 0.2\n")
    assert cfg_a["channels"]["default"] == "sip" and cfg_b["channels"]["default"] == "loopback"
    rx = build_channels(cfg_b, InboundRecorder(store))
    tx = build_channels(cfg_a, None)
    assert set(tx) == {"sip", "sip:peer"} and tx["sip"].capacity == 1
    for ch in (*rx.values(), *tx.values()):
        await ch.start()
    peak = 0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        endpoint = rx["sip"].service.endpoint
        while not stop.is_set():
            peak = max(peak, endpoint.active_calls())
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    phases: list[str] = []
    try:
        calls = [OutboundCall(job_id=f"job{n}", account_id="acc", pages=_pages(1), to_number=number,
                              from_number="15550100001", ident="15550100001")
                 for n, number in enumerate(("2002", "2003"))]
        results = await asyncio.gather(
            tx["sip"].send(calls[0], lambda s: phases.append(s.get("phase", ""))),
            tx["sip:peer"].send(calls[1], lambda s: phases.append(s.get("phase", ""))))
    finally:
        stop.set()
        await watcher
        for ch in (*tx.values(), *rx.values()):
            await ch.stop()
    assert [r.success for r in results] == [True, True], [r.error_message for r in results]
    assert peak == 1, "the trunk carried more calls than max_calls"
    assert "waiting for a free line" in phases
    inbox = store.list_faxes(owner.id, "in", statuses=["completed"])
    assert sorted(f.to_number for f in inbox) == ["2002", "2003"]
    assert all(f.doc["rx_result"]["pages_received"] == 1 and f.doc["channel"] == "sip:direct" for f in inbox)
    store.close()


async def test_abort_while_ringing_or_queued_ends_the_attempt(tmp_path):
    """The far end never answers (a silent UDP socket): abort() ends the attempt at once with its reason."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(0.2)
    try:
        cfg = _config(tmp_path, "a", "[channels.loopback]\nenabled = false\n[sip]\nport = 0\n[sip.trunks.void]\n"
                                     f"proxy = \"127.0.0.1:{silent.getsockname()[1]}\"\nmax_calls = 1\n")
        channels = build_channels(cfg, None)
        channel = channels["sip"]
        await channel.start()
        try:
            call = OutboundCall(job_id="j", account_id="acc", pages=_pages(1), to_number="5555", from_number="")
            task = asyncio.ensure_future(channel.send(call, lambda s: None))
            got_invite = False
            for _ in range(50):
                await asyncio.sleep(0.1)
                try:
                    got_invite = silent.recv(65535).startswith(b"INVITE ")
                except OSError:
                    continue
                if got_invite:
                    break
            assert got_invite
            # a second job waits for the trunk's only line; aborted there, it never dials
            phases: list[str] = []
            second = asyncio.ensure_future(channel.send(OutboundCall(job_id="k", account_id="acc", pages=[],
                                                                     to_number="6666", from_number=""),
                                                        lambda s: phases.append(s["phase"])))
            await asyncio.sleep(0.3)
            assert phases == ["waiting for a free line"]
            assert channel.abort("k", "deleted while queued")
            queued = await asyncio.wait_for(second, 5)
            assert queued.error_code == "aborted" and queued.error_message == "deleted while queued"
            assert channel.abort("j", "fax job cancelled by the user")
            result = await asyncio.wait_for(task, 10)
        finally:
            await channel.stop()
        assert result.success is False and result.error_code == "aborted"
        assert result.error_message == "fax job cancelled by the user"
        assert not channel.abort("j", "again")
    finally:
        silent.close()


async def test_inbound_account_takes_calls_to_numbers_nobody_owns(tmp_path):
    """channels.sip.inbound_account: a catch-all account instead of 404 for unowned numbers."""
    store = Store(f"sqlite:///{tmp_path / 'rx.sqlite3'}")
    catch_all = store.create_account("catch-all")
    port_b = free_udp_port()
    cfg_b = _config(tmp_path, "b", f"[channels.sip]\npacing = false\ninbound_account = \"{catch_all.id}\"\n"
                                   f"[sip]\nport = {port_b}\n")
    cfg_a = _config(tmp_path, "a", "[channels.sip]\npacing = false\n[sip]\nport = 0\n[sip.trunks.peer]\n"
                                   f"proxy = \"127.0.0.1:{port_b}\"\nt38_request_as_caller = 0.2\n")
    rx = build_channels(cfg_b, InboundRecorder(store))
    tx = build_channels(cfg_a, None)
    for ch in (*rx.values(), *tx.values()):
        await ch.start()
    try:
        result = await tx["sip:peer"].send(OutboundCall(job_id="j", account_id="acc", pages=_pages(1),
                                                        to_number="7777", from_number="15550100001"), lambda s: None)
    finally:
        for ch in (*tx.values(), *rx.values()):
            await ch.stop()
    assert result.success, result.error_message
    inbox = store.list_faxes(catch_all.id, "in", statuses=["completed"])
    assert [f.to_number for f in inbox] == ["7777"]
    store.close()


async def test_sip_port_in_use_leaves_the_engine_up_with_a_clear_reason(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        port = busy.getsockname()[1]
        cfg = _config(tmp_path, "a", f"[sip]\nport = {port}\n[sip.trunks.peer]\nproxy = \"127.0.0.1\"\n")
        channels = build_channels(cfg, None)
        await channels["sip"].start()
        try:
            health = channels["sip"].service.health()
            assert health["running"] is False and "SIP endpoint not started on 127.0.0.1:" in health["error"]
            result = await channels["sip:peer"].send(OutboundCall(job_id="j", account_id="acc", pages=[],
                                                                  to_number="1", from_number=""), lambda s: None)
            assert result.error_code == "no_channel" and result.retryable
            assert result.error_message.startswith("SIP channel unavailable: SIP endpoint not started")
        finally:
            await channels["sip"].stop()
    finally:
        busy.close()
