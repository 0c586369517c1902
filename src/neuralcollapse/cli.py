"""Command-line entry point: ``neuralcollapse <command> ...``.

Each command lives beside the code it drives, in a module with a
``register(subparsers)`` function that adds its sub-parser and sets ``func``
(called with the parsed namespace; its return value is the exit status).
The modules are imported only when the parser is built, so a broken optional
piece cannot stop the others from working.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path of each command group, in the order shown by --help
COMMAND_MODULES: tuple[str, ...] = (
    "neuralcollapse.metrics.cli",  # measure
    "neuralcollapse.ufm.cli",  # ufm, ufm-sweep
    "neuralcollapse.train.cli",  # train
    "neuralcollapse.ntk.cli",  # ntk
    "neuralcollapse.viz.cli",  # report, demo
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="neuralcollapse",
        description="Measure, simulate and explain neural collapse.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # only a missing command module is tolerated; a missing dependency inside it is not
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as error:
        # bad input is the user's to fix: show the message, not a traceback
        print(f"neuralcollapse {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
