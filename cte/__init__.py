"""cte: the WFC3/UVIS external CTE monitor.

Aperture photometry of star clusters observed on both UVIS chips, kept as xarray
Datasets keyed by target/filter/flash; image pairs; the CTE loss per pair and flux bin;
and a fitted correction formula.
"""

from cte._exceptions import (
    AlignmentError,
    CatalogError,
    ConfigError,
    CTEError,
    InvalidImageError,
    InvalidPhotometryError,
    WrongInstrumentError,
)
from cte.config import Config, load_config
from stores._version import __version__

__all__ = [
    "AlignmentError",
    "CTEError",
    "CatalogError",
    "Config",
    "ConfigError",
    "InvalidImageError",
    "InvalidPhotometryError",
    "WrongInstrumentError",
    "__version__",
    "load_config",
]
