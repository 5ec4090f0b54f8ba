"""Public home of the helpers shared by the ``stiscube`` and ``cte`` command-line programs."""

from stores._cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, base_parser, run_cli

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_USAGE", "base_parser", "run_cli"]
