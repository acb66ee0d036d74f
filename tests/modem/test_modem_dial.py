"""Dial results, answering on RING, the reset ladder and marking a modem down, on pty fakes."""

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402
from modem_interop import ScaledClock  # noqa: E402

from modem.at import ModemError, PortGone  # noqa: E402
from modem.dial import DialFailure, ModemDown, ModemLine, parse_param_ranges, parse_query  # noqa: E402
from modem.quirks import QUIRKS_TABLE, Quirks, lookup, with_overrides  # noqa: E402

pytestmark = pytest.mark.timeout(40)


@pytest.fixture
async def line_and_fake():
    fake = FakeModem()
    line = ModemLine(fake.path, atz_timeout=0.5, at_timeout=0.3)
    await line.open()
    yield line, fake
    await line.close()
    fake.close()


@pytest.mark.parametrize("result,code", [("BUSY", "busy"), ("NO CARRIER", "no_carrier"),
                                         ("NO DIALTONE", "no_dialtone"), ("NO DIAL TONE", "no_dialtone"),
                                         ("NO ANSWER", "no_answer"), ("+FCERROR", "no_fax")])
async def test_dial_results_are_distinct_retryable_reasons(line_and_fake, result, code):
    line, fake = line_and_fake
    fake.dial_result = [result]
    with pytest.raises(DialFailure) as info:
        await line.dial("5551234", timeout=5)
    assert info.value.code == code and info.value.retryable


async def test_dial_connect(line_and_fake):
    line, fake = line_and_fake
    resp = await line.dial("5551234", timeout=5)
    assert resp.final == "CONNECT" and fake.commands[-1] == "ATDT5551234"


async def test_dial_glare(line_and_fake):
    line, fake = line_and_fake
    fake.dial_result = ["RING", "NO CARRIER"]
    with pytest.raises(DialFailure) as info:
        await line.dial("5551234", timeout=5)
    assert info.value.code == "glare"


async def test_dial_timeout_and_bad_number(line_and_fake):
    line, fake = line_and_fake
    fake.handlers["ATDT5551234"] = "silent"
    with pytest.raises(DialFailure) as info:
        await line.dial("5551234", timeout=0.3)
    assert info.value.code == "dial_timeout"
    with pytest.raises(DialFailure) as info:
        await line.dial("555;ATZ\r", timeout=1)
    assert info.value.code == "bad_number" and not info.value.retryable


async def test_answer_after_configured_rings_with_caller_id(line_and_fake):
    line, fake = line_and_fake

    async def ring():
        for i in range(3):
            await asyncio.sleep(0.05)
            fake.send(b"\r\nRING\r\n" + (b"\r\nDATE=1127\r\nNMBR = 5550100\r\nNAME=ACME\r\n" if i == 0 else b""))

    task = asyncio.ensure_future(ring())
    cid = await line.wait_for_call(rings=3, timeout=5)
    await task
    assert cid.number == "5550100" and cid.name == "ACME"
    resp = await line.answer(timeout=5)
    assert resp.final == "CONNECT" and fake.commands[-1] == "ATA"


async def test_wait_for_call_times_out(line_and_fake):
    line, fake = line_and_fake
    fake.send(b"\r\nRING\r\n")
    with pytest.raises(TimeoutError):
        await line.wait_for_call(rings=2, timeout=0.5)


async def test_reset_ladder_climbs_to_atz(line_and_fake):
    line, fake = line_and_fake
    state = {"wedged": True}

    def at(f, cmd):
        if not state["wedged"]:
            f.reply("OK")

    def atz(f, cmd):
        state["wedged"] = False
        f.reply("OK")

    fake.handlers.update({"AT": at, "ATZ": atz})
    assert await line.reset() == "ATZ"
    assert fake.cans >= 1 and line.health.consecutive_failures == 0


async def test_reset_ladder_failure_is_counted(line_and_fake):
    line, fake = line_and_fake
    fake.handlers.update({"AT": "silent", "ATZ": "silent"})
    # Not recovered by any rung -> failure counted, not down yet
    with pytest.raises(ModemError) as info:
        await line.reset()
    assert not isinstance(info.value, ModemDown) and line.health.consecutive_failures == 1
    assert "AT" in fake.commands


async def test_modem_marked_down_after_repeated_failures():
    fake = FakeModem()
    # The modem never answers, so every rung waits out its timeout: a 4x clock waits them out sooner.
    line = ModemLine(fake.path, max_failures=2, atz_timeout=0.5, at_timeout=0.3, clock=ScaledClock(4.0))
    await line.open()
    try:
        fake.handlers.update({"AT": "silent", "ATZ": "silent"})
        with pytest.raises(ModemError):
            await line.reset()
        with pytest.raises(ModemDown):
            await line.reset()
        assert line.health.down
        with pytest.raises(ModemDown):           # stays down: no more ladder climbing
            await line.reset()
    finally:
        await line.close()
        fake.close()


async def test_port_gone_before_dial(line_and_fake):
    line, fake = line_and_fake
    fake.vanish()
    await asyncio.sleep(0.05)
    with pytest.raises(PortGone):
        await line.dial("5551234", timeout=2)


