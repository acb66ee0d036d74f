"""T.30 (phases B-E, ECM, speed fallback) written once against the PHY contract in ``engine.phy``.

Public API: :class:`T30Config` and :class:`T30Session` (``await session.run()`` returns an
:class:`engine.result.SessionResult`; ``session.abort(reason)`` ends the call with DCN).
"""

from engine.t30.config import T30Config
from engine.t30.session import SessionFailed, T30Session

__all__ = ["T30Config", "T30Session", "SessionFailed"]
