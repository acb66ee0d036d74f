"""``faxengine modem probe PORT`` as a process against the rig's spandsp T.31 modem: a table, then the JSON
(the same facts), and ``--json`` alone; the JSON names the quirks entry that would be used."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from modem import spandsp

pytestmark = [pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed"),
              pytest.mark.timeout(60)]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def _probe(path: str, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "modem", "probe", path, "--timeout", "30", *extra, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 45)
    return proc.returncode, out.decode(), err.decode()


async def test_probe_cli_on_the_rig_modem_prints_table_and_json(tmp_path):
    from modem.rig import Rig

    rig = Rig(mode="answer", output_dir=str(tmp_path), speed=4.0)
    paths = await rig.start()
    try:
        code, out, err = await _probe(paths["modem"])
        code_json, out_json, err_json = await _probe(paths["modem"], "--json")
    finally:
        await rig.stop()
    assert code == 0, err
    table, _, rest = out.partition("\n\n")
    report = json.loads(rest)
    assert report["port"] == paths["modem"] and "1" in report["classes"]
    assert {"145", "96", "48"} <= set(report["class1_tx"]) and {"145", "96", "48"} <= set(report["class1_rx"])
    assert report["quirks"] == "spandsp-t31" and report["quirks_fields"]["name"] == "spandsp-t31"
    assert report["identity"]["fmm"] == "spandsp", report
    rows = {line[:14].strip(): line[14:].strip() for line in table.splitlines()}
    assert rows["port"] == paths["modem"] and rows["fmm"] == "spandsp" and rows["classes"] == "0,1,1.0"
    assert rows["quirks entry"] == "spandsp-t31" and rows["adaptive rx"] == "no"
    assert "V.17 14400 long" in rows["class 1 +FTM"] and "V.27ter 4800" in rows["class 1 +FRM"]
    assert code_json == 0, err_json
    only = json.loads(out_json)
    assert only["classes"] == report["classes"] and only["class1_tx"] == report["class1_tx"]
