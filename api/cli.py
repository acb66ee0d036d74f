"""``faxengine`` command line: the top of the layering, so it may compose every package's commands.

Each package contributes its subcommands through a ``commands.register(subparsers)`` function, and may
define ``prepare(args)``, called once the command is chosen. Modules import heavy dependencies in their
handlers, not at the top: every run imports every commands module."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define register(subparsers); a module not yet written is simply absent.
COMMAND_MODULES = ("imaging.commands", "engine.commands", "modem.commands", "api.commands", "api.sip_commands")


def _command_modules() -> list:
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def build_parser(modules: list | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faxengine", description="Fax engine: T.30 over T.38 and fax modems")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules() if modules is None else modules:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    modules = _command_modules()
    args = build_parser(modules).parse_args(argv)
    for module in modules:          # a module may wire things up once the command is known (prepare(args))
        prepare = getattr(module, "prepare", None)
        if prepare is not None:
            prepare(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
