"""A Class 2.0 (or Class 2) fax modem for the rig: an AT+FCLASS=2.0 / =2 interpreter on its own pty,
in front of our T.30.

It drives one of the rig's Class 1 (spandsp T.31) modems with ``Class1Phy`` and runs the T.30 session
that a Class 2.0 modem would run in firmware, so ``Class2Driver`` has a modem to talk to without
hardware.  It is a store-and-forward model, not a faithful modem: pages given with +FDT are collected
and sent in one T.30 session when the DTE ends the document with ``<DLE>.`` (each earlier page is
acknowledged with OK at once), and on receive the whole fax is taken in during ATA and then handed to
the DTE page by page with +FDR.  +FIS after ATD reports our own capabilities, not the remote's.
With ``dialect="2"`` it speaks SP-2388-A instead (+FCON, +FDCS, XON after CONNECT to +FDT, <DLE><ETX>
then AT+FET=n, +FPTS, +FHNG decimal) and, like the Rockwell-heritage modems most Class 2 users have,
delivers received page data bit-reversed.
Real Class 2/2.0 hardware is still the judge of the driver.

T.30 is injected (``session_factory``) because modem/ must not import engine.t30:
``session_factory(phy, clock, *, send_pages, on_page, calling, ident, ecm) -> object with async run()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Callable
from typing import Any

from engine.clock import Clock, MonotonicClock
from engine.result import SessionResult
from imaging import codec
from imaging.page import FaxPage
from modem.class1 import Class1Phy
from modem.dial import DialFailure, ModemLine

log = logging.getLogger("faxengine.rig.class20")

CAPS_RANGE = "(0,1),(0-5),(0-2),(0-2),(0-3),(0-1),(0),(0-7)"
_DIAL_TEXT = {"busy": "BUSY", "no_carrier": "NO CARRIER", "no_dialtone": "NO DIALTONE", "no_answer": "NO ANSWER",
              "no_fax": "NO CARRIER"}
# Class 2.0 / Class 2 spellings, as data (the two command sets differ; see modem.class2 for the driver side).
REPORTS = {
    "2.0": {"connect": "+FCO", "remote_caps": "+FIS:", "dcs": "+FCS:", "tsi": "+FTI:", "hangup": "+FHS:",
            "status": "+FPS:", "ident": "AT+FLI=", "bit_order": "AT+FBO="},
    "2": {"connect": "+FCON", "remote_caps": "+FDIS:", "dcs": "+FDCS:", "tsi": "+FTSI:", "hangup": "+FHNG:",
          "status": "+FPTS:", "ident": "AT+FLID=", "bit_order": "AT+FBOR="},
}
_HEX_TO_CLASS2 = {"A0": 100, "A1": 101, "A2": 102, "A3": 103, "92": 94}
# SessionResult.error_code -> +FHS code (hex); otherwise by phase.
_FHS_BY_CODE = {"training_failed": "27", "remote_refused": "58", "aborted": "02"}
_FHS_SEND_PHASE = {"A": "10", "B": "20", "C": "40", "D": "50", "E": "50", "": "50"}
_FHS_RECV_PHASE = {"A": "10", "B": "70", "C": "90", "D": "A0", "E": "A0", "": "A0"}


def fhs_for(result: SessionResult) -> str:
    if result.success:
        return "00"
    if result.error_code in _FHS_BY_CODE:
        return _FHS_BY_CODE[result.error_code]
    table = _FHS_SEND_PHASE if result.role == "send" else _FHS_RECV_PHASE
    return table.get(result.error_phase, "50")


class Class20Modem:
    def __init__(self, class1_path: str, session_factory: Callable[..., Any], *, clock: Clock | None = None,
                 ecm: bool = False, dialect: str = "2.0") -> None:
        if dialect not in REPORTS:
            raise ValueError("dialect must be '2.0' or '2'")
        self.dialect = dialect
        self.r = REPORTS[dialect]
        self.class1_path = class1_path
        self.factory = session_factory
        self.clock = clock or MonotonicClock()
        self.ecm = ecm
        self.ident = ""
        self.bit_order = 0
        self.echo = True
        self.commands: list[str] = []
        self.results: list[SessionResult] = []
        self._master = -1
        self._slave = -1
        self.path = ""
        self._inbuf = bytearray()
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy: asyncio.Task | None = None
        self._ring_task: asyncio.Task | None = None
        self._line: ModemLine | None = None
        self._phy: Class1Phy | None = None
        self._mode = "cmd"           # cmd | data (collecting +FDT page) | trigger (waiting for DC2)
        self._data = bytearray()
        self._dle = False
        self._tx_pages: list[FaxPage] = []
        self._rx_pages: list[FaxPage] = []
        self._rx_result: SessionResult | None = None
        self._rx_index = 0
        self._last_ppr = 1

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._loop.add_reader(self._master, self._readable)
        self._line = ModemLine(self.class1_path, clock=self.clock)
        await self._line.open()
        await self._line.reset()
        await self._line.basic_init()
        await self._line.identify()
        await self._line.setup_class1()
        self._ring_task = asyncio.ensure_future(self._forward_rings())
        return self.path

    async def stop(self) -> None:
        for task in (self._busy, self._ring_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001 - shutting down
                    pass
        if self._loop is not None and self._master >= 0:
            try:
                self._loop.remove_reader(self._master)
            except (ValueError, OSError):
                pass
        if self._line is not None:
            await self._line.close()
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    # ---- DTE side plumbing --------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._out += data
        while self._out:
            try:
                n = os.write(self._master, self._out)
            except BlockingIOError:
                break
            except OSError:
                self._out.clear()
                return
            del self._out[:n]
        if self._out and self._loop is not None:
            self._loop.call_later(0.01, self._send, b"")

    def reply(self, *lines: str) -> None:
        for line in lines:
            self._send(b"\r\n" + line.encode("latin-1") + b"\r\n")

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for b in data:
            self._byte(b)

    def _byte(self, b: int) -> None:
        if self._mode == "data":
            self._data_byte(b)
            return
        if self._mode == "trigger":
            if b in (0x12, 0x11):
                self._mode = "cmd"
                self._send_rx_page()
            return
        if self._busy is not None and not self._busy.done():
            return                                    # a long command is running; ignore typing
        if b == 0x0D:
            cmd = self._inbuf.decode("latin-1").strip()
            self._inbuf.clear()
            if cmd:
                if self.echo:
                    self._send(cmd.encode("latin-1") + b"\r")
                self.commands.append(cmd)
                self._command(cmd)
        elif b != 0x0A:
            self._inbuf.append(b)

    def _data_byte(self, b: int) -> None:
        if self._dle:
            self._dle = False
            if b == 0x10:
                self._data.append(0x10)
            elif b == 0x1A:
                self._data += b"\x10\x10"
            elif b in (0x2C, 0x3B, 0x2E, 0x03):      # <DLE>, ; . (MPS EOM EOP), <DLE><ETX>
                self._mode = "cmd"
                data = bytes(self._data)
                self._data.clear()
                self._page_done(data, b)
            return
        if b == 0x10:
            self._dle = True
        else:
            self._data.append(b)

    # ---- commands -----------------------------------------------------------------------------

    def _command(self, cmd: str) -> None:
        up = cmd.upper()
        if up.startswith("AT") and len(up) > 2 and not up.startswith("AT+") and not up.startswith("ATD"):
            if up.startswith("ATE"):
                self.echo = up[3:4] != "0"
            if up in ("ATA",):
                self._busy = asyncio.ensure_future(self._answer())
                return
            if up.startswith("ATH"):
                self._busy = asyncio.ensure_future(self._hangup_cmd())
                return
            if up.startswith("ATI"):
                self.reply("faxengine Class 2.0 emulator", "OK")
                return
            self.reply("OK")
            return
        if up == "AT":
            self.reply("OK")
        elif up.startswith("ATD"):
            self._busy = asyncio.ensure_future(self._dial(cmd[3:].lstrip("TtPp")))
        elif up == "AT+FCLASS=?":
            self.reply("(0,1,2)" if self.dialect == "2" else "(0,1,2.0)", "OK")
        elif up == "AT+FCLASS?":
            self.reply(self.dialect, "OK")
        elif up in (f"AT+FCLASS={self.dialect}", "AT+FCLASS=0"):
            self.reply("OK")
        elif up in ("AT+FMI?", "AT+FMFR?"):
            self.reply("faxengine", "OK")
        elif up in ("AT+FMM?", "AT+FMDL?"):
            self.reply("Class 2.0 emulator (rig)", "OK")
        elif up in ("AT+FMR?", "AT+FREV?"):
            self.reply("1.0", "OK")
        elif up in ("AT+FCC=?", "AT+FDCC=?"):
            self.reply(CAPS_RANGE, "OK")
        elif up.startswith(self.r["ident"]):
            self.ident = cmd[len(self.r["ident"]):].strip().strip('"')
            self.reply("OK")
        elif up.startswith(self.r["bit_order"]):
            self.bit_order = int(up[len(self.r["bit_order"]):] or 0)
            self.reply("OK")
        elif self.dialect == "2" and up.startswith("AT+FET="):
            self._fet(int(up[7:] or 0))
        elif up == "AT+FPS?":
            self.reply(f"+FPS:{self._last_ppr}", "OK")
        elif up == "AT+FDT":
            self._fdt()
        elif up == "AT+FDR":
            self._fdr()
        elif up.startswith(("AT+FLO=", "AT+FNR=", "AT+FIE=", "AT+FCC=", "AT+FCT=", "AT+FCR=", "AT+FIS=",
                            "AT+FPS=", "AT+FAA=", "AT+FCQ=", "AT+FMS=", "AT+FRY=", "AT+FDCC=", "AT+FDIS=",
                            "AT+FPHCTO=", "AT+FPTS=", "AT+FBUG=", "AT+FTBC=", "AT+FREL=")):
            self.reply("OK")
        elif up in ("AT+FKS", "AT+FK"):
            self._busy = asyncio.ensure_future(self._hangup_cmd(fhs="02"))
        else:
            self.reply("ERROR")

    def _fcs_line(self, fine: bool = True) -> str:
        ec = (2 if self.dialect == "2" else 1) if self.ecm else 0
        return f"{self.r['dcs']}{1 if fine else 0},5,0,2,0,{ec},0,0"

    def _hangup_line(self, code_hex: str) -> str:
        if self.dialect == "2":
            return f"+FHNG:{_HEX_TO_CLASS2.get(code_hex, int(code_hex) if code_hex.isdigit() else 50)}"
        return f"+FHS:{code_hex}"

    # ---- sending ------------------------------------------------------------------------------

    async def _dial(self, number: str) -> None:
        assert self._line is not None
        if self._ring_task is not None:
            self._ring_task.cancel()
        try:
            await self._line.dial(number, timeout=90)
        except DialFailure as exc:
            self.reply(_DIAL_TEXT.get(exc.code, "NO CARRIER"))
            self._restart_ring_watch()
            return
        self._phy = Class1Phy(self._line.ch, self.clock, self._line.quirks, adaptive_receive=self._line.far)
        self._phy.call_connected()
        self._tx_pages = []
        ec = (2 if self.dialect == "2" else 1) if self.ecm else 0
        self.reply(self.r["connect"], f"{self.r['remote_caps']}1,5,0,2,0,{ec},0,0", "OK")

    def _fdt(self) -> None:
        if self._phy is None:
            self.reply("ERROR")
            return
        self.reply(self._fcs_line(), "CONNECT")
        if self.dialect == "2":
            self._send(b"\x11")                    # SP-2388-A: XON = ready for data
        self._mode = "data"
        self._data.clear()
        self._dle = False

    def _page_done(self, data: bytes, code: int) -> None:
        if self._rx_result is not None:
            return
        raw = codec.reverse_bits(data) if self.bit_order & 1 else data
        try:
            dec = codec.decode(raw, "mh", 1728, lsb_first=True)
            self._tx_pages.append(FaxPage(dec.pixels, y_dpi=196))
        except ValueError as exc:
            log.warning("page from the DTE does not decode: %s", exc)
            self.reply("ERROR", self._hangup_line("41"))
            return
        if self.dialect == "2":
            self.reply("OK")                           # then the DTE says AT+FET=n
        elif code == 0x2E:                            # EOP: now run the real T.30 session
            self._busy = asyncio.ensure_future(self._run_send())
        else:
            self._last_ppr = 1
            self.reply("OK")

    def _fet(self, ppm: int) -> None:
        if self._phy is None:
            self.reply("ERROR")
        elif ppm == 2:
            self._busy = asyncio.ensure_future(self._run_send())
        else:
            self.reply("+FPTS:1", "OK")

    async def _run_send(self) -> None:
        session = self.factory(self._phy, self.clock, send_pages=self._tx_pages, on_page=None, calling=True,
                               ident=self.ident, ecm=self.ecm)
        result: SessionResult = await session.run()
        self.results.append(result)
        self._last_ppr = 1 if result.success else 2
        self._phy = None
        if self.dialect == "2":
            self.reply(f"+FPTS:{self._last_ppr}", self._hangup_line(fhs_for(result)), "OK")
        else:
            self.reply("OK" if result.success else "ERROR", self._hangup_line(fhs_for(result)))
        self._restart_ring_watch()

    # ---- receiving ----------------------------------------------------------------------------

    async def _forward_rings(self) -> None:
        assert self._line is not None
        while True:
            await self._line.wait_for_call(1, None)
            self.reply("RING")

    def _restart_ring_watch(self) -> None:
        if self._ring_task is None or self._ring_task.done():
            self._ring_task = asyncio.ensure_future(self._forward_rings())

    async def _answer(self) -> None:
        assert self._line is not None
        if self._ring_task is not None:
            self._ring_task.cancel()
        try:
            await self._line.answer(timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported to the DTE as a failed answer
            log.info("answer failed: %s", exc)
            self.reply("NO CARRIER")
            self._restart_ring_watch()
            return
        phy = Class1Phy(self._line.ch, self.clock, self._line.quirks, adaptive_receive=self._line.far)
        phy.call_answered()
        self._rx_pages = []
        session = self.factory(phy, self.clock, send_pages=None, on_page=lambda p, n: self._rx_pages.append(p),
                               calling=False, ident=self.ident, ecm=self.ecm)
        result: SessionResult = await session.run()
        self.results.append(result)
        self._rx_result = result
        self._rx_index = 0
        if not self._rx_pages:
            self.reply(self._hangup_line(fhs_for(result) if not result.success else "70"), "OK")
            self._rx_result = None
            self._restart_ring_watch()
            return
        fine = self._rx_pages[0].y_dpi > 100
        self.reply(self.r["connect"], f'{self.r["tsi"]}"{result.remote_ident}"', self._fcs_line(fine), "OK")

    def _fdr(self) -> None:
        if self._rx_result is None:
            self.reply("ERROR")
            return
        if self._rx_index >= len(self._rx_pages):
            self.reply(self._hangup_line(fhs_for(self._rx_result)), "OK")
            self._rx_result = None
            self._restart_ring_watch()
            return
        self.reply("CONNECT")
        self._mode = "trigger"

    def _send_rx_page(self) -> None:
        page = self._rx_pages[self._rx_index]
        self._rx_index += 1
        data = codec.encode(page.pixels, "mh", lsb_first=True, rtc=False, byte_align=True)
        if bool(self.bit_order & 1) != (self.dialect == "2"):   # Class 2: Rockwell reverses received data
            data = codec.reverse_bits(data)
        self._send(data.replace(b"\x10", b"\x10\x10") + b"\x10\x03")
        last = self._rx_index >= len(self._rx_pages)
        self.reply(f"{self.r['status']}1,{page.rows},0,0,0", f"+FET:{2 if last else 0}", "OK")

    async def _hangup_cmd(self, fhs: str | None = None) -> None:
        if self._ring_task is not None:
            self._ring_task.cancel()
        if self._line is not None:
            await self._line.hangup()
        self._phy = None
        self._rx_result = None
        if fhs:
            self.reply(self._hangup_line(fhs))
        self.reply("OK")
        self._restart_ring_watch()
