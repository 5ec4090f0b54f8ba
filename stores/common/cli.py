"""Helpers shared by the ``stiscube`` and ``cte`` command-line programs.

Each program's ``main(argv=None)`` builds an :class:`argparse.ArgumentParser` with
subcommands; :func:`run_cli` runs the chosen one, turns the project's own exceptions
and bad input into a one-line message on stderr and a non-zero exit status, and shows
the traceback only with ``--verbose``.

:func:`add_options` and :func:`options_from_args` give a subcommand one flag per field
of an options dataclass, with the default and the help text taken from the dataclass
itself (its numpydoc ``Parameters`` section), so the command line repeats nothing.

Library messages suggest Python fixes (``pass replace=True``); on the command line
:func:`run_cli` rewrites them into the program's flags with the (pattern, replacement)
*hints* each program gives, plus the :data:`COMMON_HINTS`.  Log lines are formatted
without Python reprs of dicts (``target=ngc104, filter=F502N``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stores._version import __version__

__all__ = [
    "COMMON_HINTS",
    "ReadableFormatter",
    "add_options",
    "base_parser",
    "cli_message",
    "options_from_args",
    "run_cli",
]

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
    """A parser with ``--version``, ``--verbose``, ``--quiet`` and a subcommand group.

    Parameters
    ----------
    prog : str
        The program's name.
    description : str
        Its ``--help`` description.
    """
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


_SCALARS = (bool, int, float, str, Path)
_ENTRY = re.compile(r"^(?P<names>\w+(?:\s*,\s*\w+)*)\s*(?::.*)?$")


def _field_help(cls: type) -> dict[str, str]:
    """Field name -> its description, from the numpydoc ``Parameters`` section of *cls*.

    An entry ``a, b : int, float`` documents both fields with the same text.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1]) if line.strip() == "Parameters"
                     and set(lines[i + 1].strip()) == {"-"}) + 2
    except StopIteration:
        return {}
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start:]:
        if line and not line[0].isspace():
            if (match := _ENTRY.match(line)) is None:
                break  # the next section's title
            names = [n.strip() for n in match["names"].split(",")]
            helps.update(dict.fromkeys(names, ""))
        elif line.strip():
            for name in names:
                helps[name] = f"{helps[name]} {line.strip()}".strip()
    return helps


def _flag_type(cls: type, name: str, annotation: Any) -> tuple[type, bool]:
    """(scalar type, whether the field is a sequence) of a field's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _flag_type(cls, name, args[0])
    if origin in (tuple, list) and args and args[0] in _SCALARS:
        return args[0], True
    if annotation in _SCALARS:
        return annotation, False
    msg = (f"{cls.__name__}.{name}: a field of type {annotation!r} has no command-line form; "
           "pass it in exclude= and set it from the subcommand's own flags")
    raise TypeError(msg)


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Sequence[str] = (),
) -> None:
    """Add one ``--field-name`` flag per field of the options dataclass *cls*.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the flags go.
    cls : type
        A dataclass whose fields have the types ``bool``, ``int``, ``float``, ``str``,
        ``pathlib.Path``, a tuple or list of one of those (``nargs="+"``), or one of those
        or ``None``.  The help text of a field is its entry in the numpydoc ``Parameters``
        section of ``cls.__doc__``, followed by the dataclass default; booleans get
        ``--name``/``--no-name``.
    exclude : sequence of str
        Fields without a flag (set by the subcommand some other way).

    Raises
    ------
    TypeError
        If a field not excluded has a type with no command-line form, or has no entry in
        the docstring (every flag has help).
    """
    helps = _field_help(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude or not field.init:
            continue
        if not helps.get(field.name):
            msg = f"{cls.__name__}.{field.name} has no entry in the docstring's Parameters section"
            raise TypeError(msg)
        kind, many = _flag_type(cls, field.name, hints[field.name])
        default = (field.default_factory() if field.default is dataclasses.MISSING
                   and field.default_factory is not dataclasses.MISSING else field.default)
        shown = "required" if default is dataclasses.MISSING else f"default: {default}"
        kwargs: dict[str, Any] = {"dest": field.name, "default": None,
                                  "help": f"{helps[field.name]} ({shown})"}
        if kind is bool and not many:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=kind, metavar=field.name.upper())
            if many:
                kwargs["nargs"] = "+"
        parser.add_argument(f"--{field.name.replace('_', '-')}", **kwargs)


def options_from_args(args: argparse.Namespace, cls: type, **fields: Any) -> Any:
    """The options dataclass *cls* from the flags of :func:`add_options` that were given.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    cls : type
        The dataclass given to :func:`add_options`.
    **fields
        Values for the fields set by the subcommand itself (its ``exclude=``).

    Returns
    -------
    object
        ``cls(**given, **fields)``: flags not given keep the dataclass's defaults, so the
        command line and the library have one set of defaults.
    """
    hints = typing.get_type_hints(cls)
    given = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name, None)
        if value is not None:  # nargs="+" gives a list; a tuple field holds a tuple
            tuple_field = tuple in (typing.get_origin(a) for a in (hints[field.name],
                                    *typing.get_args(hints[field.name])))
            given[field.name] = tuple(value) if tuple_field and isinstance(value, list) else value
    return cls(**given, **fields)


_DICT_LITERAL = re.compile(r"\{'[^{}]*\}")


def _dict_text(match: re.Match) -> str:
    try:
        value = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return match.group(0)
    return str(_readable(value)) if isinstance(value, dict) else match.group(0)


def cli_message(message: str, hints: Sequence[tuple[str, str]] = ()) -> str:
    """*message* with Python advice replaced by command-line advice, and Python dict reprs
    written as ``key=value, ...``.

    Parameters
    ----------
    message : str
        A library message.
    hints : sequence of (str, str)
        The program's ``(pattern, replacement)`` rewrites (:func:`re.sub`), applied before
        :data:`COMMON_HINTS`.
    """
    for pattern, replacement in (*hints, *COMMON_HINTS):
        message = re.sub(pattern, replacement, message)
    return _DICT_LITERAL.sub(_dict_text, message)


def _readable(value: object) -> object:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


class ReadableFormatter(logging.Formatter):
    """A log formatter that writes dict arguments as ``key=value, ...`` (no reprs).

    Parameters
    ----------
    fmt, datefmt, style, validate, defaults
        As for :class:`logging.Formatter`.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The formatted *record*, dicts in its arguments and text written ``key=value``.

        Parameters
        ----------
        record : logging.LogRecord
            The record to format.
        """
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
    logging.getLogger("stores.common.progress").setLevel(
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

    Parameters
    ----------
    parser : argparse.ArgumentParser
        From :func:`base_parser`, with the subcommands.
    argv : sequence of str or None
        The arguments (default ``sys.argv[1:]``).
    expected : tuple of exception classes
        The errors reported in one line.
    hints : sequence of (str, str)
        As for :func:`cli_message`.
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
