"""Helpers shared by the ``stiscube`` and ``cte`` command-line programs.

Each program's ``main(argv=None)`` builds an :class:`argparse.ArgumentParser` with
subcommands; :func:`run_cli` runs the chosen one, turns the project's own exceptions
and bad input into a one-line message on stderr and a non-zero exit status, and shows
the traceback only with ``--verbose``.

Library messages suggest Python fixes (``pass replace=True``); on the command line
:func:`run_cli` rewrites them into the program's flags with the (pattern, replacement)
*hints* each program gives, plus the :data:`COMMON_HINTS`.  Log lines are formatted
without Python reprs of dicts (``target=ngc104, filter=F502N``).
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence

from stores._version import __version__

__all__ = ["COMMON_HINTS", "ReadableFormatter", "base_parser", "cli_message", "run_cli"]

#: exit status for bad input or a failed operation
EXIT_FAILURE = 1
#: exit status for a usage error (argparse uses the same)
EXIT_USAGE = 2
#: exit status after Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_INTERRUPTED = 130

#: Python advice in library messages -> the command-line flag (regex, replacement)
COMMON_HINTS: tuple[tuple[str, str], ...] = (
    (r"pass replace=True", "use --replace"),
    (r"pass overwrite=True", "use --overwrite"),
    (r"\(mode='r'\)", "(read-only)"),
)


def base_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, object]:
    """A parser with ``--version``, ``--verbose``, ``--quiet`` and a subcommand group."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress and show tracebacks on error"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bar or progress lines (errors and results only)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, subparsers


_DICT_LITERAL = re.compile(r"\{'[^{}]*\}")


def _dict_text(match: re.Match) -> str:
    try:
        value = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return match.group(0)
    return str(_readable(value)) if isinstance(value, dict) else match.group(0)


def cli_message(message: str, hints: Sequence[tuple[str, str]] = ()) -> str:
    """*message* with Python advice replaced by command-line advice (see the hints), and
    Python dict reprs written as ``key=value, ...``."""
    for pattern, replacement in (*hints, *COMMON_HINTS):
        message = re.sub(pattern, replacement, message)
    return _DICT_LITERAL.sub(_dict_text, message)


def _readable(value: object) -> object:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


class ReadableFormatter(logging.Formatter):
    """A log formatter that writes dict arguments as ``key=value, ...`` (no reprs)."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, Mapping) and record.args:  # logging's one-dict form
            record.args = (_readable(record.args),) if "%(" not in str(record.msg) else record.args
        elif isinstance(record.args, tuple):
            record.args = tuple(_readable(a) for a in record.args)
        return _DICT_LITERAL.sub(_dict_text, super().format(record))


def _configure_logging(verbose: bool, quiet: bool) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):  # a second main() in one process
        if isinstance(old.formatter, ReadableFormatter):
            root.removeHandler(old)
    if not root.handlers:  # as logging.basicConfig: leave a host's own handlers alone
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            ReadableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # progress lines (when stderr is not a terminal) unless --quiet
    logging.getLogger("stores.progress").setLevel(
        logging.WARNING if quiet else logging.INFO
    )


def run_cli(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    expected: tuple[type[BaseException], ...],
    *,
    hints: Sequence[tuple[str, str]] = (),
) -> int:
    """Parse *argv*, run the subcommand's ``func(args)``, and map errors to exit codes.

    Exceptions of the types in *expected* (the packages' own roots, plus ``OSError``
    and ``ValueError`` for bad input) print ``prog: error: message`` (with Python
    advice turned into flags by *hints*, see :func:`cli_message`) and return 1;
    anything else propagates, since it is a bug that deserves its traceback.
    Ctrl-C (:class:`KeyboardInterrupt`) prints ``prog: interrupted; ...`` (the notes the
    subcommand added to the exception, such as the period left unwritten) and returns
    :data:`EXIT_INTERRUPTED`.  ``args.progress`` is set for the subcommand: true unless
    ``--quiet``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = any(a in ("-q", "--quiet") for a in argv)  # accepted after the subcommand too
    args = parser.parse_args([a for a in argv if a not in ("-q", "--quiet")])
    args.quiet = quiet
    _configure_logging(args.verbose, args.quiet)
    args.progress = not args.quiet
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        status = func(args)
    except expected as exc:
        if args.verbose:
            raise
        print(f"{parser.prog}: error: {cli_message(str(exc), hints)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as exc:
        if args.verbose:
            raise
        what = "; ".join(getattr(exc, "__notes__", ())) or "the unfinished step wrote nothing"
        print(f"{parser.prog}: interrupted; {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if status is None else int(status)
