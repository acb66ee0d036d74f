"""``faxengine`` command line: the top of the layering, so it may compose every package's commands.

Each package contributes its subcommands through a ``commands.register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define register(subparsers); a module not yet written is simply absent.
COMMAND_MODULES = ("imaging.commands", "engine.commands", "modem.commands", "api.commands", "api.sip_commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faxengine", description="Fax engine: T.30 over T.38 and fax modems")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
