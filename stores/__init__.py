"""Persistence shared by :mod:`stiscube` and :mod:`cte`.

Two stores, neither of which knows anything about STIS or WFC3:

- :class:`CubeStore` — a labelled Zarr v3 cube that grows along one dimension, with
  all-or-nothing slice commits, a single-writer lock, and lazy (dask) or eager reads.
- :class:`DatasetStore` — :class:`xarray.Dataset` objects kept by key in netCDF4/HDF5
  files (through h5netcdf), each write atomic.
"""

from stores._exceptions import (
    CorruptStoreError,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    SliceExistsError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
)
from stores.cube import CubeSchema, CubeStore, VariableSpec
from stores.datasets import DatasetStore

__all__ = [
    "CorruptStoreError",
    "CubeSchema",
    "CubeStore",
    "DatasetStore",
    "KeyNotFoundError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "SliceExistsError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "VariableSpec",
]
