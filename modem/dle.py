"""DLE shielding of the data carried between a fax modem (DCE) and us (DTE).

In every data state (Class 1 +FTH/+FTM/+FRH/+FRM, Class 2 +FDT/+FDR) the byte 0x10 (DLE) is an
escape: ``<DLE><DLE>`` is one data 0x10, ``<DLE><ETX>`` ends the data, ``<DLE><SUB>`` means two data
DLEs (Class 2.0 and +FDD=1 modems send it; we always accept it, and never send it).  Class 2.0 adds
``<DLE>,`` ``<DLE>;`` ``<DLE>.`` (end of page with MPS/EOM/EOP) toward the modem."""

from __future__ import annotations

DLE = 0x10
ETX = 0x03
SUB = 0x1A
DC1 = 0x11
DC2 = 0x12
DC3 = 0x13
CAN = 0x18
EOT = 0x04

END = bytes([DLE, ETX])


def shield(data: bytes) -> bytes:
    """DTE -> DCE: double every data DLE (the terminator is added by the caller)."""
    return data.replace(b"\x10", b"\x10\x10")


def unshield(data: bytes) -> bytes:
    """DCE -> DTE for a complete buffer without its terminator (convenience for tests and tools)."""
    dec = Unshielder()
    out = dec.feed(data)
    if dec.ended:
        raise ValueError("<DLE><ETX> inside data passed to unshield()")
    return out + dec.flush()


class Unshielder:
    """Streaming DCE -> DTE decoder.

    ``feed`` returns the data bytes decoded so far; once ``<DLE><ETX>`` (or another terminator listed
    in ``terminators``) is seen, ``ended`` is set, ``terminator`` holds the byte after the DLE, and
    ``rest`` holds whatever followed it (result codes, usually).  A DLE split across two reads is
    kept until the next feed.  Unknown ``<DLE><x>`` pairs are kept as data (both bytes) and counted
    in ``odd_escapes``, as HylaFAX does."""

    def __init__(self, terminators: bytes = bytes([ETX])) -> None:
        self._terminators = terminators
        self._pending_dle = False
        self.ended = False
        self.terminator: int | None = None
        self.rest = b""
        self.odd_escapes = 0
        self.events: list[int] = []     # in-band DLE codes seen that are neither data nor terminator (e.g. DC2)

    def feed(self, chunk: bytes) -> bytes:
        if self.ended:
            self.rest += chunk
            return b""
        out = bytearray()
        i = 0
        n = len(chunk)
        if self._pending_dle and n:
            self._pending_dle = False
            i = self._escape(chunk, 0, out)
            if self.ended:
                return bytes(out)
        while i < n:
            j = chunk.find(b"\x10", i)
            if j < 0:
                out += chunk[i:]
                break
            out += chunk[i:j]
            if j + 1 >= n:
                self._pending_dle = True
                break
            i = self._escape(chunk, j + 1, out)
            if self.ended:
                break
        return bytes(out)

    def _escape(self, chunk: bytes, k: int, out: bytearray) -> int:
        """Handle the byte at chunk[k] that follows a DLE; return the next index to scan."""
        code = chunk[k]
        if code == DLE:
            out.append(DLE)
        elif code in self._terminators:
            self.ended = True
            self.terminator = code
            self.rest = chunk[k + 1:]
        elif code == SUB:
            out += b"\x10\x10"
        elif code in (DC2, DC1, DC3):
            self.events.append(code)          # Class 2 "buffers empty" and similar in-band signals
        else:
            self.odd_escapes += 1
            out.append(DLE)
            out.append(code)
        return k + 1

    def flush(self) -> bytes:
        """A dangling DLE at the very end: keep it as data."""
        if self._pending_dle:
            self._pending_dle = False
            self.odd_escapes += 1
            return b"\x10"
        return b""
