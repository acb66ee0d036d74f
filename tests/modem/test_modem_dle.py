"""DLE shielding both ways, including <DLE><SUB> and DLEs split across reads."""

from hypothesis import given
from hypothesis import strategies as st

from modem.dle import END, Unshielder, shield, unshield


def test_shield_doubles_dle_only():
    assert shield(b"\x00\x10\x03\x10") == b"\x00\x10\x10\x03\x10\x10"


def test_unshield_handles_sub_and_terminator_and_rest():
    dec = Unshielder()
    out = dec.feed(b"a\x10\x10b\x10\x1ac\x10\x03\r\nOK\r\n")
    assert out == b"a\x10b\x10\x10c"
    assert dec.ended and dec.terminator == 0x03 and dec.rest == b"\r\nOK\r\n"


def test_dle_split_across_feeds():
    dec = Unshielder()
    assert dec.feed(b"x\x10") == b"x"
    assert dec.feed(b"\x10y\x10") == b"\x10y"
    assert dec.feed(b"\x03tail") == b""
    assert dec.ended and dec.rest == b"tail"


def test_odd_escape_kept_as_data_and_counted():
    dec = Unshielder()
    assert dec.feed(b"\x10\x41z") == b"\x10\x41z"
    assert dec.odd_escapes == 1


def test_xon_xoff_bytes_pass_through():
    assert unshield(shield(b"\xff\x13\x11\x13")) == b"\xff\x13\x11\x13"


def test_unshield_rejects_embedded_terminator():
    try:
        unshield(b"ab" + END + b"cd")
    except ValueError:
        return
    raise AssertionError("expected ValueError")


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=7))
def test_roundtrip_any_chunking(data, step):
    wire = shield(data) + END + b"\r\nOK\r\n"
    dec = Unshielder()
    out = bytearray()
    for i in range(0, len(wire), step):
        out += dec.feed(wire[i:i + step])
    assert dec.ended and bytes(out) == data
    assert dec.rest == b"\r\nOK\r\n"
