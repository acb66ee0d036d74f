"""ctypes binding of spandsp 0.0.6 (Debian ``libspandsp2``): an independent fax peer for tests
and the engine of the virtual modem rig.

* :class:`T38Terminal` - T.30 over T.38 IFP packets (``t38_terminal``)
* :class:`FaxAudioTerminal` - T.30 over 8 kHz audio (``fax_init``)
* :class:`T31Modem` - a software Class 1 modem with an AT interpreter (``t31_init``)

Each class owns its C state (``close()`` or a ``with`` block frees it) and keeps its callback
objects alive.  Callbacks are delivered after the library call returns, never re-entrantly.
The library is loaded by soname on first use; :class:`SpandspUnavailable` says why if it cannot be.
"""

from ._lib import SONAME, SpandspUnavailable, available, require
from ._owner import ClosedError
from .constants import CallEvent, ModemControl
from .fax_terminal import FaxAudioTerminal
from .t30 import completion_text, frame_name
from .t31 import T31Modem
from .t38_terminal import T38Terminal

__all__ = [
    "SONAME", "SpandspUnavailable", "available", "require", "ClosedError", "CallEvent", "ModemControl",
    "FaxAudioTerminal", "T31Modem", "T38Terminal", "completion_text", "frame_name",
]
