"""``python -m modem.rig`` as a process: PTY lines, a RESULT line per call, SUMMARY on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import pytest

from modem import spandsp
from modem.rig.commands import config_from_args, register
from modem.rig.testing import PtyDte, tagged_line

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def _line(stream: asyncio.StreamReader, prefix: str, timeout: float = 15) -> str:
    return await tagged_line(stream, prefix, timeout)


@pytest.mark.timeout(60)
async def test_rig_process_prints_pty_result_and_summary(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modem.rig", "answer", "--output-dir", str(tmp_path), "--speed", "4",
        "--number-result", "999=busy", "--link-dir", str(tmp_path),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        name, path = (await _line(proc.stdout, "PTY")).split(" ", 1)
        assert name == "modem" and os.path.exists(path)
        assert os.path.realpath(tmp_path / "modem") == os.path.realpath(path)
        dte = PtyDte(str(tmp_path / "modem"))
        try:
            assert (await dte.command(b"AT+FCLASS=1")).endswith(b"OK\r\n")
            assert b"BUSY" in await dte.command(b"ATD999", b"BUSY\r\n", b"CONNECT\r\n", timeout=10)
        finally:
            dte.close()
        result = json.loads(await _line(proc.stdout, "RESULT"))
        assert result["reason"] == "busy" and result["number"] == "999" and result["ok"] is False
        proc.send_signal(signal.SIGTERM)
        summary = json.loads(await _line(proc.stdout, "SUMMARY"))
        assert summary["mode"] == "answer" and summary["calls"] == 1 and summary["error"] is None
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert not os.path.lexists(tmp_path / "modem")            # the symlink is removed on exit
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(60)
async def test_rig_process_rejects_bad_arguments(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modem.rig", "call", "--tx", str(tmp_path / "missing.tif"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"not found" in err and b"PTY" not in out


def test_register_adds_the_rig_subcommand():
    parser = argparse.ArgumentParser(prog="faxengine")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rig", "pair", "--line-delay-ms", "40", "--speed", "2",
                              "--number-result", "5=no-answer", "--far-modems", "v29,v27ter"])
    config = config_from_args(args)
    config.validate()
    assert (config.mode, config.line_delay_ms, config.speed) == ("pair", 40.0, 2.0)
    assert config.dial_results == {"5": "no-answer"} and config.far_modems == ("v29", "v27ter")
    assert callable(args.func)
