"""A pseudo-terminal that plays a modem's serial port, wired into an asyncio loop.

The rig keeps the slave side open itself (in raw mode), so a DTE can open, close and reopen the
device path without the master seeing a hang-up.  Reading from the DTE can be paused: that is
how the modem's CTS (flow control) reaches the DTE, through the kernel's pty buffer filling up.
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
    """The modem end of one pty.  ``on_data(bytes)`` gets what the DTE wrote."""

    def __init__(self, name: str, on_data: Callable[[bytes], None], *, trace: bool = False) -> None:
        self.name = name
        self._on_data = on_data
        self._trace = trace
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._writing = False
        self.dropped_out = 0
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.resume_reading()

    # -- DTE -> modem ------------------------------------------------------------------------
    def pause_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.master)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and self._loop is not None and not self.closed:
            self._loop.add_reader(self.master, self._readable)
            self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:   # no slave open (cannot happen while we hold it) - idle
                return
            raise
        if data:
            if self._trace:
                log.debug("%s DTE> %r", self.name, data)
            self._on_data(data)

    # -- modem -> DTE ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._trace:
            log.debug("%s <DTE %r", self.name, data)
        room = MAX_PENDING_OUT - len(self._out)
        if len(data) > room:
            self.dropped_out += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        self._out.extend(data)
        self._flush_out()

    def _flush_out(self) -> None:
        while self._out:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            del self._out[:n]
        want = bool(self._out) and self._loop is not None and not self.closed
        if want and not self._writing:
            self._loop.add_writer(self.master, self._flush_out)
            self._writing = True
        elif not want and self._writing and self._loop is not None:
            self._loop.remove_writer(self.master)
            self._writing = False

    def close(self) -> None:
        if self.closed:
            return
        self.pause_reading()
        if self._writing and self._loop is not None:
            self._loop.remove_writer(self.master)
            self._writing = False
        self.closed = True
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
