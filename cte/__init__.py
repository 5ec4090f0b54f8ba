"""cte: the WFC3/UVIS external CTE monitor.

Aperture photometry of star clusters observed on both UVIS chips, kept as xarray
Datasets keyed by target/filter/flash; image pairs; the CTE loss per pair and flux bin;
and a fitted correction formula.
"""

from stores._version import __version__

__all__ = ["__version__"]
