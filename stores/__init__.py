"""Persistence and shared plumbing of :mod:`stiscube` and :mod:`cte`.

Three subpackages, none of which knows anything about STIS or WFC3:

- :mod:`stores.storage` — persistence: :class:`CubeStore` (a labelled Zarr v3 cube that
  grows along one dimension, with all-or-nothing slice commits and a single-writer
  lock), :class:`DatasetStore` (:class:`xarray.Dataset` objects kept by key in
  netCDF4/HDF5 files), the direct chunk reader, fsspec locations, atomic writes, locks;
- :mod:`stores.common` — plumbing shared by both monitors: argument validators, bit-flag
  registries, provenance records, progress, dates, CLI helpers, ``show_versions`` and
  seeded synthetic cubes for tests;
- :mod:`stores.presentation` — the matplotlib style and the HTML site builder.

The names users type most are importable from here.
"""

from stores import _exceptions
from stores._exceptions import *  # noqa: F403  (the exception classes, _exceptions.__all__)
from stores._version import __version__
from stores.common.flags import Flag, FlagRegistry
from stores.storage.cube import CubeSchema, CubeStore, PruneReport, RepairReport, VariableSpec
from stores.storage.datasets import DatasetStore
from stores.storage.fs import atomic_path, atomic_write

__all__ = [
    *_exceptions.__all__,
    "CubeSchema",
    "CubeStore",
    "DatasetStore",
    "Flag",
    "FlagRegistry",
    "PruneReport",
    "RepairReport",
    "VariableSpec",
    "__version__",
    "atomic_path",
    "atomic_write",
]
