"""T.30 facsimile control fields and HDLC frame layout, in Class 1 transmission order.

An octet here is what a Class 1 modem hands over: the first bit on the line is the least
significant bit, so DIS is ``0x80`` and the "X" bit (set in frames from the station that received
a valid DIS) is bit 0.  The initial-identification group (DIS/CSI/NSF and the DTC/CIG/NSC family)
carries no X bit: there bit 0 tells DIS-type from DTC-type frames.
"""

from __future__ import annotations

from dataclasses import dataclass

ADDRESS = 0xFF
CONTROL = 0x03
CONTROL_FINAL = 0x13

# Initial identification (no X bit)
DIS = 0x80
CSI = 0x40
NSF = 0x20
DTC = 0x81
CIG = 0x41
NSC = 0x21
PWD_POLL = 0xC1
SEP = 0xA1
# Commands to send (X bit in bit 0, shown clear)
DCS = 0x82
TSI = 0x42
NSS = 0x22
SUB = 0xC2
SID = 0xA2
CTC = 0x12
# Responses to pre-message commands
CFR = 0x84
FTT = 0x44
CTR = 0xC4
# Post-message commands
EOM = 0x8E
MPS = 0x4E
EOP = 0x2E
PRI_EOM = 0x9E
PRI_MPS = 0x5E
PRI_EOP = 0x3E
PPS = 0xBE
EOR = 0xCE
RR = 0x6E
# Post-message responses
MCF = 0x8C
RTP = 0xCC
RTN = 0x4C
PIP = 0xAC
PIN = 0x2C
PPR = 0xBC
RNR = 0xEC
ERR = 0x1C
# Other line control
DCN = 0xFA
CRP = 0x1A
FNV = 0xCA
# ECM image frames (sent at the high-speed modulation)
FCD = 0x06
RCP = 0x86
PPS_NULL = 0x00

NAMES = {
    DIS: "DIS", CSI: "CSI", NSF: "NSF", DTC: "DTC", CIG: "CIG", NSC: "NSC", PWD_POLL: "PWD", SEP: "SEP",
    DCS: "DCS", TSI: "TSI", NSS: "NSS", SUB: "SUB", SID: "SID", CTC: "CTC", CFR: "CFR", FTT: "FTT",
    CTR: "CTR", EOM: "EOM", MPS: "MPS", EOP: "EOP", PRI_EOM: "PRI-EOM", PRI_MPS: "PRI-MPS",
    PRI_EOP: "PRI-EOP", PPS: "PPS", EOR: "EOR", RR: "RR", MCF: "MCF", RTP: "RTP", RTN: "RTN",
    PIP: "PIP", PIN: "PIN", PPR: "PPR", RNR: "RNR", ERR: "ERR", DCN: "DCN", CRP: "CRP", FNV: "FNV",
    FCD: "FCD", RCP: "RCP",
}

# Post-page message codes as they appear in PPS/EOR (FCF2, X bit masked)
PPM_NAMES = {PPS_NULL: "NULL", MPS: "MPS", EOM: "EOM", EOP: "EOP", PRI_MPS: "PRI-MPS",
             PRI_EOM: "PRI-EOM", PRI_EOP: "PRI-EOP"}


def has_x_bit(octet: int) -> bool:
    """Whether bit 0 of this FCF octet is the X bit (all groups but initial identification)."""
    return (octet & 0x0E) != 0


def normalize(octet: int) -> int:
    """The FCF with its X bit cleared (identification-group octets are returned unchanged)."""
    return octet & 0xFE if has_x_bit(octet) else octet


def name(octet: int) -> str:
    return NAMES.get(normalize(octet), f"FCF_{octet:02X}")


def build(fcf: int, fif: bytes = b"", *, final: bool = True, x: bool = False) -> bytes:
    """A frame as a Class 1 modem takes it: FF, 03/13, FCF (with the X bit if due), FIF."""
    octet = fcf | 1 if (x and has_x_bit(fcf)) else fcf
    return bytes((ADDRESS, CONTROL_FINAL if final else CONTROL, octet)) + bytes(fif)


@dataclass(frozen=True)
class Frame:
    """A parsed V.21 (or ECM) frame; ``fcf`` has the X bit cleared."""

    fcf: int
    fif: bytes
    final: bool
    x: bool
    raw: bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.fcf, f"FCF_{self.fcf:02X}")

    def __repr__(self) -> str:  # short, for logs
        return f"<{self.name}{' ' + self.fif.hex() if self.fif else ''}>"


class FrameError(ValueError):
    """Octets that are not a T.30 frame (wrong address/control, too short)."""


def parse(data: bytes) -> Frame:
    if len(data) < 3:
        raise FrameError(f"frame too short ({len(data)} octets)")
    if data[0] != ADDRESS or data[1] not in (CONTROL, CONTROL_FINAL):
        raise FrameError(f"bad address/control {data[:2].hex()}")
    octet = data[2]
    return Frame(fcf=normalize(octet), fif=bytes(data[3:]), final=data[1] == CONTROL_FINAL,
                 x=has_x_bit(octet) and bool(octet & 1), raw=bytes(data))


def crc16(data: bytes) -> int:
    """The HDLC FCS (CRC-16/X.25), for PHYs and tests that frame ECM data themselves."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF
