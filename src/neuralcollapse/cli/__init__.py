"""Command-line entry point: ``neuralcollapse <command> ...``.

The command line is the top layer (docs/architecture.md): each command is a module of this
package with a ``register(subparsers)`` function that adds its sub-parser and sets ``func``
(called with the parsed namespace; its return value is the exit status). Nothing below this
package imports it. The modules are imported only when the parser is built, and each
imports the library code it drives only when it runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# module path of each command group, in the order shown by --help
COMMAND_MODULES: tuple[str, ...] = (
    "neuralcollapse.cli.measure",  # measure
    "neuralcollapse.cli.ufm",  # ufm, ufm-sweep
    "neuralcollapse.cli.train",  # train
    "neuralcollapse.cli.probe",  # probe
    "neuralcollapse.cli.ntk",  # ntk
    "neuralcollapse.cli.report",  # report, demo
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


def describe_os_error(error: OSError) -> str:
    """One line naming the path and what is wrong with it, and what to do."""
    path = error.filename if error.filename is not None else "a path"
    reason = error.strerror or str(error) or type(error).__name__
    a_file_in_the_way = "a file stands where a folder is needed; choose another path"
    hints = {
        NotADirectoryError: a_file_in_the_way,
        IsADirectoryError: "a folder stands where a file is needed; choose another name",
        PermissionError: "no permission to write there; choose a writable --out",
        FileExistsError: "remove it or choose another name",
        FileNotFoundError: "check the path; the folder of an output file must exist",
    }
    hint = next((text for kind, text in hints.items() if isinstance(error, kind)), "")
    if isinstance(error, FileExistsError) and os.path.isfile(path):
        hint = a_file_in_the_way  # mkdir(parents=True) met a file on the way
    return f"cannot use {path}: {reason}" + (f" ({hint})" if hint else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        # bad input is the user's to fix (a wrong value, a wrong type, a missing file): show
        # the message, not a traceback; a missing file the OS reported (an output's folder
        # that does not exist) is named like every other OSError
        if isinstance(error, FileNotFoundError) and error.errno is not None:
            message = describe_os_error(error)
        else:
            message = str(error)
        print(f"neuralcollapse {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`neuralcollapse measure f.npz | head`): stop quietly, as a
        # Unix tool killed by SIGPIPE would; stdout goes to /dev/null so the interpreter's
        # final flush cannot raise again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # a stdout without a file (captured)
            pass
        return 128 + 13
    except OSError as error:
        # an output path that is a file, a read-only folder, a full disk: the user's to fix
        print(f"neuralcollapse {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
