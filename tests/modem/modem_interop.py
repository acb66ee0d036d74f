"""Helpers for the Class 1 interop tests: a scaled clock, test pages, our Class 1 stack on a port."""

from __future__ import annotations

import numpy as np

from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from modem.class1 import Class1Phy
from modem.dial import ModemLine
from modem.rig.clock import ScaledClock

__all__ = ["ScaledClock", "class1_receive", "class1_send", "make_page"]


def make_page(rows: int = 300, seed: int = 7, y_dpi: int = 196) -> FaxPage:
    """A page with text-like strokes, boxes and noise: every codec path gets exercised."""
    rng = np.random.default_rng(seed)
    px = np.zeros((rows, 1728), dtype=bool)
    for r in range(0, rows, 9):
        for _ in range(int(rng.integers(3, 12))):
            a = int(rng.integers(0, 1700))
            px[r:r + int(rng.integers(1, 6)), a:a + int(rng.integers(2, 60))] = True
    px[20:25, 100:1600] = True
    px[20:rows - 20, 100:104] = True
    px[rows // 2, ::2] = True
    return FaxPage(px, y_dpi=y_dpi)


async def open_class1(path: str, clock) -> ModemLine:
    line = ModemLine(path, clock=clock)
    await line.open()
    await line.reset()
    await line.basic_init()
    await line.identify()
    await line.setup_class1()
    return line


def phy_for(line: ModemLine) -> Class1Phy:
    return Class1Phy(line.ch, line.clock, line.quirks, adaptive_receive=line.far)


async def class1_send(path: str, number: str, pages: list[FaxPage], config: T30Config, clock, quirks=None):
    from modem.call import connect_class1

    line, phy = await connect_class1(path, number=number, clock=clock, quirks=quirks, dial_timeout=60)
    try:
        session = T30Session(phy, clock, config, send_pages=pages, calling=True)
        result = await session.run()
        return result, session, phy
    finally:
        await line.close()


async def class1_receive(path: str, config: T30Config, clock, rings: int = 1):
    line = await open_class1(path, clock)
    got: list[FaxPage] = []
    try:
        await line.wait_for_call(rings=rings, timeout=120)
        await line.answer(timeout=30)
        phy = phy_for(line)
        phy.call_answered()
        session = T30Session(phy, clock, config, on_page=lambda p, n: got.append(p), calling=False)
        result = await session.run()
        return result, got, session, phy
    finally:
        await line.close()
