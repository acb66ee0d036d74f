"""Shared helpers for the T.38 tests: the reference vectors and a pcap reader."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(Path(__file__).parent))


def read_pcap_udp(path: Path) -> list[bytes]:
    """UDP payloads of a pcap with raw-IPv4 (101) or Ethernet (1) link type."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4, "only little-endian microsecond pcaps are expected"
    pos, out = 24, []
    while pos < len(data):
        _, _, caplen, _ = struct.unpack("<IIII", data[pos:pos + 16])
        pos += 16
        frame = data[pos:pos + caplen]
        pos += caplen
        if linktype == 1:
            frame = frame[14:]
        ihl = (frame[0] & 0x0F) * 4
        assert frame[9] == 17, "not UDP"
        out.append(frame[ihl + 8:])
    return out


@pytest.fixture(scope="session")
def cases() -> list[tuple[str, bytes, bytes]]:
    raw = json.loads((VECTORS / "cases.json").read_text())
    return [(name, bytes.fromhex(ifp), bytes.fromhex(udptl)) for name, ifp, udptl in raw]


@pytest.fixture(scope="session")
def fec_packets() -> list[bytes]:
    return [bytes.fromhex(h) for h in json.loads((VECTORS / "fec.json").read_text())]
