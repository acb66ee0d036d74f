"""``--via`` for the ``send``/``receive`` commands: which line a fax goes over.

``udptl:HOST:PORT`` (send) and ``udptl:LOCAL_PORT[@HOST:PORT]`` (receive) are built in: bare
T.38 over UDPTL, no call control.  The other schemes (``class1:``, ``class2:``, ``class2.0:``,
``sip:``) are registered below with :func:`register_scheme` (a parser and an async opener) and
:func:`register_call_runner`; the engine owns them because ``modem/`` and ``t38/`` may not import it.

An opener is ``async (via, role, args, clock) -> Phy``; ``args`` is the command's argparse
namespace (``t38_version``, ``ecm``, ``redundancy``, ...), ``role`` is "send" or "receive".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class ViaError(ValueError):
    """A ``--via`` value that cannot be used; the message says what is expected."""


@dataclass(frozen=True)
class Via:
    scheme: str
    text: str                                    # what followed "scheme:"
    host: str | None = None                      # remote address, when the scheme has one
    port: int | None = None
    local_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remote(self) -> tuple[str, int] | None:
        return (self.host, self.port) if self.host is not None and self.port is not None else None


# (role, text) -> Via ;  role is "send" or "receive"
Parser = Callable[[str, str], Via]
# (via, role, args, clock) -> (phy, calling flag, closer coroutine or None)
Opener = Callable[[Via, str, Any, Any], Awaitable[Any]]

_SCHEMES: dict[str, tuple[Parser, Opener | None]] = {}
def register_scheme(scheme: str, parser: Parser, opener: Opener | None = None) -> None:
    _SCHEMES[scheme] = (parser, opener)


def schemes() -> list[str]:
    return sorted(_SCHEMES)


def parse_via(value: str, role: str) -> Via:
    if role not in ("send", "receive"):
        raise ValueError("role must be send or receive")
    scheme, sep, rest = value.partition(":")
    if not sep or scheme not in _SCHEMES:
        raise ViaError(f"unknown --via {value!r}: use one of {', '.join(s + ':' for s in schemes())}")
    return _SCHEMES[scheme][0](role, rest)


def opener(via: Via) -> Opener:
    op = _SCHEMES[via.scheme][1]
    if op is None:
        raise ViaError(f"--via {via.scheme}: is not available in this build")
    return op


def _port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ViaError(f"{what} must be a number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise ViaError(f"{what} {port} is out of range 0-65535")
    return port


def _host_port(text: str, what: str) -> tuple[str, int]:
    if text.startswith("["):                     # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
    if not host or not port:
        raise ViaError(f"{what} must be HOST:PORT, not {text!r}")
    p = _port(port, f"{what} port")
    if p == 0:
        raise ViaError(f"{what} port must not be 0")
    return host, p


def _parse_udptl(role: str, text: str) -> Via:
    if role == "send":
        host, port = _host_port(text, "udptl:")
        return Via("udptl", text, host, port)
    local, _, remote = text.partition("@")
    local_port = _port(local, "udptl: local port") if local else 0
    if remote:
        host, port = _host_port(remote, "udptl: remote")
        return Via("udptl", text, host, port, local_port)
    return Via("udptl", text, local_port=local_port)


async def _open_udptl(via: Via, role: str, args: Any, clock: Any) -> Any:
    """A T38Phy on a UDPTL socket; the far address is learnt from its first datagram if not given."""
    from t38.phy import T38PhyOptions, open_t38_udptl
    from t38.udptl import UdptlConfig

    local_port = via.local_port if role == "receive" else int(getattr(args, "local_port", 0) or 0)
    options = T38PhyOptions(calling=role == "send", version=args.t38_version, pacing=not args.no_pacing)
    config = UdptlConfig(redundancy=args.redundancy, max_datagram=args.max_datagram)
    bind = getattr(args, "bind", None) or "0.0.0.0"
    try:
        return await open_t38_udptl(clock, options, local=(bind, local_port), remote=via.remote, udptl_config=config)
    except OSError as exc:
        raise ViaError(f"cannot open UDP port {local_port}: {exc.strerror or exc}") from None


register_scheme("udptl", _parse_udptl, _open_udptl)


# ---- modem lines (added for issue 4): the modem side runs the whole call (dial/answer, T.30 or Class 2) ----
# A call runner replaces the opener for such schemes:
#   runner(via, role, args, clock, *, session_factory, pages=None, on_page=None, progress=None) -> SessionResult
CallRunner = Callable[..., Awaitable[Any]]
_RUNNERS: dict[str, CallRunner] = {}


def register_call_runner(scheme: str, runner: CallRunner) -> None:
    _RUNNERS[scheme] = runner


def call_runner(via: Via) -> CallRunner | None:
    return _RUNNERS.get(via.scheme)


def _parse_modem(scheme: str) -> Parser:
    def parse(role: str, text: str) -> Via:
        port = text.strip()
        if not port:
            raise ViaError(f"{scheme}: needs a serial port, e.g. {scheme}:/dev/ttyACM0")
        return Via(scheme, port, extra={"port": port})
    return parse


async def _run_modem(via: Via, role: str, args: Any, clock: Any, *, session_factory: Any, pages: Any = None,
                     on_page: Any = None, progress: Any = None) -> Any:
    from modem.call import run_modem_call

    return await run_modem_call(f"{via.scheme}:{via.text}", role=role, session_factory=session_factory,
                                number=getattr(args, "to", None), pages=pages, on_page=on_page,
                                ident=getattr(args, "ident", ""), ecm=getattr(args, "ecm", True),
                                max_speed=getattr(args, "max_speed", 14400), rings=getattr(args, "rings", 1),
                                ring_timeout=getattr(args, "timeout", None), clock=clock, progress=progress)


for _scheme in ("class1", "class2", "class2.0"):
    register_scheme(_scheme, _parse_modem(_scheme))
    register_call_runner(_scheme, _run_modem)


# ---- SIP trunks (added for issue 6): t38.sip dials or answers, switches to T.38, runs T.30, hangs up ----
#   send:    sip:NUMBER@TRUNK  or  sip:NUMBER@HOST[:PORT]     (TRUNK from --config's or $FAXENGINE_SIP_CONFIG's [sip])
#   receive: sip:[DID]@TRUNK   or  sip:[DID]@HOST:PORT         (listen there; any DID when empty)
def _parse_sip(role: str, text: str) -> Via:
    number, sep, where = text.partition("@")
    if not sep or not where or (role == "send" and not number):
        raise ViaError("sip: needs NUMBER@TRUNK or NUMBER@HOST[:PORT] (receive: [DID]@TRUNK or [DID]@HOST:PORT)")
    return Via("sip", text, extra={"number": number, "where": where})


async def _run_sip(via: Via, role: str, args: Any, clock: Any, *, session_factory: Any, pages: Any = None,
                   on_page: Any = None, progress: Any = None) -> Any:
    from t38.sip import SipViaError, run_sip_fax

    try:
        return await run_sip_fax(via.extra["number"], via.extra["where"], role=role, clock=clock,
                                 session_factory=session_factory, pages=pages, on_page=on_page,
                                 timeout=getattr(args, "timeout", None), pacing=not getattr(args, "no_pacing", False),
                                 config_path=getattr(args, "config", None))
    except SipViaError as exc:
        raise ViaError(str(exc)) from None


register_scheme("sip", _parse_sip)
register_call_runner("sip", _run_sip)
