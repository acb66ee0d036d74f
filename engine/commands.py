"""``faxengine send | receive``: one fax over a line named by ``--via`` (composed by api/cli.py).

Progress goes to stderr; the session's result record is the last line on stdout, as JSON.
Exit status: 0 success, 1 the fax failed, 2 bad input (file, options) before any call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.result import SessionResult

# asyncio, engine.via and the rig are imported by the handlers: every faxengine command builds this
# module's parsers, and only send/receive/rig need them.

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
RESOLUTIONS = ("auto", "standard", "fine", "superfine")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("send", help="send a fax (FILE: PDF, TIFF, image or text)")
    p.add_argument("file", help="document to send; a TIFF-F is sent pixel for pixel when the far end takes it")
    p.add_argument("--to", required=True, metavar="NUMBER", help="destination number (recorded; routing is --via)")
    p.add_argument("--via", required=True,
                   help="line: udptl:HOST:PORT (bare T.38/UDPTL), class1:PORT, class2:PORT or class2.0:PORT (modem), "
                        "sip:NUMBER@TRUNK or sip:NUMBER@HOST[:PORT] (SIP + T.38; trunks from --config)")
    p.add_argument("--local-port", type=int, default=0, metavar="P", help="our UDP port (default: any)")
    p.add_argument("--resolution", choices=RESOLUTIONS, default="auto",
                   help="page resolution (auto: a TIFF's own, else fine)")
    _common(p)
    p.set_defaults(func=_run(_send))

    p = subparsers.add_parser("receive", help="wait for one fax and write its pages as TIFF-F and PDF")
    p.add_argument("--via", required=True,
                   help="line: udptl:LOCAL_PORT[@HOST:PORT], class1:PORT, class2:PORT or class2.0:PORT (modem), "
                        "sip:[DID]@TRUNK or sip:[DID]@HOST:PORT (SIP + T.38: wait for a call)")
    p.add_argument("--rings", type=int, default=1, metavar="N", help="modem lines: answer on the N-th RING")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for the pages: fax-YYYYmmdd-HHMMSS.tif (TIFF-F) and .pdf")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="seconds to wait for the caller (default 120)")
    _common(p)
    p.set_defaults(func=_run(_receive))


def prepare(args: argparse.Namespace) -> None:
    """Called by api/cli.py before the chosen command runs: the rig gets the engine's T.30 only when it runs."""
    if args.command == "rig":
        _register_rig_class20()


def _class20_session(phy, clock, *, send_pages, on_page, calling, ident, ecm):  # noqa: ANN001, ANN202
    """Our T.30 as the firmware of the rig's Class 2.0 modem (``faxengine rig answer --class2 2.0``)."""
    from engine.t30 import T30Config, T30Session

    return T30Session(phy, clock, T30Config(ident=(ident or "")[:20], ecm=ecm), send_pages=send_pages,
                      on_page=on_page, calling=calling)


