"""A pseudo-terminal that plays a modem's serial port, wired into an asyncio loop.

The rig holds the slave side open (in raw mode) until a DTE has opened it and written to it, so
the device exists and keeps its settings before anyone connects.  From then on the DTE is the
only holder: when it closes the port (or dies), the master reads EIO, which the rig treats like a
dropped DTR line, and it polls each tick for the DTE to come back.

Reading from the DTE can be paused: that is how the modem's CTS (flow control) reaches the DTE,
through the kernel's pty buffer filling up and the DTE's writes blocking.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import termios
import tty
from collections.abc import Callable

log = logging.getLogger("faxengine.rig")

READ_CHUNK = 512
MAX_PENDING_OUT = 256 * 1024   # output kept for a DTE that is not reading; beyond this it is dropped


class PtyPort:
    """The modem end of one pty.  ``on_data(bytes)`` gets what the DTE wrote; ``on_gone()`` is
    called when a DTE that had connected closes the port."""

    def __init__(self, name: str, on_data: Callable[[bytes], None], *, on_gone: Callable[[], None] | None = None,
                 trace: bool = False) -> None:
        self.name = name
        self._on_data = on_data
        self._on_gone = on_gone
        self._trace = trace
        self.master, slave = os.openpty()
        self._slave: int | None = slave
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(slave)
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._writing = False
        self._flow_paused = False
        self.dte_present = True        # as far as we know; False after EIO until it reopens
        self.dropped_out = 0
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._update_reader()

    # -- DTE -> modem ------------------------------------------------------------------------
    def pause_reading(self) -> None:
        self._flow_paused = True
        self._update_reader()

    def resume_reading(self) -> None:
        self._flow_paused = False
        self._update_reader()

    def _update_reader(self) -> None:
        want = self._loop is not None and not self.closed and self.dte_present and not self._flow_paused
        if want and not self._reading:
            self._loop.add_reader(self.master, self._readable)
            self._reading = True
        elif not want and self._reading and self._loop is not None:
            self._loop.remove_reader(self.master)
            self._reading = False

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._gone()
                return
            raise
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        if self._slave is not None:
            # A DTE has the port open now: let go of ours, so its close becomes visible.
            os.close(self._slave)
            self._slave = None
        if self._trace:
            log.debug("%s DTE> %r", self.name, data)
        self._on_data(data)

    def _gone(self) -> None:
        if not self.dte_present:
            return
        log.info("%s: the DTE closed the port", self.name)
        self.dte_present = False
        self.dropped_out += len(self._out)
        self._out.clear()
        self._update_reader()
        self._update_writer()
        if self._on_gone is not None:
            self._on_gone()

    def poll(self) -> None:
        """While the DTE is away, check whether it has reopened the port (called every tick)."""
        if self.dte_present or self.closed:
            return
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        log.info("%s: a DTE opened the port again", self.name)
        self.dte_present = True
        self._update_reader()
        self._deliver(data)

    # -- modem -> DTE ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.dte_present:
            self.dropped_out += len(data)
            return
        if self._trace:
            log.debug("%s <DTE %r", self.name, data)
        room = max(MAX_PENDING_OUT - len(self._out), 0)
        if len(data) > room:
            self.dropped_out += len(data) - room
            data = data[:room]
        self._out.extend(data)
        self._flush_out()

    def _flush_out(self) -> None:
        while self._out and self.dte_present:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EIO:
                    self._gone()
                    break
                raise
            del self._out[:n]
        self._update_writer()

    def _update_writer(self) -> None:
        want = bool(self._out) and self.dte_present and self._loop is not None and not self.closed
        if want and not self._writing:
            self._loop.add_writer(self.master, self._flush_out)
            self._writing = True
        elif not want and self._writing and self._loop is not None:
            self._loop.remove_writer(self.master)
            self._writing = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._update_reader()
        self._update_writer()
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._slave = None
