"""``python -m modem.rig MODE ...``: the same as ``faxengine rig``."""

import argparse
import sys

from .commands import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modem.rig", description="virtual Class 1 fax modem rig")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