def _register_rig_class20() -> None:
    """modem/ cannot import engine.t30, so the engine hands the rig's Class 2.0 modem its T.30 here."""
    from modem.rig import commands as rig_commands  # light: spandsp loads only when the rig runs

    rig_commands.set_class20_session_factory(_class20_session)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ecm", action=argparse.BooleanOptionalAction, default=True, help="error correction mode")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the engine's TOML configuration; its [sip] table names the trunks of --via sip: "
                        "(default: $FAXENGINE_SIP_CONFIG)")
    p.add_argument("--max-speed", type=int, default=14400, choices=(2400, 4800, 7200, 9600, 12000, 14400))
    p.add_argument("--t38-version", type=int, default=0, choices=(0, 1, 2, 3))
    p.add_argument("--ident", default="", help='our fax ident (TSI/CSI), e.g. "+1 555 0100" (max 20)')
    p.add_argument("--redundancy", type=int, default=3, metavar="N", help="UDPTL redundancy depth (default 3)")
    p.add_argument("--max-datagram", type=int, default=400, metavar="N", help="far T38FaxMaxDatagram (default 400)")
    p.add_argument("--bind", default="0.0.0.0", metavar="ADDR", help="local address of the UDP socket")
    p.add_argument("--no-pacing", action="store_true",
                   help="send T.38 data as fast as possible instead of at line speed (tests, TCP-like peers)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _run(handler):
    def run(args: argparse.Namespace) -> int:
        import asyncio

        from engine.via import ViaError

        try:
            _check(args)
            return asyncio.run(handler(args))
        except (ViaError, _BadInput) as exc:
            print(f"faxengine {args.command}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return run


class _BadInput(Exception):
    pass


def _check(args: argparse.Namespace) -> None:
    if len(args.ident) > 20:
        raise _BadInput("--ident is limited to 20 characters")
    if not 0 <= args.redundancy <= 10:
        raise _BadInput("--redundancy must be 0..10")
    if not 100 <= args.max_datagram <= 65507:
        raise _BadInput("--max-datagram must be 100..65507")
    if getattr(args, "local_port", 0) and not 0 < args.local_port < 65536:
        raise _BadInput("--local-port must be 1..65535")
    if getattr(args, "timeout", 1) <= 0:
        raise _BadInput("--timeout must be positive")
    if getattr(args, "rings", 1) < 1:
        raise _BadInput("--rings must be at least 1")


class _Progress:
    """One stderr line per change of phase/page/speed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last: tuple | None = None
        self.start = time.monotonic()

    def __call__(self, info: dict) -> None:
        key = (info.get("phase"), info.get("page"), info.get("speed"), info.get("ecm"))
        if self.quiet or key == self.last:
            return
        self.last = key
        speed = f"{info['speed']} bit/s" if info.get("speed") else "-"
        print(f"[{time.monotonic() - self.start:6.1f}s] phase {info.get('phase')}  page {info.get('page', 0)}  "
              f"{speed}{'  ECM' if info.get('ecm') else ''}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace):
    from engine.t30 import T30Config

    modems = tuple(m for m, floor in (("v17", 7200), ("v29", 7200), ("v27ter", 2400)) if args.max_speed >= floor)
    return T30Config(ident=args.ident, ecm=args.ecm, max_speed=args.max_speed, modems=modems)


def _load_pages(path: str, resolution: str) -> list:
    from imaging.convert import convert
    from imaging.errors import ImagingError

    if not os.path.isfile(path):
        raise _BadInput(f"{path}: no such file")
    try:
        if resolution == "auto":
            resolution = _tiff_resolution(path) or "fine"
        return list(convert(path, resolution=resolution))
    except ImagingError as exc:
        raise _BadInput(f"{path}: {exc}") from None


def _tiff_resolution(path: str) -> str | None:
    """The resolution of a fax TIFF's first page, so a TIFF-F is sent as it is."""
    from imaging.errors import ImagingError
    from imaging.page import Y_DPI
    from imaging.tiff_f import read_tiff_f

    with open(path, "rb") as fh:
        if fh.read(4) not in (b"II*\x00", b"MM\x00*"):
            return None
    try:
        first = next(read_tiff_f(path))
    except (ImagingError, StopIteration):
        return None
    return next((name for name, dpi in Y_DPI.items() if dpi == first.page.y_dpi), None)


def _emit(result: SessionResult, extra: dict[str, Any] | None = None) -> int:
    record = result.to_dict()
    record.update(extra or {})
    print(json.dumps(record, sort_keys=True), flush=True)
    return EXIT_OK if result.success else EXIT_FAILED


async def _send(args: argparse.Namespace) -> int:
    from engine.clock import MonotonicClock
    from engine.t30 import T30Session
    from engine.via import call_runner, opener, parse_via

    via = parse_via(args.via, "send")
    pages = _load_pages(args.file, args.resolution)
    progress = _Progress(args.quiet)
    progress.note(f"{len(pages)} page(s) from {args.file}; calling {args.to} via {via.scheme}:{via.text}")
    clock = MonotonicClock()
    runner = call_runner(via)
    if runner is not None:       # modem lines: the modem side dials and runs the call (T.30 injected)
        result = await runner(via, "send", args, clock, pages=pages, progress=progress,
                              session_factory=lambda phy, clk, **kw: T30Session(phy, clk, _config(args),
                                                                                 progress=progress, **kw))
        progress.note("sent" if result.success else f"failed: {result.error_message}")
        return _emit(result, {"to": args.to})
    phy = await opener(via)(via, "send", args, clock)
    try:
        session = T30Session(phy, clock, _config(args), send_pages=pages, calling=True, progress=progress)
        result = await session.run()
    finally:
        with contextlib.suppress(Exception):
            await phy.hangup()
    progress.note("sent" if result.success else f"failed: {result.error_message}")
    return _emit(result, {"to": args.to})


async def _receive(args: argparse.Namespace) -> int:
    import asyncio

    from engine.clock import MonotonicClock
    from engine.result import SessionResult
    from engine.t30 import T30Session
    from engine.via import call_runner, opener, parse_via

    via = parse_via(args.via, "receive")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _BadInput(f"cannot create {out}: {exc.strerror}") from None
    progress = _Progress(args.quiet)
    clock = MonotonicClock()
    received: list = []
    runner = call_runner(via)
    if runner is not None:       # modem lines: wait for RING, answer, run the call (T.30 injected)
        result = await runner(via, "receive", args, clock, on_page=lambda page, _bad: received.append(page),
                              progress=progress,
                              session_factory=lambda phy, clk, **kw: T30Session(phy, clk, _config(args),
                                                                                 progress=progress, **kw))
        if received:
            result.pages = _write_pages(out, received)
        progress.note(f"received {len(received)} page(s)" if result.success else f"failed: {result.error_message}")
        return _emit(result)
    phy = await opener(via)(via, "receive", args, clock)
    try:
        transport = getattr(phy, "transport", None)
        if transport is not None and getattr(transport, "remote", "") is None:
            progress.note(f"waiting for a caller on UDP port {transport.local_address[1]}")
            deadline = time.monotonic() + args.timeout
            while transport.remote is None:
                if time.monotonic() >= deadline:
                    result = SessionResult(role="receive", error_phase="A", error_code="no_call",
                                           error_message=f"no caller within {args.timeout:g} s")
                    return _emit(result)
                await asyncio.sleep(0.05)
            progress.note(f"call from {transport.remote[0]}:{transport.remote[1]}")
        session = T30Session(phy, clock, _config(args), on_page=lambda page, _bad: received.append(page),
                             calling=False, progress=progress)
        result = await session.run()
    finally:
        with contextlib.suppress(Exception):
            await phy.hangup()
    if received:
        result.pages = _write_pages(out, received)
    progress.note(f"received {len(received)} page(s)" if result.success else f"failed: {result.error_message}")
    return _emit(result)


def _write_pages(out: Path, pages: list) -> list[str]:
    from imaging.pdf_out import tiff_to_pdf
    from imaging.tiff_f import write_tiff_f

    stamp = time.strftime("%Y%m%d-%H%M%S")
    tif = out / f"fax-{stamp}.tif"
    pdf = out / f"fax-{stamp}.pdf"
    write_tiff_f(tif, pages)
    tiff_to_pdf(tif, pdf)
    return [str(tif), str(pdf)]
