"""SIP call control for fax over T.38, on top of sippy; the only module that imports sippy.

sippy runs its own event dispatcher (ED2) in one thread per process.  Everything that touches
sippy objects runs on that thread; everything the engine sees (:class:`SipEndpoint`,
:class:`SipCall`, futures) lives on the asyncio loop.  The two sides talk only by posting
callables: asyncio -> sippy through ``ED2.callFromThread``, sippy -> asyncio through
``loop.call_soon_threadsafe``.  Offer/answer is decided on the sippy thread the moment a request
arrives (so glare and refreshes are answered without a thread hop); the asyncio side runs the
policy (when to ask for T.38, back-off after 491, timers) and hands the engine a
:class:`T38Media` once T.38 is up.

Engine use::

    ep = SipEndpoint(config, router=route_did, on_incoming=run_receive)
    await ep.start()
    call = await ep.call("2002", "carrier")        # raises CallFailure (busy, no answer, ...)
    media = await call.t38_ready                   # raises CallFailure ("remote refused T.38", ...)
    phy = await open_call_phy(call, clock, calling=True)   # T38Phy on the negotiated UDPTL socket
    result = await T30Session(phy, clock, config, send_pages=pages, calling=True).run()
    await call.hangup()                            # BYE as soon as T.30 ends

Inbound: ``router(did, caller, trunk)`` (sync or async) returns the owning account or None
(-> 404 and a log line); the call is then answered and ``on_incoming(call)`` runs with
``call.account``/``call.number``/``call.caller`` set (open a receiving PHY there, run T.30,
record the fax, hang up).  ``SipEndpoint.registration_state()`` gives every registering trunk's
:class:`RegistrationState` for the CLI and the API's health output.  Failures are
:class:`CallFailure` with SessionResult-style ``error_code``/``error_message`` (``to_result``).

What sippy 2.5 lacks and this module adds or works around: SIP over TCP (:class:`_TcpServer`),
answers to body-less re-INVITEs (sippy fakes a hold), state after a failed re-INVITE (sippy drops
its local SDP), digest for REGISTER with refresh before expiry (:class:`_Registration`), its 400
path for malformed messages (raises TypeError), and the dispatcher's cross-thread wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import inspect
import logging
import random
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sippy.Core.EventDispatcher as _ed_module
import sippy.Network_server as _ns_module
import sippy.SipTransactionManager as _tm_module
import sippy.Udp_server as _udp_module
from elperiodic.ElPeriodic import ElPeriodic
from sippy.CCEvents import (
    CCEventConnect,
    CCEventDisconnect,
    CCEventFail,
    CCEventPreConnect,
    CCEventRing,
    CCEventTry,
    CCEventUpdate,
)
from sippy.Core.EventDispatcher import ED2
from sippy.Exceptions.SipParseError import SipParseError
from sippy.MsgBody import MsgBody
from sippy.SipAddress import SipAddress
from sippy.SipCallId import SipCallId
from sippy.SipContact import SipContact
from sippy.SipExpires import SipExpires
from sippy.SipFrom import SipFrom
from sippy.SipHeader import SipHeader
from sippy.SipRequest import SipRequest
from sippy.SipTo import SipTo
from sippy.SipTransactionManager import SipTransactionManager
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout
from sippy.UA import UA
from sippy.UaStateConnected import UaStateConnected
from sippy.Udp_server import Udp_server, Udp_server_opts

from engine.result import SessionResult
from t38.sdp import (
    AnswerPlan,
    LocalSdp,
    SdpError,
    SessionDescription,
    T38Session,
    answer_offer,
    audio_line,
    image_line,
    offer_declaration,
    read_answer,
)
from t38.trunk import SipConfig, Trunk, TrunkConfigError, parse_hostport

log = logging.getLogger("t38.sip")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class CallFailure(Exception):
    """A call (or its switch to T.38) that did not happen, with a SessionResult-style reason."""

    error_code: str
    error_message: str
    sip_code: int = 0
    retryable: bool = True

    def __str__(self) -> str:
        return self.error_message

    def to_result(self, role: str = "send") -> SessionResult:
        return SessionResult(success=False, role=role, error_phase="A", error_code=self.error_code,
                             error_message=self.error_message, retryable=self.retryable)


_FAILURES: dict[int, tuple[str, str, bool]] = {
    486: ("busy", "remote busy", True), 600: ("busy", "remote busy", True),
    408: ("no_answer", "no answer", True), 480: ("no_answer", "no answer", True),
    487: ("no_answer", "no answer", True),
    404: ("not_found", "number not found", False), 604: ("not_found", "number not found", False),
    484: ("not_found", "number incomplete", False), 410: ("not_found", "number gone", False),
    401: ("forbidden", "forbidden (authentication failed)", False),
    407: ("forbidden", "forbidden (proxy authentication failed)", False),
    403: ("forbidden", "forbidden", False), 603: ("rejected", "call declined", False),
}
T38_REFUSAL_CODES = (488, 415, 606)


def failure_for_status(code: int, reason: str, *, t38: bool = False, retry_t38: bool = True) -> CallFailure:
    """Map a SIP final response to a clear reason (``t38`` when it answered our T.38 offer)."""
    detail = f"SIP {code} {reason}".strip()
    if t38 and code in T38_REFUSAL_CODES:
        return CallFailure("t38_refused", f"remote refused T.38 ({detail})", code, retry_t38)
    if code in _FAILURES:
        error_code, text, retryable = _FAILURES[code]
        return CallFailure(error_code, f"{text} ({detail})", code, retryable)
    if code in (488, 415, 606):
        return CallFailure("media_refused", f"remote refused our media offer ({detail})", code, False)
    return CallFailure("sip_error", f"call failed ({detail})", code, code >= 500 or code == 0)


@dataclass
class T38Media:
    """What the engine needs to run T.38 on this call."""

    sock: socket.socket                     # bound, non-blocking UDP socket for UDPTL
    local_address: tuple[str, int]
    remote_address: tuple[str, int]         # from the far end's SDP (send there; accept its source too)
    params: T38Session


@dataclass(frozen=True)
class CallEnd:
    reason: str            # "local hangup", "remote hangup", "failed", ...
    by: str                # "local" | "remote"
    sip_code: int = 0


@dataclass(frozen=True)
class RegistrationState:
    trunk: str
    state: str             # "unregistered" | "registering" | "registered" | "failed"
    code: int = 0
    reason: str = ""
    expires_at: float = 0.0      # wall-clock time the registration runs out
    refreshes: int = 0
    changed_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# The sippy thread


def _log_sippy_exception(msg: str, f: Any = None, extra: str | None = None) -> None:
    """Stands in for sippy's dump_exception: one clear log line instead of a traceback on stdout."""
    import sys
    exc = sys.exc_info()[1]
    first = (extra or "").strip().splitlines()[:1]
    log.warning("sippy: %s: %s%s", msg, exc, f" (first line: {first[0][:120]!r})" if first else "")
    log.debug("sippy exception detail", exc_info=True)


for _module in (_ed_module, _tm_module, _udp_module, _ns_module):
    _module.dump_exception = _log_sippy_exception  # type: ignore[attr-defined]


class _SippyThread:
    """The one thread per process that runs sippy's dispatcher."""

    _instance: _SippyThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sippy-ed2", daemon=True)
        self.thread.start()
        self.ready.wait(10)

    @classmethod
    def get(cls) -> _SippyThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _run(self) -> None:
        # ED2 was built on the importing thread; its wake-up on call_from_thread only reaches the
        # thread that created its ElPeriodic, so rebuild that here (else every hop costs ~10 ms).
        ED2.my_ident = threading.get_ident()
        ED2.elp = ElPeriodic(100.0)
        ED2.elp.CFT_enable(signal.SIGURG)
        self.ready.set()
        while True:
            try:
                ED2.loop()
            except Exception:  # pragma: no cover - ED2 already logs callback errors
                log.exception("sippy dispatcher loop failed; restarting it")

    @staticmethod
    def post(fn: Callable[..., Any], *args: Any) -> None:
        ED2.callFromThread(_guarded, fn, args)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the sippy thread and await its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def job() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                loop.call_soon_threadsafe(_settle, fut, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)

        ED2.callFromThread(job)
        return await fut


