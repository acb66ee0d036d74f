"""For tests of the rig: a minimal scripted DTE on its ptys (not a Class 1 driver), and the reader of
what the rig process prints."""

from __future__ import annotations

import asyncio
import os
import termios
import tty

DLE, ETX = 0x10, 0x03


async def tagged_line(stream: asyncio.StreamReader, tag: str, timeout: float) -> str:
    """The rest of the next ``TAG ...`` line the rig process prints (``PTY``, ``RESULT``, ``SUMMARY``),
    skipping others; AssertionError if the process ends first, TimeoutError if a line takes too long."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), timeout)
        if not raw:
            raise AssertionError(f"process ended before a {tag} line")
        line = raw.decode().rstrip("\n")
        if line.startswith(tag + " "):
            return line[len(tag) + 1:]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PtyDte:
    """Opens a pty path in raw mode and exchanges AT commands with bounded waits."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd, termios.TCSANOW)
        self.buf = bytearray()
        self.transcript: list[tuple[str, bytes]] = []

    async def _fill(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.fd, _resolve, ready)
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(self.fd)
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return True
        self.buf.extend(data)
        self.transcript.append(("<", data))
        return True

    def write(self, data: bytes) -> None:
        """Write a short command; raises BlockingIOError if the pty is full (use :meth:`send` for bulk)."""
        self.transcript.append((">", data))
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    async def send(self, data: bytes, timeout: float = 30.0) -> None:
        """Write bulk data, waiting (without blocking the loop) while the modem holds us off."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.transcript.append((">", data))
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
                continue
            except BlockingIOError:
                pass
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_writer(self.fd, _resolve, ready)
            try:
                await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
            finally:
                loop.remove_writer(self.fd)

    async def read_until(self, *endings: bytes, timeout: float = 10.0) -> bytes:
        """Everything up to and including the first of ``endings``; TimeoutError says what arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hits = [(self.buf.find(e), e) for e in endings if self.buf.find(e) >= 0]
            if hits:
                pos, end = min(hits)
                out = bytes(self.buf[:pos + len(end)])
                del self.buf[:pos + len(end)]
                return out
            if not await self._fill(deadline) and loop.time() >= deadline:
                raise TimeoutError(f"waited {timeout} s for {endings!r}; got {bytes(self.buf)!r}")

    async def command(self, cmd: bytes, *endings: bytes, timeout: float = 10.0) -> bytes:
        self.write(cmd + b"\r")
        return await self.read_until(*(endings or (b"OK\r\n", b"ERROR\r\n")), timeout=timeout)

    def close(self) -> None:
        os.close(self.fd)


def hdlc_unstuff(data: bytes) -> bytes:
    """A DLE-shielded Class 1 HDLC frame up to DLE ETX, unshielded (FCS bytes included)."""
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] == DLE and i + 1 < len(data):
            if data[i + 1] == ETX:
                break
            out.append(data[i + 1])
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)
