"""The PHY contract that T.30 runs on.

Modelled on T.31 (Class 1) primitives so that one T.30 implementation serves both the Class 1
modem (``modem.class1.Class1Phy``) and T.38 (``t38.phy.T38Phy``).  An implementation lives in
``modem/`` or ``t38/`` and subclasses :class:`Phy`; those packages may import this module only
(it has no dependency on the rest of ``engine``).

Conventions at this boundary:

* HDLC frames are octets as a Class 1 modem delivers them: address ``FF``, control ``03``
  (``13`` on the final frame), FCF (DIS = ``80``), then the FIF.  No FCS, no flags, no bit
  stuffing: the PHY adds and checks those.
* Image data (non-ECM T.4/T.6 bit streams, and the payload of ECM FCD frames) travels with the
  first bit on the line in the least significant bit of each byte (the T.31 DTE order, TIFF
  FillOrder=2).  A PHY whose wire order differs reverses the bits itself.
* Every receive takes a timeout in seconds and returns ``None`` (or raises) when it expires;
  the PHY measures time with the :class:`engine.clock.Clock` it was given.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass


class Modulation(enum.Enum):
    """A fax modulation and bit rate (T.31 +FTM/+FRM numbers as values)."""

    V21 = 3
    V27TER_2400 = 24
    V27TER_4800 = 48
    V29_7200 = 72
    V29_9600 = 96
    V17_7200 = 73
    V17_9600 = 97
    V17_12000 = 121
    V17_14400 = 145

    @property
    def bit_rate(self) -> int:
        return {3: 300, 24: 2400, 48: 4800, 72: 7200, 96: 9600, 73: 7200, 97: 9600,
                121: 12000, 145: 14400}[self.value]

    @property
    def family(self) -> str:
        return self.name.split("_")[0]


@dataclass(frozen=True)
class HdlcFrame:
    """One received HDLC frame; ``fcs_ok`` False means it arrived with a bad FCS."""

    data: bytes
    fcs_ok: bool = True


class PhyError(Exception):
    """The line or the device failed (carrier lost, port vanished, remote hung up)."""


class WrongCarrier(PhyError):
    """A receive found a different carrier than asked for (Class 1 +FCERROR).

    T.30 then usually asks for V.21 HDLC instead: the far end resent a command."""


class Phy(abc.ABC):
    """Abstract fax PHY; every call is a coroutine on the caller's asyncio loop."""

    @abc.abstractmethod
    async def send_hdlc(self, frames: list[bytes]) -> None:
        """Send frames at V.21 as one carrier burst (preamble, frames, closing flags).

        The caller has already set the final-frame bit in the control octet."""

    @abc.abstractmethod
    async def receive_hdlc(self, timeout: float) -> HdlcFrame | None:
        """Receive the next V.21 HDLC frame; ``None`` if none started within ``timeout``."""

    @abc.abstractmethod
    async def send_image(self, modulation: Modulation, data: bytes, *, long_training: bool = False) -> None:
        """Send a non-ECM bit stream (TCF zeros, or a T.4 page with its RTC) at ``modulation``."""

    @abc.abstractmethod
    def receive_image(self, modulation: Modulation, timeout: float) -> AsyncIterator[bytes]:
        """Yield chunks of non-ECM data at ``modulation`` until the carrier drops.

        Raises :class:`WrongCarrier` if V.21 is heard instead, ``TimeoutError`` if no
        carrier starts within ``timeout``."""

    @abc.abstractmethod
    async def send_image_hdlc(self, modulation: Modulation, frames: list[bytes], *,
                              long_training: bool = False) -> None:
        """Send ECM frames (FCD/RCP) as HDLC at a high-speed ``modulation``.

        ``long_training`` is asked for on the first burst after CTC, when V.17 must retrain."""

    @abc.abstractmethod
    def receive_image_hdlc(self, modulation: Modulation, timeout: float) -> AsyncIterator[HdlcFrame]:
        """Yield ECM frames received at ``modulation`` until the carrier drops.

        Raises :class:`WrongCarrier` / ``TimeoutError`` like :meth:`receive_image`."""

    @abc.abstractmethod
    async def send_silence(self, seconds: float) -> None:
        """Keep the line silent (the T.30 turnaround gaps; Class 1 AT+FTS)."""

    @abc.abstractmethod
    async def wait_silence(self, seconds: float, timeout: float) -> bool:
        """Wait until the line has been silent ``seconds`` (AT+FRS); False on timeout."""

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call and release the line; safe to call more than once."""
