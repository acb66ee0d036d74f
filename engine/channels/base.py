"""What the scheduler needs from a way of placing fax calls (loopback, SIP trunk, modem)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.result import SessionResult
from imaging.page import FaxPage

Progress = Callable[[dict], None]


@dataclass
class OutboundCall:
    job_id: str
    account_id: str
    pages: list[FaxPage]
    to_number: str
    from_number: str
    ident: str = ""            # the TSI we send (the sender's fax number)
    from_name: str = ""
    extra: dict = field(default_factory=dict)


class Channel(abc.ABC):
    """One way out.  ``send`` places a call and runs a whole T.30 session; it never raises for a call
    that fails (busy, no answer, training...): it returns a SessionResult saying why."""

    name: str = "channel"
    capacity: int = 1_000_000   # calls it can carry at once

    async def start(self) -> None:
        """Bind sockets, open devices; called once before the first send."""
        return None

    async def stop(self) -> None:
        """Release everything; running calls are aborted."""
        return None

    @abc.abstractmethod
    async def send(self, call: OutboundCall, progress: Progress) -> SessionResult:
        """Dial ``call.to_number`` and send ``call.pages``."""

    @abc.abstractmethod
    def abort(self, job_id: str, reason: str) -> bool:
        """End the call of ``job_id`` cleanly (DCN, hang up); its send() returns a failed result
        carrying ``reason``.  False if no such call is running."""
