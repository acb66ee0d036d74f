"""The virtual modem rig (``faxengine rig``): spandsp T.31 Class 1 modems on pseudo-terminals.

Use it in-process (``Rig(mode=...)`` inside an asyncio loop) or as a process
(``python -m modem.rig MODE ...`` / ``faxengine rig MODE ...``), which prints ``PTY <name> <path>``
lines, a ``RESULT <json>`` line per call and a ``SUMMARY <json>`` line when stopped.
It is a test instrument built on spandsp's modem, not a stand-in for real hardware.
"""

from __future__ import annotations

import importlib
from typing import Any

from .options import DIAL_RESULTS, MODES

__all__ = ["DIAL_RESULTS", "MODES", "LineDirection", "Rig", "RigConfig", "RigError"]

# Loaded on first use: ``faxengine`` imports modem.rig.commands to build its parser on every run, and the
# rig itself pulls in numpy, PIL and spandsp.
_LAZY = {"LineDirection": ".line", "Rig": ".rig", "RigConfig": ".rig", "RigError": ".rig"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
