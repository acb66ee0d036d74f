"""Copy-quality judgement of a received non-ECM page (the MCF/RTP/RTN choice)."""

from __future__ import annotations

from engine.t30 import fcf

# A page is good with at most 5 % bad rows and no burst longer than 5 rows (HylaFAX's defaults);
# it is still kept, with a request to retrain (RTP), up to 15 % bad rows or a 20-row burst.
GOOD_BAD_FRACTION = 0.05
GOOD_MAX_BURST = 5
USABLE_BAD_FRACTION = 0.15
USABLE_MAX_BURST = 20


def judge_page(rows: int, bad_rows: int, consecutive_bad_rows: int) -> int:
    """MCF, RTP or RTN for a page of ``rows`` decoded rows."""
    if rows <= 0:
        return fcf.RTN
    fraction = bad_rows / rows
    if fraction <= GOOD_BAD_FRACTION and consecutive_bad_rows <= GOOD_MAX_BURST:
        return fcf.MCF
    if fraction <= USABLE_BAD_FRACTION and consecutive_bad_rows <= USABLE_MAX_BURST:
        return fcf.RTP
    return fcf.RTN
