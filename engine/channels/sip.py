"""SIP trunk channels: outbound jobs dialled over a trunk and switched to T.38, inbound calls routed by
the called number to the account that owns it and recorded in ``incoming``/``inbox``.

One :class:`SipService` per engine owns the SIP endpoint (t38.sip, the only sippy user); each trunk is
a channel ``sip:<trunk>`` and the channel ``sip`` is the default trunk.  A trunk's ``max_calls`` is
respected by waiting for a free line inside ``send`` (the job stays ``processing`` meanwhile), so a
full trunk never burns an attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from engine.channels.base import Channel, OutboundCall, Progress
from engine.clock import MonotonicClock
from engine.result import SessionResult

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """An outbound attempt, in whichever stage an abort must reach it."""

    waiting: asyncio.Event
    dial: asyncio.Future | None = None
    call: object | None = None       # t38.sip.SipCall once answered
    session: object | None = None    # engine.t30.T30Session once T.38 is up
    abort_reason: str = ""


class SipService:
    """The engine's SIP endpoint, shared by the trunk channels, plus the inbound side."""

    def __init__(self, sip_config, cfg: dict, inbound):  # noqa: ANN001
        self.sip_config = sip_config
        self.cfg = cfg
        self.inbound = inbound
        self.endpoint = None
        self.slots = {t.name: asyncio.Semaphore(t.max_calls) for t in sip_config.trunks}
        self.jobs: dict[str, _Job] = {}
        self.receptions: set[object] = set()      # T30Sessions receiving now
        self.inbound_tasks: set[asyncio.Task] = set()
        self.error = ""
        self._start_lock = asyncio.Lock()
        self._watch: asyncio.Task | None = None
        self.clock = MonotonicClock()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        async with self._start_lock:
            if self.endpoint is not None:
                return
            from t38.sip import SipEndpoint

            endpoint = SipEndpoint(self.sip_config, router=self.route, on_incoming=self.receive)
            try:
                await endpoint.start()
            except OSError as exc:
                self.error = (f"SIP endpoint not started on {self.sip_config.bind_address}:{self.sip_config.port}: "
                              f"{exc.strerror or exc}")
                log.error("%s", self.error)
                return
            self.endpoint = endpoint
            self._watch = asyncio.ensure_future(self._log_registrations())
            log.info("SIP endpoint on %s:%d, trunks %s", *endpoint.address,
                     ", ".join(t.name for t in self.sip_config.trunks) or "(none)")

    async def stop(self) -> None:
        async with self._start_lock:
            endpoint, self.endpoint = self.endpoint, None
            if endpoint is None:
                return
            if self._watch is not None:
                self._watch.cancel()
            for session in list(self.receptions):
                session.abort("the fax engine is shutting down")
            for job_id in list(self.jobs):
                self.abort(job_id, "interrupted: the fax engine is shutting down")
            if self.inbound_tasks:    # let receptions record their outcome (and pages) before the calls go
                await asyncio.wait(list(self.inbound_tasks), timeout=10)
            with contextlib.suppress(Exception):   # asyncio.timeout, not wait_for: it can eat a cancel (3.11)
                async with asyncio.timeout(15):
                    await endpoint.close()

    async def _log_registrations(self) -> None:
        """Registration changes in the serve log (the CLI and /v2/health show the current state)."""
        seen: dict[str, str] = {}
        while self.endpoint is not None:
            for name, state in self.endpoint.registration_state().items():
                key = f"{state.state}/{state.code}"
                if seen.get(name) != key:
                    seen[name] = key
                    level = logging.WARNING if state.state == "failed" else logging.INFO
                    log.log(level, "trunk %s: registration %s%s", name, state.state,
                            f" ({state.code} {state.reason})" if state.code else "")
            await asyncio.sleep(0.25)

    def health(self) -> dict:
        if self.endpoint is None:
            return {"running": False, "error": self.error or "not started",
                    "trunks": [t.name for t in self.sip_config.trunks]}
        return {"running": True, **self.endpoint.health()}

    # ------------------------------------------------------------------ outbound

    async def send(self, trunk, channel_name: str, call: OutboundCall, progress: Progress) -> SessionResult:  # noqa: ANN001
        from t38.sip import CallFailure, open_call_phy

        if self.endpoint is None:
            return SessionResult(success=False, error_code="no_channel", retryable=True, error_phase="A",
                                 error_message=f"SIP channel unavailable: {self.error or 'endpoint not started'}")
        if call.job_id in self.jobs:
            return SessionResult(success=False, error_code="internal", retryable=True,
                                 error_message=f"job {call.job_id} is already on a call")
        job = self.jobs[call.job_id] = _Job(asyncio.Event())
        slot = self.slots[trunk.name]
        try:
            if not await self._take_line(slot, job, channel_name, progress):
                return self._aborted(job)
            try:
                # inbound calls share the trunk's lines too
                while self.endpoint is not None and self.endpoint.active_calls(trunk.name) >= trunk.max_calls \
                        and not job.abort_reason:
                    progress({"phase": "waiting for a free line", "channel": channel_name})
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await job.waiting.wait()
                if job.abort_reason or self.endpoint is None:
                    return self._aborted(job)
                progress({"phase": "dialing", "event": "phase", "channel": channel_name, "trunk": trunk.name})
                job.dial = asyncio.ensure_future(self.endpoint.call(
                    call.to_number, trunk, caller=call.from_number or None, caller_name=call.from_name or None))
                try:
                    sip_call = await job.dial
                except CallFailure as failure:
                    log.info("job %s: call to %s on %s failed: %s", call.job_id, call.to_number, trunk.name, failure)
                    return failure.to_result("send")
                except asyncio.CancelledError:
                    if job.abort_reason:
                        return self._aborted(job)
                    raise
                job.call = sip_call
                try:
                    return await self._fax(job, sip_call, call, progress, open_call_phy, CallFailure)
                finally:
                    await sip_call.hangup()
            finally:
                slot.release()
        finally:
            self.jobs.pop(call.job_id, None)

    @staticmethod
    async def _take_line(slot: asyncio.Semaphore, job: _Job, channel_name: str, progress: Progress) -> bool:
        """Wait for one of the trunk's lines (False: aborted while waiting)."""
        if not slot.locked():
            await slot.acquire()      # free: taken without yielding, so two sends cannot both see it free
            return True
        progress({"phase": "waiting for a free line", "channel": channel_name})
        acquire = asyncio.ensure_future(slot.acquire())
        aborted = asyncio.ensure_future(job.waiting.wait())
        try:
            await asyncio.wait({acquire, aborted}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if acquire.done() and not acquire.cancelled():
                slot.release()
            raise
        finally:
            aborted.cancel()
            if not acquire.done():
                acquire.cancel()
        if acquire.done() and not acquire.cancelled():
            if job.abort_reason:
                slot.release()
                return False
            return True
        return False

    async def _fax(self, job: _Job, sip_call, call: OutboundCall, progress: Progress, open_call_phy,  # noqa: ANN001
                   call_failure) -> SessionResult:  # noqa: ANN001
        from engine.t30 import T30Config, T30Session

        progress({"phase": "switching to T.38", "event": "phase"})
        try:
            phy = await open_call_phy(sip_call, self.clock, calling=True, pacing=bool(self.cfg["pacing"]),
                                      watch_media=float(self.cfg["media_timeout"]))
        except call_failure as failure:
            if job.abort_reason:
                return self._aborted(job)
            log.info("job %s: %s", call.job_id, failure)
            return failure.to_result("send")
        session = T30Session(phy, self.clock, T30Config(ident=call.ident[:20]), send_pages=call.pages,
                             calling=True, progress=progress)
        job.session = session
        if job.abort_reason:
            session.abort(job.abort_reason)
        result = await session.run()
        if not result.success and sip_call.failure is not None and sip_call.failure.error_code == "media_timeout":
            result.error_message = f"{result.error_message} ({sip_call.failure.error_message})".strip()
        return result

    @staticmethod
    def _aborted(job: _Job) -> SessionResult:
        return SessionResult(success=False, error_code="aborted", error_phase="A", retryable=False,
                             error_message=job.abort_reason or "aborted")

    def abort(self, job_id: str, reason: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None:
            return False
        job.abort_reason = job.abort_reason or reason
        job.waiting.set()
        if job.session is not None:
            job.session.abort(reason)
        elif job.call is not None:
            asyncio.ensure_future(job.call.hangup())    # still switching to T.38
        elif job.dial is not None and not job.dial.done():
            job.dial.cancel()                         # ringing: CANCEL
        return True

    # ------------------------------------------------------------------ inbound

    async def route(self, did: str, caller: str, trunk) -> str | None:  # noqa: ANN001
        """The account that owns the called number (None: 404)."""
        default = self.cfg["inbound_account"] or None
        account = await asyncio.to_thread(self.inbound.account_for, did, default)
        log.info("inbound SIP call from %r to %r on %s: %s", caller, did, trunk.name,
                 f"account {account}" if account else "no account owns this number")
        return account

    async def receive(self, sip_call) -> None:  # noqa: ANN001
        """An answered call to one of our numbers: receive the fax into the owning account's inbox."""
        from engine.t30 import T30Config, T30Session
        from t38.sip import CallFailure, open_call_phy

        started = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self.inbound_tasks.add(task)
            task.add_done_callback(self.inbound_tasks.discard)
        record = await asyncio.to_thread(
            self.inbound.begin, sip_call.account, from_number=sip_call.caller, to_number=sip_call.number,
            from_name=sip_call.caller_name, call_id=sip_call.call_id, channel=f"sip:{sip_call.trunk.name}")
        received: list = []
        cancelled = False
        try:
            try:
                phy = await open_call_phy(sip_call, self.clock, calling=False, pacing=bool(self.cfg["pacing"]),
                                          watch_media=float(self.cfg["media_timeout"]))
            except CallFailure as failure:
                log.info("inbound call %s to %s: %s", sip_call.call_id, sip_call.number, failure)
                result = failure.to_result("receive")
            else:
                session = T30Session(phy, self.clock, T30Config(ident=sip_call.number[:20]), calling=False,
                                     on_page=lambda page, _n: received.append(page),
                                     progress=lambda state: self.inbound.progress(record.id, state))
                self.receptions.add(session)
                try:
                    result = await session.run()
                finally:
                    self.receptions.discard(session)
        except asyncio.CancelledError:       # the endpoint closed under us: still record the reception
            cancelled = True
            result = SessionResult(success=False, role="receive", error_code="interrupted",
                                   error_message="interrupted: the fax engine stopped during reception")
        except Exception as exc:
            log.exception("inbound call %s failed", sip_call.call_id)
            result = SessionResult(success=False, role="receive", error_code="internal",
                                   error_message=f"internal error: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await sip_call.hangup()
        if not result.duration:
            result.duration = time.monotonic() - started
        await asyncio.shield(self.inbound.finish(record.id, result, received))
        if cancelled:
            raise asyncio.CancelledError
        log.info("inbound fax %s from %r to %r: %s, %d page(s)", record.id, sip_call.caller, sip_call.number,
                 "received" if result.success else result.error_message, len(received))


class SipChannel(Channel):
    """Outbound faxes over one SIP trunk."""

    def __init__(self, service: SipService, trunk, name: str):  # noqa: ANN001
        self.service = service
        self.trunk = trunk
        self.name = name
        self.capacity = trunk.max_calls

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()

    async def send(self, call: OutboundCall, progress: Progress) -> SessionResult:
        return await self.service.send(self.trunk, self.name, call, progress)

    def abort(self, job_id: str, reason: str) -> bool:
        return self.service.abort(job_id, reason)

    def health(self) -> dict:
        endpoint = self.service.endpoint
        registration = endpoint.registration_state(self.trunk.name) if endpoint is not None else None
        return {"kind": "sip", "trunk": self.trunk.name, "max_calls": self.trunk.max_calls,
                "active_calls": endpoint.active_calls(self.trunk.name) if endpoint is not None else 0,
                "registration": registration.state if registration is not None else
                ("not registering" if not self.trunk.register else "unknown")}


def build_sip_channels(config, inbound) -> tuple[SipService | None, dict[str, Channel]]:  # noqa: ANN001
    """``sip`` (the default trunk) and ``sip:<trunk>`` for every trunk of the [sip] section."""
    from t38.trunk import sip_config_from_dict

    cfg = config["channels"]["sip"]
    if not config["sip"] or not cfg["enabled"]:
        return None, {}
    sip_config = sip_config_from_dict(config["sip"])
    service = SipService(sip_config, cfg, inbound)
    channels: dict[str, Channel] = {}
    for trunk in sip_config.trunks:
        channels[f"sip:{trunk.name}"] = SipChannel(service, trunk, f"sip:{trunk.name}")
    if sip_config.trunks:
        default = sip_config.trunk(cfg["trunk"]) if cfg["trunk"] else sip_config.trunks[0]
        channels["sip"] = SipChannel(service, default, "sip")
    else:   # no trunks: the endpoint still answers calls to our numbers (peers reach us directly)
        channels["sip"] = _InboundOnly(service)
    return service, channels


class _InboundOnly(Channel):
    """[sip] with no trunks: inbound calls only; outbound jobs routed here fail with a clear reason."""

    name = "sip"

    def __init__(self, service: SipService):
        self.service = service

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()

    async def send(self, call: OutboundCall, progress: Progress) -> SessionResult:
        return SessionResult(success=False, error_code="no_channel", retryable=False, error_phase="A",
                             error_message="no SIP trunk configured for outbound calls")

    def abort(self, job_id: str, reason: str) -> bool:
        return False

    def health(self) -> dict:
        return {"kind": "sip", "trunk": None}
