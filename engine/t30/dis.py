"""DIS/DTC/DCS information fields (T.30 Table 2) and the 20-character identities.

Bit *n* of a FIF (n from 1) is ``fif[(n - 1) // 8] >> ((n - 1) % 8) & 1`` - the Class 1 octet
order, where the first bit sent is the least significant.  Parsing accepts any length (missing
octets read as zero, unknown bits are ignored); building sets extension bits only as far as the
highest octet used.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.phy import Modulation

# Bit numbers (T.30 Table 2)
BIT_64_OCTET_PREFERRED = 7
BIT_READY_TO_TRANSMIT = 9
BIT_READY_TO_RECEIVE = 10
BIT_FINE = 15
BIT_2D = 16
BIT_WIDTH_255 = 17
BIT_WIDTH_303 = 18
BIT_LENGTH_B4 = 19
BIT_LENGTH_UNLIMITED = 20
BIT_ECM = 27
BIT_ECM_64 = 28
BIT_T6 = 31
BIT_SUPERFINE = 41          # R8 x 15.4 l/mm (200 x 400 when inch-based)
BIT_INCH = 44
BIT_METRIC = 45
BIT_HALF_SCAN_TIME = 46     # DIS: T15.4 = 1/2 T7.7
EXTEND_BITS = (24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120)

# Bits 11-14 as the 4-bit code b11 + 2*b12 + 4*b13 + 8*b14.
DCS_RATE_CODES = {
    Modulation.V27TER_2400: 0b0000,
    Modulation.V27TER_4800: 0b0010,
    Modulation.V29_9600: 0b0001,
    Modulation.V29_7200: 0b0011,
    Modulation.V17_14400: 0b1000,
    Modulation.V17_12000: 0b1010,
    Modulation.V17_9600: 0b1001,
    Modulation.V17_7200: 0b1011,
}
RATE_FROM_DCS_CODE = {v: k for k, v in DCS_RATE_CODES.items()}

# The fallback order (fastest first)
FALLBACK = (
    Modulation.V17_14400, Modulation.V17_12000, Modulation.V17_9600, Modulation.V17_7200,
    Modulation.V29_9600, Modulation.V29_7200, Modulation.V27TER_4800, Modulation.V27TER_2400,
)

# Minimum scan-line time code (bits 21-23 as b21 + 2*b22 + 4*b23) -> ms at standard, at fine
SCAN_TIME_DIS = {0: (20, 20), 1: (5, 5), 2: (10, 10), 3: (20, 10), 4: (40, 40), 5: (40, 20), 6: (10, 5), 7: (0, 0)}
SCAN_TIME_DCS_CODE = {20: 0, 5: 1, 10: 2, 40: 4, 0: 7}
SCAN_TIME_FROM_DCS = {v: k for k, v in SCAN_TIME_DCS_CODE.items()}

Y_DPI_BY_RES = {"standard": 98, "fine": 196, "superfine": 391}
WIDTH_BY_CODE = {0: 1728, 1: 2048, 2: 2432}  # code = b17 + 2*b18 in DCS


def get_bit(fif: bytes, n: int) -> bool:
    i = (n - 1) // 8
    return i < len(fif) and bool(fif[i] >> ((n - 1) % 8) & 1)


def set_bit(fif: bytearray, n: int, value: bool = True) -> None:
    i = (n - 1) // 8
    while len(fif) <= i:
        fif.append(0)
    if value:
        fif[i] |= 1 << ((n - 1) % 8)
    else:
        fif[i] &= ~(1 << ((n - 1) % 8)) & 0xFF


def get_field(fif: bytes, first: int, count: int) -> int:
    return sum(get_bit(fif, first + k) << k for k in range(count))


def set_field(fif: bytearray, first: int, count: int, value: int) -> None:
    for k in range(count):
        set_bit(fif, first + k, bool(value >> k & 1))


def finish(fif: bytearray, minimum_octets: int = 3) -> bytes:
    """Trim trailing zero octets (keeping ``minimum_octets``) and set the extension bits."""
    while len(fif) > minimum_octets and fif[-1] == 0:
        fif.pop()
    while len(fif) < minimum_octets:
        fif.append(0)
    for bit in EXTEND_BITS:
        if bit // 8 < len(fif):
            set_bit(fif, bit, True)
    return bytes(fif)


@dataclass
class Capabilities:
    """What a DIS (or DTC) says the station can receive."""

    ready_to_receive: bool = True
    ready_to_transmit: bool = False
    v27ter: bool = True
    v29: bool = True
    v17: bool = True
    v27ter_fallback_only: bool = False     # code 0000: V.27 ter at 2400 only
    fine: bool = True
    superfine: bool = False
    half_scan_time_superfine: bool = False
    mr: bool = True
    mmr: bool = False
    ecm: bool = False
    prefers_64_octet: bool = False
    widths: tuple[int, ...] = (1728,)
    unlimited_length: bool = True
    b4_length: bool = False
    scan_time_code: int = 7

    @classmethod
    def parse(cls, fif: bytes) -> Capabilities:
        rate = get_field(fif, 11, 4)
        width_code = get_field(fif, 17, 2)
        widths = {0: (1728,), 1: (1728, 2048), 2: (1728, 2048, 2432)}.get(width_code, (1728,))
        return cls(
            ready_to_receive=get_bit(fif, BIT_READY_TO_RECEIVE),
            ready_to_transmit=get_bit(fif, BIT_READY_TO_TRANSMIT),
            v27ter=bool(rate & 0b0010) or rate == 0,
            v27ter_fallback_only=rate == 0,
            v29=bool(rate & 0b0001),
            v17=(rate & 0b1011) == 0b1011,
            fine=get_bit(fif, BIT_FINE),
            superfine=get_bit(fif, BIT_SUPERFINE),
            half_scan_time_superfine=get_bit(fif, BIT_HALF_SCAN_TIME),
            mr=get_bit(fif, BIT_2D),
            mmr=get_bit(fif, BIT_T6) and get_bit(fif, BIT_ECM),
            ecm=get_bit(fif, BIT_ECM),
            prefers_64_octet=get_bit(fif, BIT_64_OCTET_PREFERRED),
            widths=widths,
            unlimited_length=get_bit(fif, BIT_LENGTH_UNLIMITED),
            b4_length=get_bit(fif, BIT_LENGTH_B4),
            scan_time_code=get_field(fif, 21, 3),
        )

    def build(self) -> bytes:
        fif = bytearray(3)
        set_bit(fif, BIT_READY_TO_TRANSMIT, self.ready_to_transmit)
        set_bit(fif, BIT_READY_TO_RECEIVE, self.ready_to_receive)
        if self.v17:
            rate = 0b1011
        else:
            rate = (0b0010 if self.v27ter and not self.v27ter_fallback_only else 0) | (0b0001 if self.v29 else 0)
        set_field(fif, 11, 4, rate)
        set_bit(fif, BIT_FINE, self.fine)
        set_bit(fif, BIT_2D, self.mr)
        set_field(fif, 17, 2, 2 if 2432 in self.widths else 1 if 2048 in self.widths else 0)
        set_bit(fif, BIT_LENGTH_B4, self.b4_length and not self.unlimited_length)
        set_bit(fif, BIT_LENGTH_UNLIMITED, self.unlimited_length)
        set_field(fif, 21, 3, self.scan_time_code)
        set_bit(fif, BIT_ECM, self.ecm)
        if self.ecm:
            set_bit(fif, BIT_T6, self.mmr)
        set_bit(fif, BIT_64_OCTET_PREFERRED, self.prefers_64_octet)
        if self.superfine:
            set_bit(fif, BIT_SUPERFINE, True)
            set_bit(fif, BIT_METRIC, True)
            set_bit(fif, BIT_HALF_SCAN_TIME, self.half_scan_time_superfine)
        return finish(fif)

    def modulations(self) -> list[Modulation]:
        """The fallback list restricted to what this DIS offers."""
        out = []
        for m in FALLBACK:
            fam = m.family
            if fam == "V17" and self.v17 or fam == "V29" and self.v29:
                out.append(m)
            elif fam == "V27TER" and self.v27ter and (m is Modulation.V27TER_2400 or not self.v27ter_fallback_only):
                out.append(m)
        return out

    def scan_time_ms(self, resolution: str) -> int:
        """Minimum scan-line time the DIS asks for, at the given resolution."""
        std, fine = SCAN_TIME_DIS.get(self.scan_time_code, (20, 20))
        if resolution == "standard":
            return std
        if resolution == "fine":
            return fine
        if not self.half_scan_time_superfine:
            return fine
        half = fine / 2      # rounded up to a time a DCS can express (5 ms at the least)
        return min(t for t in (0, 5, 10, 20, 40) if t >= half)


@dataclass
class DcsParams:
    """What a DCS selects for the message that follows."""

    modulation: Modulation = Modulation.V27TER_2400
    resolution: str = "standard"
    compression: str = "mh"
    ecm: bool = False
    ecm_frame_size: int = 256
    width: int = 1728
    unlimited_length: bool = True
    scan_time_ms: int = 0
    receive: bool = True
    inch: bool = False

    def build(self) -> bytes:
        fif = bytearray(3)
        set_bit(fif, BIT_READY_TO_RECEIVE, self.receive)
        set_field(fif, 11, 4, DCS_RATE_CODES[self.modulation])
        set_bit(fif, BIT_FINE, self.resolution == "fine")
        set_bit(fif, BIT_2D, self.compression == "mr")
        set_field(fif, 17, 2, {1728: 0, 2048: 1, 2432: 2}[self.width])
        set_bit(fif, BIT_LENGTH_UNLIMITED, self.unlimited_length)
        set_field(fif, 21, 3, SCAN_TIME_DCS_CODE[0 if self.ecm else self.scan_time_ms])
        if self.ecm:
            set_bit(fif, BIT_ECM, True)
            set_bit(fif, BIT_ECM_64, self.ecm_frame_size == 64)
            set_bit(fif, BIT_T6, self.compression == "mmr")
        if self.resolution == "superfine":
            set_bit(fif, BIT_SUPERFINE, True)
            set_bit(fif, BIT_INCH, self.inch)
        return finish(fif)

    @classmethod
    def parse(cls, fif: bytes) -> DcsParams:
        code = get_field(fif, 11, 4)
        if code not in RATE_FROM_DCS_CODE:
            raise ValueError(f"DCS selects an unknown modulation (bits 11-14 = {code:04b})")
        ecm = get_bit(fif, BIT_ECM)
        if get_bit(fif, BIT_T6) and ecm:
            compression = "mmr"
        elif get_bit(fif, BIT_2D):
            compression = "mr"
        else:
            compression = "mh"
        if get_bit(fif, BIT_SUPERFINE):
            resolution = "superfine"
        elif get_bit(fif, BIT_FINE):
            resolution = "fine"
        else:
            resolution = "standard"
        width_code = get_field(fif, 17, 2)
        if width_code not in WIDTH_BY_CODE:
            raise ValueError("DCS selects an invalid recording width (bits 17-18 = 11)")
        return cls(
            modulation=RATE_FROM_DCS_CODE[code],
            resolution=resolution,
            compression=compression,
            ecm=ecm,
            ecm_frame_size=64 if ecm and get_bit(fif, BIT_ECM_64) else 256,
            width=WIDTH_BY_CODE[width_code],
            unlimited_length=get_bit(fif, BIT_LENGTH_UNLIMITED),
            scan_time_ms=SCAN_TIME_FROM_DCS.get(get_field(fif, 21, 3), 0),
            receive=get_bit(fif, BIT_READY_TO_RECEIVE),
            inch=get_bit(fif, BIT_INCH),
        )

    @property
    def y_dpi(self) -> int:
        return Y_DPI_BY_RES[self.resolution]


def ctc_fif(dcs_fif: bytes, modulation: Modulation) -> bytes:
    """CTC information field: DCS octets 1-2 with bits 1-8 cleared and the new rate in 11-14."""
    fif = bytearray(dcs_fif[:2].ljust(2, b"\x00"))
    fif[0] = 0
    set_field(fif, 11, 4, DCS_RATE_CODES[modulation])
    return bytes(fif)


def modulation_from_ctc(fif: bytes) -> Modulation:
    code = get_field(fif, 11, 4)
    if code not in RATE_FROM_DCS_CODE:
        raise ValueError(f"CTC selects an unknown modulation ({code:04b})")
    return RATE_FROM_DCS_CODE[code]


def encode_ident(ident: str) -> bytes:
    """CSI/TSI/CIG field: 20 characters, last character first, space padded."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in ident)[:20]
    return text[::-1].encode("ascii").ljust(20, b" ")


def decode_ident(fif: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in reversed(fif[:20])).strip()
