"""``faxengine rig``: run the virtual modem rig until SIGINT/SIGTERM.

Output on stdout, one line each, flushed: ``PTY <name> <path>`` when ready, ``RESULT <json>`` per
call, ``SUMMARY <json>`` at the end.  Logs go to stderr.

``--class2 2.0`` (or ``2``) also puts a Class 2.0 (Class 2) modem in front of the rig's Class 1 modem
(answer and call modes) and prints ``PTY class20 <path>``: drive that one with a Class 2 driver.  Its
T.30 comes from the engine (modem/ does not import engine.t30): ``faxengine rig`` registers it with
:func:`set_class20_session_factory`; ``python -m modem.rig`` alone cannot offer it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .options import DIAL_RESULTS, MODES

if TYPE_CHECKING:
    from .rig import RigConfig

# Nothing heavy at the top: ``faxengine`` imports this module to build its parser on every run, so the rig
# (numpy, PIL, spandsp) and asyncio load only when ``faxengine rig`` runs.

# session_factory(phy, clock, *, send_pages, on_page, calling, ident, ecm) for the Class 2.0 modem
_class20_session_factory: Callable[..., Any] | None = None


def set_class20_session_factory(factory: Callable[..., Any] | None) -> None:
    """The engine hands in its T.30 (see modem.rig.class20) so ``--class2`` can run."""
    global _class20_session_factory
    _class20_session_factory = factory


def class20_session_factory() -> Callable[..., Any] | None:
    """The T.30 handed in by the engine (None until it has been), for in-process users of Class20Modem."""
    return _class20_session_factory


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", choices=MODES,
                   help="pair: two modems wired together; answer: a spandsp fax machine answers and "
                        "receives; call: a spandsp fax machine calls the modem and sends")
    p.add_argument("--tx", dest="tx_tiff", metavar="TIFF", help="call mode: the TIFF the fax machine sends")
    p.add_argument("--output-dir", metavar="DIR", help="answer mode: where received faxes are written")
    p.add_argument("--line-delay-ms", type=float, default=0.0, help="one-way line delay (default 0)")
    p.add_argument("--speed", type=float, default=1.0, help="time factor, 2 = twice real time (default 1)")
    p.add_argument("--symbol-error-rate", type=float, default=0.0,
                   help="probability that a 1/2400 s symbol is hit by a phase reversal (default 0)")
    p.add_argument("--noise-dbm0", type=float, default=None, help="add white noise at this level")
    p.add_argument("--seed", type=int, default=1, help="seed of the line impairments")
    p.add_argument("--far-ecm", action="store_true", help="the spandsp fax machine offers ECM")
    p.add_argument("--far-modems", default="v17,v29,v27ter", help="modems the fax machine offers")
    p.add_argument("--far-max-bit-rate", type=int, default=None)
    p.add_argument("--far-ident", default="+1 555 0100", help="the fax machine's CSI/TSI")
    p.add_argument("--calls", type=int, default=1, help="call mode: calls to make, 0 = keep calling")
    p.add_argument("--call-delay", type=float, default=1.0, help="call mode: seconds before each call")
    p.add_argument("--ring-interval", type=float, default=3.0)
    p.add_argument("--max-rings", type=int, default=10)
    p.add_argument("--answer-delay", type=float, default=1.0, help="answer mode: seconds before pick-up")
    p.add_argument("--hangup-grace", type=float, default=5.0)
    p.add_argument("--number-result", action="append", default=[], metavar="NUMBER=RESULT",
                   help=f"what dialling NUMBER gives: {', '.join(DIAL_RESULTS)} (repeatable)")
    p.add_argument("--link-dir", help="also create DIR/<modem name> symlinks to the ptys")
    p.add_argument("--exit-after", type=int, default=0, metavar="N", help="stop after N call results")
    p.add_argument("--xonxoff", action="store_true", help="also signal flow control to the DTE as DC3/DC1")
    p.add_argument("--class2", dest="class2_dialect", choices=("2.0", "2"), default=None,
                   help="answer/call modes: also run a Class 2.0 (or Class 2) modem in front of the rig's modem, "
                        "printed as PTY class20 PATH (our T.30 plays the modem's firmware)")
    p.add_argument("--class2-ecm", action="store_true", help="the Class 2.0 modem offers ECM")
    p.add_argument("--trace", action="store_true", help="log every DTE byte to stderr")
    p.add_argument("--log", action="store_true", help="spandsp protocol logs to stderr")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("rig", help="virtual Class 1 fax modems on pseudo-terminals (spandsp)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RigConfig:
    from .rig import RigConfig, RigError

    dial_results: dict[str, str] = {}
    for item in args.number_result:
        number, sep, result = item.partition("=")
        if not sep or not number:
            raise RigError(f"--number-result wants NUMBER=RESULT, got {item!r}")
        dial_results[number] = result
    return RigConfig(
        mode=args.mode, tx_tiff=args.tx_tiff, output_dir=args.output_dir, line_delay_ms=args.line_delay_ms,
        speed=args.speed, symbol_error_rate=args.symbol_error_rate, noise_dbm0=args.noise_dbm0, seed=args.seed,
        far_ecm=args.far_ecm, far_modems=tuple(m.strip() for m in args.far_modems.split(",") if m.strip()),
        far_max_bit_rate=args.far_max_bit_rate, far_ident=args.far_ident, calls=args.calls,
        call_delay=args.call_delay, ring_interval=args.ring_interval, max_rings=args.max_rings,
        answer_delay=args.answer_delay, hangup_grace=args.hangup_grace, dial_results=dial_results,
        link_dir=args.link_dir, xonxoff=args.xonxoff, trace=args.trace, log=args.log)


def run(args: argparse.Namespace) -> int:
    from .rig import RigError

    try:
        config = config_from_args(args)
        config.validate()
    except RigError as exc:
        print(f"faxengine rig: {exc}", file=sys.stderr)
        return 2
    dialect = getattr(args, "class2_dialect", None)
    if dialect and config.mode == "pair":
        print("faxengine rig: --class2 needs answer or call mode (the Class 2.0 modem talks to a fax machine)",
              file=sys.stderr)
        return 2
    if dialect and _class20_session_factory is None:
        print("faxengine rig: --class2 needs the engine's T.30: run it as `faxengine rig`", file=sys.stderr)
        return 2
    from modem.spandsp import SpandspUnavailable, require

    try:
        require()
    except SpandspUnavailable as exc:
        print(f"faxengine rig: {exc}", file=sys.stderr)
        return 2
    _configure_logging(args)
    from .serve import serve

    return serve(config, args.exit_after, dialect, bool(getattr(args, "class2_ecm", False)),
                 _class20_session_factory)


def _configure_logging(args: argparse.Namespace) -> None:
    import logging

    if args.trace or args.log:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
