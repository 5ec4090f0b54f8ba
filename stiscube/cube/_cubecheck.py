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
    # (names wanted, where they must be, message before and after the missing ones)
    requirements = (
        (("anneal", "row", "col"), ds.dims, "ds must have dims (anneal, row, col); missing",
         f" (dims are {tuple(ds.dims)}); pass the whole cube, not one period"),
        (needed, ds.data_vars, "ds lacks the properties",
         f" the rules need; variables: {list(ds.data_vars)}"),
        (PERIOD_COORDS, ds.coords, "ds lacks the per-period coordinates", ""),
    )
    for wanted, present, head, tail in requirements:
        missing = [name for name in wanted if name not in present]
        if missing:
            msg = f"{head} {missing}{tail}"
            raise ValueError(msg)
