"""Exceptions of the CTE analysis (pairs, loss, model, correction).

All derive from :class:`cte._exceptions.CTEError`, the root of the package's errors.
A photometry Dataset lacking what the analysis needs raises the package's
:class:`cte._exceptions.InvalidPhotometryError`.
"""

from __future__ import annotations

from cte._exceptions import CTEError

__all__ = [
    "AnalysisError",
    "FitError",
    "ModelNotFoundError",
    "OutOfRangeError",
]


class AnalysisError(CTEError):
    """Root of the errors raised by the CTE analysis."""


class FitError(AnalysisError, ValueError):
    """A fit cannot be made from the data given (too few cells, degenerate design)."""


class ModelNotFoundError(AnalysisError, KeyError):
    """No fitted model matches the configuration asked for (lists those available)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OutOfRangeError(AnalysisError, ValueError):
    """Inputs of :func:`cte.correct` lie outside the range the model was fitted on."""
