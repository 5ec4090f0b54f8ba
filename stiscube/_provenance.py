"""Dates and software versions recorded in the files and arrays stiscube writes (private)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["iso", "now", "software", "versions"]


def iso(value: Any) -> str:
    """A date as ``YYYY-MM-DD hh:mm:ss.ffffff`` (UTC, microseconds)."""
    return str(np.datetime64(value, "us")).replace("T", " ")


def now() -> str:
    """The current UTC time as ``YYYY-MM-DDThh:mm:ss``."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def versions() -> dict[str, str]:
    """Versions of stiscube and the libraries behind its outputs."""
    import astropy
    import matplotlib

    from stores import __version__

    return {
        "stiscube": __version__,
        "numpy": np.__version__,
        "xarray": xr.__version__,
        "astropy": astropy.__version__,
        "matplotlib": matplotlib.__version__,
    }


def software() -> str:
    """``"stiscube <version>"`` (without importing the plotting libraries)."""
    from stores import __version__

    return f"stiscube {__version__}"