def _guarded(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Run a command on the sippy thread; a bug in it is logged with its traceback, not lost."""
    try:
        fn(*args)
    except Exception:
        log.exception("SIP command %s failed", getattr(fn, "__qualname__", fn))


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _later(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """A sippy-thread timer."""
    return Timeout(fn, seconds, 1, *args)


class _SipTrace:
    """sippy's message logger, routed to logging at DEBUG."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", "".join(str(a) for a in args).rstrip())


class _UdpServer(Udp_server):
    """Udp_server that advertises a configured public address in Via/Contact."""

    def __init__(self, global_config: dict, uopts: Any):
        self._public = global_config.get("_fax_public")
        super().__init__(global_config, uopts)

    def getSIPaddr(self) -> Any:  # noqa: N802 - sippy's name
        if self._public:
            host, port = self._public
            return ((host, port or self.uopts.laddress[1]), self.transport)
        return super().getSIPaddr()


class _UdpOpts(Udp_server_opts):
    """One receiver thread per socket: sippy's default three can hand a 200 and the re-INVITE
    right behind it to the dispatcher in the wrong order (seen on loopback as a spurious 481)."""

    nworkers = 1


_TRANSACTION_TIMERS = ("teA", "teB", "teC", "teD", "teE", "teF", "teG")   # sippy's per-transaction timers


class _TransactionManager(SipTransactionManager):
    model_udp_server = (_UdpServer, _UdpOpts)

    def newTransaction(self, msg: Any, resp_cb: Any = None, laddress: Any = None, userv: Any = None,  # noqa: N802
                       cb_ifver: int = 1, compact: bool = False, t: Any = None) -> Any:
        if userv is None and str(msg.getTarget()[1]).lower() == "tcp":
            userv = self.global_config.get("_fax_tcp")
            if userv is None:
                raise RuntimeError("a request for a TCP target, but SIP over TCP is not enabled")
        return super().newTransaction(msg, resp_cb, laddress, userv, cb_ifver, compact, t)

    def shutdown(self) -> None:
        """Cancel every transaction's timers first: the dispatcher thread outlives this endpoint (other
        endpoints of the process use it), and a retransmission firing after sippy's shutdown found
        the manager's state gone ("'NoneType' object is not subscriptable")."""
        for table in (self.tclient, self.tserver):
            for t in list((table or {}).values()):
                for name in _TRANSACTION_TIMERS:
                    timer = getattr(t, name, None)
                    if timer is not None:
                        timer.cancel()
                        setattr(t, name, None)
        super().shutdown()

    def transmitData(self, userv: Any, data: Any, address: Any, cachesum: Any = None,  # noqa: N802
                     lossemul: int = 0) -> None:
        if self.global_config is None:    # shut down: a late timer of ours has nothing left to send on
            return
        super().transmitData(userv, data, address, cachesum, lossemul)

    def handleIncoming(self, data_in: Any, ra: Any, server: Any, rtime: Any) -> None:  # noqa: N802
        if isinstance(data_in, bytes):
            try:
                data_in.decode()
            except UnicodeDecodeError:
                log.warning("dropped a datagram from %s: not UTF-8 text, not SIP", ra)
                return
        if len(data_in) >= 32 and not data_in[:8].upper().startswith(b"SIP/2.0 " if isinstance(data_in, bytes)
                                                                       else "SIP/2.0 "):
            head = data_in[:200]
            head = head.decode(errors="replace") if isinstance(head, bytes) else head
            first = head.split("\n", 1)[0].strip()
            parts = first.split()
            if len(parts) != 3 or parts[2].upper() != "SIP/2.0":
                log.warning("malformed SIP from %s: bad request line %r; dropped", ra, first[:80])
                return
        try:
            super().handleIncoming(data_in, ra, server, rtime)
        except Exception as exc:   # sippy 2.5 raises TypeError from its own 400 path on a bad body
            reason, answered = str(exc), ""
            text = data_in.decode() if isinstance(data_in, bytes) else data_in
            try:
                SipRequest(text)
            except SipParseError as parse_error:
                reason = str(parse_error)
                resp = parse_error.sip_response
                if resp is not None:
                    with contextlib.suppress(Exception):
                        self.transmitMsg(server, resp, resp.getHFBody("via").getTAddr(), None)
                        answered = "; answered 400"
            except Exception as other:
                reason = str(other)
            log.warning("malformed SIP from %s: %s%s", ra, reason, answered or "; dropped")


class _TcpServer:
    """SIP over TCP for sippy, which has UDP and WebSocket only: the duck-typed server it sends through.

    One listening socket (same port as UDP), one reader thread per connection that cuts the byte
    stream into messages by Content-Length and hands each to the transaction manager on the sippy
    thread, and one sender thread that connects on demand and writes.  Responses go back on the
    connection the request came in on (looked up by the request's Via sent-by, as sippy addresses
    responses by Via)."""

    transport = "tcp"

    def __init__(self, side: _SippySide, address: tuple[str, int], public: tuple[str, int] | None):
        self.side = side
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(address)
        self.listener.listen(64)
        self.laddress = self.listener.getsockname()[:2]
        self.public = public
        self.uopts = Udp_server_opts(self.laddress, None)
        self.conns: dict[tuple[str, int], socket.socket] = {}
        self.aliases: dict[tuple[str, int], tuple[str, int]] = {}
        self.lock = threading.Lock()
        self.queue: Any = __import__("queue").Queue()
        self.running = True
        threading.Thread(target=self._accept, name="sip-tcp-accept", daemon=True).start()
        threading.Thread(target=self._sender, name="sip-tcp-send", daemon=True).start()

    def getSIPaddr(self) -> Any:  # noqa: N802 - sippy's name
        if self.public:
            return ((self.public[0], self.public[1] or self.laddress[1]), "tcp")
        return (self.laddress, "tcp")

    def addr2str(self, address: Any) -> str:
        return f"tcp:{address[0]}:{address[1]}"

    def send_to(self, data: Any, address: Any, delayed: bool = False) -> None:
        self.queue.put((data.encode() if isinstance(data, str) else data, tuple(address)))

    def _accept(self) -> None:
        while self.running:
            try:
                conn, addr = self.listener.accept()
            except OSError:
                return
            self._adopt(conn, addr[:2])

    def _adopt(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        with self.lock:
            self.conns[addr] = conn
        threading.Thread(target=self._reader, args=(conn, addr), name="sip-tcp-read", daemon=True).start()

    def _connection(self, address: tuple[str, int]) -> socket.socket | None:
        with self.lock:
            key = address if address in self.conns else self.aliases.get(address)
            conn = self.conns.get(key) if key else None
        if conn is not None:
            return conn
        try:
            conn = socket.create_connection(address, timeout=5)
        except OSError as exc:
            log.warning("SIP over TCP: cannot connect to %s:%d: %s", address[0], address[1], exc)
            return None
        conn.settimeout(None)
        self._adopt(conn, address)
        return conn

    def _sender(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            data, address = item
            conn = self._connection(address)
            if conn is None:
                continue
            try:
                conn.sendall(data)
            except OSError as exc:
                log.warning("SIP over TCP: send to %s:%d failed: %s", address[0], address[1], exc)
                self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        with self.lock:
            for key in [k for k, v in self.conns.items() if v is conn]:
                del self.conns[key]
                for alias in [a for a, k in self.aliases.items() if k == key]:
                    del self.aliases[alias]
        with contextlib.suppress(OSError):
            conn.close()

    def _reader(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        from sippy.Network_server import Remote_address
        from sippy.Time.MonoTime import MonoTime

        buf = b""
        while self.running:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while True:
                buf = buf.lstrip(b"\r\n")
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    if len(buf) > 65536:
                        log.warning("SIP over TCP from %s: no end of headers in 64 KiB; closing", addr)
                        self._drop(conn)
                        return
                    break
                head = buf[:head_end].decode(errors="replace")
                m = re.search(r"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head, re.I | re.M)
                length = int(m.group(1)) if m else 0
                total = head_end + 4 + length
                if len(buf) < total:
                    break
                message, buf = buf[:total], buf[total:]
                via = re.search(r"^(?:via|v)[ \t]*:[ \t]*SIP/2\.0/TCP[ \t]+([^;:\s]+)(?::(\d+))?", head, re.I | re.M)
                if via and not head.startswith("SIP/2.0"):
                    with self.lock:
                        self.aliases[(via.group(1), int(via.group(2) or 5060))] = addr
                tm = self.side.gc.get("_sip_tm")
                if tm is not None:
                    ED2.callFromThread(tm.handleIncoming, message, Remote_address(addr, "tcp"), self, MonoTime())
        self._drop(conn)

    def shutdown(self) -> None:
        self.running = False
        with contextlib.suppress(OSError):
            self.listener.close()
        self.queue.put(None)
        with self.lock:
            conns = list(self.conns.values())
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()


class _FaxConnected(UaStateConnected):
    """Connected state that answers an offer-less re-INVITE with our current SDP.

    sippy turns a re-INVITE without a body into a fake "hold" offer; for fax that would tear the
    T.38 stream down.  RFC 3261 says such a re-INVITE asks us for an offer: we send our current
    SDP (so a refresh keeps the session as it is)."""

    def _recvRequestInvite(self, req: Any) -> Any:  # noqa: N802
        if req.getBody() is None:
            core = getattr(self.ua, "fax_core", None)
            if core is not None:
                core.offerless_reinvite()
            self.ua.uasResp = req.genResponse(100, "Trying", server=self.ua.local_ua)
            self.ua.global_config["_sip_tm"].sendResponse(self.ua.uasResp)
            self.ua.sendUasResponse(200, "OK", self.ua.lSDP, (self.ua.lContact,))
            return None
        return super()._recvRequestInvite(req)

    recv_request_handlers = dict(UaStateConnected.recv_request_handlers, INVITE=_recvRequestInvite)


class _FaxUA(UA):
    UaStateConnected = _FaxConnected
    fax_core: _CallCore | None = None


class _Try(CCEventTry):
    """CCEventTry that fixes up R-URI, To and From for a trunk before the INVITE goes out."""

    setup: Callable[[Any], None] | None = None

    def onUacSetupComplete(self, uac: Any) -> None:  # noqa: N802
        if self.setup is not None:
            self.setup(uac)


def _bind_udp(address: str, ports: tuple[int, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    first, last = ports
    candidates = [0] if (first, last) == (0, 0) else random.sample(range(first, last + 1), last - first + 1)
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        sock.setblocking(False)
        return sock
    raise OSError(errno.EADDRINUSE, f"no free media port in {first}-{last}")


def _route_to(host: str) -> str:
    """Our local address on the route to ``host``."""
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((socket.gethostbyname(host), 9))
            return probe.getsockname()[0]
        finally:
            probe.close()
    except OSError:
        return "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# One call, sippy side


class _CallCore:
    """The sippy-thread half of a call: owns the UA, the sockets and the SDP state."""

    def __init__(self, side: _SippySide, direction: str, trunk: Trunk, peer_host: str):
        self.side = side
        self.direction = direction
        self.trunk = trunk
        self.t38 = trunk.t38
        self.ua: _FaxUA | None = None
        self.media_host = side.media_host(peer_host)
        self.local = LocalSdp(self.media_host, side.config.user_agent)
        self.audio_sock = _bind_udp(side.media_bind, side.config.media_ports)
        self.udptl_sock: socket.socket | None = None
        self.mode = ""                         # "", "audio", "t38"
        self.offer: SessionDescription | None = None   # our outstanding offer
        self.offer_text = ""
        self.pending = ""                      # "", "invite", "reinvite", "late-offer"
        self.established_remote = None        # remote SDP body (sippy MsgBody) last agreed
        self.finished = False
        self.t38_session: T38Session | None = None
        self.call_id = ""
        self.awaiting_ack = False
        self.t38_deferred = False

    # -- helpers
    def post(self, name: str, *args: Any) -> None:
        self.side.post(self, name, *args)

    def udptl(self) -> socket.socket:
        if self.udptl_sock is None:
            self.udptl_sock = _bind_udp(self.side.media_bind, self.side.config.media_ports)
        return self.udptl_sock

    def udptl_port(self) -> int:
        return self.udptl().getsockname()[1]

    def audio_port(self) -> int:
        return self.audio_sock.getsockname()[1]

    def t38_media(self, session: T38Session) -> T38Media:
        sock = self.udptl()
        host = sock.getsockname()[0]
        return T38Media(sock, (self.media_host if host in ("0.0.0.0", "::") else host, sock.getsockname()[1]),
                        session.remote_address, session)

    def body(self, text: str) -> MsgBody:
        return MsgBody(text)

    def initial_media(self) -> list:
        media = [audio_line(self.audio_port(), self.trunk.codecs)]
        if self.trunk.t38_in_initial_invite:
            media.append(image_line(self.udptl_port(), offer_declaration(self.t38)))
        return media

    # -- outbound
    def start_outbound(self, number: str, caller: tuple[str, str]) -> None:
        trunk = self.trunk
        gc = self.side.gc
        self.ua = ua = _FaxUA(gc, event_cb=self.on_event, username=trunk.digest_user or None,
                              password=trunk.password or None, nh_address=trunk.next_hop,
                              dead_cbs=(self.on_dead,), nh_transport=trunk.transport)
        ua.fax_core = self
        ua.local_ua = self.side.config.user_agent
        ua.kaInterval = self.side.config.keepalive_interval
        if trunk.outbound_proxy:
            ua.outbound_proxy = parse_hostport(trunk.outbound_proxy)
        text = self.local.propose(self.initial_media())
        self.offer, self.offer_text = SessionDescription.parse(text), text
        self.pending = "invite"
        cli, name = caller
        domain = trunk.sip_domain
        full_number = trunk.dial_prefix + number

        def setup(uac: Any) -> None:
            uac.rTarget = SipURL(username=full_number, host=domain)
            uac.rUri = SipTo(address=SipAddress(url=SipURL(username=full_number, host=domain), hadbrace=True))
            lurl = SipURL(username=cli, host=domain)
            uac.lUri = SipFrom(address=SipAddress(url=lurl, hadbrace=True, name=name or None))
            uac.lUri.setTag(uac.lTag)

        event = _Try((SipCallId(), cli, full_number, self.body(text), None, name or None))
        event.setup = setup
        ua.recvEvent(event)
        self.call_id = str(ua.cId)
        self.side.calls[self.call_id] = self

    # -- inbound
    def start_inbound(self, ua: _FaxUA) -> None:
        self.ua = ua
        ua.fax_core = self
        ua.local_ua = self.side.config.user_agent
        ua.kaInterval = self.side.config.keepalive_interval

    def accept(self) -> None:
        """Answer the INVITE (the router said yes)."""
        ua = self.ua
        if ua is None or self.finished or ua.state is None or ua.state.sname not in ("Trying(UAS)", "Ringing(UAS)"):
            return
        if ua.rSDP is None:      # late offer: we offer in the 200, the ACK answers
            text = self.local.propose(self.initial_media())
            self.offer, self.offer_text = SessionDescription.parse(text), text
            self.pending = "late-offer"
            ua.recvEvent(CCEventPreConnect((200, "OK", self.body(text))))
            return
        try:
            plan = self.plan_answer(str(ua.rSDP), allow_audio=True)
        except SdpError as exc:
            self.refuse_setup(exc.status, "Not Acceptable Here" if exc.status == 488 else "Bad Request", str(exc))
            return
        text = self.local.propose(plan.media)
        self.local.commit(text)
        self.established_remote = ua.rSDP.getCopy()
        self.awaiting_ack = True     # PreConnect = 200 with ack_wait, so we learn when the ACK is in
        ua.recvEvent(CCEventPreConnect((200, "OK", self.body(text))))
        self.adopt(plan)
        self.post("connected", self.mode)

    def reject(self, code: int, reason: str) -> None:
        if self.ua is not None and not self.finished:
            self.ua.recvEvent(CCEventFail((code, reason)))
            self.finish_failed(code, reason)

    def refuse_setup(self, code: int, reason: str, why: str) -> None:
        log.warning("call %s: refusing INVITE with %d %s: %s", self.call_id, code, reason, why)
        self.reject(code, reason)

    # -- offer/answer
    def plan_answer(self, text: str, *, allow_audio: bool) -> AnswerPlan:
        offer = SessionDescription.parse(text)
        return answer_offer(offer, audio_port=self.audio_port(), udptl_port=self.udptl_port(),
                            codecs=self.trunk.codecs, t38=self.t38, allow_audio=allow_audio)

    def adopt(self, plan: AnswerPlan) -> None:
        if plan.mode == "t38" and plan.t38 is not None:
            if plan.t38.remote_address[0] in ("0.0.0.0", "::") and self.t38_session is not None:
                # an old-style hold (c=0.0.0.0) during T.38: keep sending where we did
                log.info("call %s: re-INVITE with c=%s during T.38; keeping the UDPTL peer %s:%d", self.call_id,
                         plan.t38.remote_address[0], *self.t38_session.remote_address)
                plan.t38 = dataclasses.replace(plan.t38, remote_address=self.t38_session.remote_address)
            changed = self.t38_session is None or self.t38_session.remote_address != plan.t38.remote_address
            self.mode = "t38"
            self.t38_session = plan.t38
            if changed:
                self.post("t38", self.t38_media(plan.t38))
        elif not self.mode:
            self.mode = "audio"

    def send_t38_offer(self) -> None:
        ua = self.ua
        if self.awaiting_ack and not self.finished:
            self.t38_deferred = True      # no new INVITE while our 200 is un-ACKed (RFC 3261 14.1)
            return
        if ua is None or self.finished or self.mode == "t38" or self.pending:
            self.post("t38_offer_skipped", self.mode, self.pending)
            return
        if ua.state is None or ua.state.sname != "Connected":
            self.post("t38_offer_skipped", self.mode, ua.state.sname if ua.state else "none")
            return
        current = self.local.media or []
        media = []
        replaced = False
        for m in current:
            if m.is_rtp_audio and m.port != 0 and not replaced:
                media.append(image_line(self.udptl_port(), offer_declaration(self.t38)))
                replaced = True
            else:
                media.append(m)
        if not replaced:
            media = [image_line(self.udptl_port(), offer_declaration(self.t38))]
        text = self.local.propose(media)
        self.offer, self.offer_text = SessionDescription.parse(text), text
        self.pending = "reinvite"
        if ua.lSDP is None and self.local.text:
            ua.lSDP = self.body(self.local.text)   # sippy drops lSDP after a failed re-INVITE
        log.info("call %s: sending T.38 re-INVITE", self.call_id)
        ua.recvEvent(CCEventUpdate(self.body(text)))

    def offerless_reinvite(self) -> None:
        log.info("call %s: re-INVITE without SDP answered with our current SDP (%s)", self.call_id,
                 self.mode or "no media")
        self.post("refreshed", "offerless")

    def hangup(self) -> None:
        ua = self.ua
        if ua is None or self.finished:
            self.finish("local hangup", "local", 0)
            return
        if ua.state is not None and ua.state.sname.startswith(("Trying(UAS)", "Ringing(UAS)")):
            ua.recvEvent(CCEventFail((480, "Temporarily Unavailable")))
        else:
            ua.recvEvent(CCEventDisconnect())
        self.finish("local hangup", "local", 0)

    # -- sippy events
    def on_event(self, event: Any, ua: Any) -> None:
        try:
            self._on_event(event, ua)
        except Exception:
            log.exception("call %s: error handling %s; ending the call", self.call_id, event)
            with contextlib.suppress(Exception):
                ua.recvEvent(CCEventDisconnect())
            self.finish("internal error", "local", 500)

    def _on_event(self, event: Any, ua: Any) -> None:
        data = event.getData()
        if isinstance(event, CCEventTry):
            self.on_inbound_try(data, ua)
        elif isinstance(event, CCEventRing):
            if data and data[0] not in (100,):
                self.post("ringing", data[0])
        elif isinstance(event, CCEventConnect):
            self.on_connect(data, ua)
        elif isinstance(event, CCEventUpdate):
            self.on_remote_offer(event, ua)
        elif isinstance(event, CCEventFail):
            self.on_fail(data, ua)
        elif isinstance(event, CCEventDisconnect):
            self.finish("remote hangup", "remote", 0)

    def on_inbound_try(self, data: Any, ua: Any) -> None:
        call_id, caller, called, body, _auth, caller_name = data
        self.call_id = str(call_id)
        self.side.calls[self.call_id] = self
        if body is not None:
            try:
                self.plan_answer(str(body), allow_audio=True)   # validate now; answer once routed
            except SdpError as exc:
                reason = "Not Acceptable Here" if exc.status == 488 else "Bad Request"
                _later(0, self.refuse_setup, exc.status, reason, f"offer from {caller!r}: {exc}")
                return
        self.post("incoming", called or "", caller or "", caller_name or "")

    def on_connect(self, data: Any, ua: Any) -> None:
        code, _reason, body = data[0], data[1], data[2]
        if code == "ACK":
            self.awaiting_ack = False
            if self.pending == "late-offer" and self.offer is not None:   # the answer to our late offer
                self.pending = ""
                self.apply_answer(body, initial=True)
            elif body is None and self.established_remote is not None:
                ua.rSDP = self.established_remote.getCopy()   # sippy clears it on a body-less ACK
            if self.t38_deferred:
                self.t38_deferred = False
                self.send_t38_offer()
            return
        pending, self.pending = self.pending, ""
        if pending == "invite":
            self.apply_answer(body, initial=True)
        elif pending == "reinvite":
            self.apply_answer(body, initial=False)
        elif pending == "late-offer":
            self.pending = "late-offer"

    def apply_answer(self, body: Any, *, initial: bool) -> None:
        assert self.offer is not None
        if body is None:
            self.abort(f"{'200' if initial else 're-INVITE 200'} without SDP answer", "sip_error")
            return
        try:
            result = read_answer(self.offer, SessionDescription.parse(str(body)), self.t38)
        except SdpError as exc:
            log.warning("call %s: unusable SDP answer: %s", self.call_id, exc)
            if initial:
                self.abort(f"unusable SDP answer: {exc}", "media_refused")
            else:
                self.post("t38_refused", 488, f"unusable answer to T.38 offer: {exc}")
            return
        self.local.commit(self.offer_text)
        self.established_remote = body.getCopy()
        if result.mode == "t38" and result.t38 is not None:
            self.mode = "t38"
            self.t38_session = result.t38
            if initial:
                self.post("connected", "t38")
            self.post("t38", self.t38_media(result.t38))
        elif result.mode == "audio" and initial:
            self.mode = "audio"
            self.post("connected", "audio")
        else:
            log.info("call %s: T.38 refused in the answer: %s", self.call_id, result.reason or result.mode)
            if initial:
                self.mode = "audio"
                self.post("connected", "audio")
            else:
                self.post("t38_refused", 200, result.reason or "answer kept audio")

    def on_remote_offer(self, event: Any, ua: Any) -> None:
        body = event.getData()
        previous = self.established_remote
        try:
            plan = self.plan_answer(str(body), allow_audio=self.mode != "t38")
        except SdpError as exc:
            code = exc.status
            log.warning("call %s: re-INVITE refused with %d: %s", self.call_id, code, exc)
            ua.recvEvent(CCEventFail((code, "Not Acceptable Here" if code == 488 else "Bad Request")))
            ua.rSDP = previous.getCopy() if previous is not None else None   # sippy forgets it on a failure
            return
        text = self.local.propose(plan.media)
        self.local.commit(text)
        ua.recvEvent(CCEventConnect((200, "OK", self.body(text))))
        self.established_remote = body.getCopy()
        was = self.mode
        self.adopt(plan)
        if was == "t38" and plan.mode == "t38":
            self.post("refreshed", "t38")
        elif plan.mode == "t38":
            log.info("call %s: accepted the far end's T.38 re-INVITE", self.call_id)

    def on_fail(self, data: Any, ua: Any) -> None:
        code, reason = (data[0], data[1]) if data else (500, "Failed")
        pending, self.pending = self.pending, ""
        if pending == "reinvite":
            if self.local.text is not None:
                ua.lSDP = self.body(self.local.text)
            if code == 491:
                self.post("glare")
            else:
                self.post("t38_refused", code, reason)
            return
        if pending in ("invite", "late-offer"):
            self.finish_failed(code, reason)
            return
        # failure of an answer we gave (e.g. our 488) or of the remote's request: nothing to end

    def abort(self, why: str, error_code: str) -> None:
        log.warning("call %s: %s; hanging up", self.call_id, why)
        if self.ua is not None:
            self.ua.recvEvent(CCEventDisconnect())
        self.post("aborted", error_code, why)
        self.finish("failed", "local", 0)

    def finish_failed(self, code: int, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        self.post("failed", code, reason)
        self.release()

    def finish(self, reason: str, by: str, code: int) -> None:
        if self.finished:
            return
        self.finished = True
        self.post("ended", reason, by, code)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.audio_sock.close()
        self.side.calls.pop(self.call_id, None)

    def on_dead(self, ua: Any) -> None:
        if not self.finished:
            self.finish("remote hangup", "remote", 0)
        self.ua = None


# ---------------------------------------------------------------------------------------------
# Registration, sippy side


class _Registration:
    def __init__(self, side: _SippySide, trunk: Trunk):
        self.side = side
        self.trunk = trunk
        self.host, self.port = parse_hostport(trunk.registrar)
        self.call_id = SipCallId()
        self.cseq = random.randint(1, 10000)
        self.from_tag = secrets.token_hex(8)
        self.auth: Any = None
        self.auth_tries = 0
        self.timer: Any = None
        self.stopped = False
        self.state = RegistrationState(trunk.name, "unregistered", changed_at=time.time())
        self.refreshes = 0

    def publish(self, state: str, code: int = 0, reason: str = "", expires_at: float = 0.0) -> None:
        self.state = RegistrationState(self.trunk.name, state, code, reason, expires_at, self.refreshes, time.time())
        self.side.post(None, "registration", self.state)

    def request(self, expires: int) -> Any:
        domain = self.trunk.domain or self.host
        aor = SipURL(username=self.trunk.username, host=domain)
        fr0m = SipFrom(address=SipAddress(url=aor.getCopy()))
        fr0m.setTag(self.from_tag)
        to = SipTo(address=SipAddress(url=aor.getCopy()))
        contact = SipContact(address=SipAddress(url=SipURL(username=self.trunk.username)))
        self.cseq += 1
        target = parse_hostport(self.trunk.outbound_proxy) if self.trunk.outbound_proxy else (self.host, self.port)
        req = SipRequest(method="REGISTER", ruri=SipURL(host=domain, port=self.port if not self.trunk.domain else None),
                         fr0m=fr0m, to=to, contact=contact, callid=self.call_id, cseq=self.cseq,
                         target=(target, self.trunk.transport), expires=SipExpires(number=expires),
                         user_agent=self.side.config.user_agent)
        if self.auth is not None:
            req.appendHeader(SipHeader(body=self.auth))
        return req

    def send(self, expires: int | None = None) -> None:
        if self.stopped and expires != 0:
            return
        self.timer = None
        expires = self.trunk.register_expires if expires is None else expires
        req = self.request(expires)
        self.last_request = req
        self.last_expires = expires
        if expires and self.state.state != "registered":
            self.publish("registering")
        self.side.gc["_sip_tm"].newTransaction(req, self.reply)

    def reply(self, resp: Any) -> None:
        code, reason = resp.getSCode()
        if code < 200:
            return
        if self.last_expires == 0 and not (code in (401, 407) and self.auth_tries < 2):
            self.publish("unregistered", code, reason)
            return
        if 200 <= code < 300:
            self.auth_tries = 0
            expires = self.granted_expires(resp)
            self.refreshes += 1
            self.publish("registered", code, reason, time.time() + expires)
            refresh = max(1.0, min(expires * 0.8, expires - 5.0)) if expires > 10 else max(1.0, expires / 2)
            self.timer = _later(refresh, self.send)
            return
        if code in (401, 407) and self.auth_tries < 2:
            header = "www-authenticate" if code == 401 else "proxy-authenticate"
            if resp.countHFs(header) > 0:
                challenge = resp.getHFBody(header)
                supported, qop = challenge.supportedAlgorithm()
                if supported:
                    self.auth_tries += 1
                    ruri = str(self.last_request.getRURI())
                    self.auth = challenge.genAuthHF(self.trunk.digest_user, self.trunk.password, "REGISTER", ruri,
                                                    qop=qop)
                    self.send(self.last_expires)
                    return
        self.auth_tries = 0
        self.auth = None
        why = "wrong username or password" if code in (401, 403, 407) else reason
        log.warning("trunk %s: registration failed: %d %s", self.trunk.name, code, why)
        self.publish("failed", code, f"{code} {reason}" if why == reason else f"{code} {reason}: {why}")
        if not self.stopped:
            self.timer = _later(self.side.register_retry, self.send)

    def granted_expires(self, resp: Any) -> int:
        values = []
        for contact in resp.getHFBodys("contact"):
            if getattr(contact, "asterisk", False):
                continue
            value = contact.address.params.get("expires")
            if value and str(value).isdigit():
                values.append(int(value))
        if not values and resp.countHFs("expires") > 0:
            values.append(resp.getHFBody("expires").getNum())
        return min(values) if values else self.last_expires

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.state.state == "registered":
            self.send(0)


# ---------------------------------------------------------------------------------------------
# The endpoint, sippy side


class _SippySide:
    """The endpoint's state on the sippy thread: transaction manager, calls, registrations."""

    register_retry = 30.0

    def __init__(self, endpoint: SipEndpoint, config: SipConfig):
        self.endpoint = endpoint
        self.config = config
        self.loop = endpoint.loop
        self.calls: dict[str, _CallCore] = {}
        self.registrations: dict[str, _Registration] = {}
        self.gc: dict[str, Any] = {}
        self.media_bind = config.media_address or config.bind_address
        self.trunk_hosts: dict[str, Trunk] = {}

    def post(self, core: _CallCore | None, name: str, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.endpoint._deliver, core, name, args)
        except RuntimeError:      # loop closed: nobody is listening any more
            pass

    def media_host(self, peer_host: str) -> str:
        if self.config.public_address:
            return parse_hostport(self.config.public_address, default_port=0)[0]
        if self.media_bind not in ("0.0.0.0", "::", ""):
            return self.media_bind
        return _route_to(peer_host)

    def start(self) -> tuple[str, int]:
        config = self.config
        self.gc = {"_sip_address": config.bind_address, "_sip_port": config.port, "_sip_logger": _SipTrace()}
        if config.public_address:
            self.gc["_fax_public"] = parse_hostport(config.public_address, default_port=0)
        tm = _TransactionManager(self.gc, self.on_request)
        self.gc["_sip_tm"] = tm
        server = tm.l4r.getServer(None) if tm.l4r.fixed else next(iter(tm.l4r.cache_l2s.values()))
        host, port = server.uopts.laddress[:2]
        if config.tcp:
            public = self.gc.get("_fax_public")
            try:
                self.gc["_fax_tcp"] = _TcpServer(self, (config.bind_address, int(port)), public)
            except OSError as exc:
                if config.port != 0:
                    tm.shutdown()
                    raise OSError(exc.errno, f"SIP over TCP cannot listen on port {port}: {exc.strerror}") from None
                # an OS-chosen UDP port whose number is taken for TCP: any TCP port will do
                self.gc["_fax_tcp"] = _TcpServer(self, (config.bind_address, 0), public)
                log.info("SIP over TCP listens on port %d (UDP port %d was taken for TCP)",
                         self.gc["_fax_tcp"].laddress[1], port)
        for trunk in config.trunks:
            for value in (trunk.proxy, trunk.registrar, trunk.outbound_proxy):
                if value:
                    with contextlib.suppress(OSError, TrunkConfigError):
                        self.trunk_hosts.setdefault(socket.gethostbyname(parse_hostport(value)[0]), trunk)
        return host, int(port)

    def start_registrations(self) -> None:
        for trunk in self.config.trunks:
            if trunk.register:
                reg = _Registration(self, trunk)
                self.registrations[trunk.name] = reg
                reg.send()

    def stop(self) -> None:
        for reg in self.registrations.values():
            reg.stop()
        for core in list(self.calls.values()):
            core.hangup()

    def shutdown(self) -> None:
        tm = self.gc.get("_sip_tm")
        if tm is not None:
            tm.shutdown()
        tcp = self.gc.get("_fax_tcp")
        if tcp is not None:
            tcp.shutdown()

    def trunk_for(self, source_host: str) -> Trunk | None:
        return self.trunk_hosts.get(source_host)

    def on_request(self, req: Any, sip_t: Any) -> Any:
        method = req.getMethod()
        source = req.getSource()
        if req.getHFBody("to").getTag() is not None:
            if method == "ACK":
                return None
            log.info("%s from %s for an unknown dialog: 481", method, source)
            return (req.genResponse(481, "Call/Transaction Does Not Exist", server=self.config.user_agent), None, None)
        if method == "OPTIONS":
            resp = req.genResponse(200, "OK", server=self.config.user_agent)
            resp.appendHeader(SipHeader(name="allow", bodys=ALLOW))
            resp.appendHeader(SipHeader(name="accept", bodys="application/sdp"))
            return (resp, None, None)
        if method == "INVITE":
            return self.on_invite(req, sip_t)
        if method in ("ACK",):
            return None
        log.info("%s from %s not handled here: 405", method, source)
        resp = req.genResponse(405, "Method Not Allowed", server=self.config.user_agent)
        resp.appendHeader(SipHeader(name="allow", bodys=ALLOW))
        return (resp, None, None)

    def on_invite(self, req: Any, sip_t: Any) -> Any:
        source_host = req.getSource()[0]
        trunk = self.trunk_for(source_host)
        if trunk is None and not self.config.accept_unknown_sources:
            log.warning("INVITE from %s matches no trunk: 403", source_host)
            return (req.genResponse(403, "Forbidden", server=self.config.user_agent), None, None)
        if req.countHFs("contact") == 0:
            log.warning("INVITE from %s without Contact: 400", source_host)
            return (req.genResponse(400, "Bad Request - Missing Contact", server=self.config.user_agent), None, None)
        trunk = trunk or self.config.inbound_defaults()
        core = _CallCore(self, "inbound", trunk, source_host)
        ua = _FaxUA(self.gc, event_cb=core.on_event, dead_cbs=(core.on_dead,))
        core.start_inbound(ua)
        self.post(core, "created", trunk)
        return ua.recvRequest(req, sip_t)


# ---------------------------------------------------------------------------------------------
# The asyncio side


Router = Callable[[str, str, Trunk], "Any | Awaitable[Any]"]
IncomingHandler = Callable[["SipCall"], "Awaitable[None] | None"]


class SipCall:
    """One call as the engine sees it (asyncio side)."""

    def __init__(self, endpoint: SipEndpoint, core: _CallCore, direction: str, trunk: Trunk):
        self.endpoint = endpoint
        self._core = core
        self.direction = direction
        self.trunk = trunk
        self.number = ""
        self.caller = ""
        self.caller_name = ""
        self.account: Any = None
        self.mode = ""
        loop = endpoint.loop
        self.answered: asyncio.Future[None] = loop.create_future()
        self.t38_ready: asyncio.Future[T38Media] = loop.create_future()
        self.ended: asyncio.Future[CallEnd] = loop.create_future()
        for fut in (self.answered, self.t38_ready):
            fut.add_done_callback(_consume)
        self.media: T38Media | None = None
        self.t38_requests = 0
        self.glare_count = 0
        self.refreshes = 0
        self.failure: CallFailure | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._media_deadline: float | None = None
        self._media_timeout: float | None = None
        self._media_listeners: list[Callable[[T38Media], None]] = []

    @property
    def call_id(self) -> str:
        return self._core.call_id

    @property
    def is_ended(self) -> bool:
        return self.ended.done()

    # -- commands
    def request_t38(self) -> None:
        """Send our T.38 re-INVITE now (normally the trunk policy does this)."""
        if self.is_ended or self.t38_ready.done():
            return
        self.t38_requests += 1
        _SippyThread.post(self._core.send_t38_offer)

    async def hangup(self) -> None:
        """End the call (BYE, CANCEL or a final refusal, as the state needs) and free its sockets."""
        if not self.is_ended:
            _SippyThread.post(self._core.hangup)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), 5)
        self._close_media()

    def watch_media(self, timeout: float) -> None:
        """Hang up if :meth:`media_activity` is not called for ``timeout`` seconds."""
        self._media_timeout = timeout
        self._media_deadline = time.monotonic() + timeout
        self._spawn(self._media_watchdog())

    def media_activity(self) -> None:
        if self._media_timeout is not None:
            self._media_deadline = time.monotonic() + self._media_timeout

    def on_media_change(self, callback: Callable[[T38Media], None]) -> None:
        """Called when a re-INVITE moves the far UDPTL address during T.38."""
        self._media_listeners.append(callback)

    # -- internals
    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _close_media(self) -> None:
        if self.media is not None:
            with contextlib.suppress(OSError):
                self.media.sock.close()
        elif self._core.udptl_sock is not None:
            with contextlib.suppress(OSError):
                self._core.udptl_sock.close()

    def _fail(self, failure: CallFailure) -> None:
        if self.failure is None:
            self.failure = failure
        for fut in (self.answered, self.t38_ready):
            if not fut.done():
                fut.set_exception(failure)

    async def _media_watchdog(self) -> None:
        while not self.is_ended and self._media_deadline is not None:
            left = self._media_deadline - time.monotonic()
            if left <= 0:
                log.warning("call %s: no T.38 media for %.0f s; hanging up", self.call_id, self._media_timeout or 0)
                self._fail(CallFailure("media_timeout", f"far end silent for {self._media_timeout:.0f} s"))
                await self.hangup()
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), left)

    async def _t38_policy(self) -> None:
        trunk = self.trunk
        delay = trunk.t38_request_as_caller if self.direction == "outbound" else trunk.t38_request_as_callee
        start = time.monotonic()
        if delay is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.t38_ready), delay)
            if not self.t38_ready.done() and not self.is_ended:
                self.request_t38()
        left = trunk.t38_switch_timeout - (time.monotonic() - start)
        if left > 0 and not self.t38_ready.done():
            with contextlib.suppress(asyncio.TimeoutError, CallFailure):
                await asyncio.wait_for(asyncio.shield(self.t38_ready), left)
        if not self.t38_ready.done() and not self.is_ended:
            log.warning("call %s: no T.38 within %.0f s; hanging up", self.call_id, trunk.t38_switch_timeout)
            self._fail(CallFailure("t38_timeout", f"no T.38 within {trunk.t38_switch_timeout:.0f} s "
                                                  "(remote did not switch)", 0, trunk.retry_on_t38_refused))
            await self.hangup()

    async def _max_duration(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ended), self.trunk.max_call_duration)
        if not self.is_ended:
            log.warning("call %s: longer than %.0f s; hanging up", self.call_id, self.trunk.max_call_duration)
            await self.hangup()

    async def _glare_retry(self) -> None:
        self.glare_count += 1
        # RFC 3261 §14.1: the Call-ID owner waits 2.1-4 s, the other side 0-2 s.
        wait = random.uniform(2.1, 4.0) if self.direction == "outbound" else random.uniform(0.0, 2.0)
        log.info("call %s: glare (491); retrying T.38 in %.2f s unless the far end switches first", self.call_id, wait)
        with contextlib.suppress(asyncio.TimeoutError, CallFailure):
            await asyncio.wait_for(asyncio.shield(self.t38_ready), wait)
        if not self.t38_ready.done() and not self.is_ended and self.glare_count <= 5:
            self.request_t38()

    def _on(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "connected":
            self.mode = args[0]
            if not self.answered.done():
                self.answered.set_result(None)
            self._spawn(self._max_duration())
            if self.mode != "t38":
                self._spawn(self._t38_policy())
        elif name == "t38":
            media: T38Media = args[0]
            first = self.media is None
            self.media = media
            self.mode = "t38"
            if not self.t38_ready.done():
                self.t38_ready.set_result(media)
            if not first:
                for cb in self._media_listeners:
                    cb(media)
        elif name == "glare":
            self._spawn(self._glare_retry())
        elif name == "t38_refused":
            code, reason = args
            if code in T38_REFUSAL_CODES:
                failure = failure_for_status(code, reason, t38=True, retry_t38=self.trunk.retry_on_t38_refused)
            else:      # a 2xx that declined the image stream, or another error to our T.38 offer
                detail = reason if code == 200 else f"SIP {code} {reason}"
                failure = CallFailure("t38_refused", f"remote refused T.38 ({detail})", code,
                                      self.trunk.retry_on_t38_refused)
            log.warning("call %s: %s; hanging up", self.call_id, failure.error_message)
            self._fail(failure)
            self._spawn(self.hangup())
        elif name == "refreshed":
            self.refreshes += 1
        elif name == "aborted":
            self._fail(CallFailure(args[0], args[1], 0, True))
        elif name == "failed":
            code, reason = args
            self._fail(failure_for_status(code, reason))
            self._ended(CallEnd("failed", "remote", code))
        elif name == "ended":
            reason, by, code = args
            if by == "remote":
                where = "during T.38" if self.mode == "t38" else "before T.38"
                self._fail(CallFailure("remote_hangup", f"remote hung up {where}", code, True))
            else:
                self._fail(CallFailure("local_hangup", "call ended locally", code, True))
            self._ended(CallEnd(reason, by, code))

    def _ended(self, end: CallEnd) -> None:
        if not self.ended.done():
            self.ended.set_result(end)
        self.endpoint._forget(self)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if end.by == "remote" or self.media is None:
            # the engine still owns an active T.38 socket until it calls hangup(); otherwise free now
            if self.media is None:
                self._close_media()


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class SipEndpoint:
    """A SIP user agent for fax: outbound calls, inbound calls routed by DID, trunk registrations."""

    def __init__(self, config: SipConfig, loop: asyncio.AbstractEventLoop | None = None, *,
                 router: Router | None = None, on_incoming: IncomingHandler | None = None):
        config.validate()
        if config.port == 0 and config.bind_address in ("0.0.0.0", "::"):
            raise TrunkConfigError("sip.port 0 needs a specific bind_address")
        for trunk in config.trunks:
            if trunk.transport == "tcp" and not config.tcp:
                raise TrunkConfigError(f"trunk {trunk.name}: transport 'tcp' needs sip.tcp = true")
            if trunk.transport == "tcp" and trunk.outbound_proxy:
                raise TrunkConfigError(f"trunk {trunk.name}: an outbound_proxy over TCP is not supported "
                                       "(sippy sends to an outbound proxy over UDP only)")
        self.config = config
        self.loop: asyncio.AbstractEventLoop = loop  # type: ignore[assignment]  # set by start()
        self.router = router
        self.on_incoming = on_incoming
        self._side = _SippySide(self, config)
        self._calls: dict[_CallCore, SipCall] = {}
        self._pending_trunks: dict[_CallCore, Trunk] = {}
        self._registrations: dict[str, RegistrationState] = {
            t.name: RegistrationState(t.name, "unregistered") for t in config.trunks if t.register}
        self._reg_waiters: list[asyncio.Future[None]] = []
        self._route_tasks: set[asyncio.Future[Any]] = set()
        self.address: tuple[str, int] = ("", 0)
        self.started = False
        self.stats = {"incoming": 0, "rejected_unknown_did": 0, "rejected_busy": 0, "outgoing": 0}

    # -- lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._side.loop = self.loop
        thread = _SippyThread.get()
        self.address = await thread.run(self._side.start)
        await thread.run(self._side.start_registrations)
        self.started = True
        log.info("SIP endpoint listening on %s:%d (udp)", *self.address)

    async def close(self) -> None:
        if not self.started:
            return
        self.started = False
        for task in list(self._route_tasks):
            task.cancel()
        thread = _SippyThread.get()
        await thread.run(self._side.stop)
        calls = list(self._calls.values())
        if calls:
            await asyncio.wait([asyncio.ensure_future(asyncio.shield(c.ended)) for c in calls], timeout=3)
        for call in calls:
            call._close_media()
        for name in [n for n, r in self._registrations.items() if r.state == "registered"]:
            with contextlib.suppress(TimeoutError):   # the un-REGISTER's answer, briefly
                await self.wait_registration(name, 2.0, states=("unregistered", "failed"))
        await thread.run(self._side.shutdown)

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- registrations
    def registration_state(self, trunk: str | None = None) -> Any:
        """One trunk's RegistrationState, or all of them as a dict (for the CLI and /health)."""
        if trunk is not None:
            return self._registrations.get(trunk)
        return dict(self._registrations)

    def health(self) -> dict[str, Any]:
        """For the API's health output and the CLI: listening address, calls, registrations."""
        return {
            "listening": f"{self.address[0]}:{self.address[1]}" if self.started else "",
            "tcp": bool(self.config.tcp),
            "active_calls": {t.name: self.active_calls(t.name) for t in self.config.trunks},
            "registrations": {name: state.to_dict() for name, state in self._registrations.items()},
            "stats": dict(self.stats),
        }

    async def wait_registration(self, trunk: str, timeout: float = 10.0,
                                states: tuple[str, ...] = ("registered", "failed")) -> RegistrationState:
        deadline = time.monotonic() + timeout
        while True:
            state = self._registrations.get(trunk)
            if state is None:
                raise TrunkConfigError(f"trunk {trunk!r} does not register")
            if state.state in states:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"trunk {trunk}: registration still {state.state} after {timeout} s")
            waiter = self.loop.create_future()
            self._reg_waiters.append(waiter)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter, left)

    # -- calls
    def active_calls(self, trunk: str | None = None) -> int:
        return sum(1 for c in self._calls.values() if trunk is None or c.trunk.name == trunk)

    async def call(self, number: str, trunk: str | Trunk, *, caller: str | None = None,
                   caller_name: str | None = None) -> SipCall:
        """Dial ``number`` on ``trunk``; returns once answered, raises :class:`CallFailure` otherwise."""
        if not self.started:
            raise RuntimeError("SipEndpoint.start() first")
        trunk_obj = self.config.trunk(trunk) if isinstance(trunk, str) else trunk
        if not number or not all(ch.isalnum() or ch in "+*#-._" for ch in number):
            raise CallFailure("bad_number", f"cannot dial {number!r}", 0, False)
        if self.active_calls(trunk_obj.name) >= trunk_obj.max_calls:
            raise CallFailure("channel_busy", f"trunk {trunk_obj.name} is at its limit of "
                                              f"{trunk_obj.max_calls} concurrent calls", 0, True)
        peer_host = trunk_obj.next_hop[0]
        core = await _SippyThread.get().run(_CallCore, self._side, "outbound", trunk_obj, peer_host)
        call = SipCall(self, core, "outbound", trunk_obj)
        call.number = number
        call.caller, call.caller_name = trunk_obj.caller_id.choose(caller, caller_name)
        self._calls[core] = call
        self.stats["outgoing"] += 1
        _SippyThread.post(core.start_outbound, number, (call.caller, call.caller_name))
        try:
            await asyncio.wait_for(asyncio.shield(call.answered), trunk_obj.answer_timeout)
        except TimeoutError:
            log.info("call to %s on %s: no answer in %.0f s; cancelling", number, trunk_obj.name,
                     trunk_obj.answer_timeout)
            call._fail(CallFailure("no_answer", f"no answer within {trunk_obj.answer_timeout:.0f} s", 0, True))
            await call.hangup()
        except asyncio.CancelledError:
            await call.hangup()
            raise
        if call.failure is not None and not call.answered.done():
            raise call.failure
        if call.answered.done() and call.answered.exception() is not None:
            raise call.answered.exception()  # type: ignore[misc]
        return call

    # -- events from the sippy thread
    def _forget(self, call: SipCall) -> None:
        self._calls.pop(call._core, None)

    def _deliver(self, core: _CallCore | None, name: str, args: tuple[Any, ...]) -> None:
        if core is None:
            if name == "registration":
                state: RegistrationState = args[0]
                self._registrations[state.trunk] = state
                waiters, self._reg_waiters = self._reg_waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            return
        if name == "created":
            self._pending_trunks[core] = args[0]
            return
        if name == "incoming":
            self._incoming(core, *args)
            return
        call = self._calls.get(core)
        if call is None:
            if name in ("ended", "failed"):
                self._pending_trunks.pop(core, None)
            return
        try:
            call._on(name, args)
        except Exception:
            log.exception("call %s: error handling %s", call.call_id, name)

    def _incoming(self, core: _CallCore, did: str, caller: str, caller_name: str) -> None:
        trunk = self._pending_trunks.pop(core, None) or core.trunk
        call = SipCall(self, core, "inbound", trunk)
        call.number, call.caller, call.caller_name = did, caller, caller_name
        self._calls[core] = call
        self.stats["incoming"] += 1
        task = asyncio.ensure_future(self._route(call))
        self._route_tasks.add(task)
        task.add_done_callback(self._route_tasks.discard)

    async def _route(self, call: SipCall) -> None:
        core = call._core
        try:
            account = None
            if self.router is not None:
                account = self.router(call.number, call.caller, call.trunk)
                if inspect.isawaitable(account):
                    account = await account
            else:
                account = "default"
        except Exception:
            log.exception("routing the call to %r failed; answering 500", call.number)
            _SippyThread.post(core.reject, 500, "Server Internal Error")
            return
        if account is None:
            self.stats["rejected_unknown_did"] += 1
            log.warning("inbound call to unknown DID %r from %r: 404 Not Found", call.number, call.caller)
            _SippyThread.post(core.reject, 404, "Not Found")
            return
        if self.active_calls(call.trunk.name) > call.trunk.max_calls:
            self.stats["rejected_busy"] += 1
            log.warning("inbound call to %r: trunk %s at its limit of %d calls: 486", call.number,
                        call.trunk.name, call.trunk.max_calls)
            _SippyThread.post(core.reject, 486, "Busy Here")
            return
        call.account = account
        _SippyThread.post(core.accept)
        if self.on_incoming is not None:
            try:
                await asyncio.wait_for(asyncio.shield(call.answered), 10)
            except (TimeoutError, CallFailure):
                return
            result = self.on_incoming(call)
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception:
                    log.exception("inbound handler for call %s failed", call.call_id)
                    await call.hangup()


