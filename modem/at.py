"""The asyncio AT command channel to one fax modem over a serial port (or a pty).

One object owns the file descriptor: a reader callback appends everything the modem sends to one
buffer, and the caller's state (command or data) decides how to interpret it, because a
``CONNECT`` line can be followed by binary data in the same read.  Every wait has a timeout
measured with the injected clock; the port vanishing (EOF/EIO, USB unplug) raises
:class:`PortGone` from whatever is waiting."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import termios
import time
from collections import deque
from dataclasses import dataclass, field

from engine.clock import Clock, MonotonicClock
from engine.phy import PhyError

log = logging.getLogger("modem.at")

# Result codes that end a command.  "CONNECT 14400" etc. end it too (prefix match below).
FINAL_CODES = (
    "OK", "CONNECT", "NO CARRIER", "ERROR", "BUSY", "NO DIALTONE", "NO DIAL TONE", "NO ANSWER",
    "+FCERROR", "FCERROR", "BLACKLISTED", "DELAYED", "DIALING DISABLED",
)
NUMERIC_CODES = {"0": "OK", "1": "CONNECT", "2": "RING", "3": "NO CARRIER", "4": "ERROR",
                 "6": "NO DIALTONE", "7": "BUSY", "8": "NO ANSWER", "+F4": "+FCERROR"}

_RING = re.compile(r"^RING(\d|/.*)?$")
# Caller ID: V.253 formatted lines "NMBR=…" (some chips "NMBR = …"), ZyXEL "CALLER NUMBER: …".
_CID = re.compile(r"^(DATE|TIME|NMBR|NAME|NDID|ANID|MESG|DDN_NMBR|CALLER NUMBER|CALLER NAME|DAD|CID)\s*[=:]\s*(.*)$")
_CID_KEYS = {"CALLER NUMBER": "NMBR", "CALLER NAME": "NAME", "DAD": "NDID", "CID": "NMBR", "DDN_NMBR": "NDID"}
_DISTINCTIVE = re.compile(r"^(DRON|DROF)\s*=\s*(\d+)$")


class ModemError(PhyError):
    """The modem or its port failed."""


class PortGone(ModemError):
    """The serial port vanished (modem unplugged, pty closed): the call cannot continue."""


class CommandTimeout(ModemError):
    """The modem gave no final result code in time (wedged, or not a modem)."""


@dataclass
class Response:
    final: str                                   # the final result code, e.g. "OK", "CONNECT", "BUSY"
    lines: list[str] = field(default_factory=list)         # information lines before it
    unsolicited: list[str] = field(default_factory=list)   # RING / caller ID seen meanwhile

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    def info(self) -> str:
        return "\n".join(self.lines)


@dataclass
class CallerId:
    number: str = ""
    name: str = ""
    date: str = ""
    time: str = ""
    called: str = ""
    raw: dict[str, str] = field(default_factory=dict)


def parse_unsolicited(line: str) -> tuple[str, str, str] | None:
    """Classify a line the modem sends on its own: ("ring", "", detail) or ("cid", key, value)."""
    s = line.strip()
    m = _RING.match(s)
    if m:
        return ("ring", "", (m.group(1) or "").lstrip("/"))
    m = _CID.match(s)
    if m:
        key = _CID_KEYS.get(m.group(1), m.group(1))
        return ("cid", key, m.group(2).strip().strip('"'))
    m = _DISTINCTIVE.match(s)
    if m:
        return ("cadence", m.group(1), m.group(2))
    return None


def is_final(line: str) -> bool:
    return any(line == c or line.startswith(c + " ") for c in FINAL_CODES) or line.startswith("CONNECT")


class ATChannel:
    """Command/response and raw data over one modem port.

    ``flow``: "rtscts" (hardware, preferred), "xonxoff" (the modem may XOFF us while we transmit;
    IXON is turned off whenever the modem sends data to us, because 0x11/0x13 are valid HDLC and
    image bytes; we never XOFF the modem), or "none".  ``fd`` lets tests hand over an open fd."""

    def __init__(self, port: str | None = None, *, baudrate: int = 19200, flow: str = "rtscts",
                 clock: Clock | None = None, fd: int | None = None, trace_limit: int = 4000) -> None:
        if flow not in ("rtscts", "xonxoff", "none"):
            raise ValueError(f"flow control must be rtscts, xonxoff or none, not {flow!r}")
        self.port = port
        self.baudrate = baudrate
        self.flow = flow
        self.clock: Clock = clock or MonotonicClock()
        self._serial = None
        self._fd = fd
        self._buf = bytearray()
        self._skip_lf = False
        self._data_event = asyncio.Event()
        self._gone: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.numeric = False
        self.trace: deque[tuple[float, str, bytes]] = deque(maxlen=trace_limit)
        self.rings: asyncio.Queue[str] = asyncio.Queue()
        self.caller_id = CallerId()
        self.t0 = time.monotonic()

    # ---- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._fd is None:
            if not self.port:
                raise ValueError("ATChannel needs a port or an fd")
            import serial  # pyserial

            try:
                self._serial = serial.Serial(self.port, self.baudrate, rtscts=(self.flow == "rtscts"),
                                             xonxoff=False, timeout=0, exclusive=True)
            except (serial.SerialException, OSError) as exc:
                raise PortGone(f"cannot open modem port {self.port}: {exc}") from exc
            self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._set_ixon(False)
        self._gone = None
        self._loop.add_reader(self._fd, self._on_readable)

    @property
    def is_open(self) -> bool:
        return self._fd is not None and self._gone is None

    @property
    def gone(self) -> BaseException | None:
        return self._gone

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._loop is not None:
            try:
                self._loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
        if self._serial is not None:
            try:
                self._serial.close()
            except OSError:
                pass
            self._serial = None
        else:
            try:
                os.close(fd)
            except OSError:
                pass

    async def reopen(self) -> None:
        """Close and open the port again (last rung of the reset ladder); only for ports we opened."""
        if self.port is None:
            raise ModemError("cannot reopen a channel that was given an fd")
        await self.close()
        self._buf.clear()
        await self.open()

    def drop_dtr(self, seconds: float = 0.1) -> bool:
        """Return False where the port has no DTR line (ptys); the caller then skips this rung."""
        if self._serial is None:
            return False
        try:
            self._serial.dtr = False
            time.sleep(seconds)
            self._serial.dtr = True
            return True
        except OSError:
            return False

    # ---- low level ----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._mark_gone(exc)
            return
        if not data:
            self._mark_gone(EOFError("end of file on modem port"))
            return
        self.trace.append((time.monotonic() - self.t0, "<", data))
        self._buf += data
        self._data_event.set()

    def _mark_gone(self, exc: BaseException) -> None:
        self._gone = exc
        if self._loop is not None and self._fd is not None:
            try:
                self._loop.remove_reader(self._fd)
            except (ValueError, OSError):
                pass
        self._data_event.set()

    def _check(self) -> None:
        if self._fd is None:
            raise ModemError("modem channel is closed")
        if self._gone is not None and not self._buf:
            raise PortGone(f"modem port {self.port or self._fd} vanished: {self._gone}") from None

    async def _wait_data(self, deadline: float) -> bool:
        """Wait for new bytes until ``deadline`` (clock time); False on timeout."""
        self._check()
        if self._gone is not None:
            raise PortGone(f"modem port {self.port or self._fd} vanished: {self._gone}")
        remaining = deadline - self.clock.now()
        if remaining <= 0:
            return False
        self._data_event.clear()
        waiter = asyncio.ensure_future(self._data_event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(remaining))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return self._data_event.is_set()

    def _set_ixon(self, on: bool) -> None:
        if self._fd is None:
            return
        try:
            attrs = termios.tcgetattr(self._fd)
        except termios.error:
            return
        want = attrs[0] & ~(termios.IXON | termios.IXOFF | termios.IXANY)
        if on:
            want |= termios.IXON
        if want != attrs[0]:
            attrs[0] = want
            termios.tcsetattr(self._fd, termios.TCSANOW, attrs)

    def direction(self, mode: str) -> None:
        """Flow control per direction: "tx" honours the modem's XOFF (xonxoff only); "rx"/"cmd" never
        let the kernel eat 0x11/0x13 from the modem."""
        self._set_ixon(self.flow == "xonxoff" and mode == "tx")

    def flush_input(self) -> None:
        self._buf.clear()
        self._skip_lf = False
        if self._fd is not None:
            try:
                termios.tcflush(self._fd, termios.TCIFLUSH)
            except termios.error:
                pass

    def flush_output(self) -> None:
        if self._fd is not None:
            try:
                termios.tcflush(self._fd, termios.TCOFLUSH)
            except termios.error:
                pass

    async def write(self, data: bytes, timeout: float = 10.0) -> None:
        """Write all of ``data``, waiting while the device applies back-pressure."""
        self._check()
        view = memoryview(data)
        deadline = self.clock.now() + timeout
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.ENXIO, errno.EBADF, errno.ENODEV, errno.EPIPE):
                    self._mark_gone(exc)
                    raise PortGone(f"modem port {self.port or self._fd} vanished: {exc}") from exc
                raise
            if n:
                self.trace.append((time.monotonic() - self.t0, ">", bytes(view[:n])))
                view = view[n:]
                continue
            if self.clock.now() > deadline:
                raise CommandTimeout(f"modem did not accept data for {timeout:.0f} s (flow control stuck)")
            await self._wait_writable(min(0.5, max(0.01, deadline - self.clock.now())))

    async def _wait_writable(self, timeout: float) -> None:
        fut = self._loop.create_future()
        self._loop.add_writer(self._fd, lambda: fut.done() or fut.set_result(None))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            try:
                self._loop.remove_writer(self._fd)
            except (ValueError, OSError):
                pass

    async def write_paced(self, data: bytes, bytes_per_second: float, lead_seconds: float = 1.0,
                          chunk: int = 256) -> float:
        """Write at line rate, keeping about ``lead_seconds`` of data queued ahead of the modulator.

        For modems whose flow control does not work (efax's "virtual flow control"): the modem buffer
        neither overflows nor runs dry mid-page.  Returns the largest lag (s) behind the schedule."""
        start = self.clock.now()
        lead = int(bytes_per_second * lead_seconds)
        sent = 0
        worst = 0.0
        while sent < len(data):
            allowed = lead + int((self.clock.now() - start) * bytes_per_second)
            if sent >= allowed:
                await self.clock.sleep(min(0.05, (sent - allowed + chunk) / bytes_per_second))
                continue
            piece = data[sent:min(len(data), sent + chunk, max(sent + 1, allowed))]
            await self.write(piece)
            sent += len(piece)
            due = start + max(0, sent - lead) / bytes_per_second
            worst = max(worst, self.clock.now() - due)
        return worst

    def _drop_lf_after_cr(self) -> None:
        """A line ended on CR: its LF, once it has come, is part of that line ending, not data."""
        if self._skip_lf and self._buf:
            if self._buf[0] == 0x0A:
                del self._buf[0]
            self._skip_lf = False

    async def read_some(self, timeout: float) -> bytes:
        """Up to everything buffered; waits for at least one byte; b"" on timeout."""
        deadline = self.clock.now() + timeout
        while True:
            self._drop_lf_after_cr()
            if self._buf:
                data = bytes(self._buf)
                self._buf.clear()
                return data
            if not await self._wait_data(deadline):
                if self._buf:
                    continue
                return b""

    def unread(self, data: bytes) -> None:
        """Give bytes back to the front of the buffer (e.g. result codes after <DLE><ETX>)."""
        if data:
            self._buf[:0] = data

    async def read_line(self, timeout: float) -> str | None:
        """Next non-empty line (result code or information text); None on timeout."""
        deadline = self.clock.now() + timeout
        while True:
            self._drop_lf_after_cr()
            m = re.search(rb"[\r\n]", self._buf)
            if m:
                end = m.start()
                raw = bytes(self._buf[:end])
                term = self._buf[end]
                del self._buf[:end + 1]
                if term == 0x0D:
                    if self._buf[:1] == b"\n":
                        del self._buf[0]
                    elif not self._buf:
                        self._skip_lf = True
                line = raw.decode("latin-1").strip().strip("\x11\x13").strip()   # stray XON/XOFF
                if line:
                    return NUMERIC_CODES.get(line, line) if self.numeric else line
                continue
            if not await self._wait_data(deadline):
                if re.search(rb"[\r\n]", self._buf):
                    continue
                return None

    # ---- commands -----------------------------------------------------------------------------

    def _note_unsolicited(self, line: str) -> bool:
        kind = parse_unsolicited(line)
        if kind is None:
            return False
        if kind[0] == "ring":
            self.rings.put_nowait(kind[2])
        elif kind[0] == "cid":
            key, value = kind[1], kind[2]
            self.caller_id.raw[key] = value
            attr = {"NMBR": "number", "NAME": "name", "DATE": "date", "TIME": "time", "NDID": "called"}.get(key)
            if attr:
                setattr(self.caller_id, attr, value)
        return True

    async def command(self, cmd: str, timeout: float = 3.0, finals: tuple[str, ...] | None = None,
                      echo_ok: bool = True) -> Response:
        """Send ``AT…`` (``cmd`` with or without the AT prefix) and collect lines to the final code.

        ``finals`` adds codes that end this command (e.g. "+FHS:" for Class 2.0 hang-up). Raises
        :class:`CommandTimeout` when no final code comes in ``timeout`` seconds."""
        text = cmd if cmd.upper().startswith("AT") else "AT" + cmd
        self.direction("cmd")
        await self.write(text.encode("latin-1") + b"\r")
        return await self.read_response(timeout, finals=finals, echo=text if echo_ok else None)

    async def read_response(self, timeout: float, finals: tuple[str, ...] | None = None,
                            echo: str | None = None) -> Response:
        deadline = self.clock.now() + timeout
        resp = Response(final="")
        while True:
            line = await self.read_line(max(0.0, deadline - self.clock.now()))
            if line is None:
                raise CommandTimeout(f"no answer to {echo or 'modem'} within {timeout:g} s"
                                     + (f" (got {resp.lines[-3:]})" if resp.lines else ""))
            if echo is not None and line == echo:
                continue                       # command echo (ATE1)
            if self._note_unsolicited(line):
                resp.unsolicited.append(line)
                continue
            if is_final(line) or (finals and any(line.startswith(f) for f in finals)):
                resp.final = line
                log.debug("%s -> %s %s", echo, line, resp.lines)
                return resp
            resp.lines.append(line)

    async def query(self, cmd: str, timeout: float = 3.0) -> str | None:
        """Information text of a query like ``+FMI?``; None if the modem says ERROR."""
        resp = await self.command(cmd, timeout)
        if not resp.ok:
            return None
        return resp.info()

    def trace_text(self, last: int = 200) -> str:
        out = []
        for t, d, data in list(self.trace)[-last:]:
            out.append(f"{t:9.3f} {d} {data!r}")
        return "\n".join(out)
