"""The virtual modem rig (``faxengine rig``): spandsp T.31 Class 1 modems on pseudo-terminals.

Use it in-process (``Rig(mode=...)`` inside an asyncio loop) or as a process
(``python -m modem.rig MODE ...`` / ``faxengine rig MODE ...``), which prints ``PTY <name> <path>``
lines, a ``RESULT <json>`` line per call and a ``SUMMARY <json>`` line when stopped.
It is a test instrument built on spandsp's modem, not a stand-in for real hardware.
"""

from .line import LineDirection
from .rig import DIAL_RESULTS, MODES, Rig, RigConfig, RigError

__all__ = ["DIAL_RESULTS", "MODES", "LineDirection", "Rig", "RigConfig", "RigError"]
