"""The pixel property cube (anneal x row x col x property) and its queries.

:mod:`stiscube.cube.pixeldb` (:class:`~stiscube.PixelDB`, the database),
:mod:`stiscube.cube.backend` (the Zarr store and the xarray ``stiscube`` engine),
:mod:`stiscube.cube.history_index` (the per-pixel history index),
:mod:`stiscube.cube._queries` (period, region and history selections) and
:mod:`stiscube.cube.accessor` (the ``ds.pixels`` accessor).
"""
