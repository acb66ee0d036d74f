"""ITU-T T.4 code tables (run-length codes and 2-D mode codes) as numpy lookup arrays.

The strings are transcribed from the T.4 tables (terminating codes, make-up codes, the extended
make-up codes shared by both colours, and the 2-D mode codes); tests check they form a prefix code.
"""

from __future__ import annotations

import numpy as np

WHITE_TERM = (
    "00110101 000111 0111 1000 1011 1100 1110 1111 10011 10100 00111 01000 001000 000011 110100 110101 "
    "101010 101011 0100111 0001100 0001000 0010111 0000011 0000100 0101000 0101011 0010011 0100100 0011000 "
    "00000010 00000011 00011010 00011011 00010010 00010011 00010100 00010101 00010110 00010111 00101000 "
    "00101001 00101010 00101011 00101100 00101101 00000100 00000101 00001010 00001011 01010010 01010011 "
    "01010100 01010101 00100100 00100101 01011000 01011001 01011010 01011011 01001010 01001011 00110010 "
    "00110011 00110100"
).split()

BLACK_TERM = (
    "0000110111 010 11 10 011 0011 0010 00011 000101 000100 0000100 0000101 0000111 00000100 00000111 "
    "000011000 0000010111 0000011000 0000001000 00001100111 00001101000 00001101100 00000110111 00000101000 "
    "00000010111 00000011000 000011001010 000011001011 000011001100 000011001101 000001101000 000001101001 "
    "000001101010 000001101011 000011010010 000011010011 000011010100 000011010101 000011010110 000011010111 "
    "000001101100 000001101101 000011011010 000011011011 000001010100 000001010101 000001010110 000001010111 "
    "000001100100 000001100101 000001010010 000001010011 000000100100 000000110111 000000111000 000000100111 "
    "000000101000 000001011000 000001011001 000000101011 000000101100 000001011010 000001100110 000001100111"
).split()

# make-up codes for 64, 128, ..., 1728
WHITE_MAKEUP = (
    "11011 10010 010111 0110111 00110110 00110111 01100100 01100101 01101000 01100111 011001100 011001101 "
    "011010010 011010011 011010100 011010101 011010110 011010111 011011000 011011001 011011010 011011011 "
    "010011000 010011001 010011010 011000 010011011"
).split()

BLACK_MAKEUP = (
    "0000001111 000011001000 000011001001 000001011011 000000110011 000000110100 000000110101 0000001101100 "
    "0000001101101 0000001001010 0000001001011 0000001001100 0000001001101 0000001110010 0000001110011 "
    "0000001110100 0000001110101 0000001110110 0000001110111 0000001010010 0000001010011 0000001010100 "
    "0000001010101 0000001011010 0000001011011 0000001100100 0000001100101"
).split()

# extended make-up codes for 1792, 1856, ..., 2560 (same for both colours)
EXT_MAKEUP = (
    "00000001000 00000001100 00000001101 000000010010 000000010011 000000010100 000000010101 000000010110 "
    "000000010111 000000011100 000000011101 000000011110 000000011111"
).split()

EOL_BITS = "000000000001"
MODE_PASS = "0001"
MODE_HORIZ = "001"
# vertical mode codes indexed by a1 - b1 + 3 (VL3, VL2, VL1, V0, VR1, VR2, VR3)
MODE_VERT = ("0000010", "000010", "010", "1", "011", "000011", "0000011")
MODE_EXT = "0000001"  # extension prefix (uncompressed mode etc.): not supported, decoded as an error

MAX_RUN_CODE = 2560
WINDOW = 13  # longest run code (black make-up) in bits


def _val(s: str) -> int:
    return int(s, 2)


def run_code_arrays(colour: int) -> tuple[np.ndarray, np.ndarray]:
    """Code value/length arrays indexed by run: [0..63] terminating, 64 + m for make-up m*64 (m=1..40)."""
    term = WHITE_TERM if colour == 0 else BLACK_TERM
    makeup = (WHITE_MAKEUP if colour == 0 else BLACK_MAKEUP) + EXT_MAKEUP
    codes = term + [""] + makeup  # index 64 unused (a make-up of 0)
    val = np.array([_val(c) if c else 0 for c in codes], dtype=np.uint64)
    ln = np.array([len(c) for c in codes], dtype=np.int64)
    return val, ln


def all_run_codes(colour: int) -> dict[str, int]:
    """code string -> run length, for both terminating and make-up codes of one colour."""
    term = WHITE_TERM if colour == 0 else BLACK_TERM
    makeup = (WHITE_MAKEUP if colour == 0 else BLACK_MAKEUP) + EXT_MAKEUP
    out = {c: i for i, c in enumerate(term)}
    out.update({c: 64 * (i + 1) for i, c in enumerate(makeup)})
    return out


def decode_lut(codes: dict[str, int], bits: int) -> list[int]:
    """Table over every `bits`-bit window: (value << 5) | code length, or 0 for no code.

    Entries for windows that start like an EOL (at least 7 zeros then nothing valid) stay 0;
    the decoder tells fill/EOL from garbage separately.
    """
    lut = np.zeros(1 << bits, dtype=np.int64)
    for code, value in codes.items():
        n = len(code)
        lo = int(code, 2) << (bits - n)
        lut[lo : lo + (1 << (bits - n))] = (value << 5) | n
    return lut.tolist()


def mode_codes() -> dict[str, int]:
    """2-D mode code -> mode number: 0..6 vertical (a1-b1+3), 7 pass, 8 horizontal, 9 extension."""
    out = {c: i for i, c in enumerate(MODE_VERT)}
    out[MODE_PASS] = 7
    out[MODE_HORIZ] = 8
    out[MODE_EXT] = 9
    return out
