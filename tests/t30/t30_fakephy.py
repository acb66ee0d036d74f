"""An in-memory PHY pair and a virtual-time event loop for T.30 tests.

Two :class:`FakePhy` objects carry V.21 frames, non-ECM image data and ECM frames to each other,
taking the virtual time the real line would take (V.21 preamble and 300 bit/s, training, data at
the modulation's rate).  :class:`VirtualTimeLoop` advances time instantly whenever every task is
waiting, so a 35 s T1 expiry costs microseconds and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable

from engine.phy import HdlcFrame, Modulation, Phy, PhyError, WrongCarrier

V21_PREAMBLE = 1.0
LONG_TRAINING = 1.4
SHORT_TRAINING = 0.2
CHUNK = 256


class VirtualTimeDeadlock(RuntimeError):
    """Every task waits and no timer is pending: the protocol under test hung."""


class _VirtualSelector:
    def __init__(self, real, loop: VirtualTimeLoop):
        self._real = real
        self._loop = loop

    def select(self, timeout=None):
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:
            raise VirtualTimeDeadlock("all tasks wait forever (no timer pending)")
        if timeout > 0:
            self._loop._vtime += timeout
        return events

    def __getattr__(self, name):
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run."""

    def __init__(self):
        super().__init__()
        self._vtime = 0.0
        self._selector = _VirtualSelector(self._selector, self)

    def time(self) -> float:
        return self._vtime


def run_virtual(coro, *, limit: float = 3600.0):
    """Run ``coro`` to completion in virtual time (fails if it needs more than ``limit`` virtual seconds)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, limit))
    finally:
        loop.close()


class VirtualClock:
    """The engine's Clock on the running (virtual-time) loop."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


Event = tuple  # ("hdlc", bytes, fcs_ok) | ("carrier", kind, mod) | ("data", bytes, mod) | ("frame", bytes, ok, mod)
#                ("end",) | ("hangup",)


