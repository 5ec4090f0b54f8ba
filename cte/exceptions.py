"""Exceptions of the :mod:`cte` package: one root, :class:`CTEError`.

Every error raised on purpose by :mod:`cte` derives from :class:`CTEError` and, where
one fits, from the closest built-in exception (``except ValueError`` keeps working).
Messages name the file or configuration key and the problem, and suggest the fix
where there is one.  The analysis (pairs, loss, model, correction) adds the
:class:`AnalysisError` branch.  All are exported from :mod:`cte`.
"""

from __future__ import annotations

__all__ = [
    "AlignmentError",
    "AnalysisError",
    "CTEError",
    "CatalogError",
    "ConfigError",
    "EmptySelectionError",
    "FitError",
    "InvalidImageError",
    "InvalidPhotometryError",
    "ModelNotFoundError",
    "OutOfRangeError",
    "WrongInstrumentError",
]


class CTEError(Exception):
    """Root of every error raised by the :mod:`cte` package."""


class ConfigError(CTEError, ValueError):
    """A configuration file or value is invalid (the message names the key and file)."""


class EmptySelectionError(CTEError, ValueError):
    """An image selection (proposals, visits, targets, ...) matches no image.

    The message lists the proposals and visits the data hold.
    """


class InvalidImageError(CTEError, ValueError):
    """An image file is corrupt, truncated, or lacks what the monitor needs.

    The message starts with the file's path.  Processing of other images continues:
    :func:`cte.measure_photometry` records the file as skipped with this message.
    """


class WrongInstrumentError(InvalidImageError):
    """An image file is valid FITS but not a WFC3/UVIS image (INSTRUME/DETECTOR)."""


class CatalogError(CTEError, ValueError):
    """A master catalog is missing, unreadable, or lacks a required column."""


class AlignmentError(CTEError, RuntimeError):
    """An image's WCS could not be aligned to its master catalog (too few matches)."""


class InvalidPhotometryError(CTEError, ValueError):
    """A photometry Dataset does not follow the photometry-store contract."""


# -- the analysis: pairs, loss, model, correction ----------------------------------------------
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
