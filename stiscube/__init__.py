"""stiscube: the STIS CCD pixel property cube.

Per-pixel properties of the STIS CCD (dark rate, its error, stability, excluded-sample
count, read noise) for every anneal period, computed from dark frames with dask and
kept as one labelled cube (anneal x row x col x property) in Zarr.

Main entry points: :class:`PixelDB` (the database), :func:`compute_properties` (dark
frames to properties), :class:`AnnealTable` (anneal periods), :func:`simulate_darks`
(synthetic darks with a known truth), and the ``ds.pixels`` accessor.
"""

from stiscube.cube import accessor as _accessor  # noqa: F401  (registers ds.pixels)
from stiscube.cube.pixeldb import PixelDB
from stiscube.cube.recompute import recompute
from stiscube.datasets.simulate import simulate_darks
from stiscube.exceptions import (
    AnnealPeriodError,
    AnnealTableError,
    CubeQueryError,
    IncompatibleDarksError,
    InvalidDarkError,
    MixedDarksError,
    PeriodExistsError,
    SeedCSVError,
    StiscubeError,
    TooFewDarksError,
    UnitMismatchError,
)
from stiscube.io.anneals import AnnealTable
from stiscube.io.darks import DarkSelection, TemperatureCorrection
from stiscube.properties import ClipOptions
from stiscube.properties.compute import compute_properties
from stores import __version__
from stores.common.environment import show_versions

__all__ = [
    "AnnealPeriodError",
    "AnnealTable",
    "AnnealTableError",
    "ClipOptions",
    "CubeQueryError",
    "DarkSelection",
    "IncompatibleDarksError",
    "InvalidDarkError",
    "MixedDarksError",
    "PeriodExistsError",
    "PixelDB",
    "SeedCSVError",
    "StiscubeError",
    "TemperatureCorrection",
    "TooFewDarksError",
    "UnitMismatchError",
    "__version__",
    "compute_properties",
    "recompute",
    "show_versions",
    "simulate_darks",
]
