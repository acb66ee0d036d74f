"""``T38Phy``: the engine's PHY contract carried as T.38 IFP packets (over UDPTL, usually).

Mapping (T.38 clause 8 and what gateways expect):

* a carrier is an indicator: ``v21-preamble`` before V.21 HDLC, the training indicator of the
  modulation before image data or ECM frames, ``no-signal`` after a burst; ``cng``/``ced`` at call
  start (calling/answering terminal);
* an HDLC frame is ``hdlc-data`` chunks closed by ``hdlc-fcs-OK`` (``hdlc-fcs-OK-sig-end`` on the
  last frame of a burst).  T.38 carries the FCS *status*, not the FCS octets, so nothing here
  computes a CRC: a frame is reported bad when the far end said so or when packets of it were lost;
* non-ECM data (TCF and pages) is ``t4-non-ecm-data`` chunks and a ``t4-non-ecm-sig-end``.

Transmission is paced like a real modem: one packet per ``chunk_ms`` of line time at the
modulation's bit rate, plus the preamble/training times a gateway needs to play the carrier, all
through the injected clock (so tests run it in virtual time, or with ``pacing=False``).

Bit order: T.38 puts the first bit on the line in the MOST significant bit of each octet, for
HDLC and for non-ECM data alike.  spandsp 0.0.6 bit-reverses every octet between its internal
(line-LSB-first) buffers and the IFP fields in both directions (checked on the wire: its CSI
arrives as ``ff c0 02 ...``, its DIS as ``ff c8 01 ...``; Wireshark's T.30 dissector expects the
same).  The PHY contract keeps the first bit in the LSB (T.31 order: DIS = ``ff 13 80``), so this
module reverses the bits of every octet it sends or receives.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from engine.clock import Clock
from engine.phy import HdlcFrame, Modulation, Phy, PhyError, WrongCarrier

from .ifp import DataType, Field, FieldType, IfpError, IfpPacket, Indicator, decode, encode

log = logging.getLogger(__name__)

_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def bit_reverse(data: bytes) -> bytes:
    return bytes(data).translate(_REVERSE)


DATA_TYPE_OF = {
    Modulation.V21: DataType.V21,
    Modulation.V27TER_2400: DataType.V27TER_2400, Modulation.V27TER_4800: DataType.V27TER_4800,
    Modulation.V29_7200: DataType.V29_7200, Modulation.V29_9600: DataType.V29_9600,
    Modulation.V17_7200: DataType.V17_7200, Modulation.V17_9600: DataType.V17_9600,
    Modulation.V17_12000: DataType.V17_12000, Modulation.V17_14400: DataType.V17_14400,
}
MODULATION_OF = {dt: m for m, dt in DATA_TYPE_OF.items()}
MODULATION_OF.update({DataType.V33_12000: Modulation.V17_12000, DataType.V33_14400: Modulation.V17_14400})

# (indicator, training seconds) per modulation and long/short training; a V.17 receiver needs
# the long train before TCF, the others have one training sequence.
_TRAINING = {
    (Modulation.V27TER_2400, False): (Indicator.V27TER_2400_TRAINING, 0.943),
    (Modulation.V27TER_4800, False): (Indicator.V27TER_4800_TRAINING, 0.708),
    (Modulation.V29_7200, False): (Indicator.V29_7200_TRAINING, 0.234),
    (Modulation.V29_9600, False): (Indicator.V29_9600_TRAINING, 0.234),
    (Modulation.V17_7200, False): (Indicator.V17_7200_SHORT_TRAINING, 0.142),
    (Modulation.V17_7200, True): (Indicator.V17_7200_LONG_TRAINING, 1.393),
    (Modulation.V17_9600, False): (Indicator.V17_9600_SHORT_TRAINING, 0.142),
    (Modulation.V17_9600, True): (Indicator.V17_9600_LONG_TRAINING, 1.393),
    (Modulation.V17_12000, False): (Indicator.V17_12000_SHORT_TRAINING, 0.142),
    (Modulation.V17_12000, True): (Indicator.V17_12000_LONG_TRAINING, 1.393),
    (Modulation.V17_14400, False): (Indicator.V17_14400_SHORT_TRAINING, 0.142),
    (Modulation.V17_14400, True): (Indicator.V17_14400_LONG_TRAINING, 1.393),
}
_INDICATOR_MODULATION = {ind: m for (m, _), (ind, _) in _TRAINING.items()}
_INDICATOR_MODULATION[Indicator.V21_PREAMBLE] = Modulation.V21
_INDICATOR_MODULATION[Indicator.V33_12000_TRAINING] = Modulation.V17_12000
_INDICATOR_MODULATION[Indicator.V33_14400_TRAINING] = Modulation.V17_14400

V21_FLAGS_SECONDS = 1.0        # V.21 preamble: 1 s of flags (T.30 5.3.1)
HS_FLAGS_SECONDS = 0.2         # flags after high-speed training before ECM frames
HDLC_END_SECONDS = 0.1         # let the far modem finish the closing flags before no-signal
NON_ECM_END_SECONDS = 0.06
TCF_SECONDS = 1.5
CNG_REPEAT_SECONDS = 3.5       # CNG cadence: 0.5 s on, 3 s off


class IfpTransport(Protocol):
    """What T38Phy sends through: :class:`t38.udptl.UdptlEndpoint` or a test shuttle."""

    def send(self, ifp: bytes, copies: int = 1) -> None: ...

    def max_ifp(self) -> int: ...

    def close(self) -> None: ...


@dataclass
class T38PhyOptions:
    calling: bool = True                     # calling terminal (CNG) or answering (CED)
    version: int = 0                         # T38FaxVersion in use
    rate_management: str = "transferredTCF"  # or "localTCF"
    pacing: bool = True                      # sleep as the line would; False = as fast as possible
    chunk_ms: int = 30                       # line time per data packet
    end_copies: int = 3                      # copies of indicators and of the last packet of a signal
    ced_seconds: float = 3.0                 # how long the answering side signals CED
    mid_rx_timeout: float = 5.0              # silence inside a carrier that counts as carrier loss

    def __post_init__(self) -> None:
        if self.version not in (0, 1, 2, 3):
            raise ValueError("T38FaxVersion must be 0..3")
        if self.rate_management not in ("transferredTCF", "localTCF"):
            raise ValueError("rate management must be transferredTCF or localTCF")
        if not 10 <= self.chunk_ms <= 100:
            raise ValueError("chunk_ms must be 10..100")


# Receive-side events, in arrival order.
@dataclass(frozen=True)
class _Carrier:
    modulation: Modulation


@dataclass(frozen=True)
class _End:
    modulation: Modulation


@dataclass(frozen=True)
class _Frame:
    modulation: Modulation
    frame: HdlcFrame


@dataclass(frozen=True)
class _Image:
    modulation: Modulation
    data: bytes


class T38Phy(Phy):
    """A T.38 terminal's PHY.  Feed it received IFPs with :meth:`feed_ifp`."""

    def __init__(self, transport: IfpTransport | None, clock: Clock, options: T38PhyOptions | None = None) -> None:
        self.transport = transport
        self.clock = clock
        self.options = options or T38PhyOptions()
        self._events: collections.deque = collections.deque()
        self._wakeup = asyncio.Event()
        self._started = False
        self._closed = False
        self._tx_indicator: Indicator | None = None
        # receive state
        self._rx_indicator: Indicator | None = None
        self._rx_carrier: Modulation | None = None
        self._rx_image_bytes = 0
        self._hdlc_buf = bytearray()
        self._hdlc_mod: Modulation | None = None
        self._rx_missing = False          # the current frame did not start with FF
        self._rx_loss_at: int | None = None  # buffer length when a packet was last lost inside this carrier
        self._last_training_long = False
        self._rx_last_activity = clock.now()
        self._cng_at = 0.0
        self.remote_tones: set[str] = set()
        self.stats = collections.Counter()

    def attach(self, transport: IfpTransport) -> None:
        self.transport = transport

    # ------------------------------------------------------------ receive side (packet in)

    def feed_ifp(self, seq: int, ifp: bytes | None) -> None:
        """One IFP in sequence order; ``None`` for a packet the transport gave up on."""
        if self._closed:
            return
        self.stats["rx_ifp"] += 1
        if ifp is None:
            self.stats["rx_lost"] += 1
            self._rx_loss_at = len(self._hdlc_buf)
            return
        try:
            packet = decode(ifp, self.options.version)
        except IfpError as exc:
            self.stats["rx_bad_ifp"] += 1
            self._rx_loss_at = len(self._hdlc_buf)
            log.debug("undecodable IFP %s: %s", ifp.hex(), exc)
            return
        if packet.indicator is not None:
            self._rx_indicator_packet(packet.indicator)
        else:
            mod = MODULATION_OF.get(packet.data_type)
            if mod is None:
                self.stats["rx_unsupported"] += 1
                return
            for f in packet.fields:
                self._rx_field(mod, f)
        self._wakeup.set()

    def _push(self, event: object) -> None:
        self._events.append(event)

    def _carrier_on(self, mod: Modulation) -> None:
        if self._rx_carrier == mod:
            return
        if self._rx_carrier is not None:
            self._carrier_off()
        self._rx_carrier = mod
        self._rx_image_bytes = 0
        self._push(_Carrier(mod))

    def _carrier_off(self) -> None:
        if self._hdlc_buf:
            self._push(_Frame(self._hdlc_mod or self._rx_carrier, HdlcFrame(bytes(self._hdlc_buf), False)))
            self._hdlc_buf.clear()
        if self._rx_carrier is not None:
            mod = self._rx_carrier
            if (mod != Modulation.V21 and self.options.rate_management == "localTCF"
                    and self._rx_image_bytes == 0 and self._last_training_long):
                # local TCF: the gateway judged the training; hand T.30 a perfect TCF.
                self._push(_Image(mod, bytes(int(TCF_SECONDS * mod.bit_rate / 8))))
            self._push(_End(mod))
        self._rx_carrier = None
        self._rx_missing = False
        self._rx_loss_at = None

    def _rx_indicator_packet(self, ind: Indicator) -> None:
        if ind == self._rx_indicator:
            return  # repeats and preamble slipped between frames are harmless (T.38 says ignore)
        self._rx_indicator = ind
        self._rx_last_activity = self.clock.now()
        if ind == Indicator.NO_SIGNAL:
            self._carrier_off()
        elif ind in (Indicator.CNG, Indicator.CED):
            self.remote_tones.add(ind.name)
        elif ind in _INDICATOR_MODULATION:
            mod = _INDICATOR_MODULATION[ind]
            if mod != self._rx_carrier:  # a repeat of the current carrier's indicator changes nothing
                self._last_training_long = ind.name.endswith("LONG_TRAINING")
                self._carrier_on(mod)
                self._rx_missing = False
                self._rx_loss_at = None     # whatever was lost came before this indicator
                self._hdlc_buf.clear()
        else:
            self.stats["rx_unsupported"] += 1

    def _rx_field(self, mod: Modulation, f: Field) -> None:
        self._rx_last_activity = self.clock.now()
        t = f.type
        data = bit_reverse(f.data) if f.data else b""
        ends = t in (FieldType.HDLC_SIG_END, FieldType.HDLC_FCS_OK_SIG_END, FieldType.HDLC_FCS_BAD_SIG_END,
                     FieldType.T4_NON_ECM_SIG_END)
        if self._rx_carrier != mod:
            if not data and not self._hdlc_buf:
                return  # a repeated status or end-of-signal after the carrier already ended
            lost = self._rx_loss_at
            self._carrier_on(mod)  # data without its indicator (lost, or never sent): infer it
            self._rx_loss_at = None if lost is None else 0  # a loss just before: perhaps this frame's start
        # leaving the indicator state lets a repeated indicator after the data count again
        self._rx_indicator = None
        if t == FieldType.HDLC_DATA:
            if not self._hdlc_buf and (not data or data[0] != 0xFF):
                self._rx_missing = True  # every T.30 frame starts with FF: we missed its start
            self._hdlc_buf += data
            self._hdlc_mod = mod
        elif t in (FieldType.HDLC_FCS_OK, FieldType.HDLC_FCS_BAD, FieldType.HDLC_FCS_OK_SIG_END,
                   FieldType.HDLC_FCS_BAD_SIG_END):
            self._hdlc_buf += data  # Cisco put the last octets here; accept them
            self._close_frame(mod, t in (FieldType.HDLC_FCS_OK, FieldType.HDLC_FCS_OK_SIG_END))
        elif t in (FieldType.T4_NON_ECM_DATA, FieldType.T4_NON_ECM_SIG_END):
            if data:
                self._rx_image_bytes += len(data)
                self._push(_Image(mod, data))
        if ends:
            # sig-end alone ends the carrier; a no-signal indicator may never come
            self._carrier_off()
            self._rx_indicator = Indicator.NO_SIGNAL

    def _close_frame(self, mod: Modulation, fcs_ok: bool) -> None:
        """The far end closed a frame: report it, good only if none of its packets was lost.

        T.38 carries no FCS, so a lost packet is judged by position.  A loss between two frames
        (a lost indicator, a lost FCS-status packet, a lost copy) must not spoil the frame after
        it: the octets received after the last loss form a frame of their own when they start like
        one (``FF 03``/``FF 13``, every T.30 frame does); everything before the loss is reported bad."""
        buf = bytes(self._hdlc_buf)
        self._hdlc_buf.clear()
        at = self._rx_loss_at
        if at is None:
            parts = [(buf, fcs_ok and not self._rx_missing and _starts_frame(buf))]
        elif _starts_frame(buf[at:]):
            parts = [(buf[:at], False), (buf[at:], fcs_ok)]
        else:
            parts = [(buf, False)]
        for data, ok in parts:
            if not data:
                continue
            self._push(_Frame(mod, HdlcFrame(data, ok)))
            self.stats["rx_frames_ok" if ok else "rx_frames_bad"] += 1
        self._rx_missing = False
        self._rx_loss_at = None

    # ------------------------------------------------------------ receive side (T.30 calls)

    async def _wait(self, deadline: float) -> bool:
        """Wait for a new event until ``deadline`` (clock time); False on timeout."""
        remaining = deadline - self.clock.now()
        if remaining <= 0:
            return False
        self._wakeup.clear()
        waiter = asyncio.ensure_future(self._wakeup.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(remaining))
        try:
            done, _ = await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return waiter in done

    def _check_open(self) -> None:
        if self._closed:
            raise PhyError("T.38 call is over (hung up)")

    async def receive_hdlc(self, timeout: float) -> HdlcFrame | None:
        self._check_open()
        await self._ensure_started()
        deadline = self.clock.now() + timeout
        while True:
            while self._events:
                ev = self._events.popleft()
                if isinstance(ev, _Frame) and ev.modulation == Modulation.V21:
                    return ev.frame
                if not isinstance(ev, _Carrier | _End) or ev.modulation != Modulation.V21:
                    self.stats["rx_dropped_waiting_v21"] += 1
            if self._rx_carrier == Modulation.V21:
                # a frame has started: give it time to finish even past the caller's timeout
                deadline = max(deadline, self._rx_last_activity + self.options.mid_rx_timeout)
            wake = min(deadline, self._repeat_cng())
            if not await self._wait(wake):
                if self.clock.now() < deadline:
                    continue
                if self._rx_carrier == Modulation.V21 and \
                        self.clock.now() < self._rx_last_activity + self.options.mid_rx_timeout:
                    continue
                return None
            self._check_open()

    def _repeat_cng(self) -> float:
        """While a caller has heard nothing yet, repeat CNG every few seconds: some gateways send
        nothing until they receive T.38, and NAT pinholes need our packets.  Returns when next."""
        if not self.options.calling or self.stats["rx_ifp"] or self._tx_indicator != Indicator.CNG:
            return float("inf")
        now = self.clock.now()
        if now >= self._cng_at + CNG_REPEAT_SECONDS:
            self._send(IfpPacket.ind(Indicator.CNG), self.options.end_copies)
            self._cng_at = now
        return self._cng_at + CNG_REPEAT_SECONDS

    async def _wait_for_high_speed(self, timeout: float) -> Modulation:
        """Wait for a high-speed carrier; WrongCarrier (event kept) if V.21 comes instead."""
        self._check_open()
        await self._ensure_started()
        deadline = self.clock.now() + timeout
        while True:
            while self._events:
                ev = self._events[0]
                if ev.modulation == Modulation.V21:
                    if isinstance(ev, _End):
                        self._events.popleft()
                        continue
                    raise WrongCarrier("V.21 heard while waiting for a high-speed carrier")
                if isinstance(ev, _End):
                    self._events.popleft()  # end of a carrier we never saw start: stale
                    continue
                if isinstance(ev, _Carrier):
                    self._events.popleft()
                return ev.modulation
            if not await self._wait(deadline):
                raise TimeoutError(f"no high-speed carrier within {timeout:g} s")
            self._check_open()

    async def _high_speed_events(self, want: type) -> AsyncIterator[object]:
        """Events of the current high-speed carrier until it drops."""
        while True:
            while self._events:
                ev = self._events[0]
                if ev.modulation == Modulation.V21:
                    return  # the far end went back to V.21: our carrier is over; leave it queued
                self._events.popleft()
                if isinstance(ev, _End):
                    return
                if isinstance(ev, want):
                    yield ev
            deadline = self._rx_last_activity + self.options.mid_rx_timeout
            if not await self._wait(deadline) and self.clock.now() >= deadline:
                self.stats["rx_carrier_timeout"] += 1
                return
            if self._closed:
                return

    async def receive_image(self, modulation: Modulation, timeout: float) -> AsyncIterator[bytes]:
        got = await self._wait_for_high_speed(timeout)
        if got != modulation:
            log.info("image data at %s while %s was expected; accepting it", got.name, modulation.name)
        async for ev in self._high_speed_events(_Image):
            yield ev.data

    async def receive_image_hdlc(self, modulation: Modulation, timeout: float) -> AsyncIterator[HdlcFrame]:
        got = await self._wait_for_high_speed(timeout)
        if got != modulation:
            log.info("ECM frames at %s while %s was expected; accepting them", got.name, modulation.name)
        async for ev in self._high_speed_events(_Frame):
            yield ev.frame

    async def wait_silence(self, seconds: float, timeout: float) -> bool:
        self._check_open()
        deadline = self.clock.now() + timeout
        while True:
            quiet_since = self._rx_last_activity
            if self._rx_carrier is None and self.clock.now() - quiet_since >= seconds:
                return True
            until = deadline if self._rx_carrier is not None else min(deadline, quiet_since + seconds)
            if self.clock.now() >= deadline:
                return False
            await self._wait(until)

    # ------------------------------------------------------------ transmit side

    def _send(self, packet: IfpPacket, copies: int = 1) -> None:
        self._check_open()
        if self.transport is None:
            raise PhyError("T38Phy has no transport")
        self.transport.send(encode(packet, self.options.version), copies)
        self.stats["tx_ifp"] += 1

    def _indicator(self, ind: Indicator) -> None:
        if ind != self._tx_indicator:
            self._send(IfpPacket.ind(ind), self.options.end_copies)
            self._tx_indicator = ind

    async def _sleep_until(self, when: float) -> None:
        if self.options.pacing:
            delay = when - self.clock.now()
            if delay > 0:
                await self.clock.sleep(delay)

    async def _ensure_started(self) -> None:
        """CNG (calling) or CED (answering) as a terminal opens the call."""
        if self._started:
            return
        self._started = True
        self._indicator(Indicator.NO_SIGNAL)
        if self.options.calling:
            self._indicator(Indicator.CNG)  # CNG lasts until the far end answers; nothing to wait for
            self._cng_at = self.clock.now()
        else:
            await self._sleep_until(self.clock.now() + 0.2)  # T.30: 200 ms silence before CED
            self._indicator(Indicator.CED)
            await self._sleep_until(self.clock.now() + self.options.ced_seconds)
            self._indicator(Indicator.NO_SIGNAL)

    def _octets_per_packet(self, modulation: Modulation) -> int:
        n = max(1, self.options.chunk_ms * modulation.bit_rate // 8000)
        if self.transport is not None:
            n = min(n, max(1, self.transport.max_ifp() - 8))
        return n

    async def _send_frames(self, modulation: Modulation, frames: list[bytes], t: float) -> float:
        """HDLC frames as hdlc-data chunks + FCS status, paced from clock time ``t``."""
        dt = DATA_TYPE_OF[modulation]
        per_packet = self._octets_per_packet(modulation)
        rate = modulation.bit_rate
        for i, frame in enumerate(frames):
            if not frame:
                raise ValueError("empty HDLC frame")
            last = i == len(frames) - 1
            wire = bit_reverse(frame)
            status = FieldType.HDLC_FCS_OK_SIG_END if last else FieldType.HDLC_FCS_OK
            for start in range(0, len(wire), per_packet):
                chunk = wire[start:start + per_packet]
                final_chunk = start + per_packet >= len(wire)
                fields = [Field(FieldType.HDLC_DATA, chunk)]
                if final_chunk:
                    fields.append(Field(status))  # data-less field last: unambiguous in every dialect
                self._send(IfpPacket.data(dt, *fields), self.options.end_copies if final_chunk and last else 1)
                bits = 8 * len(chunk) + (_stuffing_bits(frame) + 16 + 16 if final_chunk else 0)
                t += bits / rate
                await self._sleep_until(t)
        return t

    async def send_hdlc(self, frames: list[bytes]) -> None:
        await self._ensure_started()
        if not frames:
            return
        t = self.clock.now()
        self._indicator(Indicator.V21_PREAMBLE)
        t += V21_FLAGS_SECONDS
        await self._sleep_until(t)
        t = await self._send_frames(Modulation.V21, frames, t)
        await self._sleep_until(t + HDLC_END_SECONDS)
        self._indicator(Indicator.NO_SIGNAL)

    async def _start_high_speed(self, modulation: Modulation, long_training: bool, flags: bool) -> float:
        if modulation == Modulation.V21 or modulation not in DATA_TYPE_OF:
            raise ValueError(f"{modulation} is not a high-speed modulation")
        key = (modulation, long_training and modulation.family == "V17")
        indicator, training = _TRAINING[key]
        await self._ensure_started()
        t = self.clock.now()
        self._tx_indicator = None  # always announce the carrier, even the same one again
        self._indicator(indicator)
        t += training + (HS_FLAGS_SECONDS if flags else 0.0)
        await self._sleep_until(t)
        return t

    async def send_image(self, modulation: Modulation, data: bytes, *, long_training: bool = False) -> None:
        t = await self._start_high_speed(modulation, long_training, flags=False)
        dt = DATA_TYPE_OF[modulation]
        rate = modulation.bit_rate
        if long_training and self.options.rate_management == "localTCF":
            # local TCF: the receiving gateway makes and checks TCF itself; only the time passes
            t += 8 * len(data) / rate
            await self._sleep_until(t)
            self._indicator(Indicator.NO_SIGNAL)
            return
        per_packet = self._octets_per_packet(modulation)
        wire = bit_reverse(data)
        # A few chunks of zero fill after the data: some gateways drop the last rows when the
        # carrier stops right after RTC.  Zeros are fill to a T.4 decoder and to a TCF check.
        wire += bytes(3 * per_packet)
        for start in range(0, len(wire), per_packet):
            chunk = wire[start:start + per_packet]
            self._send(IfpPacket.data(dt, Field(FieldType.T4_NON_ECM_DATA, chunk)))
            t += 8 * len(chunk) / rate
            await self._sleep_until(t)
        self._send(IfpPacket.data(dt, Field(FieldType.T4_NON_ECM_SIG_END)), self.options.end_copies)
        await self._sleep_until(t + NON_ECM_END_SECONDS)
        self._indicator(Indicator.NO_SIGNAL)

    async def send_image_hdlc(self, modulation: Modulation, frames: list[bytes], *,
                              long_training: bool = False) -> None:
        t = await self._start_high_speed(modulation, long_training, flags=True)
        t = await self._send_frames(modulation, frames, t)
        await self._sleep_until(t + HDLC_END_SECONDS)
        self._indicator(Indicator.NO_SIGNAL)

    async def send_silence(self, seconds: float) -> None:
        self._check_open()
        await self._ensure_started()
        self._indicator(Indicator.NO_SIGNAL)
        await self._sleep_until(self.clock.now() + seconds)

    async def hangup(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self.transport is not None:
            self.transport.close()


def _starts_frame(data: bytes) -> bool:
    """Address FF and control 03/13, as every T.30 frame (V.21 or ECM) begins."""
    return len(data) >= 3 and data[0] == 0xFF and data[1] in (0x03, 0x13)


_LSB_FIRST_BITS = [format(i, "08b")[::-1] for i in range(256)]
_FIVE_ONES = re.compile("1{5,}")


def _stuffing_bits(frame: bytes) -> int:
    """Zero bits HDLC inserts after every five consecutive ones (bits go LSB first on the line)."""
    bits = "".join([_LSB_FIRST_BITS[b] for b in frame])
    return sum(len(run) // 5 for run in _FIVE_ONES.findall(bits))


async def open_t38_udptl(clock: Clock, options: T38PhyOptions, *, local: tuple[str, int] = ("127.0.0.1", 0),
                         remote: tuple[str, int] | None = None, udptl_config=None, loss=None) -> T38Phy:
    """A T38Phy on a fresh UDPTL socket (remote learnt from the first datagram if not given)."""
    from .udptl import open_udptl

    phy = T38Phy(None, clock, options)
    endpoint = await open_udptl(phy.feed_ifp, local=local, remote=remote, config=udptl_config, loss=loss,
                                clock=clock)
    phy.attach(endpoint)
    return phy
