"""A scripted fake fax modem on a real pty, for the modem tests.

It answers AT commands the way a Class 1 modem does (CONNECT / OK after frames, frames to the DTE
with FCS then OK or ERROR, +FTM data until <DLE><ETX>), and can be told to misbehave: ERROR,
garbage, silence, dial results, closing the pty mid-page.  Its DLE handling is written separately
from modem/dle.py on purpose, so the two check each other."""

from __future__ import annotations

import asyncio
import os
import tty
from collections import deque
from collections.abc import Callable


def fcs(frame: bytes) -> bytes:
    crc = 0xFFFF
    for b in frame:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    crc ^= 0xFFFF
    return bytes([crc & 0xFF, crc >> 8])


def dle_escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        out.append(b)
        if b == 0x10:
            out.append(0x10)
    return bytes(out)


OK_COMMANDS = {"AT", "ATE0", "ATE1", "ATV1", "ATQ0", "ATS0=0", "ATH0", "ATH", "AT+FCLASS=1", "AT+FCLASS=1.0",
               "AT+FCLASS=0", "AT&K3", "AT+FAR=1", "AT+FCLASS=2", "AT+FCLASS=2.0"}


class FakeModem:
    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.commands: list[str] = []
        self.handlers: dict[str, object] = {}
        self.classes = "0,1,1.0"
        self.identity = {"AT+FMI?": "FakeModems Inc", "AT+FMM?": "FM-14400", "AT+FMR?": "1.0", "ATI0": "999",
                         "ATI3": "Fake modem"}
        self.modulations = "24,48,72,73,74,96,97,98,121,122,145,146"
        self.hdlc_to_dte: deque = deque()      # bytes (no FCS) | ("bad", bytes) | ("raw", bytes) | "NO CARRIER" …
        self.images_to_dte: deque = deque()    # bytes | "+FCERROR" | ("far", frame) | "silent"
        self.frames_from_dte: list[bytes] = []
        self.images_from_dte: list[tuple[int, bytes]] = []
        self.dial_result: list[str] | None = None  # default: CONNECT + first frame
        self.close_after_bytes: int | None = None  # in +FTM data: vanish after this many bytes
        self.echo = False
        self.connected = False
        self.cans = 0
        self._mode = "cmd"
        self._code = 0
        self._inbuf = bytearray()
        self._data = bytearray()
        self._dle = False
        self._out = bytearray()
        self._loop = asyncio.get_running_loop()
        self._writer = False
        self._closed = False
        self._loop.add_reader(self.master, self._readable)
        self.on_data_byte: Callable[[int], None] | None = None
        self._on_end = None
        self.on_trigger = None          # Class 2 +FDR: called when the DTE sends DC2

    # ---- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.remove_reader(self.master)
        except (ValueError, OSError):
            pass
        if self._writer:
            try:
                self._loop.remove_writer(self.master)
            except (ValueError, OSError):
                pass
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def vanish(self) -> None:
        """The port disappears: the DTE's next read gets EIO."""
        self.close()

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        while self._out and not self._closed:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            if n == 0:
                break
            del self._out[:n]
        if self._out and not self._writer:
            self._writer = True
            self._loop.add_writer(self.master, self._on_writable)
        elif not self._out and self._writer:
            self._writer = False
            self._loop.remove_writer(self.master)

    def _on_writable(self) -> None:
        self._flush()

    def reply(self, *lines: str) -> None:
        for line in lines:
            self.send(b"\r\n" + line.encode("latin-1") + b"\r\n")

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        if not data:
            return
        for b in data:
            if self._closed:
                return
            self._byte(b)

    # ---- state machine ----------------------------------------------------------------------

    def _byte(self, b: int) -> None:
        if self._mode in ("hdlc_tx", "data_tx"):
            self._data_byte(b)
            return
        if self._mode == "rx_wait":
            if b == 0x18:                   # CAN aborts a pending receive
                self.cans += 1
                self._mode = "cmd"
                self.reply("OK")
            return
        if b == 0x18:
            self.cans += 1
            return
        if b == 0x12 and self.on_trigger is not None:
            cb, self.on_trigger = self.on_trigger, None
            cb(self)
            return
        if b == 0x0D:
            cmd = self._inbuf.decode("latin-1").strip()
            self._inbuf.clear()
            if cmd:
                if self.echo:
                    self.send(cmd.encode() + b"\r")
                self.commands.append(cmd)
                self._command(cmd)
        elif b != 0x0A:
            self._inbuf.append(b)

    def _data_byte(self, b: int) -> None:
        if self._dle:
            self._dle = False
            if b == 0x10:
                self._data.append(0x10)
            elif b == 0x03:
                self._end_of_data()
            elif b == 0x1A:
                self._data += b"\x10\x10"
            elif b in (0x2C, 0x3B, 0x2E) and self._on_end is not None:   # Class 2.0 <DLE>,;.
                self._end_of_data(b)
            else:
                self._data += bytes([0x10, b])
            return
        if b == 0x10:
            self._dle = True
            return
        self._data.append(b)
        if self._mode == "data_tx" and self.close_after_bytes is not None and len(self._data) >= self.close_after_bytes:
            self.vanish()

    def start_data(self, on_end) -> None:
        """Class 2 +FDT: collect page data; ``on_end(fake, data, code)`` gets ETX or , ; ."""
        self._mode = "data_tx"
        self._on_end = on_end

    def _end_of_data(self, code: int = 0x03) -> None:
        data = bytes(self._data)
        self._data.clear()
        if self._on_end is not None:
            cb, self._on_end = self._on_end, None
            self._mode = "cmd"
            cb(self, data, code)
            return
        if self._mode == "hdlc_tx":
            if not data:                         # null frame
                self._mode = "cmd"
                self.reply("OK")
                return
            self.frames_from_dte.append(data)
            if len(data) >= 2 and data[1] & 0x10:
                self._mode = "cmd"
                self.reply("OK")
            else:
                self.reply("CONNECT")
        else:
            self.images_from_dte.append((self._code, data))
            self._mode = "cmd"
            self.reply("OK")

    def _deliver_frame(self, item) -> None:
        """Answer a pending +FRH=3 (or ATD) with one queued item."""
        if isinstance(item, str):
            self.reply(item)
            return
        if isinstance(item, tuple) and item[0] == "raw":
            self.send(item[1])
            return
        bad = isinstance(item, tuple) and item[0] == "bad"
        frame = item[1] if isinstance(item, tuple) else item
        body = frame + fcs(frame)
        if bad:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send(b"\r\nCONNECT\r\n" + dle_escape(body) + b"\x10\x03")
        self.reply("ERROR" if bad else "OK")

    def _command(self, cmd: str) -> None:
        up = cmd.upper()
        h = self.handlers.get(up)
        if h is not None:
            if callable(h):
                h(self, up)
            elif isinstance(h, (list, tuple)):
                self.reply(*h)
            elif h == "silent":
                pass
            else:
                self.reply(str(h))
            return
        if up in self.identity:
            self.reply(self.identity[up], "OK")
        elif up in OK_COMMANDS:
            self.reply("OK")
        elif up == "ATZ":
            self.reply("OK")
        elif up == "AT+FCLASS=?":
            self.reply(self.classes, "OK")
        elif up in ("AT+FTM=?", "AT+FRM=?"):
            self.reply(self.modulations, "OK")
        elif up in ("AT+FTH=?", "AT+FRH=?"):
            self.reply("3", "OK")
        elif up == "AT+FAR=?":
            self.reply("0,1", "OK")
        elif up == "AT+FTH=3":
            self._mode = "hdlc_tx"
            self.reply("CONNECT")
        elif up == "AT+FRH=3":
            if self.hdlc_to_dte:
                self._deliver_frame(self.hdlc_to_dte.popleft())
            else:
                self._mode = "rx_wait"
        elif up.startswith("AT+FTM="):
            self._code = int(up[7:])
            self._mode = "data_tx"
            self.reply("CONNECT")
        elif up.startswith("AT+FRM="):
            self._code = int(up[7:])
            item = self.images_to_dte.popleft() if self.images_to_dte else "silent"
            if item == "silent":
                self._mode = "rx_wait"
            elif isinstance(item, str):
                self.reply(item)
            elif isinstance(item, tuple) and item[0] == "far":
                self.send(b"\r\n+FRH:3\r\n")
                frame = item[1]
                self.send(b"\r\nCONNECT\r\n" + dle_escape(frame + fcs(frame)) + b"\x10\x03")
                self.reply("OK")
            else:
                self.send(b"\r\nCONNECT\r\n" + dle_escape(item) + b"\x10\x03")
                self.reply("NO CARRIER")
        elif up.startswith("AT+FTS=") or up.startswith("AT+FRS="):
            self.reply("OK")
        elif up.startswith("ATD"):
            if self.dial_result is not None:
                self.reply(*self.dial_result)
            else:
                self.connected = True
                if self.hdlc_to_dte:
                    self._deliver_frame(self.hdlc_to_dte.popleft())
                else:
                    self.reply("CONNECT")
        elif up == "ATA":
            self.connected = True
            self._mode = "hdlc_tx"
            self.reply("CONNECT")
        else:
            self.reply("ERROR")
