"""T.30 (phases B-E, ECM, speed fallback) written once against the PHY contract in ``engine.phy``.

Public API: :class:`T30Config` and :class:`T30Session` (``await session.run()`` returns an
:class:`engine.result.SessionResult`; ``session.abort(reason)`` ends the call with DCN).

``on_page(page, bad_rows)`` may be a plain function or return an awaitable (a page store that takes
time): an ECM receiver then answers RNR, and RNR to each RR, until it completes (at most T5), and
confirms the page only once it is stored; without ECM the answer goes out after ``sink_grace`` and
the session waits for the store before it ends.

Roles: ``send_pages`` given = we transmit; ``calling`` = we placed the call.  The usual pairs are
caller/sender and answerer/receiver; the other two are polling (an answerer with pages offers them
in its DIS and sends after the caller's DTC; a caller without pages polls with CIG/DTC).

``SessionResult.error_code`` on failure (``error_message`` says exactly what happened):

=====================  =========  ================================================================
code                   retryable  examples of ``error_message``
=====================  =========  ================================================================
no_response            yes        "no DIS received from the remote within T1 (35 s)",
                                  "no response to MPS after 3 tries", "no response to PPS-EOP ..."
training_failed        yes        "training failed at 2400 bit/s"
remote_disconnected    yes        "remote disconnected in phase B" (DCN or the line dropped)
page_rejected          yes        "page 2 rejected by the remote (RTN) 3 times"
protocol_error         yes        "unusable DCS: ...", "unexpected CFR in response to CTC"
incompatible           no         "the remote cannot receive faxes (DIS/DTC without bit 10)"
bad_document           no         "page 1 is 1000 pixels wide; fax pages must be 1728"
aborted                no         "aborted: job cancelled"
internal_error         yes        a bug or a failing ``on_page`` callback; the call still ends with DCN
=====================  =========  ================================================================
"""

from engine.t30.config import T30Config
from engine.t30.session import SessionFailed, T30Session

__all__ = ["T30Config", "T30Session", "SessionFailed"]
