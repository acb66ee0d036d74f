"""Every hang-up code reaches the result record: each Class 2 (+FHNG, decimal) and Class 2.0 (+FHS, hex)
code of the reference table, reported by a scripted modem when dialling and when receiving, becomes the
reason of the table entry; the Class 2 spellings that differ (93/94/100-103) land on the right 2.0 entry."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402
from test_modem_class2 import class20_sender_fake, make_page  # noqa: E402

from modem.class2 import CLASS2, CLASS20, HANGUP_CODES, Class2Driver, hangup_key  # noqa: E402
from modem.dial import ModemLine  # noqa: E402

pytestmark = pytest.mark.timeout(30)

# The reference table (shared/reference/class1_class2.md 2.6): Class 2 decimal -> Class 2.0 hex.
CLASS2_TO_20 = {0: "00", 1: "01", 2: "02", 3: "03", 4: "04", 5: "05", 10: "10", 11: "11", 12: "12", 13: "13",
                14: "14", 15: "15", 16: "16", 20: "20", 21: "21", 22: "22", 23: "23", 24: "24", 25: "25",
                26: "26", 27: "27", 28: "28", 40: "40", 43: "43", 50: "50", 51: "51", 52: "52", 53: "53",
                54: "54", 55: "55", 56: "56", 57: "57", 58: "58", 70: "70", 71: "71", 72: "72", 73: "73",
                74: "74", 90: "90", 91: "91", 93: "93", 94: "92", 100: "A0", 101: "A1", 102: "A2", 103: "A3"}
CLASS20_ONLY = ("41", "42", "44", "45", "46", "47", "E0")
ALL_20 = sorted(set(CLASS2_TO_20.values()) | set(CLASS20_ONLY))
PHASES = {"0": "A", "1": "A", "2": "B", "4": "C", "5": "D", "7": "B", "9": "C", "A": "D"}


def test_reference_table_is_covered_in_both_spellings():
    for dec, hexcode in CLASS2_TO_20.items():
        assert hangup_key(str(dec), CLASS2) == hexcode
        assert hangup_key(hexcode, CLASS20) == hexcode
        assert hangup_key(hexcode.lower(), CLASS20) == hexcode
        assert hexcode in HANGUP_CODES
    for hexcode in CLASS20_ONLY:
        assert hexcode in HANGUP_CODES
    for code, (phase, err, msg, _retry) in HANGUP_CODES.items():
        if code == "00":
            assert err == ""
            continue
        assert err and msg
        if code[0] in PHASES and code != "E0":
            assert phase == PHASES[code[0]], (code, phase)    # the code's first digit names its T.30 phase


async def _driver(dialect: str):
    fake = FakeModem()
    line = ModemLine(fake.path)
    await line.open()
    class20_sender_fake(fake)
    return fake, line, Class2Driver(line, dialect)


@pytest.mark.parametrize("dialect,spelled,key",
                         [("2.0", k, k) for k in ALL_20 if k != "00"]
                         + [("2", str(d), k) for d, k in CLASS2_TO_20.items() if d])
async def test_hangup_when_dialling_becomes_the_reason(dialect, spelled, key):
    fake, line, driver = await _driver(dialect)
    prefix = "+FHS:" if dialect == "2.0" else "+FHNG:"
    fake.handlers["ATDT5551234"] = [prefix + spelled, "OK"]
    try:
        res = await driver.send("5551234", [make_page(rows=40)])
    finally:
        await line.close()
        fake.close()
    phase, err, _msg, retry = HANGUP_CODES[key]
    assert not res.success
    assert (res.error_code, res.retryable) == (err, retry), res
    assert f"{prefix}{spelled}" in res.error_message
    assert res.error_phase == (phase or "A")


@pytest.mark.parametrize("dialect,spelled,key", [("2.0", "73", "73"), ("2.0", "A2", "A2"), ("2", "102", "A2"),
                                                 ("2", "94", "92"), ("2.0", "91", "91")])
async def test_hangup_when_receiving_becomes_the_reason(dialect, spelled, key):
    fake, line, driver = await _driver(dialect)
    d = CLASS20 if dialect == "2.0" else CLASS2
    conn = "+FCO" if dialect == "2.0" else "+FCON"
    fake.handlers.update({"ATA": [conn, "OK"], "AT+FDR": [d.hangup + spelled, "OK"]})
    fake.send(b"\r\nRING\r\n")
    try:
        res = await driver.receive(rings=1, ring_timeout=5)
    finally:
        await line.close()
        fake.close()
    _phase, err, _msg, retry = HANGUP_CODES[key]
    assert not res.success and (res.error_code, res.retryable) == (err, retry), res
    assert f"{d.hangup}{spelled}" in res.error_message


# Older 2388/89 firmware: the reference (2.6) gives phase ranges only, so each maps to its phase's
# "unspecified" code, and only with the quirk (the numbers mean something else in 2388-A).
OLD_2388_89 = {30: "40", 33: "40", 40: "50", 44: "50", 48: "50", 50: "70", 54: "70", 60: "90", 64: "90",
               70: "A0", 73: "A0"}


def test_old_2388_89_numbers_translate_only_with_the_quirk():
    from modem.class2 import hangup_reason

    for dec, key in OLD_2388_89.items():
        assert hangup_key(str(dec), CLASS2, old_numbering=True) == key
        assert hangup_reason(str(dec), CLASS2, old_numbering=True)[0] == HANGUP_CODES[key][0]
        assert "2388/89 numbering" in hangup_reason(str(dec), CLASS2, old_numbering=True)[2]
    assert hangup_key("40", CLASS2) == "40" and hangup_key("50", CLASS2) == "50"   # 2388-A meaning by default
    for dec in (0, 1, 21, 27, 94, 100, 102):                                        # outside the old ranges
        assert hangup_key(str(dec), CLASS2, old_numbering=True) == CLASS2_TO_20[dec]
    assert hangup_key("40", CLASS20, old_numbering=True) == "40"                    # Class 2.0 hex is unaffected
    assert hangup_reason("130", CLASS2, old_numbering=True)[1] == "hangup_130"      # Everex: no meaning documented


@pytest.mark.parametrize("spelled,key", [("44", "50"), ("62", "90")])
async def test_old_2388_89_hangup_reaches_the_result_with_the_quirk(spelled, key):
    from modem.quirks import Quirks, with_overrides

    fake = FakeModem()
    line = ModemLine(fake.path, quirks=with_overrides(Quirks(), {"class2_old_hangup_codes": "yes"}))
    await line.open()
    class20_sender_fake(fake)
    fake.handlers["ATDT5551234"] = ["+FHNG:" + spelled, "OK"]
    try:
        res = await Class2Driver(line, "2").send("5551234", [make_page(rows=40)])
    finally:
        await line.close()
        fake.close()
    phase, err, _msg, retry = HANGUP_CODES[key]
    assert not res.success and (res.error_code, res.retryable, res.error_phase) == (err, retry, phase), res
    assert f"+FHNG:{spelled}, 2388/89 numbering" in res.error_message
