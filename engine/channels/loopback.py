"""The loopback channel: every outbound fax is sent over real T.38/UDPTL on 127.0.0.1 to the engine's
own receiver, and lands in ``incoming``/``inbox`` of the sending account.  Both ends are our T.30."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from engine.channels.base import Channel, OutboundCall, Progress
from engine.clock import MonotonicClock
from engine.result import SessionResult

log = logging.getLogger(__name__)


class LoopbackChannel(Channel):
    name = "loopback"

    def __init__(self, inbound, cfg: dict):  # noqa: ANN001
        self.inbound = inbound
        self.cfg = cfg
        self._senders: dict[str, object] = {}
        self._receivers: dict[str, object] = {}

    async def send(self, call: OutboundCall, progress: Progress) -> SessionResult:
        try:
            from engine.t30.config import T30Config
            from engine.t30.session import T30Session
            from t38.phy import T38PhyOptions, open_t38_udptl
        except ImportError as exc:
            return SessionResult(success=False, error_code="no_channel", retryable=True,
                                 error_message=f"loopback channel unavailable: {exc}")
        clock = MonotonicClock()
        call_id = uuid.uuid4().hex
        record = await self.inbound.begin_async(call.account_id, from_number=call.from_number,
                                                to_number=call.to_number, from_name=call.from_name, call_id=call_id,
                                                channel=self.name)
        received = []
        pacing = bool(self.cfg["pacing"])
        local = (self.cfg["address"], 0)
        phy_rx = await open_t38_udptl(clock, T38PhyOptions(calling=False, pacing=pacing), local=local)
        phy_tx = await open_t38_udptl(clock, T38PhyOptions(calling=True, pacing=pacing), local=local,
                                      remote=phy_rx.transport.local_address)
        phy_rx.transport.remote = phy_tx.transport.local_address
        try:
            sender = T30Session(phy_tx, clock, T30Config(ident=call.ident[:20]), send_pages=call.pages,
                                calling=True, progress=progress)
            receiver = T30Session(phy_rx, clock, T30Config(ident=call.to_number[:20]),
                                  on_page=lambda page, _n: received.append(page), calling=False,
                                  progress=lambda state: self.inbound.progress(record.id, state))
            self._senders[call.job_id] = sender
            self._receivers[call.job_id] = receiver
            rx_task = asyncio.ensure_future(receiver.run())
            try:
                tx = await sender.run()
            finally:
                try:
                    async with asyncio.timeout(float(self.cfg["timeout"])):   # wait_for can eat a cancel (3.11)
                        rx = await asyncio.shield(rx_task)
                except (TimeoutError, asyncio.CancelledError):
                    receiver.abort("sender gone")
                    rx = await rx_task
        finally:
            self._senders.pop(call.job_id, None)
            self._receivers.pop(call.job_id, None)
            for phy in (phy_tx, phy_rx):
                with contextlib.suppress(Exception):
                    await phy.hangup()
                with contextlib.suppress(Exception):
                    phy.transport.close()
        await self.inbound.finish(record.id, rx, received)
        return tx

    def abort(self, job_id: str, reason: str) -> bool:
        sender = self._senders.get(job_id)
        if sender is None:
            return False
        sender.abort(reason)
        return True
