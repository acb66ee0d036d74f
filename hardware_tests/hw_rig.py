"""The fax rig the hardware tests run on, chosen by the FAX_RIG environment variable.

* unset or ``virtual``: the virtual rig (two spandsp T.31 modems wired together on ptys), run faster
  than real time with our clocks scaled to match, so CI runs every scenario;
* ``class1:/dev/ttyACM0,class1:/dev/ttyACM1`` (any of class1 / class2 / class2.0 per side): two real
  modems on a line simulator; the first dials the second's number from ``FAX_RIG_NUMBER``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import numpy as np

from engine.clock import MonotonicClock
from engine.result import SessionResult
from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from modem.call import ModemSpec, connect_class1, failure_result, finish_result, open_line, parse_spec
from modem.class2 import Class2Driver
from modem.rig.clock import ScaledClock

VIRTUAL_SPEED = 6.0


@dataclass
class RigSetup:
    virtual: bool
    caller: ModemSpec
    callee: ModemSpec
    number: str
    clock: object
    speed: float = 1.0
    rig: object = None
    class20: object = None
    notes: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        kind = f"virtual rig x{self.speed:g}" if self.virtual else "hardware"
        return f"{kind}: {self.caller.kind}:{self.caller.port} -> {self.callee.kind}:{self.callee.port} #{self.number}"


def rig_spec() -> str:
    return os.environ.get("FAX_RIG", "").strip() or "virtual"


async def start_rig(class20_side: str = "", class20_ecm: bool = False) -> RigSetup:
    """``class20_side`` ("caller" / "callee"), virtual rig only: put the rig's Class 2.0 modem (our T.30 as its
    firmware, handed in by the engine's CLI prepare hook) in front of that side's Class 1 modem."""
    spec = rig_spec()
    if spec == "virtual":
        from modem.rig import Rig

        rig = Rig("pair", speed=VIRTUAL_SPEED, line_delay_ms=40, ring_interval=1.0)
        paths = await rig.start()
        setup = RigSetup(True, ModemSpec("class1", paths["a"]), ModemSpec("class1", paths["b"]), "222",
                         ScaledClock(VIRTUAL_SPEED), VIRTUAL_SPEED, rig)
        if class20_side:
            try:
                await _start_class20(setup, class20_side, class20_ecm)
            except BaseException:
                await stop_rig(setup)
                raise
        return setup
    parts = [p for p in spec.split(",") if p.strip()]
    if len(parts) != 2:
        raise ValueError(f"FAX_RIG must be 'virtual' or two modem specs 'class1:/dev/A,class1:/dev/B', not {spec!r}")
    number = os.environ.get("FAX_RIG_NUMBER", "").strip()
    if not number:
        raise ValueError("FAX_RIG names hardware: set FAX_RIG_NUMBER to the number of the second modem's line")
    return RigSetup(False, parse_spec(parts[0]), parse_spec(parts[1]), number, MonotonicClock())


async def _start_class20(setup: RigSetup, side: str, ecm: bool) -> None:
    import argparse

    from engine.commands import prepare
    from modem.rig.class20 import Class20Modem
    from modem.rig.commands import class20_session_factory

    if side not in ("caller", "callee"):
        raise ValueError(f"class20_side must be 'caller' or 'callee', not {side!r}")
    prepare(argparse.Namespace(command="rig"))           # what `faxengine rig --class2 2.0` does first
    spec = getattr(setup, side)
    setup.class20 = Class20Modem(spec.port, class20_session_factory(), clock=setup.clock, ecm=ecm, dialect="2.0")
    setattr(setup, side, ModemSpec("class2.0", await setup.class20.start()))


async def stop_rig(setup: RigSetup) -> None:
    if setup.class20 is not None:
        await setup.class20.stop()
    if setup.rig is not None:
        await setup.rig.stop()


def make_pages(count: int = 2, rows: int = 600) -> list[FaxPage]:
    pages = []
    for n in range(count):
        rng = np.random.default_rng(100 + n)
        px = np.zeros((rows, 1728), dtype=bool)
        for r in range(0, rows, 8):
            for _ in range(int(rng.integers(2, 10))):
                a = int(rng.integers(0, 1700))
                px[r:r + int(rng.integers(1, 5)), a:a + int(rng.integers(2, 50))] = True
        px[10:14, 50:1680] = True
        px[10:rows - 10, 50:53] = True
        pages.append(FaxPage(px, y_dpi=196))
    return pages


async def _send(setup: RigSetup, pages, cfg: T30Config) -> SessionResult:
    spec = setup.caller
    if spec.kind == "class1":
        try:
            line, phy = await connect_class1(spec.port, number=setup.number, clock=setup.clock)
        except Exception as exc:  # noqa: BLE001 - mapped to a result record
            return failure_result(exc, "send", cfg.ident)
        try:
            session = T30Session(phy, setup.clock, cfg, send_pages=pages, calling=True)
            return finish_result(await session.run(), line)
        finally:
            await line.close()
    line = await open_line(spec.port, clock=setup.clock)
    try:
        return await Class2Driver(line, spec.dialect, ident=cfg.ident, ecm=cfg.ecm).send(setup.number, pages)
    finally:
        await line.close()


async def _receive(setup: RigSetup, cfg: T30Config, got: list) -> SessionResult:
    spec = setup.callee
    if spec.kind == "class1":
        try:
            line, phy = await connect_class1(spec.port, rings=1, clock=setup.clock, ring_timeout=120)
        except Exception as exc:  # noqa: BLE001
            return failure_result(exc, "receive", cfg.ident)
        try:
            session = T30Session(phy, setup.clock, cfg, on_page=lambda p, n: got.append(p), calling=False)
            return finish_result(await session.run(), line)
        finally:
            await line.close()
    line = await open_line(spec.port, clock=setup.clock)
    try:
        return await Class2Driver(line, spec.dialect, ident=cfg.ident, ecm=cfg.ecm).receive(
            rings=1, ring_timeout=120, on_page=lambda p, n: got.append(p))
    finally:
        await line.close()


async def transfer(setup: RigSetup, pages, send_cfg: T30Config, recv_cfg: T30Config):
    """Receiver waits for the call, sender dials; returns (send result, receive result, pages received)."""
    got: list[FaxPage] = []
    receiver = asyncio.ensure_future(_receive(setup, recv_cfg, got))
    await asyncio.sleep(1.0)
    sent = await _send(setup, pages, send_cfg)
    try:
        received = await asyncio.wait_for(receiver, 60)
    except TimeoutError:
        receiver.cancel()
        received = SessionResult(role="receive", error_code="timeout", error_message="receiver did not finish")
    return sent, received, got
