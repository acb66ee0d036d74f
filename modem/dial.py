"""One modem line: reset ladder, initialisation, dial, wait for RING and answer, health.

Dial failures become distinct, retryable reasons (``DialFailure.code``); a modem that does not come
back through the whole reset ladder several times in a row is marked down.  Every step is bounded
in time, so a wedged modem never hangs the caller."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from engine.clock import Clock, MonotonicClock
from modem.at import ATChannel, CallerId, CommandTimeout, ModemError, PortGone, Response
from modem.dle import CAN
from modem.quirks import Quirks, lookup

log = logging.getLogger("modem.dial")

# Final dial results -> (error_code, retryable, message).  Class 1 success is CONNECT.
DIAL_RESULTS: dict[str, tuple[str, bool, str]] = {
    "BUSY": ("busy", True, "the line was busy"),
    "NO CARRIER": ("no_carrier", True, "no fax answered (NO CARRIER)"),
    "NO DIALTONE": ("no_dialtone", True, "no dial tone (line unplugged or in use)"),
    "NO DIAL TONE": ("no_dialtone", True, "no dial tone (line unplugged or in use)"),
    "NO ANSWER": ("no_answer", True, "ringing, but nobody answered (NO ANSWER)"),
    "ERROR": ("dial_error", True, "the modem refused the dial command (ERROR)"),
    "+FCERROR": ("no_fax", True, "ringback or voice: no fax answer tone (+FCERROR)"),
    "FCERROR": ("no_fax", True, "ringback or voice: no fax answer tone (+FCERROR)"),
    "BLACKLISTED": ("blacklisted", False, "the modem's redial limiter blacklisted this number"),
    "DELAYED": ("delayed", True, "the modem's redial limiter delayed this call"),
    "DIALING DISABLED": ("blacklisted", False, "dialling disabled by the modem's redial limiter"),
}


class DialFailure(ModemError):
    """The call was not connected; ``code`` is the result record's error_code."""

    def __init__(self, code: str, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class ModemDown(ModemError):
    """The modem failed the reset ladder too many times in a row; do not use it until checked."""


class AnswerFailure(ModemError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_query(text: str) -> list[str]:
    """Parse a ``=?`` reply like ``(0,1,2.0)``, ``+FTM: 24,48,72-74`` into tokens, ranges expanded."""
    s = (text or "").strip()
    s = re.sub(r"^\+?F?[A-Z0-9]*\s*[:=]\s*", "", s) if re.match(r"^\+F", s) else s
    s = s.replace("(", "").replace(")", "").replace(" ", "").replace("\n", ",")
    out: list[str] = []
    for tok in s.split(","):
        if not tok:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", tok)
        if m:
            out += [str(v) for v in range(int(m.group(1)), int(m.group(2)) + 1)]
        else:
            out.append(tok)
    return out


def parse_param_ranges(text: str) -> list[set[int]]:
    """Per-parameter value sets of a ``=?`` reply such as ``+FIT: (0-255),(0-1)`` or ``(0-255)``."""
    s = re.sub(r"^\+F[A-Z0-9]*\s*[:=]\s*", "", (text or "").strip())
    groups = re.findall(r"\(([^)]*)\)", s) or [s]
    out: list[set[int]] = []
    for group in groups:
        values: set[int] = set()
        for tok in group.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", tok)
            if m:
                values.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
        out.append(values)
    return out


@dataclass
class Health:
    consecutive_failures: int = 0
    down: bool = False
    last_rung: str = ""
    last_error: str = ""


class ModemLine:
    """A modem port plus what we know about it (identity, quirks, health)."""

    def __init__(self, port: str | None = None, *, quirks: Quirks | None = None, clock: Clock | None = None,
                 fd: int | None = None, max_failures: int = 3, flow: str | None = None,
                 baudrate: int | None = None, atz_timeout: float = 5.0, at_timeout: float = 1.0) -> None:
        self.port = port
        self.atz_timeout = atz_timeout
        self.at_timeout = at_timeout
        self.clock = clock or MonotonicClock()
        self.quirks = quirks
        self._fixed_quirks = quirks is not None
        q = quirks or Quirks()
        self.ch = ATChannel(port, fd=fd, clock=self.clock, flow=flow or q.flow, baudrate=baudrate or q.baudrate)
        self.max_failures = max_failures
        self.health = Health()
        self.identity: dict[str, str] = {}
        self.classes: list[str] = []
        self.far = False
        self.fcl: int | None = None          # +FCL value set on the modem this call (None = not set)
        self.fit: tuple[int, int] | None = None
        self.caller_id = True

    async def open(self) -> None:
        await self.ch.open()

    async def close(self) -> None:
        await self.ch.close()

    # ---- reset ladder -------------------------------------------------------------------------

    async def _try(self, cmd: str, timeout: float) -> bool:
        try:
            return (await self.ch.command(cmd, timeout)).ok
        except CommandTimeout:
            return False

    async def reset(self) -> str:
        """Bring the modem back to command state: CAN, AT, ATZ, DTR drop, reopen.  Returns the rung.

        Raises :class:`ModemDown` once ``max_failures`` resets in a row failed, PortGone if the port
        cannot even be reopened."""
        if self.health.down:
            raise ModemDown(f"modem {self.port} is marked down: {self.health.last_error}")
        rungs = [("AT", self._rung_at), ("CAN", self._rung_can), ("ATZ", self._rung_atz),
                 ("DTR", self._rung_dtr), ("reopen", self._rung_reopen)]
        for name, rung in rungs:
            try:
                if await rung():
                    self.health.consecutive_failures = 0
                    self.health.last_rung = name
                    return name
            except PortGone as exc:
                self.health.last_error = str(exc)
                if name != "reopen":
                    continue
            except ModemError as exc:
                self.health.last_error = str(exc)
        self.health.consecutive_failures += 1
        self.health.last_error = self.health.last_error or "no OK to AT after the whole reset ladder"
        if self.health.consecutive_failures >= self.max_failures:
            self.health.down = True
            raise ModemDown(f"modem {self.port} marked down after {self.health.consecutive_failures} failed "
                            f"resets: {self.health.last_error}")
        raise ModemError(f"modem {self.port} did not answer the reset ladder: {self.health.last_error}")

    async def _rung_at(self) -> bool:
        self.ch.flush_input()
        return await self._try("AT", self.at_timeout)

    async def _rung_can(self) -> bool:
        await self.ch.write(bytes([CAN]))
        await self.clock.sleep(0.2)
        self.ch.flush_input()
        return await self._try("AT", self.at_timeout)

    async def _rung_atz(self) -> bool:
        self.ch.flush_input()
        if not await self._try("ATZ", self.atz_timeout):
            return False
        await self.clock.sleep(0.3)
        self.ch.flush_input()                       # some modems say OK twice after ATZ
        return await self._try("AT", self.at_timeout)

    async def _rung_dtr(self) -> bool:
        if not self.ch.drop_dtr(0.1):
            return False
        await self.clock.sleep(0.5)
        self.ch.flush_input()
        return await self._try("AT", 2 * self.at_timeout)

    async def _rung_reopen(self) -> bool:
        if self.port is None:
            return False
        await self.ch.reopen()
        await self.clock.sleep(0.2)
        self.ch.flush_input()
        return await self._try("ATZ", self.atz_timeout) and await self._try("AT", self.at_timeout)

    def mark_ok(self) -> None:
        self.health.consecutive_failures = 0

    # ---- identity and set-up ------------------------------------------------------------------

    async def identify(self) -> dict[str, str]:
        ident: dict[str, str] = {}
        for key, cmds in (("fmi", ("AT+FMI?", "AT+GMI", "AT+FMFR?")), ("fmm", ("AT+FMM?", "AT+GMM", "AT+FMDL?")),
                          ("fmr", ("AT+FMR?", "AT+GMR", "AT+FREV?")), ("ati0", ("ATI0",)), ("ati3", ("ATI3",))):
            for cmd in cmds:
                try:
                    text = await self.ch.query(cmd, 3.0)
                except CommandTimeout:
                    text = None
                if text:
                    ident[key] = re.sub(r"^\+F?M[IMR]:\s*|^\+G?M[IMR]:\s*", "", text.strip()).strip('" ')
                    break
        self.identity = ident
        if not self._fixed_quirks:
            self.quirks = lookup(ident)
        return ident

    async def basic_init(self) -> None:
        for cmd in ("ATE0", "ATV1", "ATQ0", "ATS0=0"):
            resp = await self.ch.command(cmd, 3.0)
            if cmd == "ATE0" and not resp.ok:
                raise ModemError(f"modem refused {cmd}: {resp.final}")
        q = self.quirks or Quirks()
        if q.flow_cmd:
            await self._try("AT" + q.flow_cmd, 3.0)       # optional: ERROR is not fatal
        if self.caller_id:
            await self._try("AT+VCID=1", 2.0)              # formatted caller ID where the modem has it

    async def query_classes(self) -> list[str]:
        text = await self.ch.query("AT+FCLASS=?", 3.0)
        self.classes = parse_query(text or "")
        return self.classes

    async def setup_class1(self) -> str:
        """Enter Class 1.0 (or 1) and enable adaptive reception where it works."""
        q = self.quirks or Quirks()
        if not self.classes:
            await self.query_classes()
        cls = q.class1_cmd if q.class1_cmd != "auto" else ("1.0" if "1.0" in self.classes else "1")
        if "1" not in self.classes and "1.0" not in self.classes and self.classes:
            raise ModemError(f"modem offers no Class 1 (classes: {','.join(self.classes)})")
        resp = await self.ch.command(f"AT+FCLASS={cls}", 3.0)
        if not resp.ok:
            raise ModemError(f"AT+FCLASS={cls} failed: {resp.final}")
        if q.after_class1_cmd:
            await self._try(q.after_class1_cmd, 3.0)
        self.far = False
        if q.adaptive_receive != "no":
            supported = q.adaptive_receive == "yes"
            if not supported:
                text = await self.ch.query("AT+FAR=?", 2.0)
                supported = text is not None and "1" in parse_query(text)
            if supported:
                self.far = await self._try("AT+FAR=1", 2.0)
        await self._setup_class1_timers(q)
        return cls

    async def _setup_class1_timers(self, q: Quirks) -> None:
        """T.31 +FCL (ride out short carrier drop-outs in phase C) and +FIT (a hung DTE leaves the modem
        hanging up by itself), each only where ``=?`` offers the value; a refusal is not fatal."""
        self.fcl = self.fit = None
        if q.carrier_loss > 0:
            ranges = parse_param_ranges(await self._optional_query("AT+FCL=?"))
            if ranges and q.carrier_loss in ranges[0] and await self._try(f"AT+FCL={q.carrier_loss}", 2.0):
                self.fcl = q.carrier_loss
        if q.dte_inactivity > 0:
            ranges = parse_param_ranges(await self._optional_query("AT+FIT=?"))
            wanted = (q.dte_inactivity, q.dte_inactivity_action)
            if len(ranges) >= 2 and wanted[0] in ranges[0] and wanted[1] in ranges[1] \
                    and await self._try(f"AT+FIT={wanted[0]},{wanted[1]}", 2.0):
                self.fit = wanted

    async def _optional_query(self, cmd: str) -> str:
        try:
            return await self.ch.query(cmd, 2.0) or ""
        except CommandTimeout:
            return ""

    # ---- calls --------------------------------------------------------------------------------

    async def dial(self, number: str, *, timeout: float = 90.0, success: tuple[str, ...] = ("CONNECT",),
                   finals: tuple[str, ...] | None = None) -> Response:
        """ATD; return the response on success, raise :class:`DialFailure` with a distinct code."""
        if not re.fullmatch(r"[0-9*#+,;WwPpTt@!A-Da-d ]+", number or ""):
            raise DialFailure("bad_number", f"not a dialable number: {number!r}", retryable=False)
        q = self.quirks or Quirks()
        try:
            resp = await self.ch.command(f"{q.dial_cmd}{number}", timeout, finals=finals)
        except CommandTimeout as exc:
            raise DialFailure("dial_timeout", f"no result from the modem within {timeout:g} s of dialling") from exc
        if any(u.startswith("RING") for u in resp.unsolicited) and resp.final != "CONNECT":
            raise DialFailure("glare", "an incoming call (RING) took the line while dialling")
        if any(resp.final.startswith(s) for s in success):
            self.mark_ok()
            return resp
        if finals and any(resp.final.startswith(f) for f in finals):
            return resp                       # e.g. a Class 2 hang-up report: the caller maps it
        if resp.final == "OK":
            code = q.ok_after_dial_means
            raise DialFailure(code, f"modem said OK to the dial command ({code.replace('_', ' ')})")
        key = resp.final.split(" ")[0] if resp.final.startswith("DELAYED") else resp.final
        code, retry, msg = DIAL_RESULTS.get(key, ("dial_failed", True, f"dial failed: {resp.final}"))
        raise DialFailure(code, msg, retryable=retry)

    async def wait_for_call(self, rings: int = 1, timeout: float | None = None) -> CallerId:
        """Wait for ``rings`` RINGs (caller ID arrives between the first two in North America)."""
        if rings < 1:
            raise ValueError("rings-before-answer must be at least 1")
        seen = 0
        loop_deadline = None if timeout is None else self.clock.now() + timeout
        while True:
            while not self.ch.rings.empty():       # RINGs noted while earlier commands ran count at once
                self.ch.rings.get_nowait()
                seen += 1
            if seen >= rings:
                return self.ch.caller_id
            remaining = None if loop_deadline is None else loop_deadline - self.clock.now()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"only {seen} of {rings} rings within {timeout:g} s")
            # Read lines so that RING / caller ID get parsed; anything else is noise here.
            line = await self.ch.read_line(min(remaining, 1.0) if remaining is not None else 1.0)
            if line is not None:
                self.ch._note_unsolicited(line)

    async def answer(self, *, timeout: float = 60.0, success: tuple[str, ...] = ("CONNECT",),
                     finals: tuple[str, ...] | None = None) -> Response:
        try:
            resp = await self.ch.command("ATA", timeout, finals=finals)
        except CommandTimeout as exc:
            raise AnswerFailure("answer_timeout", f"no result within {timeout:g} s of ATA") from exc
        if resp.final in success:
            self.mark_ok()
            return resp
        if finals and any(resp.final.startswith(f) for f in finals):
            return resp
        if resp.final.startswith("CONNECT"):
            raise AnswerFailure("data_call", f"a data modem called ({resp.final})")
        if resp.final == "NO CARRIER":
            raise AnswerFailure("no_carrier", "the caller was not a fax (NO CARRIER after ATA)")
        raise AnswerFailure("answer_failed", f"answer failed: {resp.final}")

    async def hangup(self) -> None:
        """ATH0, with the reset ladder if the modem does not take it.  Never raises for a gone port."""
        try:
            if not await self._try("ATH0", 5.0):
                await self.reset()
        except (ModemError, OSError) as exc:
            log.info("hang-up on %s: %s", self.port, exc)


async def with_deadline(coro, seconds: float, what: str):
    """Bound any coroutine; the session layer wraps whole calls with this."""
    try:
        return await asyncio.wait_for(coro, seconds)
    except TimeoutError as exc:
        raise ModemError(f"{what} did not finish within {seconds:g} s") from exc
