"""UDPTL (T.38 clause 9, Annex C): IFP packets over UDP with redundancy or parity FEC.

Three layers, each usable alone: the packet codec (:func:`encode_packet`/:func:`decode_packet`),
the sender and receiver state machines (:class:`UdptlSender`, :class:`UdptlReceiver`: sequence
numbers, redundancy, FEC, duplicates, reordering, gaps), and :class:`UdptlEndpoint`, an asyncio
``DatagramProtocol`` that joins them to a socket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class UdptlError(ValueError):
    """A datagram that is not a valid UDPTL packet, or a packet that cannot be sent."""


@dataclass
class UdptlPacket:
    seq: int
    primary: bytes
    secondaries: list[bytes] = field(default_factory=list)  # redundancy: IFPs seq-1, seq-2, ... newest first
    fec_span: int | None = None                              # set for an FEC packet
    fec_entries: list[bytes] = field(default_factory=list)   # the parity entries of an FEC packet


# ---------------------------------------------------------------- packet codec


def _length(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    if n < 16384:
        return bytes([0x80 | (n >> 8), n & 0xFF])
    raise UdptlError("UDPTL item longer than 16383 octets")


def _open_type(data: bytes) -> bytes:
    return _length(len(data)) + data


def encode_packet(p: UdptlPacket) -> bytes:
    if not 0 <= p.seq <= 0xFFFF:
        raise UdptlError("sequence number out of range")
    out = bytearray(p.seq.to_bytes(2, "big"))
    out += _open_type(p.primary)
    if p.fec_span is None:
        out.append(0x00)
        out += _length(len(p.secondaries))
        for s in p.secondaries:
            out += _open_type(s)
    else:
        out.append(0x80)
        span = p.fec_span.to_bytes(max(1, (p.fec_span.bit_length() + 8) // 8), "big", signed=True)
        out += _length(len(span)) + span
        out += _length(len(p.fec_entries))
        for e in p.fec_entries:
            out += _open_type(e)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise UdptlError("UDPTL packet truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def length(self) -> int:
        first = self.octets(1)[0]
        if first < 0x80:
            return first
        if first < 0xC0:
            return ((first & 0x3F) << 8) | self.octets(1)[0]
        raise UdptlError("fragmented UDPTL length not supported")

    def open_type(self) -> bytes:
        return self.octets(self.length())


def decode_packet(data: bytes) -> UdptlPacket:
    r = _Reader(bytes(data))
    seq = int.from_bytes(r.octets(2), "big")
    primary = r.open_type()
    if not primary:
        raise UdptlError("empty primary IFP")
    choice = r.octets(1)[0]
    if choice & 0x80 == 0:
        secondaries = [r.open_type() for _ in range(r.length())]
        packet = UdptlPacket(seq, primary, secondaries)
    else:
        n = r.length()
        if not 1 <= n <= 4:
            raise UdptlError("bad fec-npackets")
        span = int.from_bytes(r.octets(n), "big", signed=True)
        if span < 0:
            raise UdptlError("negative fec-npackets")
        entries = [r.open_type() for _ in range(r.length())]
        packet = UdptlPacket(seq, primary, fec_span=span, fec_entries=entries)
    if r.pos != len(r.data):
        raise UdptlError("trailing octets after the UDPTL packet")
    return packet


def _xor(chunks: list[bytes]) -> bytes:
    out = bytearray(max((len(c) for c in chunks), default=0))
    for c in chunks:
        for i, b in enumerate(c):
            out[i] ^= b
    return bytes(out)


def fec_covered(seq: int, span: int, entries: int, m: int) -> list[int]:
    """Sequence numbers (unwrapped) protected by parity entry ``m`` of the FEC packet ``seq``."""
    return [seq - span * entries + m + k * entries for k in range(span)]


# ---------------------------------------------------------------- sender


@dataclass
class UdptlConfig:
    redundancy: int = 3          # secondary IFPs per packet (t38UDPRedundancy)
    fec: bool = False            # send parity FEC (t38UDPFEC) instead of redundancy
    fec_span: int = 3
    fec_entries: int = 3
    max_datagram: int = 400      # the far end's T38FaxMaxDatagram
    reorder_window: int = 16     # packets we wait past a gap before declaring it lost
    gap_timeout: float = 0.3     # seconds we wait on a gap before declaring it lost


class UdptlSender:
    """Numbers IFPs and wraps them with redundancy or FEC, within the far end's MaxDatagram."""

    def __init__(self, config: UdptlConfig | None = None, first_seq: int = 0) -> None:
        self.config = config or UdptlConfig()
        self.seq = first_seq & 0xFFFF
        self.history: list[bytes] = []  # newest first
        self.sent = 0

    def ifp_budget(self) -> int:
        """Largest IFP we should build so that the configured redundancy still fits."""
        cfg = self.config
        copies = 2 if cfg.fec else cfg.redundancy + 1
        return max(24, (cfg.max_datagram - 8) // copies)

    def build(self, ifp: bytes) -> bytes:
        cfg = self.config
        seq = self.seq
        if cfg.fec:
            packet = self._fec_packet(seq, ifp)
        else:
            packet = UdptlPacket(seq, ifp, list(self.history[:cfg.redundancy]))
        data = encode_packet(packet)
        # Respect the far MaxDatagram: shed the oldest redundancy (or the FEC) until it fits.
        while len(data) > cfg.max_datagram:
            if packet.fec_span is None and packet.secondaries:
                packet.secondaries.pop()
            elif packet.fec_span is not None and packet.fec_entries:
                packet = UdptlPacket(seq, ifp, fec_span=0, fec_entries=[])
            else:
                raise UdptlError(f"IFP of {len(ifp)} octets does not fit MaxDatagram {cfg.max_datagram}")
            data = encode_packet(packet)
        self.history.insert(0, ifp)
        del self.history[max(cfg.redundancy, cfg.fec_span * cfg.fec_entries) + 1:]
        self.seq = (seq + 1) & 0xFFFF
        self.sent += 1
        return data

    def _fec_packet(self, seq: int, ifp: bytes) -> UdptlPacket:
        span, entries = self.config.fec_span, self.config.fec_entries
        n = self.sent  # packets before this one in this stream; wind-up per the common algorithm
        if n < span:
            return UdptlPacket(seq, ifp, fec_span=0, fec_entries=[])
        while n < span * entries:
            entries = n // span
        parity = []
        for m in range(entries):
            covered = fec_covered(n, span, entries, m)
            parity.append(_xor([self.history[n - 1 - c] for c in covered]))
        return UdptlPacket(seq, ifp, fec_span=span, fec_entries=parity)


# ---------------------------------------------------------------- receiver


@dataclass
class UdptlStats:
    received: int = 0
    duplicates: int = 0
    recovered_redundancy: int = 0
    recovered_fec: int = 0
    lost: int = 0
    malformed: int = 0


class UdptlReceiver:
    """Delivers IFPs in sequence order; ``on_ifp(seq, ifp)`` with ``ifp`` None for a lost packet."""

    MAX_JUMP = 2000  # a larger forward jump is a restarted stream, not loss
    MAX_LATE = 64    # duplicates arrive within a few packets; a number this far back is a restart

    def __init__(self, on_ifp: Callable[[int, bytes | None], None], config: UdptlConfig | None = None,
                 now: Callable[[], float] | None = None) -> None:
        self.on_ifp = on_ifp
        self.config = config or UdptlConfig()
        self.now = now or (lambda: 0.0)
        self.expected: int | None = None   # unwrapped sequence number of the next IFP to deliver
        self.pending: dict[int, bytes] = {}
        self.known: dict[int, bytes] = {}  # recent IFPs (delivered or pending), for FEC
        self.fec_groups: list[tuple[list[int], bytes]] = []
        self.gap_since: float | None = None
        self.stats = UdptlStats()

    def _unwrap(self, seq: int) -> int:
        base = self.expected if self.expected is not None else seq
        diff = (seq - base) & 0xFFFF
        if diff >= 0x8000:
            diff -= 0x10000
        return base + diff

    def feed(self, datagram: bytes) -> None:
        try:
            packet = decode_packet(datagram)
        except UdptlError as exc:
            self.stats.malformed += 1
            log.debug("dropping malformed UDPTL datagram: %s", exc)
            return
        self.stats.received += 1
        if self.expected is None:
            # Streams start at 0 in practice: a first packet with a small number means the ones
            # before it were lost, not that the stream started there.
            self.expected = 0 if packet.seq <= self.config.reorder_window else packet.seq - len(packet.secondaries)
        seq = self._unwrap(packet.seq)
        if seq - self.expected > self.MAX_JUMP or seq < self.expected - self.MAX_LATE:
            log.info("UDPTL sequence jumped from %d to %d; resynchronising", self.expected, seq)
            self.pending.clear()
            self.known.clear()
            self.fec_groups.clear()
            self.expected = seq
        if seq < self.expected or seq in self.pending:
            self.stats.duplicates += 1
            return
        self._store(seq, packet.primary)
        for i, ifp in enumerate(packet.secondaries):
            s = seq - 1 - i
            if ifp and s >= self.expected and s not in self.pending:
                self._store(s, ifp)
                self.stats.recovered_redundancy += 1
        if packet.fec_span:
            for m, parity in enumerate(packet.fec_entries):
                covered = fec_covered(seq, packet.fec_span, len(packet.fec_entries), m)
                if covered[-1] >= self.expected - 64:
                    self.fec_groups.append((covered, parity))
            self._recover_fec()
        self._deliver()

    def _store(self, seq: int, ifp: bytes) -> None:
        self.pending[seq] = ifp
        self.known[seq] = ifp

    def _recover_fec(self) -> None:
        progress = True
        while progress:
            progress = False
            for covered, parity in list(self.fec_groups):
                missing = [s for s in covered if s not in self.known]
                if not missing:
                    self.fec_groups.remove((covered, parity))
                elif len(missing) == 1 and missing[0] >= (self.expected or 0):
                    ifp = _xor([parity] + [self.known[s] for s in covered if s != missing[0]])
                    self._store(missing[0], ifp)
                    self.stats.recovered_fec += 1
                    self.fec_groups.remove((covered, parity))
                    progress = True

    def _deliver(self) -> None:
        while True:
            while self.expected in self.pending:
                ifp = self.pending.pop(self.expected)
                self.on_ifp(self.expected & 0xFFFF, ifp)
                self.expected += 1
            if not self.pending:
                self.gap_since = None
                break
            newest = max(self.pending)
            now = self.now()
            if self.gap_since is None:
                self.gap_since = now
            if newest - self.expected >= self.config.reorder_window or now - self.gap_since >= self.config.gap_timeout:
                self._give_up_gap()
                continue
            break
        self._prune()

    def _give_up_gap(self) -> None:
        nxt = min(self.pending)
        while self.expected < nxt:
            self.stats.lost += 1
            self.on_ifp(self.expected & 0xFFFF, None)
            self.expected += 1
        self.gap_since = None

    def poll(self) -> None:
        """Call from a timer: declares a gap lost once it is older than ``gap_timeout``."""
        if self.pending:
            self._deliver()

    def _prune(self) -> None:
        if self.expected is None:
            return
        horizon = self.expected - 64
        for s in [s for s in self.known if s < horizon]:
            del self.known[s]
        self.fec_groups = [(c, p) for c, p in self.fec_groups if c[-1] >= horizon]


# ---------------------------------------------------------------- asyncio endpoint


class UdptlEndpoint(asyncio.DatagramProtocol):
    """A UDPTL socket: ``send(ifp)`` out, ``on_ifp(seq, ifp | None)`` in, in order.

    The remote address may be given or learnt from the first datagram (symmetric UDPTL, as
    gateways behind NAT expect); datagrams from other sources are accepted too, since peers
    may send from an unexpected port."""

    def __init__(self, on_ifp: Callable[[int, bytes | None], None], config: UdptlConfig | None = None,
                 remote: tuple[str, int] | None = None, loss: Callable[[], bool] | None = None,
                 clock=None) -> None:
        self.config = config or UdptlConfig()
        self.sender = UdptlSender(self.config)
        self.clock = clock  # engine.clock.Clock; None = the event loop's time
        now = clock.now if clock is not None else asyncio.get_event_loop().time
        self.receiver = UdptlReceiver(on_ifp, self.config, now=now)
        self.remote = remote
        self.transport: asyncio.DatagramTransport | None = None
        self.loss = loss  # test hook: returns True to drop an outgoing datagram
        self.closed = asyncio.get_event_loop().create_future()
        self._poll_task: asyncio.Future | None = None
        self._last_datagram: bytes | None = None
        self.datagrams_sent = 0
        self.datagrams_dropped = 0
        self.datagrams_received = 0
        self.sent_to: collections.Counter = collections.Counter()  # datagrams per destination
        self.largest_datagram = 0

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams_received += 1
        if self.remote is None:
            self.remote = addr
        self.receiver.feed(data)
        if self.receiver.pending and self._poll_task is None:
            self._poll_task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        """Declare a gap lost even if no further datagram arrives to notice it."""
        try:
            while self.receiver.pending:
                if self.clock is not None:
                    await self.clock.sleep(self.config.gap_timeout / 2)
                else:
                    await asyncio.sleep(self.config.gap_timeout / 2)
                self.receiver.poll()
        finally:
            self._poll_task = None

    def error_received(self, exc: Exception) -> None:
        log.debug("UDPTL socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    # API
    @property
    def local_address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    def max_ifp(self) -> int:
        return self.sender.ifp_budget()

    def send(self, ifp: bytes, copies: int = 1) -> None:
        """Send one IFP (a new sequence number), ``copies`` times."""
        self._last_datagram = self.sender.build(ifp)
        for _ in range(max(1, copies)):
            self._transmit(self._last_datagram)

    def repeat_last(self) -> None:
        """Send the previous datagram again (same sequence number), as repeated key packets are."""
        if self._last_datagram is not None:
            self._transmit(self._last_datagram)

    def _transmit(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.remote is None:
            log.debug("UDPTL remote address unknown yet; IFP kept only as redundancy")
            return
        if self.loss is not None and self.loss():
            self.datagrams_dropped += 1
            return
        self.transport.sendto(data, self.remote)
        self.datagrams_sent += 1
        self.sent_to[self.remote] += 1
        self.largest_datagram = max(self.largest_datagram, len(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_udptl(on_ifp: Callable[[int, bytes | None], None], *, local: tuple[str, int] = ("127.0.0.1", 0),
                     remote: tuple[str, int] | None = None, config: UdptlConfig | None = None,
                     loss: Callable[[], bool] | None = None, clock=None) -> UdptlEndpoint:
    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: UdptlEndpoint(on_ifp, config, remote, loss, clock), local_addr=local)
    return endpoint
