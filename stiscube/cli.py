"""The ``stiscube`` command-line program (``stiscube --help``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stores import StoreError
from stores._cli import base_parser, run_cli

__all__ = ["build_parser", "main"]


def _cmd_version(args: argparse.Namespace) -> None:
    from stores._version import __version__

    print(f"stiscube {__version__}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stiscube`` with all its subcommands."""
    parser, sub = base_parser("stiscube", "STIS CCD pixel property cube.")
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stiscube`` program; returns the exit status."""
    return run_cli(build_parser(), argv, (StoreError, OSError, ValueError))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
