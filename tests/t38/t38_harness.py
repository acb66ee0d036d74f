"""Test harness: a virtual clock run in lockstep with real UDP sockets on 127.0.0.1, and spandsp's
T.38 terminal attached to a UDPTL socket.

Time is virtual, so a 2-minute fax takes a few seconds, but every packet still crosses a real
socket: after each 20 ms tick the driver waits until every datagram sent has been received (or
dropped by the seeded loss hook), so the result does not depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable

from modem.spandsp.t38_terminal import T38Terminal
from t38.udptl import UdptlConfig, UdptlEndpoint, open_udptl

TICK = 0.02


class VirtualClock:
    """engine.clock.Clock whose time moves only when :meth:`advance` is called."""

    def __init__(self) -> None:
        self._now = 0.0
        self._heap: list[tuple[float, int, asyncio.Future]] = []
        self._n = 0

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + seconds, self._n, fut))
        self._n += 1
        await fut

    def advance(self, dt: float) -> None:
        target = self._now + dt
        while self._heap and self._heap[0][0] <= target + 1e-9:
            when, _, fut = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not fut.done():
                fut.set_result(None)
        self._now = target


class Lockstep:
    """Advances a VirtualClock tick by tick, stepping spandsp terminals and settling the sockets."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.endpoints: list[UdptlEndpoint] = []
        self.terminals: list[T38Terminal] = []

    def in_flight(self) -> int:
        """Datagrams sent to a still-open endpoint of ours that it has not received yet."""
        total = 0
        for e in self.endpoints:
            if e.transport is None or e.transport.is_closing():
                continue
            addr = e.local_address
            total += sum(o.sent_to[addr] for o in self.endpoints) - e.datagrams_received
        return total

    async def settle(self) -> None:
        quiet = 0
        for _ in range(2000):
            await asyncio.sleep(0)
            if self.in_flight() <= 0:
                quiet += 1
                if quiet >= 4:
                    return
            else:
                quiet = 0
                await asyncio.sleep(0.0001)

    async def run(self, done: Callable[[], bool], max_seconds: float) -> bool:
        limit = self.clock.now() + max_seconds
        while not done():
            if self.clock.now() >= limit:
                return False
            for t in self.terminals:
                if not t.done:
                    t.step(160)
            self.clock.advance(TICK)
            await self.settle()
        return True


class SpandspPeer:
    """A spandsp T38Terminal speaking UDPTL on its own socket."""

    def __init__(self, net: Lockstep | RealTime, calling: bool, *, udptl: UdptlConfig | None = None,
                 loss: float = 0.0, seed: int = 1, **terminal_kwargs) -> None:
        self.net = net
        self.calling = calling
        self.udptl = udptl or UdptlConfig()
        rng = random.Random(seed)
        self.loss = (lambda: rng.random() < loss) if loss else None
        self.terminal_kwargs = terminal_kwargs
        self.endpoint: UdptlEndpoint | None = None
        self.terminal: T38Terminal | None = None
        self._last_seq: int | None = None
        self.sent_ifps: list[bytes] = []

    async def start(self, remote: tuple[str, int] | None = None) -> tuple[str, int]:
        self.endpoint = await open_udptl(self._rx, remote=remote, config=self.udptl, loss=self.loss,
                                         clock=getattr(self.net, "clock", None))
        self.terminal = T38Terminal(self.calling, self._tx, **self.terminal_kwargs)
        self.net.endpoints.append(self.endpoint)
        self.net.terminals.append(self.terminal)
        return self.endpoint.local_address

    def _rx(self, seq: int, ifp: bytes | None) -> None:
        if ifp is not None and self.terminal is not None and not self.terminal.closed:
            self.terminal.rx_ifp(ifp, seq)

    def _tx(self, ifp: bytes, seq: int) -> None:
        assert self.endpoint is not None
        if seq == self._last_seq:
            self.endpoint.repeat_last()  # spandsp's repeated key packets keep their number
        else:
            self._last_seq = seq
            self.sent_ifps.append(ifp)
            self.endpoint.send(ifp)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        if self.terminal is not None:
            self.terminal.close()


def seeded_loss(rate: float, seed: int) -> Callable[[], bool] | None:
    if not rate:
        return None
    rng = random.Random(seed)
    return lambda: rng.random() < rate


class RealTime:
    """Steps spandsp terminals in real time (20 ms ticks, catching up after a late wake-up); the
    clock for our side is then ``engine.clock.MonotonicClock``."""

    def __init__(self) -> None:
        self.endpoints: list[UdptlEndpoint] = []
        self.terminals: list[T38Terminal] = []

    async def run(self, done: Callable[[], bool], max_seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = 0
        while not done():
            elapsed = loop.time() - start
            if elapsed >= max_seconds:
                return False
            while (ticks + 1) * TICK <= elapsed:
                for t in self.terminals:
                    if not t.done:
                        t.step(160)
                ticks += 1
            await asyncio.sleep(TICK / 2)
        return True