async def test_setup_class1_prefers_10_and_enables_far(line_and_fake):
    line, fake = line_and_fake
    await line.identify()
    cls = await line.setup_class1()
    assert cls == "1.0" and line.far and "AT+FAR=1" in fake.commands


async def test_setup_class1_sets_fcl_and_fit_when_offered(line_and_fake):
    line, fake = line_and_fake
    fake.handlers["AT+FCL=?"] = ["(0-255)", "OK"]
    fake.handlers["AT+FIT=?"] = ["+FIT: (0-255),(0-1)", "OK"]
    fake.handlers["AT+FCL=2"] = "OK"
    fake.handlers["AT+FIT=60,1"] = "OK"
    await line.setup_class1()
    assert fake.commands[-4:] == ["AT+FCL=?", "AT+FCL=2", "AT+FIT=?", "AT+FIT=60,1"]
    assert line.fcl == 2 and line.fit == (60, 1)


async def test_setup_class1_skips_fcl_fit_the_modem_lacks_or_refuses(line_and_fake):
    line, fake = line_and_fake
    await line.setup_class1()                          # the fake says ERROR to AT+FCL=? and AT+FIT=?
    assert "AT+FCL=?" in fake.commands and "AT+FIT=?" in fake.commands
    assert not any(c.startswith(("AT+FCL=2", "AT+FIT=6")) for c in fake.commands)
    assert line.fcl is None and line.fit is None and line.far
    fake.commands.clear()
    fake.handlers["AT+FCL=?"] = ["(0-1)", "OK"]        # our value is out of the offered range
    fake.handlers["AT+FIT=?"] = ["+FIT: (0-255),(0-1)", "OK"]   # offered, but the set command fails
    await line.setup_class1()
    assert "AT+FCL=2" not in fake.commands and "AT+FIT=60,1" in fake.commands
    assert line.fcl is None and line.fit is None


async def test_quirks_can_turn_fcl_fit_off_or_change_them(line_and_fake):
    line, fake = line_and_fake
    fake.handlers["AT+FCL=?"] = ["(0-255)", "OK"]
    fake.handlers["AT+FIT=?"] = ["(0-255),(0-1)", "OK"]
    fake.handlers["AT+FIT=30,0"] = "OK"
    line.quirks = with_overrides(Quirks(), {"carrier_loss": "0", "dte_inactivity": "30", "dte_inactivity_action": "0"})
    await line.setup_class1()
    assert not any(c.startswith("AT+FCL=") for c in fake.commands)
    assert fake.commands[-2:] == ["AT+FIT=?", "AT+FIT=30,0"] and line.fit == (30, 0) and line.fcl is None


def test_parse_param_ranges_forms():
    assert parse_param_ranges("+FIT: (0-255),(0-1)") == [set(range(256)), {0, 1}]
    assert parse_param_ranges("(0-255)") == [set(range(256))]
    assert parse_param_ranges("0-3,7") == [{0, 1, 2, 3, 7}]
    assert parse_param_ranges("") == [set()]


def test_parse_query_forms():
    assert parse_query("0,1,1.0") == ["0", "1", "1.0"]
    assert parse_query("(0,1,2.0)") == ["0", "1", "2.0"]
    assert parse_query("+FTM: 3,24,48,72-74") == ["3", "24", "48", "72", "73", "74"]
    assert parse_query("+FAR: (0,1)") == ["0", "1"]


def test_quirks_lookup_is_data():
    assert lookup({"fmi": "U.S. Robotics", "fmm": "5637"}).has_frs is False
    assert lookup({"ati3": "www.soft-switch.org"}).name == "spandsp-t31"
    assert lookup({"fmi": "Agere"}).tm_connect_delay == 0.4
    assert lookup({"fmi": "nobody"}) == Quirks()
    assert len({e.name for e in QUIRKS_TABLE}) >= 10
    q = with_overrides(Quirks(), {"pace_tx": "yes", "tm_connect_delay": "0.2"})
    assert q.pace_tx is True and q.tm_connect_delay == 0.2
    with pytest.raises(ValueError):
        with_overrides(Quirks(), {"no_such_knob": 1})


async def test_reset_ladder_reaches_reopen_and_recovers(line_and_fake):
    """AT, CAN and ATZ get nothing (DTR cannot drop on a pty): the port is closed and opened again, and the
    modem answers then; the rung is reported and nothing is counted as a failure."""
    line, fake = line_and_fake
    state = {"atz": 0}

    def at(f, cmd):
        if state["atz"] >= 2:
            f.reply("OK")

    def atz(f, cmd):
        state["atz"] += 1
        if state["atz"] >= 2:                  # only the ATZ sent after the reopen gets through
            f.reply("OK")

    fake.handlers.update({"AT": at, "ATZ": atz})
    assert await line.reset() == "reopen"
    assert line.health.consecutive_failures == 0 and line.health.last_rung == "reopen"
    assert fake.commands.count("ATZ") == 2 and fake.cans >= 1
    assert (await line.ch.command("AT", 1.0)).ok              # the reopened port works
