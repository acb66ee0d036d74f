"""spandsp's T.31 modem (``t31_init``): a software Class 1 fax modem with an AT interpreter.

The application plays both the DTE wire and the telephone line: DTE bytes go in with
:meth:`T31Modem.at_rx`, modem output comes out through ``at_tx``; audio goes in and out with
:meth:`rx_audio`/:meth:`tx_audio`; and the modem only learns about rings, answers and hang-ups
from :meth:`call_event`.  Requests the modem makes of the "hardware" (dial, answer, hang up,
flow control) reach ``modem_control`` after the library call that raised them has returned.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

from . import constants as C
from ._audio import AudioStateOwner
from ._lib import AT_TX_HANDLER, T31_MODEM_CONTROL_HANDLER, T38_TX_PACKET_HANDLER, lib
from .constants import CallEvent, ModemControl
from .logbridge import LogBridge

AtTx = Callable[[bytes], None]
ModemControlHandler = Callable[[ModemControl, "str | int"], None]

T31_TX_BUF_LEN = 4096   # bytes from the DTE the modem can hold; more are dropped


class T31Modem(AudioStateOwner):
    """A Class 1 modem.  ``modem_control(op, arg)``: ``arg`` is the dial string for CALL and
    SETID, else the integer spandsp passed (0/1 for the DTR/RTS/CTS/CAR/RNG/DSR lines).

    :attr:`cts` follows the modem's flow-control requests at once: while it is False, stop
    feeding :meth:`at_rx` (bytes beyond the 4096-byte buffer are lost).
    """

    _kind = "T31Modem"

    def __init__(self, at_tx: AtTx, modem_control: ModemControlHandler | None = None, *,
                 transmit_on_idle: bool = True, log: bool = False, name: str = "t31") -> None:
        super().__init__()
        if not callable(at_tx):
            raise TypeError("at_tx must be callable")
        self.name = name
        self._at_tx = at_tx
        self._control = modem_control
        self.cts = True
        self.offhook = False
        L = lib()
        self._at_handler = AT_TX_HANDLER(self._on_at_tx)
        self._control_handler = T31_MODEM_CONTROL_HANDLER(self._on_modem_control)
        # ctypes cannot pass None for a function-pointer argument: an empty instance is NULL.
        self._no_t38 = T38_TX_PACKET_HANDLER()
        state = L.t31_init(None, self._at_handler, None, self._control_handler, None, self._no_t38, None)
        if not state:
            raise RuntimeError("t31_init failed")
        self._state = state
        if log:
            self._log = LogBridge(f"faxengine.spandsp.{name}")
            self._log.attach(L.t31_get_logging_state(state), f"{name}/t31")
            self._log.attach(state + C.T31_AT_LOGGING_OFFSET, f"{name}/at")
        L.t31_set_transmit_on_idle(state, int(transmit_on_idle))

    # -- callbacks from C (record only) -------------------------------------------------------
    def _on_at_tx(self, _at: int, _user: int, buf, length: int) -> int:
        try:
            data = ctypes.string_at(buf, length)
            self._defer(lambda: self._at_tx(data))
        except BaseException as exc:  # pragma: no cover
            self._record_error(exc)
        return 0

    def _on_modem_control(self, _s: int, _user: int, op: int, num: int | None) -> int:
        try:
            try:
                mop = ModemControl(op)
            except ValueError:
                return 0
            if mop in (ModemControl.CALL, ModemControl.SETID):
                arg: str | int = ctypes.string_at(num).decode("latin-1") if num else ""
            else:
                arg = int(num or 0)
            if mop is ModemControl.CTS:
                self.cts = bool(arg)
            elif mop in (ModemControl.CALL, ModemControl.ANSWER, ModemControl.OFFHOOK):
                self.offhook = True
            elif mop in (ModemControl.HANGUP, ModemControl.ONHOOK):
                self.offhook = False
            if self._control is not None:
                control = self._control
                self._defer(lambda: control(mop, arg))
        except BaseException as exc:  # pragma: no cover
            self._record_error(exc)
        return 0

    # -- DTE side -----------------------------------------------------------------------------
    def at_rx(self, data: bytes) -> None:
        """Bytes from the DTE (commands, or data while in a CONNECT state)."""
        state = self._require()
        if data:
            lib().t31_at_rx(state, data, len(data))
        self._flush()

    # -- line side ----------------------------------------------------------------------------
    def call_event(self, event: CallEvent | int) -> None:
        """Tell the modem what the line did (ALERTING gives RING, CONNECTED/ANSWERED start the call)."""
        state = self._require()
        lib().t31_call_event(state, int(CallEvent(event)))
        self._flush()

    def rx_audio(self, samples: np.ndarray) -> None:
        """Received line audio (int16, 8 kHz); this also runs the modem's timers."""
        self._audio_in(lib().t31_rx, samples)
        self._flush()

    def tx_audio(self, n: int = 160) -> np.ndarray:
        """The next ``n`` samples the modem puts on the line (silence-padded)."""
        return self._audio_out(lib().t31_tx, n)

    def _free(self, state: int) -> None:
        lib().t31_free(state)
