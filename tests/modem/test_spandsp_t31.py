"""spandsp's T.31 Class 1 modem through the binding, driven in simulated time (no pty here)."""

from __future__ import annotations

import pytest

from modem import spandsp
from modem.spandsp import CallEvent, ModemControl

pytestmark = pytest.mark.skipif(not spandsp.available(), reason="libspandsp.so.2 not installed")

DLE, ETX = 0x10, 0x03


class Line:
    """A T31Modem wired to an answering spandsp fax machine, stepped 20 ms at a time."""

    def __init__(self, rx_tiff: str) -> None:
        self.rx_tiff = rx_tiff
        self.out = bytearray()
        self.controls: list[tuple[ModemControl, object]] = []
        self.modem = spandsp.T31Modem(self.out.extend, lambda op, arg: self.controls.append((op, arg)))
        self.fax: spandsp.FaxAudioTerminal | None = None

    def step(self) -> None:
        if self.fax is None and any(op is ModemControl.CALL for op, _ in self.controls):
            self.fax = spandsp.FaxAudioTerminal(False, ident="REMOTE 42", rx_tiff=self.rx_tiff)
            self.modem.call_event(CallEvent.CONNECTED)
        to_line = self.modem.tx_audio(160)
        if self.fax is not None:
            self.modem.rx_audio(self.fax.tx_audio(160))
            self.fax.rx_audio(to_line)
        else:
            self.modem.rx_audio(to_line * 0)

    def command(self, cmd: bytes, until: tuple[bytes, ...] = (b"OK\r\n", b"ERROR\r\n"), seconds: float = 15) -> bytes:
        self.out.clear()
        self.modem.at_rx(cmd + b"\r")
        for _ in range(int(seconds * 50)):
            if any(self.out.endswith(u) for u in until):
                return bytes(self.out)
            self.step()
        raise AssertionError(f"{cmd!r}: no {until} within {seconds} s, got {bytes(self.out)!r}")

    def close(self) -> None:
        self.modem.close()
        if self.fax is not None:
            self.fax.close()


def unstuff(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == DLE:
            if data[i + 1] == ETX:
                break
            out.append(data[i + 1])   # DLE DLE is a data DLE
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


def test_t31_scripted_dte_gets_dis(tmp_path):
    line = Line(str(tmp_path / "rx.tif"))
    try:
        assert line.command(b"ATE0").endswith(b"OK\r\n")
        assert line.command(b"AT+FCLASS=1") == b"\r\nOK\r\n"
        assert b"0,1" in line.command(b"AT+FCLASS=?")
        assert b"24,48,72,73,74,96,97,98,121,122,145,146" in line.command(b"AT+FTM=?")
        assert line.command(b"AT+FCLASS=9").endswith(b"ERROR\r\n")
        # Dial: the modem asks the "line" to call; the far fax answers.
        first = line.command(b"ATD5551234", until=(b"OK\r\n", b"NO CARRIER\r\n", b"ERROR\r\n"), seconds=20)
        assert (ModemControl.CALL, "5551234") in line.controls
        assert b"CONNECT" in first
        frames = [unstuff(first[first.index(b"CONNECT\r\n") + 9:])]
        while frames[-1][1] != 0x13:                                  # until the final frame
            got = line.command(b"AT+FRH=3", seconds=10)
            assert got.startswith(b"\r\nCONNECT\r\n"), got
            frames.append(unstuff(got[len(b"\r\nCONNECT\r\n"):]))
        csi, dis = frames[0], frames[-1]
        assert csi[:3] == b"\xff\x03\x40"
        assert csi[3:23][::-1].decode().strip() == "REMOTE 42"
        assert dis[:3] == b"\xff\x13\x80"          # DIS, final frame
        assert dis[4] & 0x02                        # bit 10: ready to receive (LSB = first bit)
        assert line.command(b"ATH0").endswith(b"OK\r\n")
        assert any(op in (ModemControl.HANGUP, ModemControl.ONHOOK) for op, _ in line.controls)
    finally:
        line.close()


def test_t31_ring_and_answer_events():
    out = bytearray()
    controls = []
    modem = spandsp.T31Modem(out.extend, lambda op, arg: controls.append(op))
    try:
        modem.at_rx(b"ATS0=2\r")
        assert out.endswith(b"OK\r\n")
        out.clear()
        modem.call_event(CallEvent.ALERTING)
        assert b"RING" in out and ModemControl.ANSWER not in controls
        modem.call_event(CallEvent.ALERTING)
        assert ModemControl.ANSWER in controls        # auto-answer on the second ring
    finally:
        modem.close()
