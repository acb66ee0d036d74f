"""A clock for a rig run faster than the wall, so protocol timers keep step with the sped-up line."""

from __future__ import annotations

import asyncio
import time


class ScaledClock:
    """Time running ``factor`` times faster than the wall (the ``engine.clock`` interface)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)
