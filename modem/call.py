"""Setting up one modem call for the engine: ``class1:PORT`` / ``class2:PORT`` / ``class2.0:PORT``.

The engine composes T.30 on top (modem/ never imports engine.t30): :func:`connect_class1` returns a
line and a connected :class:`Class1Phy`; :func:`finish_result` turns a port that vanished during the
call into a clear, retryable reason; :func:`failure_result` does the same for a call that never
connected (BUSY, NO CARRIER, NO DIALTONE, NO ANSWER, modem down …)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.clock import Clock, MonotonicClock
from engine.phy import PhyError
from engine.result import SessionResult
from modem.at import CommandTimeout, ModemError, PortGone
from modem.class1 import Class1Phy
from modem.dial import AnswerFailure, DialFailure, ModemDown, ModemLine
from modem.quirks import with_overrides

KINDS = ("class1", "class2", "class2.0")


@dataclass(frozen=True)
class ModemSpec:
    kind: str      # "class1" | "class2" | "class2.0"
    port: str

    @property
    def dialect(self) -> str:
        return {"class2": "2", "class2.0": "2.0"}.get(self.kind, "")


def parse_spec(text: str) -> ModemSpec:
    """``class1:/dev/ttyACM0`` -> ModemSpec; a clear ValueError for anything else."""
    kind, sep, port = (text or "").partition(":")
    kind = kind.strip().lower()
    if kind == "class1.0":
        kind = "class1"
    if not sep or kind not in KINDS or not port.strip():
        raise ValueError(f"modem spec must be class1:PORT, class2:PORT or class2.0:PORT, not {text!r}")
    return ModemSpec(kind, port.strip())


async def open_line(port: str, *, clock: Clock | None = None, quirks: dict | None = None) -> ModemLine:
    """Open, reset, initialise and identify the modem on ``port`` (quirks from the table + overrides)."""
    line = ModemLine(port, clock=clock or MonotonicClock())
    await line.open()
    try:
        await line.reset()
        await line.identify()
        if quirks:
            line.quirks = with_overrides(line.quirks, quirks)
            line._fixed_quirks = True
        line.ch.flow = line.quirks.flow
        await line.basic_init()
    except BaseException:
        await line.close()
        raise
    return line


async def connect_class1(port: str, *, number: str | None = None, rings: int = 1, clock: Clock | None = None,
                         dial_timeout: float = 90.0, ring_timeout: float | None = None,
                         quirks: dict | None = None) -> tuple[ModemLine, Class1Phy]:
    """Dial ``number`` (send) or wait for ``rings`` RINGs and answer (receive); return a live PHY."""
    line = await open_line(port, clock=clock, quirks=quirks)
    try:
        await line.setup_class1()
        if number is not None:
            await line.dial(number, timeout=dial_timeout)
        else:
            await line.wait_for_call(rings, ring_timeout)
            await line.answer()
        phy = Class1Phy(line.ch, line.clock, line.quirks, adaptive_receive=line.far)
        if number is not None:
            phy.call_connected()
        else:
            phy.call_answered()
        return line, phy
    except BaseException:
        await line.hangup()
        await line.close()
        raise


def failure_result(exc: BaseException, role: str, local_ident: str = "") -> SessionResult:
    """A result record for a call that failed before (or outside) T.30."""
    r = SessionResult(role=role, local_ident=local_ident, success=False, error_phase="A")
    if isinstance(exc, DialFailure):
        r.error_code, r.error_message, r.retryable = exc.code, exc.message, exc.retryable
    elif isinstance(exc, AnswerFailure):
        r.error_code, r.error_message = exc.code, exc.message
    elif isinstance(exc, ModemDown):
        r.error_code, r.error_message, r.retryable = "modem_down", str(exc), True
    elif isinstance(exc, PortGone):
        r.error_code, r.error_message = "modem_gone", str(exc)
    elif isinstance(exc, (CommandTimeout, ModemError, PhyError)):
        r.error_code, r.error_message = "modem_error", str(exc)
    elif isinstance(exc, TimeoutError):
        r.error_code, r.error_message = "no_call", "no incoming call in time"
    else:
        raise exc
    return r


def finish_result(result: SessionResult, line: ModemLine) -> SessionResult:
    """If the port vanished during the call, say so (and keep it retryable) instead of a T.30 reason."""
    gone = line.ch.gone
    if gone is not None and not result.success:
        result.error_code = "modem_gone"
        result.error_message = f"modem port {line.port} vanished during the call ({gone}); {result.error_message}"
        result.retryable = True
    return result


async def run_modem_call(spec: ModemSpec | str, *, role: str, session_factory, number: str | None = None,
                         pages: list | None = None, on_page=None, ident: str = "", ecm: bool = True,
                         max_speed: int = 14400, rings: int = 1, ring_timeout: float | None = None,
                         clock: Clock | None = None, quirks: dict | None = None, progress=None) -> SessionResult:
    """One whole call on a modem, for ``faxengine send/receive --via class1:PORT|class2:PORT|class2.0:PORT``.

    ``session_factory(phy, clock, *, send_pages, on_page, calling)`` builds the T.30 session for Class 1
    (the engine passes ``T30Session`` with its config; modem/ does not import engine.t30).  Class 2/2.0
    run T.30 in the modem through :class:`modem.class2.Class2Driver`.  Never raises for line or modem
    failures: they come back as a result record with a reason."""
    from modem.class2 import Class2Driver

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if role not in ("send", "receive"):
        raise ValueError("role must be send or receive")
    if role == "send" and (not number or not pages):
        raise ValueError("sending needs a number and at least one page")
    clock = clock or MonotonicClock()
    if spec.kind == "class1":
        try:
            line, phy = await connect_class1(spec.port, number=number if role == "send" else None, rings=rings,
                                             clock=clock, ring_timeout=ring_timeout, quirks=quirks)
        except (ModemError, PhyError, TimeoutError, OSError) as exc:
            return failure_result(exc if not isinstance(exc, OSError) else PortGone(str(exc)), role, ident)
        try:
            session = session_factory(phy, clock, send_pages=pages if role == "send" else None,
                                      on_page=on_page, calling=role == "send")
            return finish_result(await session.run(), line)
        finally:
            await line.close()
    try:
        line = await open_line(spec.port, clock=clock, quirks=quirks)
    except (ModemError, PhyError, OSError) as exc:
        return failure_result(exc if not isinstance(exc, OSError) else PortGone(str(exc)), role, ident)
    try:
        driver = Class2Driver(line, spec.dialect, ident=ident, ecm=ecm, max_speed=max_speed, progress=progress)
        if role == "send":
            return await driver.send(number, pages)
        return await driver.receive(rings=rings, ring_timeout=ring_timeout, on_page=on_page)
    finally:
        await line.close()