# ---------------------------------------------------------------------------------------------
# From a negotiated call to a PHY


async def open_call_phy(call: SipCall, clock: Any, *, calling: bool, pacing: bool = True,
                        watch_media: float | None = None, bye_grace: float = 2.0) -> Any:
    """A ``t38.phy.T38Phy`` on the call's UDPTL socket, sized by the negotiated T.38 parameters.

    Every received datagram feeds the call's silence watchdog (if ``watch_media`` seconds is
    given); a re-INVITE that moves the far end re-targets the socket; a BYE from the far end
    hangs the PHY up ``bye_grace`` seconds later, so a T.30 session waiting on it ends."""
    from t38.phy import T38Phy, T38PhyOptions
    from t38.udptl import UdptlConfig, UdptlEndpoint

    media = await call.t38_ready
    params = media.params
    phy = T38Phy(None, clock, T38PhyOptions(calling=calling, version=params.version,
                                            rate_management=params.rate_management, pacing=pacing))
    config = UdptlConfig(redundancy=params.redundancy_depth if params.error_correction == "redundancy" else 0,
                         fec=params.error_correction == "fec", max_datagram=params.remote_max_datagram)

    def on_ifp(seq: int, ifp: bytes | None) -> None:
        call.media_activity()
        phy.feed_ifp(seq, ifp)

    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: UdptlEndpoint(on_ifp, config, media.remote_address, clock=clock), sock=media.sock)
    phy.attach(endpoint)

    def moved(new: T38Media) -> None:
        endpoint.remote = new.remote_address

    call.on_media_change(moved)

    def ended(fut: asyncio.Future[CallEnd]) -> None:
        # A receiver hangs up right after our DCN: give T.30 a moment to finish phase E on its own.
        # Ended here (silence watchdog, switch timer): stop the PHY now.
        if fut.cancelled():
            return
        delay = bye_grace if fut.result().by == "remote" else 0.0
        asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(phy.hangup()))

    call.ended.add_done_callback(ended)
    if watch_media:
        call.watch_media(watch_media)
    return phy


