"""Persistence shared by :mod:`stiscube` and :mod:`cte`.

Two stores, neither of which knows anything about STIS or WFC3:

- :class:`CubeStore` — a labelled Zarr v3 cube that grows along one dimension, with
  all-or-nothing slice commits, a single-writer lock, and lazy (dask) or eager reads.
- :class:`DatasetStore` — :class:`xarray.Dataset` objects kept by key in netCDF4/HDF5
  files (through h5netcdf), each write atomic.

Shared plumbing has public homes: :func:`atomic_write` and :func:`atomic_path` (atomic
file writes for any output), :mod:`stores.fs` (``Location``), :mod:`stores.direct`
(the direct chunk reader), :mod:`stores.testing` (synthetic cubes), :mod:`stores.cli`
(command-line helpers) and ``stores.__version__``; :mod:`stores.validate` (argument
validators), :mod:`stores.flags` (:class:`FlagRegistry`, bit-flag registries) and
:mod:`stores.provenance` (the provenance record of every product).
"""

from stores import _exceptions
from stores._exceptions import *  # noqa: F403  (the exception classes, _exceptions.__all__)
from stores._fs import atomic_path, atomic_write
from stores._version import __version__
from stores.cube import CubeSchema, CubeStore, PruneReport, RepairReport, VariableSpec
from stores.datasets import DatasetStore
from stores.flags import Flag, FlagRegistry

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
