"""A spandsp T.31 Class 1 modem whose serial port is a pty."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from modem.spandsp import CallEvent, ModemControl, T31Modem

from .pty_port import PtyPort

ControlHandler = Callable[["VirtualModem", ModemControl, "str | int"], None]
# A DTE that closes the port is reported as this pseudo-operation (like a dropped DTR line).
DTE_GONE = "dte-gone"


class VirtualModem:
    """T31Modem + PtyPort: DTE bytes flow only while the modem holds CTS on.

    A pty has no CTS line, so flow control reaches the DTE by the rig not reading (the kernel's
    pty buffer fills and the DTE's writes block), and with ``xonxoff`` also as DC3/DC1 bytes.
    """

    def __init__(self, name: str, on_control: ControlHandler, *, trace: bool = False, log: bool = False,
                 xonxoff: bool = False) -> None:
        self.name = name
        self.xonxoff = xonxoff
        self._on_control = on_control
        self.port = PtyPort(name, self._from_dte, on_gone=self._dte_gone, trace=trace)
        self.t31 = T31Modem(self.port.write, self._control, log=log, name=f"rig-{name}")
        self.cts_off_events = 0

    @property
    def path(self) -> str:
        return self.port.path

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.port.attach(loop)

    def _from_dte(self, data: bytes) -> None:
        self.t31.at_rx(data)
        self._sync_flow()

    def _dte_gone(self) -> None:
        self._on_control(self, DTE_GONE, 0)  # type: ignore[arg-type]

    def poll(self) -> None:
        self.port.poll()

    def _control(self, op: ModemControl, arg: str | int) -> None:
        if op is ModemControl.CTS:
            if not arg:
                self.cts_off_events += 1
            if self.xonxoff:           # also tell the DTE in-band: DC3 = stop sending, DC1 = go on
                self.port.write(b"\x11" if arg else b"\x13")
            self._sync_flow()
        self._on_control(self, op, arg)

    def _sync_flow(self) -> None:
        if self.t31.cts:
            self.port.resume_reading()
        else:
            self.port.pause_reading()

    def call_event(self, event: CallEvent) -> None:
        self.t31.call_event(event)

    def tx_audio(self, n: int) -> np.ndarray:
        return self.t31.tx_audio(n)

    def rx_audio(self, samples: np.ndarray) -> None:
        self.t31.rx_audio(samples)
        self._sync_flow()

    def close(self) -> None:
        self.port.close()
        self.t31.close()
