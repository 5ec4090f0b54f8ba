"""The ``ds.pixels`` accessor: the cube's queries as methods of an xarray Dataset.

A thin layer over :mod:`stiscube.cube._queries`: it holds no state (everything lives in the
Dataset's coordinates), so it works on any Dataset shaped like the cube (variables on
``(anneal, row, col)`` with ``anneal_start``/``anneal_end``/``unit_system``), including
subsets made with ``.sel``/``.isel``.

Examples
--------
>>> ds = xr.open_dataset("pixels.db", engine="stiscube")           # doctest: +SKIP
>>> ds = stiscube.PixelDB("pixels.db", mode="r").dataset         # the same  # doctest: +SKIP
>>> ds.pixels.period(date="2017-09-26 13:04:04")                 # doctest: +SKIP
>>> ds.pixels.history(512, 100).sci_mean.plot()                  # doctest: +SKIP
>>> ds.pixels.hot(0.1, k=3)              # above 0.1 e-/s in >= 3 consecutive periods
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from stiscube.cube import _queries as queries

__all__ = ["PixelsAccessor"]


@xr.register_dataset_accessor("pixels")
class PixelsAccessor:
    """Queries of the pixel property cube (``ds.pixels``), those of :mod:`stiscube.cube._queries`.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (:attr:`stiscube.PixelDB.dataset`); xarray makes the accessor.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def period(self, *, anneal_num: int | None = None, date: Any = None) -> xr.Dataset:
        """The cube at one period, chosen by number or by date (``start <= date < end``).

        Parameters
        ----------
        anneal_num : int, optional
            The period number.
        date : date-like, optional
            Or a date in the period.

        Returns
        -------
        xarray.Dataset
            The period's properties on (row, col).
        """
        return queries.select_period(self._ds, anneal_num=anneal_num, date=date)

    def period_at(self, date: Any) -> int:
        """Number of the period that holds *date*.

        Parameters
        ----------
        date : date-like
            The date (``start <= date < end``).

        Returns
        -------
        int
            The period number.
        """
        return queries.period_at(self._ds, date)

    def history(self, row: int, col: int) -> xr.Dataset:
        """All properties of one pixel across every period (dims: anneal).

        Lazy on a cube opened with the ``stiscube`` engine: ``.load()`` reads the
        pixel's history from the history index when it is current, else from the cube.

        Parameters
        ----------
        row, col : int
            The pixel.

        Returns
        -------
        xarray.Dataset
            The properties on ``anneal``.
        """
        return queries.pixel_history(self._ds, row, col)

    def region(self, rows: Sequence[int], cols: Sequence[int]) -> xr.Dataset:
        """Pixels in an inclusive row range and column range, all periods.

        Parameters
        ----------
        rows, cols : (int, int)
            First and last row, first and last column (inclusive).

        Returns
        -------
        xarray.Dataset
            The region on (anneal, row, col).
        """
        return queries.region(self._ds, rows, cols)

    def hot(self, level: float, *, k: int = 1, prop: str = "sci_mean") -> xr.DataArray:
        """Mask (row, col) of pixels with *prop* above *level* in >= *k* consecutive periods.

        Parameters
        ----------
        level : float
            The level, in the rate units of *prop* (electron / s for ``sci_mean``).
        k : int
            Consecutive periods needed.
        prop : str
            The property.

        Returns
        -------
        xarray.DataArray
            bool on (row, col).
        """
        return queries.exceeded_in_consecutive_periods(self._ds, level, k, prop=prop)

    def turned_hot_after(self, date: Any, level: float, *, prop: str = "sci_mean"):
        """Mask of pixels first above *level* in a period starting on or after *date*.

        Parameters
        ----------
        date : date-like
            The first period start that counts.
        level, prop
            As for :meth:`hot`.

        Returns
        -------
        xarray.DataArray
            bool on (row, col).
        """
        return queries.turned_hot_after(self._ds, date, level, prop=prop)

    def unit_system(self) -> str:
        """The unit system shared by all periods (raises if they are mixed)."""
        return queries.require_single_unit_system(self._ds)
