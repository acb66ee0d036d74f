"""The engine's modem channel: config entries, sending through the virtual rig to a spandsp fax machine,
answering a rig call into the inbox, a modem that vanishes mid-call (retryable, job not lost), a modem
marked down after repeated failures, and the scheduler driving it."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402
from modem_interop import ScaledClock, make_page  # noqa: E402

from engine.channels.base import OutboundCall  # noqa: E402
from engine.channels.modem import ModemChannel, ModemConfigError, ModemSettings, parse_modems  # noqa: E402
from engine.inbound import InboundRecorder  # noqa: E402
from engine.store.store import Store  # noqa: E402
from engine.t30 import T30Config  # noqa: E402
from imaging.tiff_f import read_tiff_f, write_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402

SPEED = 6.0
needs_spandsp = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield s
    s.close()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    rows = min(a.shape[0], b.shape[0])
    return a.shape[1] == b.shape[1] and abs(a.shape[0] - b.shape[0]) <= 1 and np.array_equal(a[:rows], b[:rows])


def _t30(**kw):
    return lambda ident, settings: T30Config(ident=ident[:20], ecm=settings.ecm, **kw)


# ---------------------------------------------------------------- configuration

def test_modem_entries_parse_with_defaults_and_class_names():
    mods = parse_modems([{"port": "/dev/ttyACM0"},
                         {"port": "/dev/ttyACM1", "class": "2.0", "rings": 3, "quirks": {"pace_tx": True},
                          "ident": "+1 555", "number": "15550100"}])
    assert mods[0] == ModemSettings(port="/dev/ttyACM0", name="/dev/ttyACM0")
    assert (mods[1].kind, mods[1].rings, mods[1].quirks, mods[1].number) == ("class2.0", 3, {"pace_tx": True},
                                                                           "15550100")
    assert parse_modems(None) == []


@pytest.mark.parametrize("entries, words", [
    ({"port": "x"}, "array of tables"),
    ([{"class": "class1"}], "port"),
    ([{"port": "/dev/x", "class": "class3"}], "class must be"),
    ([{"port": "/dev/x", "rings": -1}], "rings"),
    ([{"port": "/dev/x", "rings": "2"}], "rings"),
    ([{"port": "/dev/x", "quirks": {"no_such_quirk": 1}}], "unknown modem quirk"),
    ([{"port": "/dev/x", "colour": "red"}], "unknown setting"),
    ([{"port": "/dev/x"}, {"port": "/dev/x"}], "twice"),
])
def test_bad_modem_entries_get_clear_errors(entries, words):
    with pytest.raises(ModemConfigError, match=words):
        parse_modems(entries)


# ---------------------------------------------------------------- failures without a rig

@pytest.mark.timeout(30)
async def test_missing_modem_is_marked_down_after_repeated_failures(store):
    channel = ModemChannel(InboundRecorder(store), [{"port": "/nonexistent/ttyFAX0", "rings": 0,
                                                     "max_failures": 3}])
    await channel.start()
    call = OutboundCall("job1", "acct", [make_page(rows=50)], "5551234", "5550000")
    try:
        codes = [(await channel.send(call, lambda s: None)) for _ in range(4)]
    finally:
        await channel.stop()
    assert [r.error_code for r in codes[:3]] == ["modem_gone"] * 3 and all(r.retryable for r in codes)
    assert codes[3].error_code == "no_modem" and "marked down" in codes[3].error_message
    assert channel.capacity == 0 and channel.health()[0]["down"]


@pytest.mark.timeout(30)
async def test_listener_marks_a_missing_modem_down_and_stops(store):
    class FastClock:
        def now(self) -> float:
            return time.monotonic()

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(0.01)

    channel = ModemChannel(InboundRecorder(store), [{"port": "/nonexistent/ttyFAX1", "rings": 1,
                                                     "max_failures": 2}], clock=FastClock(), default_account="a")
    await channel.start()
    try:
        async with asyncio.timeout(10):
            await channel.slots[0].listener
    finally:
        await channel.stop()
    assert channel.health()[0]["down"] and channel.capacity == 0


CSI = bytes([0xFF, 0x03, 0x40]) + b"0010 555 1+         "
DIS = bytes([0xFF, 0x13, 0x80, 0x00, 0xEE, 0xF8, 0x80, 0x80, 0x91, 0x80, 0x80, 0x80, 0x18])


@pytest.mark.timeout(60)
async def test_modem_vanishing_mid_call_is_retryable(store):
    fake = FakeModem()
    fake.hdlc_to_dte.extend([CSI, DIS])
    fake.close_after_bytes = 100                         # the port vanishes during TCF
    channel = ModemChannel(InboundRecorder(store), [{"port": fake.path, "rings": 0}],
                           t30_config=_t30(modems=("v29",)))
    await channel.start()
    try:
        result = await channel.send(OutboundCall("j", "a", [make_page(rows=60)], "5551234", "5550000"),
                                    lambda s: None)
    finally:
        await channel.stop()
        fake.close()
    assert not result.success and result.error_code == "modem_gone" and result.retryable, result
    assert "vanished" in result.error_message
    assert channel.health()[0]["failures"] == 1 and not channel.health()[0]["down"]


@pytest.mark.timeout(60)
async def test_scheduler_retries_a_job_whose_modem_vanished(tmp_path, store):
    from engine.config import load_config
    from engine.fetch import FetchPolicy
    from engine.scheduler import Scheduler
    from engine.store.documents import DocumentService

    account = store.create_account("modem")
    tiff = tmp_path / "job.tif"
    write_tiff_f(str(tiff), [make_page(rows=60)])
    fake = FakeModem()
    fake.hdlc_to_dte.extend([CSI, DIS])
    fake.close_after_bytes = 100
    channel = ModemChannel(InboundRecorder(store), [{"port": fake.path, "rings": 0}],
                           t30_config=_t30(modems=("v29",)))
    config = load_config(None)
    config["scheduler"].update({"poll_interval": 0.02})
    config["channels"]["default"] = "modem"
    sched = Scheduler(store, config, DocumentService(store, FetchPolicy()), {"modem": channel})
    job = store.insert_fax(account.id, "out", "pending",
                           {"from_number": "15559990000", "to_number": "5551234", "retries": 3, "attempts": 0},
                           next_attempt=time.time(), files={"original_file.tiff": ("image/tiff", tiff.read_bytes())})
    await sched.start()
    try:
        deadline = time.monotonic() + 40
        while not (f := store.get_fax(job.id)).attempts:
            assert time.monotonic() < deadline, f
            await asyncio.sleep(0.05)
    finally:
        await sched.stop()
        fake.close()
    assert f.status == "pending" and f.attempts == 1, f
    assert f.doc["tx_result"]["result_code"] == "modem_gone" and f.next_attempt > time.time()


# ---------------------------------------------------------------- through the virtual rig

@needs_spandsp
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_modem_channel_sends_to_spandsp_fax_machine(tmp_path, store):
    """The listener holds the port answer-ready; the outbound call takes it over, dials and sends."""
    from modem.rig import Rig

    rig = Rig(mode="answer", output_dir=str(tmp_path), speed=SPEED, answer_delay=0.5, far_modems=("v17",))
    paths = await rig.start()
    channel = ModemChannel(InboundRecorder(store), [{"port": paths["modem"], "rings": 2, "ident": "+1 555 0199",
                                                     "ecm": False}],
                           clock=ScaledClock(SPEED), default_account="nobody")
    pages = [make_page(seed=1), make_page(rows=200, seed=2)]
    states: list[dict] = []
    await channel.start()
    try:
        await asyncio.sleep(0.3)                          # the listener has the port open now
        assert channel.slots[0].lock.locked()
        result = await channel.send(OutboundCall("job-1", "acct", pages, "5551234", "5550000"), states.append)
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await channel.stop()
        await rig.stop()
    assert result.success and result.pages_sent == 2 and result.fax_speed == 14400, result
    assert any(s.get("modem") == paths["modem"] for s in states)
    assert far["ok"] and far["pages"] == 2, far
    stored = [p.page for p in read_tiff_f(far["rx_tiff"])]
    for sent, got in zip(pages, stored, strict=True):
        assert _same(sent.pixels, got.pixels)
    assert channel.health()[0]["failures"] == 0 and channel.health()[0]["calls"] == 1


@needs_spandsp
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_modem_channel_answers_a_call_into_the_inbox(tmp_path, store):
    from modem.rig import Rig

    account = store.create_account("receiver", settings={"numbers": ["+15550100"]})
    pages = [make_page(seed=3), make_page(rows=240, seed=4)]
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), pages)
    rig = Rig(mode="call", tx_tiff=str(tx), speed=SPEED, far_ecm=True, call_delay=0.5, ring_interval=1.0,
              far_ident="+1 555 0123")
    paths = await rig.start()
    channel = ModemChannel(InboundRecorder(store), [{"port": paths["modem"], "rings": 2, "number": "15550100",
                                                     "ident": "+1 555 0100"}], clock=ScaledClock(SPEED))
    await channel.start()
    try:
        far = (await rig.wait_results(1, timeout=40))[0]
        deadline = time.monotonic() + 15
        while True:
            got = store.list_faxes(account.id, "in")
            if got and got[0].status in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.05)
    finally:
        await channel.stop()
        await rig.stop()
    fax = got[0]
    assert fax.status == "completed", fax.doc
    assert far["ok"], far
    assert fax.doc["rx_result"]["pages_received"] == 2 and fax.doc["rx_result"]["fax_error_correction"]
    assert fax.doc["remote_station_id"] == "+1 555 0123" and fax.doc["channel"] == "modem"
    _, tiff = store.get_attachment(fax.id, "received_file.tiff")
    stored = [p.page for p in read_tiff_f(tiff)]
    for sent, rx in zip(pages, stored, strict=True):
        assert _same(sent.pixels, rx.pixels)


def test_modem_channel_from_the_engine_toml(tmp_path, store):
    from engine.channels.modem import build_modem_channel
    from engine.config import load_config

    toml = tmp_path / "faxengine.toml"
    toml.write_text('[[modems]]\nport = "/dev/ttyACM0"\nrings = 2\nnumber = "+15550100"\nquirks = { pace_tx = true }\n'
                    '[[modems]]\nport = "/dev/ttyACM1"\nclass = "2.0"\nrings = 0\n')
    channel = build_modem_channel(load_config(toml), InboundRecorder(store))
    assert [(s.settings.port, s.settings.kind, s.settings.rings) for s in channel.slots] == [
        ("/dev/ttyACM0", "class1", 2), ("/dev/ttyACM1", "class2.0", 0)]
    assert channel.slots[0].settings.quirks == {"pace_tx": True} and channel.capacity == 2
    assert build_modem_channel(load_config(None), InboundRecorder(store)) is None
    toml.write_text('[[modems]]\nport = "/dev/ttyACM0"\nclass = "3"\n')
    with pytest.raises(ModemConfigError, match="class must be"):
        build_modem_channel(load_config(toml), InboundRecorder(store))


def test_server_channels_include_the_configured_modems(tmp_path, store):
    """What `faxengine serve` builds: [[modems]] in the TOML gives the scheduler a "modem" channel."""
    from engine.channels import build_channels
    from engine.config import load_config

    toml = tmp_path / "faxengine.toml"
    toml.write_text('[[modems]]\nport = "/dev/ttyACM0"\nrings = 0\n')
    channels = build_channels(load_config(toml), InboundRecorder(store))
    assert set(channels) == {"loopback", "modem"}
    assert [s.settings.port for s in channels["modem"].slots] == ["/dev/ttyACM0"]
    assert "modem" not in build_channels(load_config(None), InboundRecorder(store))


@needs_spandsp
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_job_moves_to_the_next_modem_when_its_modem_vanishes(tmp_path, store):
    """Modem 1 vanishes during training; the same attempt is placed again on modem 2 (the rig) and completes."""
    from modem.rig import Rig

    fake = FakeModem()
    fake.hdlc_to_dte.extend([CSI, DIS])
    fake.close_after_bytes = 100
    rig = Rig(mode="answer", output_dir=str(tmp_path), speed=SPEED, answer_delay=0.5, far_modems=("v29",))
    paths = await rig.start()
    channel = ModemChannel(InboundRecorder(store), [{"port": fake.path, "rings": 0},
                                                    {"port": paths["modem"], "rings": 0}],
                           clock=ScaledClock(SPEED), t30_config=_t30(modems=("v29",)))
    states: list[dict] = []
    page = make_page(rows=100, seed=9)
    await channel.start()
    try:
        result = await channel.send(OutboundCall("job-2", "acct", [page], "5551234", "5550000"), states.append)
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await channel.stop()
        await rig.stop()
        fake.close()
    assert result.success and result.pages_sent == 1, result
    assert [s["modem"] for s in states if "modem" in s] == [fake.path, paths["modem"]]
    assert [h["failures"] for h in channel.health()] == [1, 0] and [h["calls"] for h in channel.health()] == [1, 1]
    assert far["ok"] and _same(page.pixels, next(read_tiff_f(far["rx_tiff"])).page.pixels)


def _class20_factory(phy, clock, *, send_pages, on_page, calling, ident, ecm):  # noqa: ANN001, ANN202
    from engine.t30 import T30Session
    return T30Session(phy, clock, T30Config(ident=ident, ecm=ecm), send_pages=send_pages, on_page=on_page,
                      calling=calling)


@needs_spandsp
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_class20_modem_channel_answers_into_the_inbox_and_sends(tmp_path, store):
    """The channel on the rig's Class 2.0 modem: a call is answered (rings counted by the channel, then
    Class2Driver answers at once) into the inbox; then a job goes out through the same modem."""
    from modem.rig import Rig
    from modem.rig.class20 import Class20Modem

    account = store.create_account("c20", settings={"numbers": ["15550111"]})
    pages = [make_page(rows=200, seed=43)]
    tx = tmp_path / "tx.tif"
    write_tiff_f(str(tx), pages)
    rig = Rig("call", tx_tiff=str(tx), speed=SPEED, call_delay=0.5, ring_interval=1.0, far_ident="+1 555 0404")
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], _class20_factory, clock=ScaledClock(SPEED))
    try:
        path = await modem.start()
        channel = ModemChannel(InboundRecorder(store), [{"port": path, "class": "2.0", "rings": 2,
                                                         "number": "15550111", "ecm": False}])
        await channel.start()
        try:
            await rig.wait_results(1, timeout=40)
            deadline = time.monotonic() + 15
            while not ((got := store.list_faxes(account.id, "in")) and got[0].status in ("completed", "failed")):
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.05)
        finally:
            await channel.stop()
    finally:
        await modem.stop()
        await rig.stop()
    fax = got[0]
    assert fax.status == "completed" and fax.doc["remote_station_id"] == "+1 555 0404", fax.doc
    _, tiff = store.get_attachment(fax.id, "received_file.tiff")
    assert _same(pages[0].pixels, next(read_tiff_f(tiff)).page.pixels)
    assert modem.commands.count("ATA") == 1 and "AT+FCLASS=2.0" in modem.commands

    rig = Rig("answer", output_dir=str(tmp_path), speed=SPEED, answer_delay=0.5)
    paths = await rig.start()
    modem = Class20Modem(paths["modem"], _class20_factory, clock=ScaledClock(SPEED))
    try:
        path = await modem.start()
        channel = ModemChannel(InboundRecorder(store), [{"port": path, "class": "2.0", "rings": 1, "ecm": False}],
                               default_account=account.id)
        await channel.start()
        try:
            result = await channel.send(OutboundCall("job-c20", account.id, pages, "5551234", "5550000",
                                                     ident="+1 555 0111"), lambda s: None)
        finally:
            await channel.stop()
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await modem.stop()
        await rig.stop()
    assert result.success and result.pages_sent == 1, result
    assert far["ok"] and _same(pages[0].pixels, next(read_tiff_f(far["rx_tiff"])).page.pixels)


@needs_spandsp
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_scheduler_job_through_the_modem_channel_completes(tmp_path, store):
    """A stored job, claimed by the scheduler, goes out on the modem channel to the rig's fax machine."""
    from engine.config import load_config
    from engine.fetch import FetchPolicy
    from engine.scheduler import Scheduler
    from engine.store.documents import DocumentService
    from modem.rig import Rig

    account = store.create_account("modem-ok")
    page = make_page(rows=150, seed=13)
    tiff = tmp_path / "job.tif"
    write_tiff_f(str(tiff), [page])
    out = tmp_path / "far"
    out.mkdir()
    rig = Rig(mode="answer", output_dir=str(out), speed=SPEED, answer_delay=0.5)
    paths = await rig.start()
    channel = ModemChannel(InboundRecorder(store), [{"port": paths["modem"], "rings": 1, "ident": "+1 555 0177"}],
                           clock=ScaledClock(SPEED))
    config = load_config(None)
    config["scheduler"].update({"poll_interval": 0.05})
    config["channels"]["default"] = "modem"
    sched = Scheduler(store, config, DocumentService(store, FetchPolicy()), {"modem": channel})
    job = store.insert_fax(account.id, "out", "pending",
                           {"from_number": "15550177", "to_number": "5551234", "retries": 1, "attempts": 0},
                           next_attempt=time.time(), files={"original_file.tiff": ("image/tiff", tiff.read_bytes())})
    await sched.start()
    try:
        deadline = time.monotonic() + 60
        while (f := store.get_fax(job.id)).status not in ("completed", "failed"):
            assert time.monotonic() < deadline, f
            await asyncio.sleep(0.05)
        far = (await rig.wait_results(1, timeout=30))[0]
    finally:
        await sched.stop()
        await rig.stop()
    assert f.status == "completed" and f.attempts == 1, f.doc.get("tx_result")
    tx = f.doc["tx_result"]
    assert tx["success"] and tx["transferred_pages"] == 1 and tx["remote_station_id"] == "+1 555 0100"
    assert far["ok"] and far["pages"] == 1
    assert _same(page.pixels, next(read_tiff_f(far["rx_tiff"])).page.pixels)     # a TIFF-F goes out as it is
