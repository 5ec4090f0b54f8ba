"""Exceptions of the :mod:`cte` package: one root, :class:`CTEError`.

Children are defined next to the code that raises them (for the analysis:
:mod:`cte._analysis_exceptions`); every one derives from :class:`CTEError`.
"""

from __future__ import annotations

__all__ = ["CTEError"]


class CTEError(Exception):
    """Root of every error raised by the :mod:`cte` package."""
