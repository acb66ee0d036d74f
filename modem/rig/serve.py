"""The running ``faxengine rig``: the rig (and a Class 2.0 modem in front of it) until told to stop."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from .clock import ScaledClock
from .rig import Rig, RigConfig


def _emit(tag: str, payload: Any) -> None:
    sys.stdout.write(f"{tag} {payload}\n")
    sys.stdout.flush()


def serve(config: RigConfig, exit_after: int, class2_dialect: str | None, class2_ecm: bool,
          class20_session_factory: Callable[..., Any] | None) -> int:
    """Run until SIGINT/SIGTERM (or ``exit_after`` results); 1 if the rig failed."""
    return asyncio.run(_serve(config, exit_after, class2_dialect, class2_ecm, class20_session_factory))


async def _serve(config: RigConfig, exit_after: int, class2_dialect: str | None, class2_ecm: bool,
                 class20_session_factory: Callable[..., Any] | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_result(result: dict[str, Any]) -> None:
        _emit("RESULT", json.dumps(result, sort_keys=True))
        if exit_after and len(rig.results) >= exit_after:
            stop.set()

    rig = Rig(config=config, on_result=on_result)
    paths = await rig.start()
    class20 = None
    if class2_dialect:
        from .class20 import Class20Modem

        class20 = Class20Modem(paths["modem"], class20_session_factory, clock=ScaledClock(config.speed),
                               ecm=class2_ecm, dialect=class2_dialect)
        try:
            paths = {**paths, "class20": await class20.start()}
        except Exception as exc:
            await class20.stop()
            await rig.stop()
            print(f"faxengine rig: the Class 2.0 modem did not start: {exc}", file=sys.stderr)
            return 1
    for name, path in paths.items():
        _emit("PTY", f"{name} {path}")
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([rig.ticker, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if class20 is not None:
        await class20.stop()
    summary = await rig.stop()
    _emit("SUMMARY", json.dumps(summary, sort_keys=True))
    return 1 if rig.error is not None else 0
