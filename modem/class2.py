"""``Class2Driver``: send and receive through a Class 2 (SP-2388-A) or Class 2.0 (T.32) fax modem.

In these classes the modem runs T.30; we give it parameters and T.4 page data.  The two are
different command sets, kept here as two :class:`Dialect` records rather than ``if`` chains, and
every hang-up code (+FHNG decimal, +FHS hex) maps to a result-record reason."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.phy import PhyError
from engine.result import SessionResult
from imaging import codec
from imaging.page import FaxPage
from modem.at import CommandTimeout, ModemError, PortGone, Response
from modem.dial import AnswerFailure, DialFailure, ModemLine
from modem.dle import DC1, DLE, END, ETX, Unshielder, shield
from modem.quirks import Quirks

log = logging.getLogger("modem.class2")


@dataclass(frozen=True)
class Dialect:
    name: str
    fclass: str
    local_id: str
    caps: str
    session: str
    bit_order: str
    abort: str
    connect: str
    remote_caps: str
    dcs: str
    csi: str
    tsi: str
    hangup: str
    hangup_hex: bool
    page_status: str          # +FPTS / +FPS report prefix
    set_page_status: str      # AT+FPTS= / AT+FPS=
    phase_c_timeout: str
    wait_xon: bool            # Class 2: wait for DC1 after CONNECT to +FDT
    dle_ppm: bool             # Class 2.0: <DLE>,;. end a page; Class 2: <DLE><ETX> then AT+FET=


CLASS2 = Dialect("2", "2", "+FLID", "+FDCC", "+FDIS", "+FBOR", "+FK", "+FCON", "+FDIS:", "+FDCS:", "+FCSI:",
                 "+FTSI:", "+FHNG:", False, "+FPTS:", "+FPTS=", "+FPHCTO=30", True, False)
CLASS20 = Dialect("2.0", "2.0", "+FLI", "+FCC", "+FIS", "+FBO", "+FKS", "+FCO", "+FIS:", "+FCS:", "+FCI:",
                  "+FTI:", "+FHS:", True, "+FPS:", "+FPS=", "+FCT=30", False, True)
DIALECTS = {"2": CLASS2, "2.0": CLASS20}

PPM_MPS, PPM_EOM, PPM_EOP = 0, 1, 2
DLE_PPM = {PPM_MPS: b",", PPM_EOM: b";", PPM_EOP: b"."}

# Hang-up codes keyed by their Class 2.0 (hex) spelling -> (phase, error_code, message, retryable).
HANGUP_CODES: dict[str, tuple[str, str, str, bool]] = {
    "00": ("", "", "normal end of connection", True),
    "01": ("A", "no_fax", "ring detected without successful handshake", True),
    "02": ("A", "aborted", "call aborted from +FK/+FKS or <CAN>", True),
    "03": ("A", "no_loop_current", "no loop current", True),
    "04": ("A", "no_answer", "ringback detected, no answer (timeout)", True),
    "05": ("A", "no_fax", "ringback detected, no answer without CED", True),
    "10": ("A", "phase_a_error", "unspecified Phase A error", True),
    "11": ("A", "no_answer", "no answer (T.30 T1 timeout)", True),
    "12": ("A", "no_answer", "no answer (ANSam not detected)", True),
    "13": ("A", "no_answer", "no answer (CED not detected)", True),
    "14": ("A", "no_answer", "no answer (V.8 failed)", True),
    "15": ("A", "no_answer", "no answer (phase 3 completed without fax)", True),
    "16": ("A", "no_answer", "no answer (phase 3 timeout)", True),
    "20": ("B", "phase_b_error", "unspecified transmit Phase B error", True),
    "21": ("B", "incompatible", "remote cannot be polled, or cannot receive or send", False),
    "22": ("B", "remote_disconnected", "COMREC error in transmit Phase B (got DCN)", True),
    "23": ("B", "protocol_error", "COMREC invalid command received (no DIS/DTC)", True),
    "24": ("B", "remote_disconnected", "RSPREC error in transmit Phase B (got DCN)", True),
    "25": ("B", "no_response", "DCS sent three times without response", True),
    "26": ("B", "no_response", "DIS/DTC received three times; DCS not recognised", True),
    "27": ("B", "training_failed", "failure to train at 2400 bit/s or the minimum speed", True),
    "28": ("B", "protocol_error", "RSPREC invalid response received", True),
    "40": ("C", "phase_c_error", "unspecified transmit Phase C error", True),
    "41": ("C", "image_error", "unspecified image format error", False),
    "42": ("C", "image_error", "image conversion error", False),
    "43": ("C", "underflow", "DTE to DCE data underflow", True),
    "44": ("C", "image_error", "unrecognised transparent data command", False),
    "45": ("C", "image_error", "image error: line length wrong", False),
    "46": ("C", "image_error", "image error: page length wrong", False),
    "47": ("C", "image_error", "image error: wrong compression code", False),
    "50": ("D", "phase_d_error", "unspecified transmit Phase D error", True),
    "51": ("D", "remote_disconnected", "RSPREC error in transmit Phase D (got DCN)", True),
    "52": ("D", "no_response", "no response to MPS repeated three times", True),
    "53": ("D", "protocol_error", "invalid response to MPS", True),
    "54": ("D", "no_response", "no response to EOP repeated three times", True),
    "55": ("D", "protocol_error", "invalid response to EOP", True),
    "56": ("D", "no_response", "no response to EOM repeated three times", True),
    "57": ("D", "protocol_error", "invalid response to EOM", True),
    "58": ("D", "remote_refused", "unable to continue after PIN or PIP", True),
    "70": ("B", "phase_b_error", "unspecified receive Phase B error", True),
    "71": ("B", "protocol_error", "RSPREC error in receive Phase B", True),
    "72": ("B", "protocol_error", "COMREC error in receive Phase B", True),
    "73": ("B", "no_response", "T.30 T2 timeout: expected page not received", True),
    "74": ("B", "no_response", "T.30 T1 timeout after EOM received", True),
    "90": ("C", "phase_c_error", "unspecified receive Phase C error", True),
    "91": ("C", "missing_eol", "missing EOL after 5 seconds", True),
    "92": ("C", "bad_frame", "bad CRC or frame (ECM or BFT mode)", True),
    "93": ("C", "overflow", "DCE to DTE buffer overflow", True),
    "A0": ("D", "phase_d_error", "unspecified receive Phase D error", True),
    "A1": ("D", "protocol_error", "RSPREC invalid response received", True),
    "A2": ("D", "protocol_error", "COMREC invalid command received", True),
    "A3": ("D", "remote_refused", "unable to continue after PIN or PIP", True),
    "E0": ("", "timeout", "command or signal 10 s timeout", True),
}
# Class 2 decimal codes whose 2.0 spelling differs.
_CLASS2_TO_20 = {93: "93", 94: "92", 100: "A0", 101: "A1", 102: "A2", 103: "A3"}
# Older 2388/89 draft firmware numbered the later phases differently (reference 2.6 gives only the ranges per
# phase, not each code's meaning), so these map to the phase's "unspecified" code.  The numbers clash with
# 2388-A (40 is tx Phase C there, tx Phase D here), hence only with the class2_old_hangup_codes quirk.
_OLD_2388_89: dict[range, str] = {range(30, 34): "40", range(40, 49): "50", range(50, 55): "70",
                                  range(60, 65): "90", range(70, 74): "A0"}


def _old_numbering(n: int) -> str | None:
    return next((key for span, key in _OLD_2388_89.items() if n in span), None)


def hangup_key(code: str, dialect: Dialect, old_numbering: bool = False) -> str:
    """Normalise a +FHNG (decimal) or +FHS (hex) value to the table's key."""
    s = code.strip().strip('"')
    if not s:
        return "00"
    if dialect.hangup_hex:
        try:
            return f"{int(s, 16):02X}"
        except ValueError:
            return s.upper()
    try:
        n = int(s, 10)
    except ValueError:
        return s
    if old_numbering and (old := _old_numbering(n)) is not None:
        return old
    return _CLASS2_TO_20.get(n, f"{n:02d}")


