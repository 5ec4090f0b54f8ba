"""Persistence: where and how products are kept.

Modules: :mod:`~stores.storage.cube` (:class:`~stores.CubeStore`, the versioned Zarr v3
cube), :mod:`~stores.storage.datasets` (:class:`~stores.DatasetStore`, Datasets by key
in netCDF4/HDF5 files), :mod:`~stores.storage.direct` (the direct chunk reader),
:mod:`~stores.storage.fs` (fsspec locations and atomic writes) and
:mod:`~stores.storage.locks` (the single-writer lock of a store).
"""
