"""``Class1Phy``: the PHY contract (engine.phy) over a Class 1 / 1.0 (T.31) fax modem.

Frames and image data are passed through in the modem's order (first bit on the line in bit 0), which
is also the contract's order, so nothing is bit-reversed here.  The modem computes the FCS of frames
we send; frames it delivers carry two FCS bytes, which we strip.  ECM blocks are software HDLC over
+FTM/+FRM (modem.class1_hdlc)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine.clock import Clock, MonotonicClock
from engine.phy import HdlcFrame, Modulation, Phy, PhyError, WrongCarrier
from modem import class1_hdlc
from modem.at import ATChannel, CommandTimeout, ModemError, Response
from modem.dle import CAN, END, Unshielder, shield
from modem.quirks import Quirks

log = logging.getLogger("modem.class1")

FCF_DCS = 0x82
FCF_CTC = 0x12


def _reverse_bits(data: bytes) -> bytes:
    return bytes(int(f"{b:08b}"[::-1], 2) for b in data)


def modulation_code(mod: Modulation, long_training: bool) -> int:
    """+FTM/+FRM code: V.17 has separate long- and short-train codes (73/74 … 145/146)."""
    if mod.family == "V17" and not long_training:
        return mod.value + 1
    return mod.value


@dataclass
class Class1Stats:
    frames_sent: int = 0
    frames_received: int = 0
    bad_frames: int = 0
    image_bytes_sent: int = 0
    image_bytes_received: int = 0
    worst_tx_lag: float = 0.0              # s behind line rate when pacing writes
    fcerrors: int = 0
    notes: list[str] = field(default_factory=list)


class Class1Phy(Phy):
    """Drive an already initialised modem in +FCLASS=1 during one call.

    After ``ATD`` answered CONNECT call :meth:`call_connected` (the modem is delivering the first
    frame: an implied +FRH=3); after ``ATA`` answered CONNECT call :meth:`call_answered` (implied
    +FTH=3: send the first frames at once)."""

    def __init__(self, channel: ATChannel, clock: Clock | None = None, quirks: Quirks | None = None,
                 *, adaptive_receive: bool = False, command_timeout: float = 10.0) -> None:
        self.ch = channel
        self.command_timeout = command_timeout      # for commands that must answer at once (+FTH, +FTM)
        self.clock = clock or channel.clock or MonotonicClock()
        self.q = quirks or Quirks()
        self.adaptive_receive = adaptive_receive
        self._implied: str | None = None     # "rx" = CONNECT seen, frame bytes coming; "tx" = +FTH active
        self._rx: Unshielder | None = None   # an +FRM stream not yet drained
        self._rx_long_next = True            # next V.17 +FRM expects long training (TCF / after CTC)
        self._hung_up = False
        self.stats = Class1Stats()

    # ---- call state -------------------------------------------------------------------------

    def call_connected(self) -> None:
        self._implied = "rx"

    def call_answered(self) -> None:
        self._implied = "tx"

    async def _settle(self) -> None:
        """Leave any half-finished data state before the next command."""
        if self._hung_up:
            raise PhyError("call already hung up")
        if self._rx is not None:
            await self._drain_rx(60.0)
        if self._implied == "tx":
            self._implied = None
            await self.ch.write(END)                   # null frame: stop the flags
            await self._final(10.0, "ending the implied +FTH=3")
        elif self._implied == "rx":
            self._implied = None
            await self._abort()

    async def _final(self, timeout: float, what: str) -> Response:
        try:
            return await self.ch.read_response(timeout)
        except CommandTimeout as exc:
            raise ModemError(f"modem silent while {what}") from exc

    async def _abort(self) -> None:
        """Cancel a pending +FRH/+FRM/+FRS with <CAN>; resync with AT if the modem stays quiet."""
        self.ch.direction("cmd")
        await self.ch.write(bytes([CAN]))
        if self.q.recv_abort_ok > 0:
            try:
                while True:
                    resp = await self.ch.read_response(max(self.q.recv_abort_ok, 0.5))
                    if resp.final in ("OK", "ERROR", "NO CARRIER"):
                        return
            except CommandTimeout:
                pass
        await self.clock.sleep(0.2)
        self.ch.flush_input()
        resp = await self.ch.command("AT", timeout=2.0)
        if not resp.ok:
            raise ModemError(f"modem did not recover after <CAN> (said {resp.final})")

    # ---- V.21 HDLC ----------------------------------------------------------------------------

    async def send_hdlc(self, frames: list[bytes]) -> None:
        if not frames:
            return
        if self._implied == "tx":
            self._implied = None
        else:
            await self._settle()
            await self._start_fth()
        self.ch.direction("tx")
        try:
            i = 0
            while i < len(frames):
                frame = frames[i]
                await self.ch.write(shield(frame) + END)
                self.stats.frames_sent += 1
                resp = await self._final(5.0 + len(frame) * 8 / 300 * 1.5, "sending an HDLC frame")
                last = i == len(frames) - 1
                if resp.final == "CONNECT":
                    if last:                                   # caller left the final bit off: close burst
                        await self.ch.write(END)
                        await self._expect_ok(await self._final(10.0, "closing the HDLC burst"), "+FTH")
                elif resp.final == "OK":
                    if not last:                               # modem ended the burst early: start another
                        await self._start_fth()
                else:
                    self._raise_for(resp, "+FTH frame")
                i += 1
        finally:
            self.ch.direction("cmd")

    async def _start_fth(self) -> None:
        resp = await self._command("AT+FTH=3", self.command_timeout)
        if resp.final != "CONNECT":
            self._raise_for(resp, "AT+FTH=3")

    async def _command(self, cmd: str, timeout: float) -> Response:
        try:
            return await self.ch.command(cmd, timeout)
        except CommandTimeout as exc:
            raise ModemError(str(exc)) from exc

    def _raise_for(self, resp: Response, what: str) -> None:
        final = resp.final
        if final == "ERROR":
            raise PhyError(f"{what}: modem said ERROR (on hook: the remote hung up?)")
        if final == "NO CARRIER":
            raise PhyError(f"{what}: NO CARRIER (call dropped)")
        if final in ("+FCERROR", "FCERROR"):
            raise WrongCarrier(f"{what}: +FCERROR")
        raise PhyError(f"{what}: unexpected modem answer {final!r}")

    async def _expect_ok(self, resp: Response, what: str) -> None:
        if resp.final != "OK":
            self._raise_for(resp, what)

    async def receive_hdlc(self, timeout: float) -> HdlcFrame | None:
        deadline = self.clock.now() + timeout
        connected = False
        if self._implied == "rx":
            self._implied = None
            connected = True
        else:
            await self._settle()
        while True:
            if not connected:
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    return None
                resp = await self._pending_command("AT+FRH=3", remaining)
                if resp is None:
                    return None
                if resp.final in ("+FCERROR", "FCERROR"):
                    # a high-speed carrier is on the line; listen again shortly
                    self.stats.fcerrors += 1
                    await self.clock.sleep(0.2)
                    continue
                if resp.final == "NO CARRIER":                # some carrier came and went: re-issue
                    await self.clock.sleep(0.05)
                    continue
                if resp.final != "CONNECT":
                    self._raise_for(resp, "AT+FRH=3")
            connected = False
            frame = await self._read_frame()
            if frame is not None:
                self._note_received(frame)
                return frame

    async def _pending_command(self, cmd: str, timeout: float) -> Response | None:
        """A receive command that may legitimately wait long; None after <CAN> on timeout."""
        self.ch.direction("cmd")
        await self.ch.write(cmd.encode() + b"\r")
        self.ch.direction("rx")
        try:
            return await self.ch.read_response(timeout, echo=cmd)
        except CommandTimeout:
            await self._abort()
            return None

    async def _read_frame(self) -> HdlcFrame | None:
        """Bytes after CONNECT up to <DLE><ETX>, then OK (FCS good) / ERROR (bad); None to re-listen."""
        self.ch.direction("rx")
        dec = Unshielder()
        data = bytearray()
        deadline = self.clock.now() + 10.0
        started = False
        pre = b""                                              # bytes seen before the address octet
        while not dec.ended:
            remaining = deadline - self.clock.now()
            chunk = await self.ch.read_some(remaining) if remaining > 0 else b""
            if not chunk:
                await self._abort()
                raise PhyError("HDLC frame did not end within 10 s of CONNECT")
            if not started:
                # a result code instead of data (RH-CONNECT bug: CONNECT then NO CARRIER), maybe split
                pre += chunk
                if re.match(rb"[\r\n]*(NO CARRIER|ERROR|OK)\r", pre):
                    self.ch.unread(pre)
                    await self._final(2.0, "reading an HDLC frame")
                    return None
            piece = dec.feed(chunk)
            if not started:
                k = piece.find(b"\xff")
                if k < 0:
                    continue                                   # noise before the address octet
                piece = piece[k:]
                started = True
            data += piece
        self.ch.unread(dec.rest)
        resp = await self._final(5.0, "waiting for OK/ERROR after a frame")
        self.ch.direction("cmd")
        if resp.final == "NO CARRIER" and not data:
            return None
        good = resp.final == "OK"
        raw = bytes(data)
        if self.q.fcs_bytes and len(raw) >= self.q.fcs_bytes + 3:
            if self.q.validate_v21 or resp.final not in ("OK", "ERROR"):
                good = class1_hdlc.fcs_ok(raw)
            raw = raw[:-self.q.fcs_bytes]
        if len(raw) >= 2 and raw[0] == 0xFF and raw[1] in (0xC0, 0xC8):
            raw = _reverse_bits(raw)                           # bit-reversed firmware (efax's safety net)
        if len(raw) < 3 or raw[0] != 0xFF or raw[1] not in (0x03, 0x13):
            good = False
        if not good:
            self.stats.bad_frames += 1
        self.stats.frames_received += 1
        return HdlcFrame(raw, fcs_ok=good)

    def _note_received(self, frame: HdlcFrame) -> None:
        if frame.fcs_ok and len(frame.data) >= 3 and (frame.data[2] & 0xFE) in (FCF_DCS, FCF_CTC):
            self._rx_long_next = True

    # ---- high-speed data ----------------------------------------------------------------------

    async def send_image(self, modulation: Modulation, data: bytes, *, long_training: bool = False) -> None:
        await self._settle()
        code = modulation_code(modulation, long_training)
        resp = await self._command(f"AT+FTM={code}", self.command_timeout)
        if resp.final != "CONNECT":
            self._raise_for(resp, f"AT+FTM={code}")
        if self.q.tm_connect_delay:
            await self.clock.sleep(self.q.tm_connect_delay)
        rate = modulation.bit_rate / 8
        payload = shield(data)
        started = self.clock.now()
        self.ch.direction("tx")
        try:
            if self.q.pace_tx:
                lag = await self.ch.write_paced(payload, rate, self.q.pace_lead_seconds)
                self.stats.worst_tx_lag = max(self.stats.worst_tx_lag, lag)
            else:
                for k in range(0, len(payload), 1024):
                    await self.ch.write(payload[k:k + 1024], timeout=30.0)
            await self.ch.write(END)
        finally:
            self.ch.direction("cmd")
        self.stats.image_bytes_sent += len(data)
        # The modem still has to modulate what it buffered: allow line time plus slack.
        left = len(data) / rate - (self.clock.now() - started)
        resp = await self._final(max(10.0, left * 1.5 + 10.0), "waiting for OK after image data")
        if resp.final != "OK":
            self._raise_for(resp, "end of +FTM data")

    async def send_image_hdlc(self, modulation: Modulation, frames: list[bytes], *,
                              long_training: bool = False) -> None:
        flags = max(1, int(modulation.bit_rate * 0.2 / 8))    # ~200 ms of flags before the first frame
        await self.send_image(modulation, class1_hdlc.encode(frames, preamble_flags=flags, closing_flags=4),
                              long_training=long_training)

    async def _start_frm(self, modulation: Modulation, timeout: float, long_training: bool | None) -> None:
        await self._settle()
        if long_training is None:
            long_training = self._rx_long_next
        code = modulation_code(modulation, long_training)
        deadline = self.clock.now() + timeout
        fcerrors = 0
        while True:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise TimeoutError(f"no carrier for +FRM={code} within {timeout:g} s")
            resp = await self._pending_command(f"AT+FRM={code}", remaining)
            if resp is None:
                raise TimeoutError(f"no carrier for +FRM={code} within {timeout:g} s")
            if resp.final == "CONNECT":
                if any(line.replace(" ", "").startswith("+FRH:3") for line in resp.lines):
                    self._implied = "rx"                      # +FAR=1: the modem switched to V.21 itself
                    raise WrongCarrier("V.21 HDLC heard instead of the high-speed carrier (+FRH:3)")
                self._rx_long_next = False
                return
            if resp.final in ("+FCERROR", "FCERROR"):
                self.stats.fcerrors += 1
                fcerrors += 1
                if fcerrors > self.q.rm_persistence:
                    raise WrongCarrier(f"+FCERROR to AT+FRM={code}")
                continue
            if resp.final == "NO CARRIER":
                await self.clock.sleep(0.05)
                continue
            if resp.final == "ERROR":
                raise PhyError(f"AT+FRM={code}: ERROR (on hook: the remote hung up?)")
            raise PhyError(f"AT+FRM={code}: unexpected modem answer {resp.final!r}")

    async def _rx_chunks(self, inactivity: float = 10.0) -> AsyncIterator[bytes]:
        self.ch.direction("rx")
        dec = Unshielder()
        self._rx = dec
        while not dec.ended:
            chunk = await self.ch.read_some(inactivity)
            if not chunk:
                self._rx = None
                await self._abort()
                raise PhyError(f"high-speed data stopped for {inactivity:g} s without carrier loss")
            piece = dec.feed(chunk)
            if piece:
                self.stats.image_bytes_received += len(piece)
                yield piece
        await self._finish_rx(dec, 10.0)

    async def _finish_rx(self, dec: Unshielder, timeout: float) -> None:
        self._rx = None
        self.ch.unread(dec.rest)
        resp = await self._final(timeout, "waiting for NO CARRIER after data")
        self.ch.direction("cmd")
        if resp.final not in ("NO CARRIER", "OK", "ERROR"):
            log.info("unexpected %r after +FRM data", resp.final)

    async def _drain_rx(self, timeout: float) -> None:
        """The consumer stopped reading early (e.g. after RTC): wait for the carrier to drop."""
        dec = self._rx
        deadline = self.clock.now() + timeout
        while dec is not None and not dec.ended:
            chunk = await self.ch.read_some(max(0.0, deadline - self.clock.now()))
            if not chunk:
                self._rx = None
                await self._abort()
                return
            dec.feed(chunk)
        if dec is not None:
            await self._finish_rx(dec, 10.0)

    async def receive_image(self, modulation: Modulation, timeout: float, *,
                            long_training: bool | None = None) -> AsyncIterator[bytes]:
        await self._start_frm(modulation, timeout, long_training)
        async for piece in self._rx_chunks():
            yield piece

    async def receive_image_hdlc(self, modulation: Modulation, timeout: float, *,
                                 long_training: bool | None = None) -> AsyncIterator[HdlcFrame]:
        await self._start_frm(modulation, timeout, long_training)
        decoder = class1_hdlc.Decoder()
        async for piece in self._rx_chunks():
            for data, good in decoder.feed(piece):
                if not good:
                    self.stats.bad_frames += 1
                yield HdlcFrame(data, fcs_ok=good)

    # ---- silences -----------------------------------------------------------------------------

    async def send_silence(self, seconds: float) -> None:
        if self._implied == "tx":
            return                              # already sending flags after ATA: no gap wanted
        await self._settle()
        n = max(0, min(255, round(seconds * 100)))
        if not self.q.has_fts:
            await self.clock.sleep(n / 100)
            return
        resp = await self._command(f"AT+FTS={n}", 5.0 + n / 100)
        if resp.final != "OK":
            self._raise_for(resp, f"AT+FTS={n}")

    async def wait_silence(self, seconds: float, timeout: float) -> bool:
        if self._implied is not None:
            return True
        await self._settle()
        n = max(0, min(255, round(seconds * 100)))
        if not self.q.has_frs:
            await self.clock.sleep(n / 100)
            return True
        resp = await self._pending_command(f"AT+FRS={n}", min(timeout, self.q.frs_cap))
        if resp is None:
            return False
        if resp.final != "OK":
            self._raise_for(resp, f"AT+FRS={n}")
        return True

    async def hangup(self) -> None:
        if self._hung_up:
            return
        try:
            if self.ch.is_open:
                if self._implied == "tx":
                    await self.ch.write(END)
                    await self.ch.read_response(3.0)
                elif self._rx is not None or self._implied == "rx":
                    self._rx = None
                    await self._abort()
                self._implied = None
                self.ch.direction("cmd")
                await self.ch.command("ATH0", timeout=5.0)
        except (ModemError, PhyError, OSError) as exc:
            log.info("hang-up: %s", exc)
        finally:
            self._hung_up = True