# ---------------------------------------------------------------------------------------------
# One fax call for the command line (``faxengine send/receive --via sip:...``)


class SipViaError(ValueError):
    """A ``--via sip:`` value or SIP configuration that cannot be used."""


def load_sip_config(path: str | None = None) -> SipConfig | None:
    """The ``[sip]`` table of a TOML file (``$FAXENGINE_SIP_CONFIG`` when no path is given)."""
    import os
    import tomllib

    from t38.trunk import sip_config_from_dict

    path = path or os.environ.get("FAXENGINE_SIP_CONFIG")
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SipViaError(f"SIP configuration {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SipViaError(f"SIP configuration {path}: {exc}") from None
    try:
        return sip_config_from_dict(data.get("sip", {}))
    except TrunkConfigError as exc:
        raise SipViaError(f"SIP configuration {path}: {exc}") from None


def _direct_config(where: str, role: str, base: SipConfig | None) -> tuple[SipConfig, Trunk]:
    try:
        host, port = parse_hostport(where)
    except TrunkConfigError as exc:
        raise SipViaError(f"sip: {where!r} is neither a configured trunk nor HOST[:PORT] ({exc})") from None
    defaults = (base.default_trunk if base else None) or Trunk(name="direct", proxy="127.0.0.1")
    if role == "send":
        trunk = dataclasses.replace(defaults, name="direct", proxy=f"{host}:{port}", registrar="", register=False,
                                    outbound_proxy="")
        bind = base.bind_address if base and base.bind_address not in ("0.0.0.0", "::") else _route_to(host)
        return SipConfig(bind_address=bind, port=0, trunks=(trunk,), user_agent="faxengine"), trunk
    return SipConfig(bind_address=host, port=port, default_trunk=defaults), defaults


async def run_sip_fax(number: str, where: str, *, role: str, clock: Any, session_factory: Callable[..., Any],
                      pages: Any = None, on_page: Any = None, timeout: float | None = None,
                      pacing: bool = True, config_path: str | None = None) -> SessionResult:
    """Place (``send``) or take (``receive``) one SIP call, switch to T.38, run one T.30 session.

    ``where`` is a trunk of the SIP configuration, or ``HOST[:PORT]``: the peer to dial, or the
    address to listen on.  SIP failures come back as a failed SessionResult with a clear reason."""
    base = load_sip_config(config_path)
    trunk_names = [t.name for t in base.trunks] if base else []
    if where in trunk_names:
        assert base is not None
        config, trunk = base, base.trunk(where)
    else:
        config, trunk = _direct_config(where, role, base)
    try:
        config.validate()
    except TrunkConfigError as exc:
        raise SipViaError(str(exc)) from None
    if role == "send":
        return await _send_one(config, trunk, number, clock, session_factory, pages, pacing)
    return await _receive_one(config, trunk, number, clock, session_factory, on_page, timeout, pacing)


async def _send_one(config: SipConfig, trunk: Trunk, number: str, clock: Any, session_factory: Callable[..., Any],
                    pages: Any, pacing: bool) -> SessionResult:
    endpoint = SipEndpoint(config)
    try:
        await endpoint.start()
    except OSError as exc:
        raise SipViaError(f"cannot open the SIP port: {exc.strerror or exc}") from None
    try:
        if trunk.register:
            state = await endpoint.wait_registration(trunk.name, 15)
            if state.state != "registered":
                return CallFailure("forbidden" if state.code in (401, 403, 407) else "sip_error",
                                   f"registration with trunk {trunk.name} failed: {state.reason}", state.code,
                                   state.code not in (401, 403, 407)).to_result("send")
        try:
            call = await endpoint.call(number, trunk)
            phy = await open_call_phy(call, clock, calling=True, pacing=pacing)
        except CallFailure as failure:
            return failure.to_result("send")
        try:
            result = await session_factory(phy, clock, send_pages=pages, calling=True).run()
        finally:
            await call.hangup()
        return result
    finally:
        await endpoint.close()


async def _receive_one(config: SipConfig, trunk: Trunk, number: str, clock: Any,
                       session_factory: Callable[..., Any], on_page: Any, timeout: float | None,
                       pacing: bool) -> SessionResult:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[SessionResult] = loop.create_future()

    def route(did: str, caller: str, _trunk: Trunk) -> str | None:
        if done.done() or (number and did != number):
            return None
        return "cli"

    async def take(call: SipCall) -> None:
        try:
            phy = await open_call_phy(call, clock, calling=False, pacing=pacing)
        except CallFailure as failure:
            if not done.done():
                done.set_result(failure.to_result("receive"))
            return
        try:
            result = await session_factory(phy, clock, on_page=on_page, calling=False).run()
        finally:
            await call.hangup()
        if not done.done():
            done.set_result(result)

    endpoint = SipEndpoint(config, router=route, on_incoming=take)
    try:
        await endpoint.start()
    except OSError as exc:
        raise SipViaError(f"cannot listen for SIP on {config.bind_address}:{config.port}: "
                          f"{exc.strerror or exc}") from None
    try:
        log.info("waiting for a SIP call%s on %s:%d", f" to {number}" if number else "", *endpoint.address)
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            return SessionResult(role="receive", error_phase="A", error_code="no_call",
                                 error_message=f"no SIP call within {timeout:g} s")
    finally:
        await endpoint.close()
