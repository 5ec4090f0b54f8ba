"""Seeded random property frames for tests and benchmarks of the cube (not physics).

For physically simulated darks and the properties computed from them, see
:mod:`stiscube.datasets.simulate`; these frames only need plausible ranges and exact values.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from stiscube.schema import PROPERTIES, PROPERTY_DTYPES, property_attrs

__all__ = ["random_properties"]


def random_properties(
    shape: tuple[int, int], *, seed: int = 0, hot_fraction: float = 0.01
) -> xr.Dataset:
    """Five property frames of plausible values (rate units), reproducible from *seed*.

    ``sci_mean`` is about 0.004 e-/s with a fraction *hot_fraction* of pixels at
    0.05-5 e-/s; ``stability`` about 1 with a tail; ``nan_count`` 0-5; ``readnoise``
    about 6 e-.

    Parameters
    ----------
    shape : (int, int)
        Frame shape.
    seed : int
        The seed.
    hot_fraction : float
        Fraction of hot pixels.

    Returns
    -------
    xarray.Dataset
        The five properties on (row, col).
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape
    sci = rng.normal(0.004, 0.001, shape)
    hot = rng.random(shape) < hot_fraction
    sci[hot] = 10 ** rng.uniform(np.log10(0.05), np.log10(5.0), hot.sum())
    values = {
        "stability": np.abs(rng.normal(1.0, 0.3, shape)) + 5 * (rng.random(shape) < 0.005),
        "sci_mean": sci,
        "err_mean": np.sqrt(sci * 1100 + 36) / 1100,
        "nan_count": rng.integers(0, 6, shape),
        "readnoise": rng.normal(6.0, 0.2, shape),
    }
    data = {
        name: (
            ("row", "col"),
            values[name].astype(PROPERTY_DTYPES[name]),
            property_attrs(name),
        )
        for name in PROPERTIES
    }
    return xr.Dataset(data, coords={"row": np.arange(rows), "col": np.arange(cols)})
