"""``faxengine modem …`` subcommands (and ``faxengine rig`` when the virtual rig is installed)."""

from __future__ import annotations

import argparse
import importlib
import sys


def _probe(args: argparse.Namespace) -> int:
    import asyncio

    from modem.at import ModemError
    from modem.dial import ModemLine
    from modem.probe import probe

    async def run() -> int:
        line = ModemLine(args.port, flow=args.flow, baudrate=args.baud)
        try:
            await line.open()
            async with asyncio.timeout(args.timeout):
                report = await probe(line)
        except (ModemError, OSError, TimeoutError) as exc:
            print(f"modem probe {args.port}: {exc}", file=sys.stderr)
            return 2
        finally:
            await line.close()
        if not args.json_only:
            print(report.table())
            print()
        print(report.to_json())
        return 0

    return asyncio.run(run())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("modem", help="fax modem tools (Class 1/2/2.0 over serial)")
    msub = p.add_subparsers(dest="modem_command", required=True, metavar="ACTION")
    pp = msub.add_parser("probe", help="identify a modem: identity, classes, modulations, ECM, quirks entry")
    pp.add_argument("port", metavar="PORT", help="serial device, e.g. /dev/ttyACM0")
    pp.add_argument("--flow", choices=("rtscts", "xonxoff", "none"), default="rtscts")
    pp.add_argument("--baud", type=int, default=19200)
    pp.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    pp.add_argument("--json", dest="json_only", action="store_true", help="print only the JSON")
    pp.set_defaults(func=_probe)
    try:    # light: the rig, and libspandsp, load only when `faxengine rig` runs (which reports a missing one)
        rig = importlib.import_module("modem.rig.commands")
    except ModuleNotFoundError as exc:
        if exc.name not in ("modem.rig", "modem.rig.commands"):
            raise
    else:
        rig.register(sub)
