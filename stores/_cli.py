"""Helpers shared by the ``stiscube`` and ``cte`` command-line programs.

Each program's ``main(argv=None)`` builds an :class:`argparse.ArgumentParser` with
subcommands; :func:`run_cli` runs the chosen one, turns the project's own exceptions
and bad input into a one-line message on stderr and a non-zero exit status, and shows
the traceback only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from stores._version import __version__

__all__ = ["base_parser", "run_cli"]

#: exit status for bad input or a failed operation
EXIT_FAILURE = 1
#: exit status for a usage error (argparse uses the same)
EXIT_USAGE = 2


def base_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, object]:
    """A parser with ``--version``, ``--verbose`` and a required subcommand group."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress and show tracebacks on error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, subparsers


def run_cli(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    expected: tuple[type[BaseException], ...],
) -> int:
    """Parse *argv*, run the subcommand's ``func(args)``, and map errors to exit codes.

    Exceptions of the types in *expected* (the packages' own roots, plus ``OSError``
    and ``ValueError`` for bad input) print ``prog: error: message`` and return 1;
    anything else propagates, since it is a bug that deserves its traceback.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        status = func(args)
    except expected as exc:
        if args.verbose:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0 if status is None else int(status)
