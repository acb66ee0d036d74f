"""The modem channel: fax calls over Class 1/1.0 and Class 2/2.0 modems (``[[modems]]`` in the config).

Each modem is a slot with its own task: between calls it keeps the port open in answer-ready state,
counts RINGs and answers after ``rings`` of them, landing the fax in ``incoming``/``inbox`` through the
:class:`~engine.inbound.InboundRecorder`.  An outbound job asks a free slot for its port (the listener
gives it up within a second when no call is ringing), dials through :func:`modem.call.run_modem_call`
and hands the port back.  A modem that fails ``max_failures`` times in a row (no answer to the reset
ladder, port gone, modem errors) is marked down and no longer used; a call on a modem that vanished
or failed is tried at once on the next free modem, and otherwise comes back retryable, so the scheduler
tries the job again rather than losing it.

One ``[[modems]]`` entry::

    [[modems]]
    port = "/dev/ttyACM0"      # required
    class = "class1"           # class1 | class2 | class2.0 (also 1, 1.0, 2, 2.0)
    rings = 2                  # rings before answering; 0 = never answer (outbound only)
    ident = "+1 555 0100"      # our CSI/TSI when the job has none
    number = "+15550100"       # the fax number this line answers for (accounts own numbers)
    account = ""               # account for receptions when no account owns ``number``
    quirks = { pace_tx = true }   # override entries of the quirks table for this modem
    max_failures = 3
    ecm = true
    max_speed = 14400
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.channels.base import Channel, OutboundCall, Progress
from engine.clock import Clock, MonotonicClock
from engine.result import SessionResult

log = logging.getLogger(__name__)

MODEM_FAILURE_CODES = frozenset({"modem_down", "modem_gone", "modem_error"})
_CLASS_NAMES = {"1": "class1", "1.0": "class1", "class1": "class1", "class1.0": "class1",
                "2": "class2", "class2": "class2", "2.0": "class2.0", "class2.0": "class2.0"}
_KEYS = {"port", "class", "rings", "ident", "number", "account", "quirks", "max_failures", "ecm", "max_speed",
         "name", "poll", "ring_reset", "answer_timeout"}


class ModemConfigError(ValueError):
    """A ``[[modems]]`` entry that cannot be used; the message names the entry and the setting."""


@dataclass
class ModemSettings:
    port: str
    kind: str = "class1"
    rings: int = 1
    ident: str = ""
    number: str = ""
    account: str = ""
    quirks: dict = field(default_factory=dict)
    max_failures: int = 3
    ecm: bool = True
    max_speed: int = 14400
    name: str = ""
    poll: float = 1.0            # seconds per listening window (an outbound call waits at most this long)
    ring_reset: float = 12.0     # a RING count older than this belongs to a call that gave up
    answer_timeout: float = 60.0

    @classmethod
    def from_entry(cls, entry: Any, index: int) -> ModemSettings:
        where = f"modems[{index}]"
        if not isinstance(entry, dict):
            raise ModemConfigError(f"{where} must be a table")
        unknown = set(entry) - _KEYS
        if unknown:
            raise ModemConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        port = entry.get("port")
        if not isinstance(port, str) or not port.strip():
            raise ModemConfigError(f"{where}: port must be a serial device path")
        kind = _CLASS_NAMES.get(str(entry.get("class", "class1")).strip().lower())
        if kind is None:
            raise ModemConfigError(f"{where}: class must be class1, class2 or class2.0, not {entry.get('class')!r}")
        rings = entry.get("rings", 1)
        if not isinstance(rings, int) or isinstance(rings, bool) or not 0 <= rings <= 20:
            raise ModemConfigError(f"{where}: rings must be an integer 0-20 (0: never answer)")
        quirks = entry.get("quirks", {})
        if not isinstance(quirks, dict):
            raise ModemConfigError(f"{where}: quirks must be a table")
        if quirks:
            from modem.quirks import Quirks, with_overrides
            try:
                with_overrides(Quirks(), quirks)
            except (TypeError, ValueError, KeyError) as exc:
                raise ModemConfigError(f"{where}: quirks: {exc}") from None
        max_failures = entry.get("max_failures", 3)
        if not isinstance(max_failures, int) or max_failures < 1:
            raise ModemConfigError(f"{where}: max_failures must be a positive integer")
        return cls(port=port.strip(), kind=kind, rings=rings, ident=str(entry.get("ident", "")),
                   number=str(entry.get("number", "")), account=str(entry.get("account", "")), quirks=quirks,
                   max_failures=max_failures, ecm=bool(entry.get("ecm", True)),
                   max_speed=int(entry.get("max_speed", 14400)), name=str(entry.get("name", "") or port.strip()),
                   poll=float(entry.get("poll", 1.0)), ring_reset=float(entry.get("ring_reset", 12.0)),
                   answer_timeout=float(entry.get("answer_timeout", 60.0)))


def parse_modems(entries: Any) -> list[ModemSettings]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ModemConfigError("modems must be an array of tables ([[modems]])")
    out = [ModemSettings.from_entry(e, i) for i, e in enumerate(entries)]
    ports = [m.port for m in out]
    if len(set(ports)) != len(ports):
        raise ModemConfigError("modems: the same port is configured twice")
    return out


@dataclass
class _Slot:
    settings: ModemSettings
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    want_port: int = 0                      # outbound calls waiting for the listener to let go
    failures: int = 0
    down: bool = False
    last_error: str = ""
    busy: str = ""                          # job id or "inbound" while a call runs
    listener: asyncio.Task | None = None
    calls: int = 0


class ModemChannel(Channel):
    name = "modem"

    def __init__(self, inbound, modems: list[ModemSettings] | list[dict], *, t30_config=None,  # noqa: ANN001
                 clock: Clock | None = None, default_account: str | None = None) -> None:
        settings = [m if isinstance(m, ModemSettings) else ModemSettings.from_entry(m, i)
                    for i, m in enumerate(modems)]
        self.inbound = inbound
        self.slots = [_Slot(s) for s in settings]
        self.clock = clock or MonotonicClock()
        self.default_account = default_account
        self._t30_config = t30_config        # callable(ident, settings) -> T30Config, for tests/tuning
        self._calls: dict[str, tuple[_Slot, dict]] = {}
        self._stopping = False

    @property
    def capacity(self) -> int:  # type: ignore[override]
        return sum(1 for s in self.slots if not s.down)

    def health(self) -> list[dict]:
        return [{"name": s.settings.name, "port": s.settings.port, "class": s.settings.kind, "down": s.down,
                 "failures": s.failures, "last_error": s.last_error, "busy": s.busy, "calls": s.calls}
                for s in self.slots]

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._stopping = False
        for slot in self.slots:
            if slot.settings.rings > 0 and slot.listener is None:
                slot.listener = asyncio.create_task(self._listen(slot), name=f"modem-listen-{slot.settings.name}")

    async def stop(self) -> None:
        self._stopping = True
        for _slot, call in list(self._calls.values()):
            self._abort_call(call, "interrupted: the fax engine is shutting down")
        for slot in self.slots:
            if slot.listener is not None:
                slot.listener.cancel()
        for slot in self.slots:
            if slot.listener is not None:
                with contextlib.suppress(BaseException):
                    await slot.listener
                slot.listener = None

    # ------------------------------------------------------------------ health

    def _note(self, slot: _Slot, result: SessionResult | None, error: str = "") -> None:
        """Count modem failures in a row (line reasons such as BUSY are not the modem's fault)."""
        if result is not None and result.error_code not in MODEM_FAILURE_CODES:
            slot.failures = 0
            return
        slot.failures += 1
        slot.last_error = error or (result.error_message if result is not None else "")
        if result is not None and result.error_code == "modem_down":
            slot.failures = max(slot.failures, slot.settings.max_failures)
        if slot.failures >= slot.settings.max_failures and not slot.down:
            slot.down = True
            log.error("modem %s marked down after %d failures in a row: %s", slot.settings.name, slot.failures,
                      slot.last_error)

    def _config(self, ident: str, settings: ModemSettings):  # noqa: ANN202
        if self._t30_config is not None:
            return self._t30_config(ident, settings)
        from engine.t30.config import T30Config
        return T30Config(ident=ident[:20], ecm=settings.ecm, max_speed=settings.max_speed)

    # ------------------------------------------------------------------ outbound

    def _pick(self, exclude: frozenset[int] | set[int] = frozenset()) -> _Slot | None:
        free = [s for i, s in enumerate(self.slots) if not s.down and not s.busy and i not in exclude]
        if not free:
            return None
        return min(free, key=lambda s: (s.want_port, s.lock.locked(), s.calls))

    async def send(self, call: OutboundCall, progress: Progress) -> SessionResult:
        """Dial on a free modem; when the modem itself fails (vanished, wedged, down), try the next free one
        in the same attempt, so a job is not held up by one bad modem."""
        tried: set[int] = set()
        result: SessionResult | None = None
        while True:
            slot = self._pick(tried)
            if slot is None:
                if result is not None:
                    return result
                down = all(s.down for s in self.slots)
                what = "every modem is marked down" if down and self.slots else (
                    "no modem configured" if not self.slots else "every modem is busy")
                return SessionResult(role="send", success=False, error_code="no_modem", retryable=True,
                                     error_message=f"no modem free: {what}")
            tried.add(self.slots.index(slot))
            result, aborted = await self._send_on(slot, call, progress)
            if result.success or aborted or result.error_code not in MODEM_FAILURE_CODES:
                return result
            log.warning("job %s: modem %s failed (%s); trying another modem", call.job_id, slot.settings.name,
                        result.error_message)

    async def _send_on(self, slot: _Slot, call: OutboundCall, progress: Progress) -> tuple[SessionResult, bool]:
        slot.busy = call.job_id
        slot.want_port += 1
        entry: dict = {"session": None, "task": None, "reason": None}
        self._calls[call.job_id] = (slot, entry)
        waiting = True
        try:
            async with slot.lock:
                slot.want_port -= 1
                waiting = False
                if entry["reason"] is not None:
                    return SessionResult(role="send", success=False, error_code="aborted",
                                         error_message=entry["reason"], retryable=False), True
                if slot.down:
                    return SessionResult(role="send", success=False, error_code="modem_down", retryable=True,
                                         error_message=f"modem {slot.settings.name} is marked down"), False
                slot.calls += 1
                progress({"phase": "dialing", "event": "phase", "modem": slot.settings.name})
                entry["task"] = asyncio.ensure_future(self._send_call(slot, call, progress, entry))
                try:
                    result = await asyncio.shield(entry["task"])
                except asyncio.CancelledError:
                    self._abort_call(entry, "interrupted")
                    with contextlib.suppress(BaseException):
                        await entry["task"]
                    raise
        finally:
            if waiting:
                slot.want_port -= 1
            self._calls.pop(call.job_id, None)
            slot.busy = ""
        if entry["reason"] is not None and not result.success:
            result.error_code = "aborted"
            result.error_message = entry["reason"]
            result.retryable = False
            return result, True
        return result, False

    async def _send_call(self, slot: _Slot, call: OutboundCall, progress: Progress, entry: dict) -> SessionResult:
        from modem.call import run_modem_call

        s = slot.settings
        ident = call.ident or s.ident

        def session_factory(phy, clock, **kw):  # noqa: ANN001, ANN202
            from engine.t30.session import T30Session
            session = T30Session(phy, clock, self._config(ident, s), send_pages=kw.get("send_pages"),
                                 on_page=kw.get("on_page"), calling=kw.get("calling", True), progress=progress)
            entry["session"] = session
            if entry["reason"] is not None:
                session.abort(entry["reason"])
            return session

        try:
            result = await run_modem_call(f"{s.kind}:{s.port}", role="send", session_factory=session_factory,
                                          number=call.to_number, pages=call.pages, ident=ident, ecm=s.ecm,
                                          max_speed=s.max_speed, clock=self.clock, quirks=s.quirks or None,
                                          progress=progress)
        except asyncio.CancelledError:
            return SessionResult(role="send", success=False, error_code="aborted",
                                 error_message=entry["reason"] or "aborted", retryable=False)
        except ValueError as exc:          # a number or page list the modem cannot use
            return SessionResult(role="send", success=False, error_code="bad_request", error_message=str(exc),
                                 retryable=False)
        except Exception as exc:           # never let a modem bug lose the job: say so and retry
            log.exception("modem %s: call for job %s crashed", s.name, call.job_id)
            result = SessionResult(role="send", success=False, error_code="modem_error",
                                   error_message=f"modem {s.name}: {exc}", retryable=True)
        if result.error_code in MODEM_FAILURE_CODES:
            result.retryable = True        # the modem's fault, not the job's: try again (maybe on another modem)
        self._note(slot, result)
        return result

    def _abort_call(self, entry: dict, reason: str) -> None:
        entry["reason"] = reason
        session = entry.get("session")
        if session is not None:
            session.abort(reason)          # Class 1: our T.30 sends DCN and hangs up
        elif entry.get("task") is not None:
            entry["task"].cancel()         # Class 2 (T.30 in the modem) or still dialling: hang up now

    def abort(self, job_id: str, reason: str) -> bool:
        found = self._calls.get(job_id)
        if found is None:
            return False
        self._abort_call(found[1], reason)
        return True

    # ------------------------------------------------------------------ inbound

    async def _listen(self, slot: _Slot) -> None:
        """Answer-ready between outbound calls; never gives up silently (failures mark the modem down)."""
        while not self._stopping and not slot.down:
            if slot.want_port:
                await asyncio.sleep(0.05)
                continue
            try:
                async with slot.lock:
                    if slot.want_port or slot.down:
                        continue
                    await self._listen_once(slot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:        # port gone, modem wedged: count it, back off, try again
                self._note(slot, None, f"{type(exc).__name__}: {exc}")
                log.warning("modem %s: listening failed (%d in a row): %s", slot.settings.name, slot.failures, exc)
                if not slot.down:
                    await self.clock.sleep(min(30.0, 2.0 * slot.failures))

    async def _listen_once(self, slot: _Slot) -> None:
        """Open the port, set it up for answering and wait for RINGs while no outbound call wants it."""
        from modem.call import open_line
        from modem.class2 import Class2Driver

        s = slot.settings
        line = await open_line(s.port, clock=self.clock, quirks=s.quirks or None)
        try:
            driver = None
            if s.kind == "class1":
                await line.setup_class1()
            else:
                driver = Class2Driver(line, "2" if s.kind == "class2" else "2.0", ident=s.ident, ecm=s.ecm,
                                      max_speed=s.max_speed)
                await driver.setup(receive=True)
            slot.failures = 0
            seen, last_ring = 0, 0.0
            while not self._stopping:
                if slot.want_port and seen == 0:
                    return                   # an outbound call wants the port and nobody is calling
                try:
                    await line.wait_for_call(1, s.poll)
                except TimeoutError:
                    if seen and self.clock.now() - last_ring > s.ring_reset:
                        seen = 0             # the caller gave up
                    continue
                seen, last_ring = seen + 1, self.clock.now()
                if seen >= s.rings:
                    await self._answer(slot, line, driver)
                    return
        finally:
            with contextlib.suppress(Exception):
                await line.hangup()
            await line.close()

    async def _answer(self, slot: _Slot, line, driver) -> None:  # noqa: ANN001
        s = slot.settings
        cid = line.ch.caller_id
        account = self.inbound.account_for(s.number, s.account or self.default_account) if s.number else (
            s.account or self.default_account)
        if not account:
            log.warning("modem %s: a call rang, but no account receives for %r; not answering", s.name, s.number)
            await self.clock.sleep(s.ring_reset)
            return
        slot.busy = "inbound"
        slot.calls += 1
        received: list = []
        record = None
        try:
            if driver is None:
                from modem.call import failure_result
                from modem.class1 import Class1Phy
                from modem.dial import AnswerFailure
                try:
                    await line.answer(timeout=s.answer_timeout)
                except AnswerFailure as exc:
                    log.info("modem %s: answer failed: %s", s.name, exc)
                    self._note(slot, failure_result(exc, "receive", s.ident))
                    return
                record = await self._begin(account, s, cid)
                phy = Class1Phy(line.ch, line.clock, line.quirks, adaptive_receive=line.far)
                phy.call_answered()
                from engine.t30.session import T30Session
                session = T30Session(phy, self.clock, self._config(s.ident, s),
                                     on_page=lambda page, _n: received.append(page), calling=False,
                                     progress=lambda state: self.inbound.progress(record.id, state))
                from modem.call import finish_result
                result = finish_result(await session.run(), line)
            else:
                record = await self._begin(account, s, cid)
                result = await driver.receive(on_page=lambda page, _n: received.append(page), answer_now=True)
        except asyncio.CancelledError:
            if record is not None:
                result = SessionResult(role="receive", success=False, error_code="aborted",
                                       error_message="interrupted: the fax engine is shutting down")
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.inbound.finish(record.id, result, received))
            raise
        finally:
            slot.busy = ""
        self._note(slot, result)
        await self.inbound.finish(record.id, result, received)

    async def _begin(self, account: str, s: ModemSettings, cid):  # noqa: ANN001, ANN202
        fields = {"from_number": cid.number or "", "to_number": s.number or cid.called or "",
                  "from_name": cid.name or "", "call_id": uuid.uuid4().hex, "channel": self.name}
        return await asyncio.to_thread(lambda: self.inbound.begin(account, **fields))


def build_modem_channel(config, inbound) -> ModemChannel | None:  # noqa: ANN001
    """The modem channel for a config with ``[[modems]]`` entries (None without any)."""
    raw = getattr(config, "raw", config)
    entries = raw.get("modems") if isinstance(raw, dict) else None
    modems = parse_modems(entries)
    if not modems:
        return None
    return ModemChannel(inbound, modems)


__all__ = ["ModemChannel", "ModemConfigError", "ModemSettings", "build_modem_channel", "parse_modems"]
