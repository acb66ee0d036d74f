"""T.38 IFP packets (T.38 Annex A): ALIGNED PER encode and decode for T38FaxVersion 0-3.

Version 0 uses the 1998 ASN.1 module, where ``field-type`` is a plain 3-bit enumeration;
versions 1-3 use the corrected 2002 module, where it is extensible (1 extension bit + 3 bits).
The indicator and data-type additions (V.8/V.34/V.33) exist only for version >= 1.

Encoding is strict PER.  Decoding tries strict PER first and, if that fails or leaves non-zero
bits behind, falls back to the layout spandsp emits: every field of a multi-field packet starts
on a fresh octet, and the 6-bit index of an extension field type sits one bit late.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class IfpError(ValueError):
    """An IFP packet that cannot be encoded for the version, or bytes that do not decode."""


class Indicator(enum.IntEnum):
    NO_SIGNAL = 0
    CNG = 1
    CED = 2
    V21_PREAMBLE = 3
    V27TER_2400_TRAINING = 4
    V27TER_4800_TRAINING = 5
    V29_7200_TRAINING = 6
    V29_9600_TRAINING = 7
    V17_7200_SHORT_TRAINING = 8
    V17_7200_LONG_TRAINING = 9
    V17_9600_SHORT_TRAINING = 10
    V17_9600_LONG_TRAINING = 11
    V17_12000_SHORT_TRAINING = 12
    V17_12000_LONG_TRAINING = 13
    V17_14400_SHORT_TRAINING = 14
    V17_14400_LONG_TRAINING = 15
    # extension additions (T38(2002), version >= 1)
    V8_ANSAM = 16
    V8_SIGNAL = 17
    V34_CNTL_CHANNEL_1200 = 18
    V34_PRI_CHANNEL = 19
    V34_CC_RETRAIN = 20
    V33_12000_TRAINING = 21
    V33_14400_TRAINING = 22


class DataType(enum.IntEnum):
    V21 = 0
    V27TER_2400 = 1
    V27TER_4800 = 2
    V29_7200 = 3
    V29_9600 = 4
    V17_7200 = 5
    V17_9600 = 6
    V17_12000 = 7
    V17_14400 = 8
    # extension additions (version >= 1)
    V8 = 9
    V34_PRI_RATE = 10
    V34_CC_1200 = 11
    V34_PRI_CH = 12
    V33_12000 = 13
    V33_14400 = 14


class FieldType(enum.IntEnum):
    HDLC_DATA = 0
    HDLC_SIG_END = 1
    HDLC_FCS_OK = 2
    HDLC_FCS_BAD = 3
    HDLC_FCS_OK_SIG_END = 4
    HDLC_FCS_BAD_SIG_END = 5
    T4_NON_ECM_DATA = 6
    T4_NON_ECM_SIG_END = 7
    # extension additions (version >= 1)
    CM_MESSAGE = 8
    JM_MESSAGE = 9
    CI_MESSAGE = 10
    V34RATE = 11


INDICATOR_ROOT = 16
DATA_TYPE_ROOT = 9
FIELD_TYPE_ROOT = 8


@dataclass(frozen=True)
class Field:
    type: FieldType
    data: bytes | None = None  # None: the OPTIONAL field-data is absent


@dataclass(frozen=True)
class IfpPacket:
    """Either an indicator, or a data type with its fields."""

    indicator: Indicator | None = None
    data_type: DataType | None = None
    fields: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        if (self.indicator is None) == (self.data_type is None):
            raise IfpError("an IFP packet is either an indicator or a data packet")
        if self.indicator is not None and self.fields:
            raise IfpError("an indicator packet has no fields")

    @classmethod
    def ind(cls, indicator: Indicator) -> IfpPacket:
        return cls(indicator=Indicator(indicator))

    @classmethod
    def data(cls, data_type: DataType, *fields: Field) -> IfpPacket:
        return cls(data_type=DataType(data_type), fields=tuple(fields))


# ---------------------------------------------------------------- bit level helpers


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0    # pending bits (fewer than 8)
        self.n = 0

    def put(self, value: int, nbits: int) -> None:
        self.acc = (self.acc << nbits) | (value & ((1 << nbits) - 1))
        self.n += nbits
        while self.n >= 8:
            self.n -= 8
            self.out.append((self.acc >> self.n) & 0xFF)
        self.acc &= (1 << self.n) - 1

    def align(self) -> None:
        if self.n:
            self.put(0, 8 - self.n)

    def put_octets(self, data: bytes) -> None:
        self.align()
        self.out += data

    def to_bytes(self) -> bytes:
        self.align()
        return bytes(self.out)


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # bit position

    def get(self, nbits: int) -> int:
        end = self.pos + nbits
        if end > len(self.data) * 8:
            raise IfpError("IFP packet truncated")
        last = (end + 7) >> 3
        chunk = int.from_bytes(self.data[self.pos >> 3:last], "big")
        value = (chunk >> (8 * last - end)) & ((1 << nbits) - 1)
        self.pos = end
        return value

    def align(self, strict: bool) -> None:
        pad = (-self.pos) % 8
        if pad:
            if self.get(pad) and strict:
                raise IfpError("non-zero PER padding bits")

    def get_octets(self, n: int) -> bytes:
        if self.pos % 8:
            raise IfpError("octets not aligned")
        start = self.pos >> 3
        if start + n > len(self.data):
            raise IfpError("IFP field data truncated")
        self.pos += 8 * n
        return self.data[start:start + n]

    def rest_is_zero(self) -> bool:
        """True if everything after the current bit position is zero (padding / FEC fill)."""
        if self.pos % 8:
            if self.data[self.pos >> 3] & ((1 << (8 - self.pos % 8)) - 1):
                return False
        start = (self.pos + 7) >> 3
        return not any(self.data[start:])


def _put_length(w: _BitWriter, n: int) -> None:
    """Unconstrained length determinant (X.691 10.9), octet aligned."""
    w.align()
    if n < 128:
        w.put(n, 8)
    elif n < 16384:
        w.put(0x8000 | n, 16)
    else:
        raise IfpError("more than 16383 fields in one IFP packet")


def _get_length(r: _BitReader) -> int:
    r.align(strict=False)
    first = r.get(8)
    if first < 0x80:
        return first
    if first < 0xC0:
        return ((first & 0x3F) << 8) | r.get(8)
    raise IfpError("fragmented PER length is not supported in IFP packets")


def _put_ext_enum(w: _BitWriter, value: int, root: int, root_bits: int) -> None:
    if value < root:
        w.put(0, 1)
        w.put(value, root_bits)
    else:
        w.put(1, 1)
        w.put(0, 1)  # normally small non-negative whole number, < 64
        w.put(value - root, 6)


def _get_ext_enum(r: _BitReader, root: int, root_bits: int) -> int:
    if r.get(1) == 0:
        value = r.get(root_bits)
        if value >= root:
            raise IfpError(f"enumeration value {value} out of range")
        return value
    if r.get(1):
        raise IfpError("extension index too large")
    return root + r.get(6)


# ---------------------------------------------------------------- encode


def _check_version(packet: IfpPacket, version: int) -> None:
    if version not in (0, 1, 2, 3):
        raise IfpError(f"T38FaxVersion {version} is not 0-3")
    if version == 0:
        if packet.indicator is not None and packet.indicator >= INDICATOR_ROOT:
            raise IfpError(f"{packet.indicator.name} needs T38FaxVersion >= 1")
        if packet.data_type is not None and packet.data_type >= DATA_TYPE_ROOT:
            raise IfpError(f"{packet.data_type.name} needs T38FaxVersion >= 1")
        for f in packet.fields:
            if f.type >= FIELD_TYPE_ROOT:
                raise IfpError(f"{f.type.name} needs T38FaxVersion >= 1")


def encode(packet: IfpPacket, version: int = 0) -> bytes:
    """Strict ALIGNED PER encoding of ``packet`` for ``T38FaxVersion`` ``version``."""
    _check_version(packet, version)
    w = _BitWriter()
    w.put(1 if packet.fields else 0, 1)  # data-field OPTIONAL bitmap
    if packet.indicator is not None:
        w.put(0, 1)
        _put_ext_enum(w, int(packet.indicator), INDICATOR_ROOT, 4)
    else:
        w.put(1, 1)
        _put_ext_enum(w, int(packet.data_type), DATA_TYPE_ROOT, 4)
    if packet.fields:
        _put_length(w, len(packet.fields))
        for f in packet.fields:
            w.put(1 if f.data is not None else 0, 1)
            if version == 0:
                w.put(int(f.type), 3)
            else:
                _put_ext_enum(w, int(f.type), FIELD_TYPE_ROOT, 3)
            if f.data is not None:
                if not 1 <= len(f.data) <= 65535:
                    raise IfpError("field-data must be 1..65535 octets")
                w.align()
                w.put(len(f.data) - 1, 16)
                w.put_octets(bytes(f.data))
    return w.to_bytes()


# ---------------------------------------------------------------- decode


def _decode(data: bytes, version: int, spandsp: bool) -> IfpPacket:
    r = _BitReader(data)
    strict = not spandsp
    has_fields = r.get(1)
    if r.get(1) == 0:
        indicator = Indicator(_get_ext_enum(r, INDICATOR_ROOT, 4))
        if has_fields:
            raise IfpError("indicator with a data field")
        packet = IfpPacket(indicator=indicator)
    else:
        try:
            data_type = DataType(_get_ext_enum(r, DATA_TYPE_ROOT, 4))
        except ValueError as exc:
            raise IfpError(str(exc)) from exc
        fields: list[Field] = []
        if has_fields:
            count = _get_length(r)
            if count == 0:
                raise IfpError("empty data field")
            for _ in range(count):
                if spandsp:
                    r.align(strict=False)
                present = r.get(1)
                if version == 0:
                    ftype = r.get(3)
                elif r.get(1) == 0:
                    ftype = r.get(3)
                elif spandsp:
                    # spandsp writes a 0 bit, then the addition index in 7 bits.
                    if r.get(1):
                        raise IfpError("extension index too large")
                    ftype = FIELD_TYPE_ROOT + r.get(7)
                else:
                    if r.get(1):
                        raise IfpError("extension index too large")
                    ftype = FIELD_TYPE_ROOT + r.get(6)
                try:
                    ftype = FieldType(ftype)
                except ValueError as exc:
                    raise IfpError(f"unknown field type {ftype}") from exc
                payload = None
                if present:
                    r.align(strict)
                    n = r.get(16) + 1
                    payload = r.get_octets(n)
                fields.append(Field(ftype, payload))
        packet = IfpPacket(data_type=data_type, fields=tuple(fields))
    # Anything left must be zero: PER padding, or the zero fill of an FEC-recovered packet.
    if not r.rest_is_zero():
        raise IfpError("trailing data after the IFP packet")
    return packet


def decode(data: bytes, version: int = 0, *, dialect: str | None = None) -> IfpPacket:
    """Decode one IFP packet.

    ``dialect`` None tries strict PER, then spandsp's octet-aligned layout; "per" or "spandsp"
    forces one of them (spandsp's extension field types are ambiguous under strict PER)."""
    if not data:
        raise IfpError("empty IFP packet")
    if version not in (0, 1, 2, 3):
        raise IfpError(f"T38FaxVersion {version} is not 0-3")
    if dialect == "per":
        return _decode(data, version, spandsp=False)
    if dialect == "spandsp":
        return _decode(data, version, spandsp=True)
    if dialect is not None:
        raise ValueError(f"unknown dialect {dialect!r}")
    try:
        return _decode(data, version, spandsp=False)
    except IfpError as first:
        try:
            return _decode(data, version, spandsp=True)
        except IfpError:
            raise first from None


def describe(packet: IfpPacket) -> str:
    """Short text for logs, e.g. ``V21 [HDLC_DATA(3), HDLC_FCS_OK]``."""
    if packet.indicator is not None:
        return f"IND {packet.indicator.name}"
    parts = [f.type.name + (f"({len(f.data)})" if f.data is not None else "") for f in packet.fields]
    return f"{packet.data_type.name} [{', '.join(parts)}]"
