"""Seeded synthetic cubes for tests, examples and benchmarks of :mod:`stores`."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import xarray as xr

from stores.storage.cube import CubeSchema, VariableSpec
from stores.storage.fs import Location

__all__ = ["example_coords", "example_schema", "example_slice", "tree_digest"]


def example_schema(
    *, shape: tuple[int, int] = (32, 24), chunks: tuple[int, int] = (16, 12), **options
) -> CubeSchema:
    """A two-variable cube (float32 ``signal`` in e-/s, int16 ``count``) along ``period``.

    Parameters
    ----------
    shape, chunks : tuple of int
        Shape and chunks of one slice (row, col).
    **options
        Further :class:`~stores.CubeSchema` fields.
    """
    rows, cols = shape
    return CubeSchema(
        append_dim="period",
        sizes={"row": rows, "col": cols},
        variables={
            "signal": VariableSpec(("row", "col"), "float32", {"units": "electron / s"}),
            "count": VariableSpec(("row", "col"), "int16", {"units": "1"}),
        },
        slice_coords={"start": "datetime64[ns]", "name": "str", "exposure": "float64"},
        coords={"row": ("row", np.arange(rows)), "col": ("col", np.arange(cols))},
        chunks={"row": chunks[0], "col": chunks[1]},
        attrs={"title": "stores test cube"},
        **options,
    )


def example_slice(schema: CubeSchema, label: int, *, seed: int = 0) -> xr.Dataset:
    """Random values for one slice of :func:`example_schema`, reproducible.

    Parameters
    ----------
    schema : stores.CubeSchema
        From :func:`example_schema`.
    label : int
        The slice's label.
    seed : int
        Seed of the values.
    """
    rng = np.random.default_rng([seed, label])
    shape = tuple(schema.sizes[d] for d in ("row", "col"))
    signal = rng.normal(0.005, 0.002, shape).astype("float32")
    signal[rng.random(shape) < 0.01] = np.nan
    count = rng.integers(0, 60, shape).astype("int16")
    return xr.Dataset({"signal": (("row", "col"), signal), "count": (("row", "col"), count)})


def example_coords(label: int) -> dict:
    """Slice coordinates for *label* of :func:`example_schema`.

    Parameters
    ----------
    label : int
        The slice's label.
    """
    start = np.datetime64("2020-01-01T00:00:00", "ns") + np.timedelta64(30 * label, "D")
    return {"start": start, "name": f"period-{label}", "exposure": 1100.0 + label}


def tree_digest(location: str | os.PathLike) -> str:
    """SHA-256 over every file path and content under *location*.

    Parameters
    ----------
    location : str or path-like
        A local directory or fsspec URL.
    """
    loc = Location.parse(location)
    digest = hashlib.sha256()
    for path in sorted(loc.fs.find(loc.root)):
        digest.update(path.encode())
        digest.update(loc.fs.cat_file(path))
    return digest.hexdigest()
