"""TCF (training check): 1.5 s of zeros at the message modulation, judged like real receivers."""

from __future__ import annotations

import re

from engine.phy import Modulation

TCF_SECONDS = 1.5


def tcf_length(modulation: Modulation, seconds: float = TCF_SECONDS) -> int:
    return int(modulation.bit_rate * seconds / 8)


def tcf_bytes(modulation: Modulation, seconds: float = TCF_SECONDS) -> bytes:
    return bytes(tcf_length(modulation, seconds))


_NONZERO = re.compile(rb"[^\x00]+")


def longest_zero_run(data: bytes) -> int:
    return max(map(len, _NONZERO.split(bytes(data))), default=0)


def tcf_ok(data: bytes, modulation: Modulation, *, min_run_seconds: float = 1.0) -> bool:
    """Accept when the longest error-free run of zero octets lasts ``min_run_seconds``.

    Leading garbage (training residue, a late carrier start) is ignored; scattered errors are not,
    since they break the run.  Real receivers use the same rule (HylaFAX, efax: a 1 s run)."""
    needed = int(modulation.bit_rate * min_run_seconds / 8)
    return longest_zero_run(data) >= needed
