"""The virtual modem rig: software Class 1 modems on ptys, a simulated line, spandsp fax machines.

Modes:

* ``pair``: modems ``a`` and ``b`` on one line.  ATD on either rings the other (RING every
  ``ring_interval``); ATA, or auto-answer after ATS0=n rings, connects them.
* ``answer``: modem ``modem``; a dialled call is answered by a spandsp fax machine that receives
  and writes the pages to ``output_dir``.
* ``call``: modem ``modem``; a spandsp fax machine rings it and, once the DTE answers, sends
  ``tx_tiff``.

Time is the audio sample clock: one tick moves 160 samples (20 ms) each way, and an asyncio task
paces ticks at real time divided by ``speed``.  All call-progress timing (rings, answer delay,
hang-up grace) counts samples, so it scales with ``speed`` too.  spandsp's modem and fax machine
only learn about the line from the application: this module plays the telephone exchange.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from modem.spandsp import CallEvent, FaxAudioTerminal, ModemControl

from .line import LineDirection
from .options import DIAL_RESULTS, MODES
from .virtual_modem import DTE_GONE, VirtualModem

log = logging.getLogger("faxengine.rig")

TICK = 160
RATE = 8000
SILENCE = np.zeros(TICK, dtype=np.int16)


class RigError(Exception):
    """The rig was configured wrongly or failed while running."""


@dataclass
class RigConfig:
    mode: str
    tx_tiff: str | None = None               # call mode: what the far fax machine sends
    output_dir: str | None = None            # answer mode: where received faxes go
    line_delay_ms: float = 0.0               # one way
    speed: float = 1.0                       # 2.0 = twice real time
    symbol_error_rate: float = 0.0           # see line.LineDirection
    noise_dbm0: float | None = None
    seed: int = 1
    far_ecm: bool = False
    far_modems: tuple[str, ...] = ("v17", "v29", "v27ter")
    far_max_bit_rate: int | None = None
    far_ident: str = "+1 555 0100"
    calls: int = 1                           # call mode: calls to make (0 = keep calling)
    call_delay: float = 1.0                  # call mode: seconds before each call
    ring_interval: float = 3.0
    max_rings: int = 10
    answer_delay: float = 1.0                # answer mode: far end picks up after this
    hangup_grace: float = 5.0                # how long one side runs on after the other hung up
    dial_results: dict[str, str] = field(default_factory=dict)   # number -> one of DIAL_RESULTS
    link_dir: str | None = None              # also make <link_dir>/<modem name> symlinks
    xonxoff: bool = False                    # also send DC3/DC1 to the DTE when the modem's buffer fills/drains
    trace: bool = False                      # log every DTE byte (logger faxengine.rig)
    log: bool = False                        # spandsp log lines to logger faxengine.spandsp.*

    def validate(self) -> None:
        if self.mode not in MODES:
            raise RigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "call":
            if not self.tx_tiff:
                raise RigError("call mode needs a TIFF to send (tx_tiff)")
            if not os.path.isfile(self.tx_tiff):
                raise RigError(f"TIFF to send not found: {self.tx_tiff}")
            _check_bilevel_tiff(self.tx_tiff)
        if self.mode == "answer":
            if not self.output_dir:
                raise RigError("answer mode needs an output directory")
            if not os.path.isdir(self.output_dir):
                raise RigError(f"output directory does not exist: {self.output_dir}")
        if not 0.05 <= self.speed <= 100:
            raise RigError("speed must be between 0.05 and 100")
        if self.calls < 0 or self.max_rings < 1 or self.ring_interval <= 0:
            raise RigError("calls must be >= 0, max_rings >= 1 and ring_interval > 0")
        for number, result in self.dial_results.items():
            if result not in DIAL_RESULTS:
                raise RigError(f"dial result for {number!r} must be one of {', '.join(DIAL_RESULTS)}")
        if self.link_dir is not None and not os.path.isdir(self.link_dir):
            raise RigError(f"link directory does not exist: {self.link_dir}")


def _check_bilevel_tiff(path: str) -> None:
    """spandsp only sends bilevel TIFFs; say so now rather than as a phase-E code mid-call."""
    try:
        with Image.open(path) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                if im.mode != "1":
                    raise RigError(f"{path}: page {i + 1} is not bilevel (mode {im.mode}); send a fax TIFF")
    except (UnidentifiedImageError, OSError) as exc:
        raise RigError(f"{path}: not a readable TIFF ({exc})") from exc


@dataclass
class _Call:
    id: int
    caller: str                    # modem name, or "far" for the spandsp fax machine
    callee: str
    number: str
    started: int                   # sample clock
    state: str = "ringing"         # ringing | dialing | up | ending | over
    rings: int = 0
    answered: int | None = None
    fax: FaxAudioTerminal | None = None
    rx_tiff: str | None = None
    silent: bool = False           # connected, but nothing on the far end
    hung_up_by: str | None = None
    far_done: bool = False         # the far fax machine reached phase E
    generation: int = 0            # bumps on every state change, so stale timers do nothing


class Rig:
    """Runs the rig inside the caller's asyncio loop.  ``start()`` returns ``{name: pty path}``."""

    def __init__(self, mode: str | None = None, *, config: RigConfig | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> None:
        if config is None:
            if mode is None:
                raise RigError("give a mode or a RigConfig")
            config = RigConfig(mode=mode, **options)
        elif mode is not None or options:
            raise RigError("give either a RigConfig or keyword options, not both")
        config.validate()
        self.config = config
        self.mode = config.mode
        self.results: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._on_result = on_result
        self.modems: dict[str, VirtualModem] = {}
        self.samples = 0
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._call: _Call | None = None
        self._call_ids = itertools.count(1)
        self._calls_made = 0
        self._task: asyncio.Task[None] | None = None
        self._result_event = asyncio.Event()
        self._links: list[str] = []
        c = config
        self._line_out = LineDirection(delay_ms=c.line_delay_ms, symbol_error_rate=c.symbol_error_rate,
                                       noise_dbm0=c.noise_dbm0, seed=c.seed)
        self._line_back = LineDirection(delay_ms=c.line_delay_ms, symbol_error_rate=c.symbol_error_rate,
                                        noise_dbm0=c.noise_dbm0, seed=c.seed + 1)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> dict[str, str]:
        if self._task is not None:
            raise RigError("rig already started")
        loop = asyncio.get_running_loop()
        names = ("a", "b") if self.mode == "pair" else ("modem",)
        try:
            for name in names:
                vm = VirtualModem(name, self._modem_control, trace=self.config.trace, log=self.config.log,
                                  xonxoff=self.config.xonxoff)
                self.modems[name] = vm
                vm.attach(loop)
                if self.config.link_dir:
                    link = os.path.join(self.config.link_dir, name)
                    if os.path.islink(link):
                        os.unlink(link)
                    os.symlink(vm.path, link)
                    self._links.append(link)
        except BaseException:
            self._close_modems()
            raise
        if self.mode == "call":
            self._schedule(self.config.call_delay, self._place_far_call)
        self._task = loop.create_task(self._run(), name="faxengine-rig")
        return self.paths

    @property
    def ticker(self) -> asyncio.Task[None]:
        """The task that runs the line; it only ends on stop() or on a failure."""
        if self._task is None:
            raise RigError("rig not started")
        return self._task

    @property
    def paths(self) -> dict[str, str]:
        return {name: vm.path for name, vm in self.modems.items()}

    async def stop(self) -> dict[str, Any]:
        """Stop ticking, end any call in progress (recording its result), free everything."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # already recorded in self.error
                log.debug("rig task ended with %r", exc)
            self._task = None
        if self._call is not None and self._call.state != "over":
            self._finish_call(self._call, hung_up_by=self._call.hung_up_by or "rig-stopped", force=True)
        self._close_modems()
        return self.summary()

    def _close_modems(self) -> None:
        for vm in self.modems.values():
            vm.close()
        for link in self._links:
            try:
                os.unlink(link)
            except OSError:
                pass
        self._links.clear()

    async def wait_results(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` call results exist (raises TimeoutError, or RigError if the rig died)."""
        async def _wait() -> None:
            while len(self.results) < count:
                if self.error is not None:
                    raise RigError(f"rig failed: {self.error!r}") from self.error
                if self._task is None or self._task.done():
                    raise RigError("rig is not running")
                self._result_event.clear()
                await self._result_event.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.results[:count]

    def summary(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "mode": self.mode,
            "calls": len(self.results),
            "ok": sum(1 for r in self.results if r.get("ok")),
            "results": self.results,
            "simulated_s": round(self.samples / RATE, 2),
            "line_hits": self._line_out.hits + self._line_back.hits,
            "cts_off_events": {name: vm.cts_off_events for name, vm in self.modems.items()},
            "error": None if self.error is None else repr(self.error),
        }

    # ---------------------------------------------------------------- clock
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = TICK / RATE / self.config.speed
        next_t = loop.time()
        try:
            while True:
                self._tick()
                next_t += period
                delay = next_t - loop.time()
                if delay < -0.25:          # far behind (a stalled loop): drop the backlog, do not burst
                    next_t = loop.time()
                    delay = 0.0
                await asyncio.sleep(max(delay, 0.0))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("rig tick failed")
            self.error = exc
            self._result_event.set()
            raise

    def _schedule(self, seconds: float, fn: Callable[[], None]) -> None:
        due = self.samples + max(0, int(seconds * RATE))
        heapq.heappush(self._timers, (due, next(self._timer_seq), fn))

    def _schedule_for(self, call: _Call, seconds: float, fn: Callable[[], None]) -> None:
        """A timer that only fires if ``call`` has not changed state meanwhile."""
        gen = call.generation

        def guarded() -> None:
            if call.generation == gen and self._call is call:
                fn()
        self._schedule(seconds, guarded)

    def _set_state(self, call: _Call, state: str) -> None:
        call.state = state
        call.generation += 1

    def _tick(self) -> None:
        self.samples += TICK
        for vm in self.modems.values():
            vm.poll()
        while self._timers and self._timers[0][0] <= self.samples:
            heapq.heappop(self._timers)[2]()
        call = self._call
        if self.mode == "pair":
            a, b = self.modems["a"], self.modems["b"]
            a_out, b_out = a.tx_audio(TICK), b.tx_audio(TICK)
            if call is not None and call.state == "up":
                b.rx_audio(self._line_out.carry(a_out))
                a.rx_audio(self._line_back.carry(b_out))
            else:
                a.rx_audio(SILENCE)
                b.rx_audio(SILENCE)
            return
        modem = self.modems["modem"]
        m_out = modem.tx_audio(TICK)
        fax = call.fax if call is not None else None
        if call is not None and call.state == "up":
            far = fax.tx_audio(TICK) if fax is not None else SILENCE
            modem.rx_audio(self._line_back.carry(far))
            if fax is not None:
                fax.rx_audio(self._line_out.carry(m_out))
                if fax.done:
                    self._far_end_finished(call)
        else:
            modem.rx_audio(SILENCE)
            if fax is not None and call is not None and call.state == "ending" and not fax.done:
                fax.tx_audio(TICK)
                fax.rx_audio(SILENCE)          # the DTE hung up: the fax machine runs on alone
            if call is not None and call.state == "ending" and fax is not None and fax.done:
                self._finish_call(call, hung_up_by=call.hung_up_by or "dte")

    # ---------------------------------------------------------------- modem requests
    def _modem_control(self, vm: VirtualModem, op: ModemControl | str, arg: str | int) -> None:
        if op == DTE_GONE:
            # like DTR dropping: the call ends on this side and the modem goes back on-hook
            self._hangup(vm, reason="dte-gone")
            vm.call_event(CallEvent.HANGUP)
        elif op is ModemControl.CALL:
            self._dial(vm, str(arg))
        elif op is ModemControl.ANSWER:
            self._answer(vm)
        elif op in (ModemControl.HANGUP, ModemControl.ONHOOK):
            self._hangup(vm, reason=vm.name)

    def _other(self, name: str) -> VirtualModem:
        return self.modems["b" if name == "a" else "a"]

    def _dial(self, vm: VirtualModem, number: str) -> None:
        log.info("%s dials %r", vm.name, number)
        if self._call is not None or self.mode == "call":
            # one line: it is in use (or, in call mode, it belongs to the calling fax machine)
            self._schedule(1.0, lambda: vm.call_event(CallEvent.BUSY))
            self._record({"type": "call", "mode": self.mode, "from": vm.name, "number": number,
                          "ok": False, "reason": "busy", "answered": False})
            return
        outcome = self.config.dial_results.get(number, "answer")
        if outcome in ("busy", "no-dialtone", "no-answer"):
            event = {"busy": CallEvent.BUSY, "no-dialtone": CallEvent.NO_DIALTONE,
                     "no-answer": CallEvent.NO_ANSWER}[outcome]
            delay = {"busy": 2.0, "no-dialtone": 0.5,
                     "no-answer": self.config.max_rings * self.config.ring_interval}[outcome]
            self._schedule(delay, lambda: vm.call_event(event))
            self._record({"type": "call", "mode": self.mode, "from": vm.name, "number": number,
                          "ok": False, "reason": outcome, "answered": False})
            return
        callee = self._other(vm.name).name if self.mode == "pair" else "far"
        call = _Call(id=next(self._call_ids), caller=vm.name, callee=callee, number=number,
                     started=self.samples, silent=outcome == "no-carrier")
        self._call = call
        if self.mode == "pair":
            self._ring(call)
        else:
            self._set_state(call, "dialing")
            self._schedule_for(call, self.config.answer_delay, lambda: self._far_answers(call))

    def _ring(self, call: _Call) -> None:
        """Ring the callee modem now and every ring_interval, up to max_rings."""
        if call.rings >= self.config.max_rings:
            if call.caller != "far":
                self.modems[call.caller].call_event(CallEvent.NO_ANSWER)
            self._finish_call(call, hung_up_by="no-answer")
            return
        call.rings += 1
        call.generation += 1
        # Schedule the next ring first: ALERTING may auto-answer (ATS0=n) and change the state.
        self._schedule_for(call, self.config.ring_interval, lambda: self._ring(call))
        self.modems[call.callee].call_event(CallEvent.ALERTING)

    def _answer(self, vm: VirtualModem) -> None:
        call = self._call
        if call is None or call.state != "ringing" or call.callee != vm.name:
            # ATA with nobody calling: the modem listens, hears nothing, gives up
            self._schedule(self.config.ring_interval, lambda: vm.call_event(CallEvent.HANGUP))
            return
        call.answered = self.samples
        self._set_state(call, "up")
        self._line_out.reset()
        self._line_back.reset()
        vm.call_event(CallEvent.ANSWERED)
        if call.caller == "far":
            c = self.config
            call.fax = FaxAudioTerminal(True, tx_tiff=c.tx_tiff, ecm=c.far_ecm, modems=c.far_modems,
                                        max_bit_rate=c.far_max_bit_rate, ident=c.far_ident, log=c.log,
                                        name=f"rig-far-{call.id}")
        else:
            self.modems[call.caller].call_event(CallEvent.CONNECTED)
        log.info("call %d answered by %s", call.id, vm.name)

    def _far_answers(self, call: _Call) -> None:
        c = self.config
        call.answered = self.samples
        self._set_state(call, "up")
        self._line_out.reset()
        self._line_back.reset()
        if not call.silent:
            call.rx_tiff = self._next_rx_path(call.id)
            call.fax = FaxAudioTerminal(False, rx_tiff=call.rx_tiff, ecm=c.far_ecm, modems=c.far_modems,
                                        max_bit_rate=c.far_max_bit_rate, ident=c.far_ident, log=c.log,
                                        name=f"rig-far-{call.id}")
        self.modems[call.caller].call_event(CallEvent.CONNECTED)
        log.info("call %d answered by the far fax machine", call.id)

    def _place_far_call(self) -> None:
        if self._call is not None:
            self._schedule(self.config.call_delay, self._place_far_call)
            return
        self._calls_made += 1
        call = _Call(id=next(self._call_ids), caller="far", callee="modem", number="", started=self.samples)
        self._call = call
        self._ring(call)

    def _hangup(self, vm: VirtualModem, reason: str) -> None:
        call = self._call
        if call is None or vm.name not in (call.caller, call.callee):
            return
        if call.state in ("ringing", "dialing"):
            if vm.name == call.caller:        # caller gave up before the answer
                self._finish_call(call, hung_up_by=reason)
            return
        if call.state != "up":
            return
        call.hung_up_by = reason
        if self.mode == "pair":
            self._finish_call(call, hung_up_by=reason)      # first: the other side's ONHOOK must not re-enter
            self._other(vm.name).call_event(CallEvent.HANGUP)
            return
        if call.fax is None or call.fax.done:
            self._finish_call(call, hung_up_by=reason)
            return
        # Let the fax machine finish on its own (its last MCF may still be in flight), then force it.
        self._set_state(call, "ending")
        self._schedule_for(call, self.config.hangup_grace,
                           lambda: self._finish_call(call, hung_up_by=reason, force=True))

    def _far_end_finished(self, call: _Call) -> None:
        """Phase E at the far fax machine: it will hang up unless the DTE does so first."""
        if call.far_done:
            return
        call.far_done = True

        def far_hangs_up() -> None:
            if self._call is call and call.state == "up":
                self._finish_call(call, hung_up_by="far")
                self.modems["modem"].call_event(CallEvent.HANGUP)
        self._schedule(self.config.hangup_grace, far_hangs_up)

    # ---------------------------------------------------------------- results
    def _finish_call(self, call: _Call, *, hung_up_by: str, force: bool = False) -> None:
        if call.state == "over":
            return
        was_up = call.answered is not None
        self._set_state(call, "over")
        if self._call is call:
            self._call = None
        result: dict[str, Any] = {"type": "call", "call": call.id, "mode": self.mode,
                                  "from": call.caller, "to": call.callee, "number": call.number,
                                  "answered": was_up, "hung_up_by": hung_up_by,
                                  "duration_s": round((self.samples - call.started) / RATE, 2)}
        fax = call.fax
        if fax is not None:
            if force and not fax.done:
                fax.terminate()
            stats = fax.stats()
            fax.close()
            call.fax = None
            result.update(far_end="sender" if call.caller == "far" else "receiver",
                          ok=bool(stats["ok"]), completion_code=stats["completion_code"],
                          completion=stats["completion"],
                          pages=stats["pages_tx"] if call.caller == "far" else stats["pages_rx"],
                          stats=stats)
            if call.rx_tiff is not None and os.path.exists(call.rx_tiff):
                result["rx_tiff"] = call.rx_tiff
            if call.caller == "far":
                result["tx_tiff"] = self.config.tx_tiff
        else:
            result["ok"] = was_up and self.mode == "pair"
            if not was_up:
                result["reason"] = "no-answer" if hung_up_by == "no-answer" else "abandoned"
            elif call.silent:
                result["reason"] = "no-carrier"
        self._record(result)
        if self.mode == "call" and (self.config.calls == 0 or self._calls_made < self.config.calls):
            self._schedule(self.config.call_delay, self._place_far_call)

    def _record(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        log.info("call result: %s", {k: v for k, v in result.items() if k != "stats"})
        self._result_event.set()
        if self._on_result is not None:
            self._on_result(result)

    def _next_rx_path(self, call_id: int) -> str:
        assert self.config.output_dir is not None
        for n in itertools.count(call_id):
            path = os.path.join(self.config.output_dir, f"rx-{n:04d}.tif")
            if not os.path.exists(path):
                return path
        raise AssertionError("unreachable")