def hangup_reason(code: str, dialect: Dialect, old_numbering: bool = False) -> tuple[str, str, str, bool]:
    key = hangup_key(code, dialect, old_numbering)
    if key in HANGUP_CODES:
        phase, err, msg, retry = HANGUP_CODES[key]
        old = old_numbering and not dialect.hangup_hex and code.strip().isdigit() \
            and _old_numbering(int(code.strip())) is not None
        return phase, err, f"{msg} ({dialect.hangup}{code.strip()}{', 2388/89 numbering' if old else ''})", retry
    return "", f"hangup_{key.lower()}", f"modem hang-up code {dialect.hangup}{code.strip()} (not in the standard)", True


def parse_params(text: str) -> list[int]:
    """``+FCS:1,5,0,2,0,0,0,0`` -> [1, 5, 0, 2, 0, 0, 0, 0] (hex digits tolerated in 2.0 bitmaps)."""
    body = text.split(":", 1)[-1].strip()
    out = []
    for tok in body.split(","):
        tok = tok.strip().strip("()")
        try:
            out.append(int(tok, 10))
        except ValueError:
            try:
                out.append(int(tok, 16))
            except ValueError:
                out.append(0)
    return out


def parse_id(text: str) -> str:
    return text.split(":", 1)[-1].strip().strip('"').strip()


