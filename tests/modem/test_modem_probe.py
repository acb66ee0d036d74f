"""`faxengine modem probe` against the fake modem on a pty: table and JSON."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_fakemodem import FakeModem  # noqa: E402

from api.cli import build_parser  # noqa: E402
from modem.dial import ModemLine  # noqa: E402
from modem.probe import probe  # noqa: E402

pytestmark = pytest.mark.timeout(30)


async def test_probe_report():
    fake = FakeModem()
    fake.classes = "(0,1,1.0,2.0)"
    fake.handlers["AT+FCC=?"] = ["(0,1),(0-5),(0-2),(0-2),(0-3),(0-1),(0),(0-7)", "OK"]
    line = ModemLine(fake.path)
    await line.open()
    try:
        report = await probe(line)
    finally:
        await line.close()
        fake.close()
    assert report.identity["fmi"] == "FakeModems Inc" and report.identity["fmm"] == "FM-14400"
    assert report.classes == ["0", "1", "1.0", "2.0"]
    assert "145" in report.class1_tx and "96" in report.class1_rx and report.adaptive_receive
    assert "Class 2.0: yes" in report.ecm
    assert report.quirks == "generic"
    assert json.loads(report.to_json())["identity"]["fmr"] == "1.0"
    assert "V.17 14400 long" in report.table()


def test_probe_command_registered():
    args = build_parser().parse_args(["modem", "probe", "/dev/null", "--json"])
    assert args.port == "/dev/null" and args.json_only


def test_probe_cli_on_missing_port_gives_clear_error():
    proc = subprocess.run([sys.executable, "-m", "api.cli", "modem", "probe", "/dev/does-not-exist", "--timeout", "5"],
                          capture_output=True, text=True, timeout=30, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 2 and "cannot open modem port" in proc.stderr