class FakePhy(Phy):
    """One end of the in-memory line.  ``impair`` may rewrite or drop events this end sends."""

    def __init__(self, clock: VirtualClock | None = None, name: str = "phy"):
        self.clock = clock or VirtualClock()
        self.name = name
        self.peer: FakePhy | None = None
        self._inbox: collections.deque[Event] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self.hung_up = False
        self.sent: list[tuple[float, str, object]] = []    # (time, kind, payload) of what this end sent
        self.impair: Callable[[Event], list[Event]] | None = None
        self.lose_frame_on_wrong_carrier = False

    # -- plumbing

    def _event(self) -> asyncio.Event:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def _deliver(self, ev: Event) -> None:
        events = self.impair(ev) if self.impair is not None else [ev]
        peer = self.peer
        if peer is None or peer.hung_up:
            return
        for e in events:
            peer._inbox.append(e)
        peer._event().set()

    async def _next(self, timeout: float | None) -> Event | None:
        """The next event; ``None`` if none arrived within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._inbox:
            if self.hung_up:
                raise PhyError("line released")
            ev = self._event()
            ev.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                return None
        item = self._inbox.popleft()
        if item[0] == "hangup":
            self.hung_up = True
            raise PhyError("remote hung up")
        return item

    def _check_line(self) -> None:
        if self.hung_up:
            raise PhyError("line released")

    # -- the PHY contract

    async def send_hdlc(self, frames: list[bytes]) -> None:
        self._check_line()
        await self.clock.sleep(V21_PREAMBLE)
        for f in frames:
            await self.clock.sleep((len(f) + 3) * 8 / 300)
            self._check_line()
            self.sent.append((self.clock.now(), "hdlc", bytes(f)))
            self._deliver(("hdlc", bytes(f), True))

    async def receive_hdlc(self, timeout: float) -> HdlcFrame | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = await self._next(max(0.0, deadline - loop.time()))
            if ev is None:
                return None
            if ev[0] == "hdlc":
                return HdlcFrame(ev[1], ev[2])
            # high-speed carrier while listening for V.21: not heard

    async def send_image(self, modulation: Modulation, data: bytes, *, long_training: bool = False) -> None:
        self._check_line()
        self.sent.append((self.clock.now(), "image", (modulation, bytes(data), long_training)))
        await self.clock.sleep(LONG_TRAINING if long_training else SHORT_TRAINING)
        self._deliver(("carrier", "image", modulation))
        for i in range(0, len(data), CHUNK):
            chunk = bytes(data[i:i + CHUNK])
            await self.clock.sleep(len(chunk) * 8 / modulation.bit_rate)
            self._check_line()
            self._deliver(("data", chunk, modulation))
        self._deliver(("end",))

    async def send_image_hdlc(self, modulation: Modulation, frames: list[bytes], *,
                              long_training: bool = False) -> None:
        self._check_line()
        self.sent.append((self.clock.now(), "ecm", (modulation, [bytes(f) for f in frames], long_training)))
        await self.clock.sleep(LONG_TRAINING if long_training else SHORT_TRAINING)
        self._deliver(("carrier", "ecm", modulation))
        for f in frames:
            await self.clock.sleep((len(f) + 3) * 8 / modulation.bit_rate)
            self._check_line()
            self._deliver(("frame", bytes(f), True, modulation))
        self._deliver(("end",))

    async def _start_carrier(self, kind: str, modulation: Modulation, timeout: float) -> bool:
        """Wait for a high-speed carrier; True if it is the one asked for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = await self._next(max(0.0, deadline - loop.time()))
            if ev is None:
                raise TimeoutError(f"no {modulation.name} carrier within {timeout} s")
            if ev[0] == "hdlc":
                if not self.lose_frame_on_wrong_carrier:
                    self._inbox.appendleft(ev)
                raise WrongCarrier("V.21 heard")
            if ev[0] == "carrier":
                return ev[1] == kind and ev[2] == modulation
            # stray data/end of a carrier we did not catch: skip

    async def receive_image(self, modulation: Modulation, timeout: float) -> AsyncIterator[bytes]:
        matched = await self._start_carrier("image", modulation, timeout)
        while True:
            ev = await self._next(60.0)
            if ev is None or ev[0] == "end":
                return
            if ev[0] == "data":
                yield ev[1] if matched else b"\xff" * len(ev[1])
            elif ev[0] == "hdlc":
                self._inbox.appendleft(ev)
                return

    async def receive_image_hdlc(self, modulation: Modulation, timeout: float) -> AsyncIterator[HdlcFrame]:
        matched = await self._start_carrier("ecm", modulation, timeout)
        while True:
            ev = await self._next(60.0)
            if ev is None or ev[0] == "end":
                return
            if ev[0] == "frame":
                yield HdlcFrame(ev[1], ev[2] and matched)
            elif ev[0] == "hdlc":
                self._inbox.appendleft(ev)
                return

    async def send_silence(self, seconds: float) -> None:
        self._check_line()
        self.sent.append((self.clock.now(), "silence", seconds))
        await self.clock.sleep(seconds)

    async def wait_silence(self, seconds: float, timeout: float) -> bool:
        await self.clock.sleep(seconds)
        return True

    async def hangup(self) -> None:
        if self.hung_up:
            return
        self.hung_up = True
        self.sent.append((self.clock.now(), "hangup", None))
        peer = self.peer
        if peer is not None and not peer.hung_up:
            peer._inbox.append(("hangup",))
            peer._event().set()

    # -- helpers for scripted far ends

    def sent_frames(self) -> list[bytes]:
        return [p for _, kind, p in self.sent if kind == "hdlc"]


def phy_pair() -> tuple[FakePhy, FakePhy]:
    clock = VirtualClock()
    a, b = FakePhy(clock, "a"), FakePhy(clock, "b")
    a.peer, b.peer = b, a
    return a, b