BR_SPEEDS = {0: 2400, 1: 4800, 2: 7200, 3: 9600, 4: 12000, 5: 14400}
SPEED_BR = {v: k for k, v in BR_SPEEDS.items()}
ST_MS = {0: 0, 1: 5, 2: 10, 3: 10, 4: 20, 5: 20, 6: 40, 7: 40}
DF_COMPRESSION = {0: "mh", 1: "mr", 3: "mmr"}


@dataclass
class Session2:
    """What the modem told us about the current call."""
    vr: int = 0
    br: int = 3
    wd: int = 0
    ln: int = 2
    df: int = 0
    ec: int = 0
    st: int = 0
    remote_id: str = ""


def _fine(vr: int, dialect: Dialect) -> bool:
    return bool(vr & 0x01) if dialect is CLASS20 else vr >= 1


def _reverse(data: bytes) -> bytes:
    return codec.reverse_bits(data)


class Class2Driver:
    """One call through a Class 2/2.0 modem on an opened, reset :class:`ModemLine`."""

    def __init__(self, line: ModemLine, dialect: str = "2.0", *, ident: str = "", ecm: bool = False,
                 max_speed: int = 14400, page_timeout: float = 180.0,
                 progress: Callable[[dict], None] | None = None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"Class 2 dialect must be '2' or '2.0', not {dialect!r}")
        self.line = line
        self.ch = line.ch
        self.d = DIALECTS[dialect]
        self.ident = ident
        self.ecm = ecm
        self.max_speed = max_speed
        self.page_timeout = page_timeout
        self.progress = progress
        self.session = Session2()
        self.hangup_code: str | None = None
        self.log: list[str] = []

    @property
    def q(self) -> Quirks:
        return self.line.quirks or Quirks()

    # ---- helpers ------------------------------------------------------------------------------

    async def _cmd(self, cmd: str, timeout: float = 5.0, *, required: bool = True) -> Response:
        resp = await self.ch.command(cmd, timeout, finals=(self.d.hangup,))
        self._scan(resp)
        if required and resp.final != "OK":
            raise ModemError(f"{cmd}: {resp.final}")
        return resp

    def _scan(self, resp: Response) -> None:
        """Pick session reports out of information lines (and a hang-up final)."""
        for line in resp.lines + ([resp.final] if resp.final.startswith(self.d.hangup) else []):
            self.log.append(line)
            if line.startswith(self.d.dcs):
                p = parse_params(line) + [0] * 8
                self.session = Session2(p[0], p[1], p[2], p[3], p[4], p[5], p[7], self.session.remote_id)
            elif line.startswith((self.d.csi, self.d.tsi)):
                self.session.remote_id = parse_id(line)
            elif line.startswith(self.d.hangup):
                self.hangup_code = line.split(":", 1)[1].strip()

    def _caps(self) -> str:
        br = SPEED_BR.get(self.max_speed, 5)
        vr = "1" if self.d is CLASS2 else "1"
        ec = ("2" if self.d is CLASS2 else "1") if self.ecm else "0"
        return f"{vr},{br},0,2,0,{ec},0,0"

    async def setup(self, *, receive: bool) -> None:
        d = self.d
        await self._cmd(f"AT+FCLASS={d.fclass}")
        if d is CLASS20:
            await self._cmd("AT+FLO=2" if self.line.ch.flow == "rtscts" else "AT+FLO=1", required=False)
            await self._cmd(f"AT+FNR={self.q.class2_fnr}", required=False)
            await self._cmd("AT+FIE=0", required=False)
        await self._cmd(f"AT{d.bit_order}=0", required=False)
        if self.ident:
            await self._cmd(f'AT{d.local_id}="{self.ident[:20]}"', required=False)
        await self._cmd(f"AT{d.caps}={self._caps()}", required=False)
        await self._cmd(f"AT{d.phase_c_timeout}", required=False)
        await self._cmd(f"AT+FCR={1 if receive else 0}", required=False)

    def _fail(self, result: SessionResult, phase: str, code: str, message: str, retryable: bool = True) -> None:
        result.success = False
        result.error_phase = phase
        result.error_code = code
        result.error_message = message
        result.retryable = retryable

    def _hangup_key(self, code: str) -> str:
        return hangup_key(code, self.d, self.q.class2_old_hangup_codes)

    def _fail_from_hangup(self, result: SessionResult, default_phase: str) -> None:
        phase, code, msg, retry = hangup_reason(self.hangup_code or "", self.d, self.q.class2_old_hangup_codes)
        if not code:   # "normal end" while we still expected something
            code, msg = "remote_disconnected", f"call ended early ({self.d.hangup}{self.hangup_code})"
        self._fail(result, phase or default_phase, code, msg, retry)

    def _fail_from_line_error(self, result: SessionResult, exc: PhyError) -> None:
        """A call cut short by the modem or port: a reported non-normal hang-up says more than the error."""
        if isinstance(exc, PortGone):
            self._fail(result, "", "modem_gone", f"modem port vanished during the call: {exc}")
        elif self.hangup_code and self._hangup_key(self.hangup_code) != "00":
            self._fail_from_hangup(result, "")
        else:
            self._fail(result, "", "modem_error", str(exc))

    async def _await_hangup(self, timeout: float) -> None:
        """Read lines until the hang-up report (it may come after the final OK)."""
        deadline = self.ch.clock.now() + timeout
        while self.hangup_code is None:
            line = await self.ch.read_line(max(0.0, deadline - self.ch.clock.now()))
            if line is None:
                return
            self.log.append(line)
            if line.startswith(self.d.hangup):
                self.hangup_code = line.split(":", 1)[1].strip()
            elif line == "NO CARRIER":
                self.hangup_code = self.hangup_code or "00"

    # ---- sending ------------------------------------------------------------------------------

    def _page_data(self, page: FaxPage) -> bytes:
        s = self.session
        pixels = page.pixels
        fine = _fine(s.vr, self.d)
        if not fine and page.y_dpi > 100:
            pixels = pixels[::2] if page.y_dpi < 300 else pixels[::4]
        elif fine and page.y_dpi > 300:
            pixels = pixels[::2]
        elif fine and page.y_dpi < 100:
            pixels = np.repeat(pixels, 2, axis=0)
        if pixels.shape[1] != 1728:
            fixed = np.zeros((pixels.shape[0], 1728), dtype=bool)
            w = min(1728, pixels.shape[1])
            fixed[:, :w] = pixels[:, :w]
            pixels = fixed
        comp = DF_COMPRESSION.get(s.df, "mh")
        if comp == "mmr" and not s.ec:
            comp = "mh"
        min_bits = 0 if s.ec else codec.min_row_bits_for(ST_MS.get(s.st, 0), BR_SPEEDS.get(s.br, 9600))
        return codec.encode(pixels, comp, k=4 if fine else 2, min_row_bits=min_bits,
                            rtc=self.q.class2_send_rtc, lsb_first=True, byte_align=comp != "mmr")

    async def send(self, number: str, pages: list[FaxPage]) -> SessionResult:
        result = SessionResult(role="send", local_ident=self.ident)
        start = self.ch.clock.now()
        if not pages:
            raise ValueError("nothing to send: no pages")
        try:
            await self._send(number, pages, result)
        except DialFailure as exc:
            self._fail(result, "A", exc.code, exc.message, exc.retryable)
        except (ModemError, PhyError, CommandTimeout) as exc:
            self._fail_from_line_error(result, exc)
        finally:
            await self.line.hangup()
        result.duration = self.ch.clock.now() - start
        return result

    async def _send(self, number: str, pages: list[FaxPage], result: SessionResult) -> None:
        await self.setup(receive=False)
        resp = await self.line.dial(number, success=("OK", "CONNECT"), finals=(self.d.hangup,))
        self._scan(resp)
        if resp.final.startswith("CONNECT"):
            raise DialFailure("data_call", "a data modem answered, not a fax")
        if not any(line.startswith(self.d.connect) for line in resp.lines):
            if self.hangup_code is None:
                await self._await_hangup(2.0)
            self._fail_from_hangup(result, "A") if self.hangup_code else self._fail(
                result, "A", "no_fax", "the call connected but no fax answered")
            return
        result.remote_ident = self.session.remote_id
        for index, page in enumerate(pages):
            ppm = PPM_EOP if index == len(pages) - 1 else PPM_MPS
            for attempt in range(3):
                status = await self._send_page(page, ppm)
                if status is None:
                    self._fail_from_hangup(result, "C")
                    return
                if status in (1, 3, 5):                # MCF / RTP / PIP
                    break
                if status == 4:                        # PIN
                    self._fail(result, "D", "remote_refused", "receiver refused the page (PIN)")
                    return
                if attempt == 2:                       # RTN three times: give up the page
                    self._fail(result, "D", "page_rejected", f"page {index + 1} rejected (RTN) three times")
                    return
            result.pages_sent = index + 1
            self._note_session(result)
            if self.progress:
                self.progress({"phase": "D", "page": index + 1})
        await self._await_hangup(15.0)
        key = self._hangup_key(self.hangup_code or "00")
        if key != "00":
            self._fail_from_hangup(result, "E")
            return
        result.success = True

    def _note_session(self, result: SessionResult) -> None:
        s = self.session
        result.fax_speed = BR_SPEEDS.get(s.br, 0)
        result.ecm = bool(s.ec)
        result.resolution = "fine" if _fine(s.vr, self.d) else "standard"
        result.compression = DF_COMPRESSION.get(s.df, "mh")
        result.remote_ident = result.remote_ident or s.remote_id

    async def _send_page(self, page: FaxPage, ppm: int) -> int | None:
        """Returns the post-page response (1 MCF, 2 RTN, 3 RTP, 4 PIN, 5 PIP) or None on hang-up."""
        for _ in range(3):
            resp = await self.ch.command("AT+FDT", 60.0, finals=(self.d.hangup,))
            self._scan(resp)
            if resp.final.startswith("CONNECT"):
                break
            if resp.final == "OK" and self.hangup_code is None:
                continue                               # some modems: no page possible yet, try again
            if self.hangup_code is None:
                await self._await_hangup(2.0)
            return None
        else:
            return None
        if self.d.wait_xon:
            await self._wait_for_xon(20.0)
        data = self._page_data(page)
        self.ch.direction("tx")
        try:
            for k in range(0, len(data), 1024):
                await self.ch.write(shield(data[k:k + 1024]), timeout=60.0)
            if self.d.dle_ppm:
                await self.ch.write(bytes([DLE]) + DLE_PPM[ppm])
            else:
                await self.ch.write(END)
        finally:
            self.ch.direction("cmd")
        if self.d.dle_ppm:
            resp = await self.ch.read_response(self.page_timeout, finals=(self.d.hangup,))
            self._scan(resp)
            if resp.final.startswith(self.d.hangup):
                return None
            if resp.final == "OK":
                return 1
            if resp.final == "ERROR":
                st = await self.ch.query("AT+FPS?", 5.0)
                ppr = parse_params(st)[0] if st else 2
                return ppr if ppr in (2, 4) else 2
            return None
        resp = await self.ch.read_response(self.page_timeout, finals=(self.d.hangup,))
        self._scan(resp)
        if resp.final != "OK":
            return None
        resp = await self.ch.command(f"AT+FET={ppm}", self.page_timeout, finals=(self.d.hangup,))
        self._scan(resp)
        for line in resp.lines:
            if line.startswith(self.d.page_status):
                return parse_params(line)[0]
        if self.hangup_code is not None and self._hangup_key(self.hangup_code) == "00" and ppm == PPM_EOP:
            return 1                                   # +FHNG:0 instead of +FPTS after the last page
        return None

    async def _wait_for_xon(self, timeout: float) -> None:
        deadline = self.ch.clock.now() + timeout
        while self.ch.clock.now() < deadline:
            chunk = await self.ch.read_some(max(0.0, deadline - self.ch.clock.now()))
            if not chunk:
                break
            k = chunk.find(bytes([DC1]))
            if k >= 0:
                self.ch.unread(chunk[k + 1:])
                return
        raise ModemError("Class 2 modem sent no XON after CONNECT to +FDT")

    # ---- receiving ----------------------------------------------------------------------------

    def _rx_reversed(self) -> bool:
        mode = self.q.class2_rx_reversed
        if mode == "auto":
            return self.d is CLASS2 and not re.search(r"multi-?tech", self.line.identity.get("fmi", ""), re.I)
        return mode == "yes"

    async def receive(self, *, rings: int = 1, ring_timeout: float | None = None,
                      on_page: Callable[[FaxPage, int], None] | None = None,
                      answer_now: bool = False) -> SessionResult:
        """Set up, wait for ``rings`` RINGs, answer and receive.  ``answer_now``: the caller already ran
        :meth:`setup` and counted the rings (the engine's modem channel), so answer at once."""
        result = SessionResult(role="receive", local_ident=self.ident)
        start = self.ch.clock.now()
        try:
            if not answer_now:
                await self.setup(receive=True)
                await self.line.wait_for_call(rings, ring_timeout)
            start = self.ch.clock.now()
            await self._receive(result, on_page)
        except AnswerFailure as exc:
            self._fail(result, "A", exc.code, exc.message)
        except (ModemError, PhyError, CommandTimeout) as exc:
            self._fail_from_line_error(result, exc)
        finally:
            await self.line.hangup()
        result.duration = self.ch.clock.now() - start
        return result

    async def _receive(self, result: SessionResult, on_page) -> None:
        resp = await self.line.answer(success=("OK",), finals=(self.d.hangup,))
        self._scan(resp)
        if not any(line.startswith(self.d.connect) for line in resp.lines):
            self._fail_from_hangup(result, "A") if self.hangup_code else self._fail(
                result, "A", "no_fax", "answered, but no fax connection")
            return
        result.remote_ident = self.session.remote_id
        while True:
            resp = await self.ch.command("AT+FDR", 60.0, finals=(self.d.hangup,))
            self._scan(resp)
            if resp.final.startswith(self.d.hangup) or self.hangup_code is not None:
                if resp.final.startswith(self.d.hangup):
                    await self._final_ok()
                break
            if resp.final == "OK":
                continue                              # PPI and others: OK between documents
            if not resp.final.startswith("CONNECT"):
                raise ModemError(f"AT+FDR: {resp.final}")
            await self.ch.write(bytes([self.q.class2_trigger]))
            data = await self._read_page()
            resp = await self.ch.read_response(30.0, finals=(self.d.hangup,))
            self._scan(resp)
            ppm = None
            for line in resp.lines:
                if line.startswith("+FET:"):
                    ppm = parse_params(line)[0]
            page, bad = self._decode(data)
            if page is not None:
                result.pages_received += 1
                result.bad_rows += bad
                self._note_session(result)
                if on_page:
                    on_page(page, result.pages_received)
            if ppm is None and resp.final.startswith(self.d.hangup):
                break
        await self._await_hangup(5.0)
        key = self._hangup_key(self.hangup_code or "00")
        if key != "00":
            self._fail_from_hangup(result, "D")
            return
        result.success = result.pages_received > 0
        if not result.success:
            self._fail(result, "C", "no_pages", "the call ended without a page")

    async def _final_ok(self) -> None:
        try:
            await self.ch.read_response(3.0)
        except CommandTimeout:
            pass

    async def _read_page(self) -> bytes:
        self.ch.direction("rx")
        dec = Unshielder(terminators=bytes([ETX]))
        out = bytearray()
        try:
            while not dec.ended:
                chunk = await self.ch.read_some(self.page_timeout)
                if not chunk:
                    raise ModemError(f"no page data for {self.page_timeout:g} s")
                out += dec.feed(chunk)
        finally:
            self.ch.direction("cmd")
        self.ch.unread(dec.rest)
        data = bytes(out)
        return _reverse(data) if self._rx_reversed() else data

    def _decode(self, data: bytes) -> tuple[FaxPage | None, int]:
        s = self.session
        comp = DF_COMPRESSION.get(s.df, "mh")
        width = {0: 1728, 1: 2048, 2: 2432}.get(s.wd, 1728)
        try:
            dec = codec.decode(data, comp, width, lsb_first=True)
        except ValueError as exc:
            log.warning("undecodable page: %s", exc)
            return None, 0
        pixels = dec.pixels if hasattr(dec, "pixels") else dec[0]
        bad = int(getattr(dec, "bad_rows", 0))
        return FaxPage(pixels, y_dpi=196 if _fine(s.vr, self.d) else 98), bad
