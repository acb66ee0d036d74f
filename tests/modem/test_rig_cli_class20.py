"""``faxengine rig answer --class2 2.0``: the rig's Class 2.0 modem as a process, driven by our Class 2 driver;
``python -m modem.rig`` (no engine T.30) refuses ``--class2`` with a clear message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from modem_interop import ScaledClock, make_page  # noqa: E402

from imaging.tiff_f import read_tiff_f  # noqa: E402
from modem import spandsp  # noqa: E402
from modem.call import open_line  # noqa: E402
from modem.class2 import Class2Driver  # noqa: E402
from modem.rig.testing import tagged_line  # noqa: E402

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEED = 4.0


async def _line(stream: asyncio.StreamReader, prefix: str, timeout: float = 20) -> str:
    return await tagged_line(stream, prefix, timeout)


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("dialect", ["2.0", "2"])
async def test_faxengine_rig_class20_modem_takes_a_fax_from_our_class2_driver(tmp_path, dialect):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "rig", "answer", "--output-dir", str(tmp_path), "--speed", str(SPEED),
        "--answer-delay", "0.5", "--class2", dialect,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        ptys = dict([(await _line(proc.stdout, "PTY")).split(" ", 1) for _ in range(2)])
        assert set(ptys) == {"modem", "class20"}
        line = await open_line(ptys["class20"], clock=ScaledClock(SPEED))
        pages = [make_page(rows=200, seed=41)]
        try:
            result = await Class2Driver(line, dialect, ident="+1 555 0404").send("5551234", pages)
        finally:
            await line.close()
        far = json.loads(await _line(proc.stdout, "RESULT"))
        proc.send_signal(signal.SIGTERM)
        summary = json.loads(await _line(proc.stdout, "SUMMARY"))
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert result.success and result.pages_sent == 1, result
    assert far["ok"] and far["pages"] == 1, far
    assert summary["error"] is None
    got = [p.page for p in read_tiff_f(far["rx_tiff"])][0].pixels
    sent = pages[0].pixels
    rows = min(got.shape[0], sent.shape[0])
    assert abs(got.shape[0] - sent.shape[0]) <= 1 and np.array_equal(got[:rows], sent[:rows])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv, words", [
    (["-m", "modem.rig", "answer", "--output-dir", "{tmp}", "--class2", "2.0"], b"needs the engine's T.30"),
    (["-m", "api.cli", "rig", "pair", "--class2", "2.0"], b"needs answer or call mode"),
])
async def test_rig_class2_option_refused_where_it_cannot_run(tmp_path, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 2 and words in err and b"PTY" not in out, err
