"""Validation of the cube Dataset (private).

Shared by :mod:`stiscube.dq`, :mod:`stiscube.dq.files` and :mod:`stiscube.report.plots`.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["PERIOD_COORDS", "check_cube"]

#: per-period coordinates every consumer of the cube needs
PERIOD_COORDS = ("anneal_start", "anneal_end", "unit_system")


def check_cube(ds: Any, needed: tuple[str, ...]) -> None:
    """Raise unless *ds* is the cube with the variables *needed*.

    The cube is an :class:`xarray.Dataset` with dims (anneal, row, col) and the
    per-period coordinates :data:`PERIOD_COORDS`; a ``TypeError`` or ``ValueError``
    names what is wrong or missing.
    """
    if not isinstance(ds, xr.Dataset):
        msg = f"ds must be an xarray.Dataset (the cube, e.g. PixelDB.dataset), got {type(ds)}"
        raise TypeError(msg)
    missing_dims = [d for d in ("anneal", "row", "col") if d not in ds.dims]
    if missing_dims:
        msg = (
            f"ds must have dims (anneal, row, col); missing {missing_dims} "
            f"(dims are {tuple(ds.dims)}); pass the whole cube, not one period"
        )
        raise ValueError(msg)
    missing = [v for v in needed if v not in ds.data_vars]
    if missing:
        msg = f"ds lacks the properties {missing} the rules need; variables: {list(ds.data_vars)}"
        raise ValueError(msg)
    missing_coords = [c for c in PERIOD_COORDS if c not in ds.coords]
    if missing_coords:
        msg = f"ds lacks the per-period coordinates {missing_coords}"
        raise ValueError(msg)
