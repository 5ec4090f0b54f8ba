"""The pixel property database: one labelled cube in Zarr, and the seed's query API.

A :class:`PixelDB` lives in a directory (or fsspec URL)::

    <path>/cube/          the cube (a :class:`stores.CubeStore`): one slice per period
    <path>/periods.ecsv   optional anneal-period table given at creation (dates, darks)

Each period's slice holds the five properties of :mod:`stiscube.schema` on (row, col),
its dates (``anneal_start``, ``anneal_end``), its unit system, its number of darks and
its source, and, committed atomically with it, the table of the darks it was computed
from (rootname, exposure time, start).

Two ways in:

- the seed-compatible methods (:meth:`PixelDB.query_pixel`, :meth:`~PixelDB.query_pixel_region`,
  :meth:`~PixelDB.query_anneal`, :meth:`~PixelDB.query_anneal_darks`,
  :meth:`~PixelDB.insert_anneal`), returning pandas DataFrames with the seed's columns;
- the xarray-native :attr:`PixelDB.dataset` / :attr:`PixelDB.cube` and the ``ds.pixels``
  accessor (:mod:`stiscube.cube.accessor`), for notebooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from stiscube.cube import _queries as queries
from stiscube.cube.backend import cube_location, open_cube, source_of
from stiscube.cube.history_index import update_history_index
from stiscube.exceptions import (
    CubeQueryError,
    IncompatibleDarksError,
    PeriodExistsError,
    StiscubeError,
)
from stiscube.io.anneals import AnnealTable
from stiscube.io.darks import (
    DarkSelection,
    TemperatureCorrection,
    TooFewDarksError,
    check_darks,
    select_darks,
)
from stiscube.io.seedcsv import SEED_COLUMNS, read_seed_csv, seed_csv_path
from stiscube.properties import ClipOptions, compute_properties
from stiscube.schema import (
    DEFAULT_COMPRESSION,
    PERIOD_PROVENANCE_DEFAULTS,
    PROPERTIES,
    PROPERTY_DTYPES,
    UNIT_SYSTEMS,
    cube_schema,
)
from stores import (
    CubeStore,
    NotAStoreError,
    ReadOnlyStoreError,
    SliceExistsError,
    StoreExistsError,
)
from stores.common.dates import mjd_to_datetime64, to_mjd
from stores.common.validate import as_int, instance_of, one_of
from stores.storage.fs import Location
from stores.storage.locks import LOCK_TIMEOUT

__all__ = ["PixelDB", "PreparedDarks"]

logger = logging.getLogger(__name__)

_CUBE = "cube"
_PERIODS = "periods.ecsv"
_MAX_ANNEAL = int(np.iinfo(np.int64).max)  # labels are stored as int64
_PIXEL_COLUMNS = ["AnnealNumber", "RowNum", "ColumnNum", *SEED_COLUMNS[2:]]


@dataclasses.dataclass(frozen=True)
class PreparedDarks:
    """One period's darks checked (headers, selection, dates) and its lazy properties.

    Made by :meth:`PixelDB.prepare_darks` (see there), stored by
    :meth:`PixelDB.commit_darks`.

    Parameters
    ----------
    anneal_num : int
        The period number.
    frames, skipped : list
        The frames used (:class:`stiscube.io.darks.DarkFrame`), and the frames skipped
        by the selection with their reasons.
    start, end : numpy.datetime64
        The period's dates.
    selection, temperature
        The dark selection and temperature correction used.
    overwrite : bool
        Whether the period may replace a stored one.
    lazy : xarray.Dataset
        The properties, not yet computed.
    """

    anneal_num: int
    frames: list
    skipped: list
    start: np.datetime64
    end: np.datetime64
    selection: DarkSelection
    temperature: TemperatureCorrection
    overwrite: bool
    lazy: xr.Dataset


def _folder(path: str | os.PathLike) -> Location:
    """The database's location; a path to a file is refused (NotAStoreError)."""
    loc = Location.parse(path)
    if loc.fs.isfile(loc.root):
        msg = (f"{loc.url} is a file, not a pixel database (a folder holding cube/ and "
               "periods.ecsv); give the database's folder")
        raise NotAStoreError(msg)
    return loc


class PixelDB:
    """The STIS CCD pixel property database.

    Parameters
    ----------
    path : str or path-like
        Directory (or fsspec URL) made by :meth:`PixelDB.create`.
    mode : {"r+", "r"}
        Read-write (default) or read-only.
    lock_timeout : float
        Seconds a write waits for another writer before :class:`stores.StoreLockedError`.
    version : int, optional
        Open this committed state (read-only, ``mode="r"``); default the newest.

    Examples
    --------
    >>> db = PixelDB.create("pixels.db", periods=AnnealTable.read("anneal_periods.csv"))
    >>> db.insert_anneal(200, csv_loc="example_input")      # doctest: +SKIP
    >>> db.query_pixel(pixel_row=5, pixel_col=20, anneal_num=200)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "r+",
        *,
        lock_timeout: float = LOCK_TIMEOUT,
        version: int | None = None,
    ) -> None:
        self.location = _folder(path)
        if version is not None and mode != "r":
            msg = f"version={version} opens a committed state read-only; pass mode='r'"
            raise ValueError(msg)
        self.store = CubeStore(cube_location(self.location), mode=mode,
                               lock_timeout=lock_timeout, version=version)
        self.mode = mode
        self.periods: AnnealTable | None = None
        if self.location.exists(_PERIODS):
            self.periods = _read_periods(self.location)
        self._dataset: xr.Dataset | None = None
        self._cube: xr.DataArray | None = None
        self._cube_of: xr.Dataset | None = None

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        periods: AnnealTable | None = None,
        shape: tuple[int, int] = (1024, 1024),
        chunks: Mapping[str, int] | None = None,
        shards: Mapping[str, int] | None = None,
        compression: str = DEFAULT_COMPRESSION,
        compression_level: int = 3,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> PixelDB:
        """Create an empty database at *path* and return it opened read-write.

        Parameters
        ----------
        path : str or path-like
            A new directory (or fsspec URL), or an empty one.
        periods : AnnealTable, optional
            The anneal-period table; dates of ingested periods default to its rows.
        shape : (int, int)
            Frame shape (rows, cols); 1024x1024 for the full STIS CCD.
        chunks, shards, compression, compression_level
            Storage layout of the cube (see :func:`stiscube.schema.cube_schema`; the
            defaults, 1 x 128 x 128 chunks without compression, and their trade-offs
            are explained in :mod:`stiscube.schema`).
        lock_timeout : float
            As for :class:`PixelDB`.

        Returns
        -------
        PixelDB
            The new database, read-write.
        """
        instance_of(periods, "periods", (AnnealTable, type(None)), what="an AnnealTable or None")
        schema = cube_schema(
            shape,
            chunks=chunks,
            shards=shards,
            compression=compression,
            compression_level=compression_level,
        )
        loc = _folder(path)
        if loc.exists(_PERIODS):  # never overwrite another database's period table
            msg = (
                f"cannot create a pixel database at {loc.url}: it already holds a period "
                f"table ({_PERIODS}); open it with PixelDB or choose an empty directory"
            )
            raise StoreExistsError(msg)
        CubeStore.create(cube_location(loc), schema, lock_timeout=lock_timeout)
        if periods is not None:
            _write_periods(loc, periods)
        return cls(loc, mode="r+", lock_timeout=lock_timeout)

    def __repr__(self) -> str:
        held = self.anneal_numbers
        text = f"{held[:3]}...{held[-3:]}" if len(held) > 6 else str(held)
        return (
            f"PixelDB({self.location.url!r}, mode={self.mode!r}, shape={self.shape}, "
            f"periods={text})"
        )

    # -- the cube ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (rows, cols)."""
        sizes = self.store.schema.sizes
        return (int(sizes["row"]), int(sizes["col"]))

    @property
    def anneal_numbers(self) -> list[int]:
        """Numbers of the periods held, sorted."""
        return self.store.labels

    @property
    def dataset(self) -> xr.Dataset:
        """The cube as a lazy Dataset: one variable per property, dims (anneal, row, col).

        The same object as ``xr.open_dataset(path, engine="stiscube")`` (see
        :mod:`stiscube.cube.backend`): no dask, every selection reads only the chunks it
        needs (histories from the history index when it is current), and it keeps
        showing the state committed when it was made.
        """
        if self._dataset is None:
            self._dataset = open_cube(self.store, index=self.location)
        return self._dataset

    @property
    def cube(self) -> xr.DataArray:
        """The cube as one lazy float32 DataArray with dims (anneal, row, col, property).

        A view over the same reader as :attr:`dataset` (nothing is stacked in memory);
        ``nan_count`` is given as float32.
        """
        ds = self.dataset
        if self._cube is None or self._cube_of is not ds:
            cube = open_cube(self.store, layout="cube", version=ds.attrs["cube_version"],
                             index=self.location)
            stacked = cube["properties"]
            stacked.attrs["units_by_property_rate"] = str(UNIT_SYSTEMS["rate"])
            self._cube = stacked
            self._cube_of = ds
        return self._cube

    def refresh(self) -> None:
        """See periods committed by other writers since this handle was opened."""
        self.store.refresh()
        self._dataset = None
        self._cube = None

    # -- darks -----------------------------------------------------------------------------
    @property
    def darks(self) -> pd.DataFrame:
        """The darks of every period: columns anneal, rootname, exptime (s), start."""
        frames = [self._period_darks(n) for n in self.anneal_numbers]
        if not frames:
            return pd.DataFrame({"anneal": [], "rootname": [], "exptime": [], "start": []})
        return pd.concat(frames, ignore_index=True)

    def _period_darks(self, anneal_num: int) -> pd.DataFrame:
        extras = self.store.slice_extras(anneal_num) or {}
        rows = extras.get("darks", [])
        table = pd.DataFrame(
            {
                "anneal": np.full(len(rows), anneal_num, dtype=np.int64),
                "rootname": [r["rootname"] for r in rows],
                "exptime": np.array([r.get("exptime", np.nan) for r in rows], dtype=float),
                "start": pd.to_datetime([r.get("start") for r in rows], format="ISO8601"),
            }
        )
        return table

    # -- ingest ----------------------------------------------------------------------------
    def ingest_properties(
        self,
        properties: xr.Dataset,
        anneal_num: int,
        *,
        start: Any = None,
        end: Any = None,
        unit_system: str = "rate",
        darks: pd.DataFrame | Sequence[Mapping] | None = None,
        source: str = "properties",
        overwrite: bool = False,
        provenance: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one period's precomputed properties (the common path of every ingest).

        Parameters
        ----------
        properties : xarray.Dataset
            The five properties on (row, col) of this cube's shape.
        anneal_num : int
            The period number.
        start, end : date-like, optional
            Period dates; default to the period table's row for *anneal_num*.
        unit_system : {"rate", "counts"}
            Units of the values (see :mod:`stiscube.schema`).
        darks : DataFrame or list of dict, optional
            The darks used: ``rootname``, ``exptime`` (s), ``start`` (date); defaults to
            the period table's rootnames.
        source : str
            Where the values came from (recorded with the period).
        overwrite : bool
            Replace the period if present (atomically); otherwise that is an error.
        provenance : dict, optional
            Per-period provenance coordinates (``ccdgain``, ``ccdamp``, ``exptime_class``,
            ``temperature_correction``); missing ones take
            :data:`stiscube.schema.PERIOD_PROVENANCE_DEFAULTS` (unknown).
        extras : dict, optional
            More JSON documents committed with the period (beside ``darks``).

        Raises
        ------
        PeriodExistsError
            The period is present and ``overwrite`` is False.
        CubeQueryError
            No dates given or known, or the dates overlap another period held.
        stores.SchemaMismatchError
            The properties do not fit the cube (variables, dims, shape, dtype).
        """
        anneal_num = _check_anneal_num(anneal_num)
        one_of(unit_system, "unit_system", sorted(UNIT_SYSTEMS))
        self._refuse_existing(anneal_num, overwrite)  # early; checked again under the lock
        start64, end64 = self._period_dates(anneal_num, start, end)
        dark_rows = self._dark_rows(anneal_num, darks)
        data = xr.Dataset({name: properties[name] for name in PROPERTIES if name in properties})
        for name in set(properties.data_vars) - set(PROPERTIES):
            data[name] = properties[name]  # let the store name the extra variable
        data = data.drop_vars([c for c in data.coords if c not in ("row", "col")])
        # properties given by the caller (float, int64, ...): whole numbers that fit the
        # declared storage dtype (stiscube.schema.PROPERTY_DTYPES), else refused
        count_dtype = np.dtype(PROPERTY_DTYPES["nan_count"])
        if "nan_count" in data and data["nan_count"].dtype != count_dtype:
            counts = np.asarray(data["nan_count"].values)
            top = np.iinfo(count_dtype).max
            whole = np.isfinite(counts) & (counts == np.round(counts))
            if not (whole.all() and counts.min(initial=0) >= 0 and counts.max(initial=0) <= top):
                msg = f"period {anneal_num}: nan_count must hold whole numbers from 0 to {top}"
                raise StiscubeError(msg)
            data["nan_count"] = data["nan_count"].astype(count_dtype)
        coords = {
            "anneal_start": start64,
            "anneal_end": end64,
            "unit_system": unit_system,
            "n_darks": len(dark_rows),
            "source": source,
        }
        for name, default in PERIOD_PROVENANCE_DEFAULTS.items():  # absent in older cubes
            if name in self.store.schema.slice_coords:
                coords[name] = (provenance or {}).get(name, default)
        with self._writing():  # checks of the committed state and the commit, atomically
            self._refuse_existing(anneal_num, overwrite)
            self._check_overlap(anneal_num, start64, end64)
            present = anneal_num in self.store
            write = self.store.replace if overwrite and present else self.store.append
            try:
                documents = {**(extras or {}), "darks": dark_rows}
                write(data, anneal_num, coords=coords, extras=documents)
            except SliceExistsError as exc:  # committed by another writer meanwhile
                raise PeriodExistsError(str(exc)) from exc
        self._dataset = None
        logger.info("stored anneal period %d (%s) in %s", anneal_num, source, self.location.url)

    def insert_anneal(
        self,
        anneal_num: int,
        csv_loc: str | os.PathLike = ".",
        *,
        start: Any = None,
        end: Any = None,
        overwrite: bool = False,
    ) -> None:
        """Load the seed's ``<csv_loc>/anneal_{anneal_num}.csv`` as period *anneal_num*.

        The values are counts per frame and are stored with ``unit_system="counts"``.
        Dates come from the period table the cube was created with, or from
        *start*/*end*; the darks from the period table's row.

        Parameters
        ----------
        anneal_num : int
            The period number.
        csv_loc : path-like
            The folder holding ``anneal_{anneal_num}.csv``.
        start, end, overwrite
            As for :meth:`ingest_properties`.

        Raises
        ------
        SeedCSVError
            The CSV is missing or malformed (see :func:`stiscube.io.seedcsv.read_seed_csv`).
        PeriodExistsError, CubeQueryError
            As for :meth:`ingest_properties`.
        """
        anneal_num = _check_anneal_num(anneal_num)
        self._refuse_existing(anneal_num, overwrite)
        self._period_dates(anneal_num, start, end)  # fail on missing dates before reading
        path = seed_csv_path(anneal_num, csv_loc)
        properties = read_seed_csv(path, shape=self.shape)
        self.ingest_properties(
            properties,
            anneal_num,
            start=start,
            end=end,
            unit_system="counts",
            source=f"seed CSV {path.name}",
            overwrite=overwrite,
        )

    def ingest_darks(
        self,
        files: Iterable[str | os.PathLike],
        anneal_num: int,
        *,
        start: Any = None,
        end: Any = None,
        overwrite: bool = False,
        client: Any = None,
        selection: DarkSelection | None = None,
        temperature: TemperatureCorrection | None = None,
        clip: ClipOptions | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> xr.Dataset:
        """Compute one period's properties from its dark frames and store them.

        Every imset of a file is a frame (see :mod:`stiscube.io.darks`); the period's darks
        table lists each frame once, as ``rootname`` (one-imset file) or ``rootname[k]``.
        The same as :meth:`prepare_darks`, computing its ``lazy`` properties, and
        :meth:`commit_darks`.

        Parameters
        ----------
        files : iterable of path-like or URL
            The period's dark files (``_flt``, ``_crj``, ``_sfl``; local paths or fsspec
            URLs such as ``s3://bucket/o8ab01abq_flt.fits``).
        anneal_num : int
            The period number.
        start, end : date-like, optional
            Period dates; default to the period table's row, else to the frames' last
            end and their first start, or the end of the previous held period when that
            is earlier (so periods added month by month leave no gaps).  Frames outside
            the period are refused.
        overwrite : bool
            Replace the period if present.
        client : dask.distributed.Client, optional
            Compute on this cluster instead of the threaded scheduler.
        selection : stiscube.io.darks.DarkSelection, optional
            Homogeneity rules (one CCDGAIN, CCDAMP, binning and exposure class; at least
            ``min_frames`` usable frames) and an optional choice of group; skipped frames
            are recorded with their reasons in the period's ``skipped`` extras.
        temperature : stiscube.io.darks.TemperatureCorrection, optional
            Side-2 temperature scaling (default on, 18 deg C); recorded in the period's
            ``temperature_correction`` coordinate and per frame in the ``frames`` extras.
        clip : stiscube.properties.ClipOptions, optional
            The cosmic-ray clipping options (default ``ClipOptions()``).
        storage_options : dict, optional
            fsspec options (credentials, ``endpoint_url``) for URLs among *files*.

        Returns
        -------
        xarray.Dataset
            The computed properties (in memory).

        Raises
        ------
        InvalidDarkError, IncompatibleDarksError
            Bad files or frames, or frames of another shape than the cube's (nothing is
            computed or written); :class:`stiscube.io.darks.MixedDarksError`
            for frames of several groups, :class:`stiscube.io.darks.TooFewDarksError` for fewer
            than ``min_frames`` usable frames (also after reading: frames whose pixels are
            mostly invalid, e.g. all-NaN SCI or ERR <= 0 everywhere, do not count).
        """
        if client is not None and not hasattr(client, "compute"):
            msg = f"client must be a dask.distributed.Client, got {type(client).__name__}"
            raise TypeError(msg)
        prepared = self.prepare_darks(
            files, anneal_num, overwrite=overwrite, start=start, end=end, selection=selection,
            temperature=temperature, clip=clip, storage_options=storage_options,
        )
        lazy = prepared.lazy
        properties = lazy.compute() if client is None else client.compute(lazy, sync=True)
        return self.commit_darks(prepared, properties)

    def prepare_darks(
        self,
        files: Iterable[str | os.PathLike],
        anneal_num: int,
        *,
        start: Any = None,
        end: Any = None,
        overwrite: bool = False,
        selection: DarkSelection | None = None,
        temperature: TemperatureCorrection | None = None,
        clip: ClipOptions | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> PreparedDarks:
        """Every check of :meth:`ingest_darks` that needs no pixel, and the lazy properties.

        For computing many periods at once on a cluster (:func:`stiscube.recompute`):
        compute the returned ``lazy`` properties anywhere, then :meth:`commit_darks`.

        Parameters
        ----------
        files, anneal_num, start, end, overwrite, selection, temperature, clip, storage_options
            As for :meth:`ingest_darks`.

        Returns
        -------
        PreparedDarks
            The checked frames, dates and options, and the ``lazy`` properties.
        """
        anneal_num = _check_anneal_num(anneal_num)
        selection = DarkSelection() if selection is None else selection
        temperature = TemperatureCorrection() if temperature is None else temperature
        instance_of(selection, "selection", DarkSelection,
                    what="a stiscube.io.darks.DarkSelection")
        instance_of(temperature, "temperature", TemperatureCorrection,
                    what="a stiscube.io.darks.TemperatureCorrection")
        files = [files] if isinstance(files, str | os.PathLike) else list(files)
        self._refuse_existing(anneal_num, overwrite)
        # every header is validated, and the group chosen, before anything is read
        frames = check_darks(files, storage_options=storage_options)
        frames, skipped = select_darks(frames, selection)
        if start is None and end is None and not self._in_table(anneal_num):
            start = mjd_to_datetime64(min(f.start_mjd for f in frames))
            end = mjd_to_datetime64(max(f.end_mjd for f in frames))
            start = self._gapless_start(anneal_num, start)
        start64, end64 = self._period_dates(anneal_num, start, end)
        self._check_overlap(anneal_num, start64, end64)
        frames = check_darks(frames, start=start64, end=end64)  # frames dated in the period
        if tuple(frames[0].shape) != tuple(self.shape):  # refused before computing anything
            msg = (f"{frames[0].path}: frames of {frames[0].shape[0]} x {frames[0].shape[1]} "
                   f"pixels do not fit the {self.shape[0]} x {self.shape[1]} cube of "
                   f"{self.location.url}; ingest them into a database of their shape")
            raise IncompatibleDarksError(msg)
        lazy = compute_properties(frames, selection=selection, temperature=temperature, clip=clip)
        return PreparedDarks(anneal_num, frames, skipped, start64, end64, selection,
                             temperature, overwrite, lazy)

    def commit_darks(self, prepared: PreparedDarks, properties: xr.Dataset) -> xr.Dataset:
        """Check the computed *properties* of a prepared period and store them.

        Parameters
        ----------
        prepared : PreparedDarks
            From :meth:`prepare_darks` on this database.
        properties : xarray.Dataset
            Its ``lazy`` properties, computed.

        Returns
        -------
        xarray.Dataset
            *properties*, with the period's provenance attributes.

        Raises
        ------
        TooFewDarksError
            Fewer than ``min_frames`` usable frames, or no valid pixel.
        """
        anneal_num, frames, skipped = prepared.anneal_num, prepared.frames, prepared.skipped
        start64, end64 = prepared.start, prepared.end
        selection, temperature = prepared.selection, prepared.temperature
        valid = properties["valid_fraction"].values
        usable = valid >= selection.min_valid_fraction
        warnings_ = []
        for frame, fraction in zip(frames, valid, strict=True):
            if fraction < selection.min_valid_fraction:
                warnings_.append(
                    f"{frame.frame_id} ({frame.path}): only {fraction:.1%} of its pixels hold "
                    f"a valid sample (finite SCI, ERR > 0, DQ not masked); not usable"
                )
        if usable.sum() < selection.min_frames:
            msg = (
                f"period {anneal_num}: only {int(usable.sum())} of {len(frames)} frames are usable "
                f"(at least {selection.min_frames} needed, min_frames); "
                + "; ".join(warnings_)
            )
            raise TooFewDarksError(msg)
        finite = np.isfinite(properties["sci_mean"].values)
        if not finite.any():
            msg = f"period {anneal_num}: no pixel has a valid sample in any frame; nothing stored"
            raise TooFewDarksError(msg)
        for text in warnings_:
            logger.warning("period %d: %s", anneal_num, text)
        scaled = properties["temperature_scaled"].values
        frames_table = [
            {
                "frame": f.frame_id,
                "path": str(f.path),
                "imset": f.imset,
                "expname": f.expname,
                "exptime": f.exptime,
                "start_mjd": f.start_mjd,
                "ccdgain": None if f.ccdgain is None else float(f.ccdgain),
                "ccdamp": f.ccdamp,
                "occdhtav": None if not np.isfinite(f.occdhtav) else float(f.occdhtav),
                "dark_scale": float(scale),
                "temperature_scaled": bool(on),
                "valid_fraction": float(fraction),
            }
            for f, scale, on, fraction in zip(
                frames, properties["dark_scale"].values, scaled, valid, strict=True
            )
        ]
        darks = pd.DataFrame(
            {
                "rootname": [f.frame_id for f in frames],
                "exptime": [f.exptime for f in frames],
                "start": [f.start for f in frames],
            }
        )
        if all(not isinstance(f.path, str) for f in frames):  # local files
            prints = file_fingerprints(f.path for f in frames)  # recorded to resume an ingest
            darks["size"] = [p["size"] for p in prints]
            darks["sha256"] = [p["sha256"] for p in prints]
        gain = frames[0].ccdgain
        provenance = {
            "ccdgain": np.nan if gain is None else float(gain),
            "ccdamp": frames[0].ccdamp,
            "exptime_class": str(properties.attrs.get("exptime_class", "")),
            "temperature_correction": _describe_temperature(
                temperature, scaled, frames, properties["dark_scale"].values
            ),
        }
        properties.attrs.update(provenance)
        properties.attrs["warnings"] = "\n".join(warnings_)
        n_files = len({str(f.path) for f in frames})
        self.ingest_properties(
            properties,
            anneal_num,
            start=start64,
            end=end64,
            unit_system="rate",
            darks=darks,
            source=f"{len(frames)} dark frames from {n_files} files",
            overwrite=prepared.overwrite,
            provenance=provenance,
            extras={
                "frames": frames_table,
                "skipped": [
                    {"frame": f.frame_id, "path": str(f.path), "reason": reason}
                    for f, reason in skipped
                ],
                "warnings": warnings_,
            },
        )
        return properties

    # -- helpers for ingest ------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self):
        """The cube's writer lock, held while checks of the committed state and the commit
        run (:meth:`stores.CubeStore.writing`): those checks see other writers' periods."""
        with self.store.writing():  # refreshes the store to the newest commit
            self._dataset = None
            yield

    def _refuse_existing(self, anneal_num: int, overwrite: bool) -> None:
        if self.mode == "r":  # before any other check: nothing can be written anyway
            msg = f"{self.location.url} was opened read-only (mode='r'); cannot store periods"
            raise ReadOnlyStoreError(msg)
        self.store.check_writable()  # damage that blocks writes: fail before any work
        if anneal_num in self.store and not overwrite:
            msg = (
                f"anneal period {anneal_num} is already in {self.location.url}; "
                "pass overwrite=True to replace it"
            )
            raise PeriodExistsError(msg)

    def _in_table(self, anneal_num: int) -> bool:
        return self.periods is not None and anneal_num in self.periods

    def _period_dates(self, anneal_num: int, start: Any, end: Any) -> tuple[np.datetime64, ...]:
        if (start is None) != (end is None):
            msg = "give both start and end, or neither (to use the period table)"
            raise ValueError(msg)
        if start is None:
            if not self._in_table(anneal_num):
                known = "no period table" if self.periods is None else "a table without it"
                msg = (
                    f"dates of anneal period {anneal_num} are unknown: the cube has {known}; "
                    "pass start= and end="
                )
                raise CubeQueryError(msg)
            row = self.periods[anneal_num]
            return row.start.astype("datetime64[ns]"), row.end.astype("datetime64[ns]")
        s = mjd_to_datetime64(to_mjd(start)).astype("datetime64[ns]")
        e = mjd_to_datetime64(to_mjd(end)).astype("datetime64[ns]")
        if not s < e:
            msg = f"period {anneal_num}: start {s} must be before end {e}"
            raise ValueError(msg)
        return s, e

    def _gapless_start(self, anneal_num: int, first_frame: np.datetime64) -> np.datetime64:
        """A period dated from its frames starts where the previous held period ends (when
        that is before its first frame), so that periods added month by month tile time
        without gaps and every date between them belongs to a period."""
        if not self.store.labels:
            return first_frame
        ds = self.store.to_dataset(lazy=True)
        numbers = ds["anneal"].values
        before = numbers < anneal_num
        if not before.any():
            return first_frame
        previous_end = np.max(ds["anneal_end"].values[before])
        first = np.datetime64(first_frame, "ns")
        return previous_end if previous_end <= first else first_frame

    def _check_overlap(self, anneal_num: int, start, end) -> None:
        ds = self.store.to_dataset(lazy=True)
        others = ds["anneal"].values != anneal_num
        starts = ds["anneal_start"].values[others]
        ends = ds["anneal_end"].values[others]
        clash = (starts < end) & (start < ends)
        if clash.any():
            other = int(ds["anneal"].values[others][np.argmax(clash)])
            msg = (
                f"period {anneal_num} ({start} to {end}) overlaps period {other} already in "
                "the cube; dates must not overlap"
            )
            raise CubeQueryError(msg)

    def _dark_rows(self, anneal_num: int, darks) -> list[dict]:
        if darks is None:
            if not self._in_table(anneal_num):
                return []
            return [
                {"rootname": r, "exptime": None, "start": None}
                for r in self.periods[anneal_num].darks
            ]
        table = pd.DataFrame(darks)
        missing = {"rootname", "exptime", "start"} - set(table.columns)
        if missing:
            msg = f"darks must have columns rootname, exptime, start; missing {sorted(missing)}"
            raise ValueError(msg)
        starts = pd.to_datetime(table["start"]).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        rows = [
            {"rootname": str(r), "exptime": float(x), "start": s}
            for r, x, s in zip(table["rootname"], table["exptime"], starts, strict=True)
        ]
        if {"size", "sha256"} <= set(table.columns):  # input fingerprints (resumable ingest)
            for row, size, digest in zip(rows, table["size"], table["sha256"], strict=True):
                row.update(size=int(size), sha256=str(digest))
        return rows

    def same_inputs(self, anneal_num: int, files: Iterable[str | os.PathLike]) -> bool:
        """Whether period *anneal_num* was computed from exactly these files.

        True when the period is held and its darks table records the same set of files
        (sizes and SHA-256 checksums, in any order) as *files*; a file with several
        imsets gives several frames, each recorded with its file's fingerprint.  False
        otherwise, also for periods stored without fingerprints.

        Parameters
        ----------
        anneal_num : int
            The period.
        files : iterable of path-like
            The dark files.

        Returns
        -------
        bool
            Whether they are the period's files.
        """
        if anneal_num not in self.store:
            return False
        recorded = (self.store.slice_extras(anneal_num) or {}).get("darks", [])
        if not recorded or not all("sha256" in r and "size" in r for r in recorded):
            return False
        have = {(int(r["size"]), str(r["sha256"])) for r in recorded}
        given = [(f["size"], f["sha256"]) for f in file_fingerprints(files)]
        return len(set(given)) == len(given) and have == set(given)

    # -- seed-compatible queries -------------------------------------------------------------
    def query_pixel(
        self, pixel_row: int, pixel_col: int, date: Any = None, anneal_num: int | None = None
    ) -> pd.DataFrame:
        """Properties of one pixel in one period (by *anneal_num* or *date*).

        Parameters
        ----------
        pixel_row, pixel_col : int
            The pixel.
        date : date-like, optional
            A date in the period (``start <= date < end``; a string, datetime or MJD).
        anneal_num : int, optional
            Or the period number (exactly one of the two).

        Returns
        -------
        pandas.DataFrame
            One row with the seed's columns AnnealNumber, RowNum, ColumnNum, Stability,
            Sci_Mean, Err_Mean, NaN_Count, Readnoise.
        """
        return self._region_table(
            [pixel_row, pixel_row],
            [pixel_col, pixel_col],
            date,
            anneal_num,
            ("pixel_row", "pixel_col"),
        )

    def query_pixel_region(
        self,
        pixel_row_range: Sequence[int],
        pixel_col_range: Sequence[int],
        date: Any = None,
        anneal_num: int | None = None,
    ) -> pd.DataFrame:
        """Properties of the pixels in an inclusive row and column range, in one period.

        Parameters
        ----------
        pixel_row_range, pixel_col_range : (int, int)
            First and last row, first and last column (inclusive).
        date : date-like, optional
            A date in the period (``start <= date < end``; a string, datetime or MJD).
        anneal_num : int, optional
            Or the period number (exactly one of the two).

        Returns
        -------
        pandas.DataFrame
            The columns of :meth:`query_pixel`, ordered by row, then column, as in the seed.
        """
        names = ("pixel_row_range", "pixel_col_range")
        return self._region_table(pixel_row_range, pixel_col_range, date, anneal_num, names)

    def _region_table(self, rows, cols, date, anneal_num, names) -> pd.DataFrame:
        ds = self.dataset
        number = queries.resolve_period(ds, date=date, anneal_num=anneal_num)
        row_slice, col_slice = queries.region_slices(ds, rows, cols, names=names)
        arrays = self.store.read_arrays(number, row=row_slice, col=col_slice)  # fast path
        rr, cc = np.meshgrid(
            np.arange(row_slice.start, row_slice.stop),
            np.arange(col_slice.start, col_slice.stop),
            indexing="ij",
        )
        table = {
            "AnnealNumber": np.full(rr.size, number, dtype=np.int64),
            "RowNum": rr.ravel(),
            "ColumnNum": cc.ravel(),
        }
        for name, column in zip(PROPERTIES, SEED_COLUMNS[2:], strict=True):
            table[column] = arrays[name].ravel()
        table["NaN_Count"] = table["NaN_Count"].astype(np.int64)
        return pd.DataFrame(table, columns=_PIXEL_COLUMNS)

    def query_anneal(self, date: Any = None, anneal_num: int | None = None) -> pd.DataFrame:
        """The period (by number or date): AnnealNumber, StartDate, EndDate, NumberOfDarks.

        Parameters
        ----------
        date : date-like, optional
            A date in the period (``start <= date < end``; a string, datetime or MJD).
        anneal_num : int, optional
            Or the period number (exactly one of the two).

        Returns
        -------
        pandas.DataFrame
            One row.
        """
        ds = self.dataset
        number = queries.resolve_period(ds, date=date, anneal_num=anneal_num)
        one = ds.sel(anneal=number)
        return pd.DataFrame(
            {
                "AnnealNumber": [number],
                "StartDate": [pd.Timestamp(one["anneal_start"].values)],
                "EndDate": [pd.Timestamp(one["anneal_end"].values)],
                "NumberOfDarks": [int(one["n_darks"].values)],
            }
        )

    def query_anneal_darks(self, date: Any = None, anneal_num: int | None = None) -> pd.DataFrame:
        """The darks of a period (by number or date): Darks (rootname), AnnealNumber.

        Parameters
        ----------
        date : date-like, optional
            A date in the period (``start <= date < end``; a string, datetime or MJD).
        anneal_num : int, optional
            Or the period number (exactly one of the two).

        Returns
        -------
        pandas.DataFrame
            One row per dark.
        """
        number = queries.resolve_period(self.dataset, date=date, anneal_num=anneal_num)
        darks = self._period_darks(number)
        return pd.DataFrame({"Darks": darks["rootname"].to_numpy(), "AnnealNumber": number})

    # -- xarray-native conveniences ----------------------------------------------------------
    def history(self, row: int, col: int) -> xr.Dataset:
        """All properties of one pixel across every period held, in memory (dims: anneal).

        Parameters
        ----------
        row, col : int
            As for :meth:`history_values`.

        Returns
        -------
        xarray.Dataset
            :meth:`history_values` labelled: the five properties on ``anneal``.
        """
        arrays = self.history_values(row, col)
        source = source_of(self.dataset)  # the state the values were read from
        return source.store.assemble(source.labels, arrays, row=row, col=col)

    def history_values(self, row: int, col: int) -> dict[str, np.ndarray]:
        """One pixel's properties across every period as plain arrays (fastest path).

        Keys are the property names, values are in the order of :attr:`anneal_numbers`;
        with a current history index this is one small read per property.

        Parameters
        ----------
        row, col : int
            The pixel.

        Returns
        -------
        dict of str to numpy.ndarray
            Property name -> its values.
        """
        ds = self.dataset
        r, c = queries.region_slices(ds, [row, row], [col, col], names=("row", "col"))
        source = source_of(ds)
        return source.read(list(source.store.schema.variables), (slice(None), r.start, c.start))

    def update_history_index(self, *, rebuild: bool = False) -> dict:
        """Write the periods committed since the last update into the history index.

        Incremental (the new or replaced periods only); builds the index if there is
        none, or when ``rebuild=True``.

        Parameters
        ----------
        rebuild : bool
            Build it anew.

        Returns
        -------
        dict
            What was done (see :func:`stiscube.cube.history_index.update_history_index`).
        """
        if self.mode == "r":
            msg = f"{self.location.url} was opened read-only; cannot update its history index"
            raise ReadOnlyStoreError(msg)
        return update_history_index(self, rebuild=rebuild)

    @property
    def history_index_current(self) -> bool:
        """Whether the history index holds every period of this handle's state, unchanged."""
        source = source_of(self.dataset)
        return bool(source.labels) and source._index_positions(source.labels) is not None

    def info(self) -> dict:
        """Periods held, their units and sources, the frame shape, the size on disk, and
        the committed versions (``version``: this handle's; ``versions``: every one kept,
        with its time and change, see :meth:`stores.CubeStore.versions`).

        ``bytes_on_disk`` is the bytes of the periods this version holds, as recorded
        when each was committed (:meth:`stores.CubeStore.stored_bytes`; replaced periods
        kept for older versions are not counted), plus the blocks allocated to every
        other file (the history index is preallocated sparse: its holes take no disk);
        ``bytes_apparent`` counts the files' full lengths instead, what a copy that
        does not keep holes (``cp`` without ``--sparse``, object storage) would take.
        No file of the cube's data is visited: the cost does not grow with the periods.
        """
        ds = self.dataset
        fs = self.location.fs
        slots = self.store.stored_bytes()
        skip = self.store.location.join("data")
        allocated = apparent = 0
        if self.location.is_local:
            for d, dirs, files in os.walk(self.location.root):
                if d == skip:
                    dirs[:] = []
                    continue
                for f in files:
                    st = os.lstat(os.path.join(d, f))
                    allocated += st.st_blocks * 512
                    apparent += st.st_size
        else:
            for path, size in fs.du(self.location.root, total=False).items():
                if not path.startswith(skip + "/"):
                    allocated += size
                    apparent += size
        return {
            "version": self.store.version,
            "versions": self.store.versions(),
            "path": self.location.url,
            "shape": self.shape,
            "periods": self.anneal_numbers,
            "unit_systems": {
                int(n): str(u)
                for n, u in zip(ds["anneal"].values, ds["unit_system"].values, strict=True)
            },
            "first_start": None if not len(ds["anneal"]) else str(ds["anneal_start"].values.min()),
            "last_end": None if not len(ds["anneal"]) else str(ds["anneal_end"].values.max()),
            "bytes_on_disk": int(slots + allocated),
            "bytes_apparent": int(slots + apparent),
            "period_table": None if self.periods is None else len(self.periods),
            "history_index": self.history_index_current,
        }


def _describe_temperature(correction, scaled, frames, scales) -> str:
    """The period's temperature provenance: formula, frames scaled, frames left as read."""
    if not correction.enabled:
        return "off"
    n = len(frames)
    on = int(np.count_nonzero(scaled))
    side2 = [f.start_mjd >= correction.side2_start for f in frames]
    no_temp = sum(
        1 for f, s2 in zip(frames, side2, strict=True) if s2 and not np.isfinite(f.occdhtav)
    )
    side1 = n - sum(side2)
    text = f"{correction.describe()}: {on} of {n} frames scaled"
    if on:
        text += f" (factor {float(np.min(scales[scaled])):.4f}-{float(np.max(scales[scaled])):.4f})"
    if no_temp:
        text += f"; {no_temp} Side-2 frames without a valid OCCDHTAV kept unscaled"
    if side1:
        text += f"; {side1} Side-1 frames not scaled"
    return text


def file_fingerprints(files: Iterable[str | os.PathLike]) -> list[dict]:
    """Rootname (file name up to its first ``_``, lower case), size (bytes) and SHA-256
    of each file: what a period records to recognise its inputs when ingest resumes."""
    import hashlib

    out = []
    for path in files:
        path = Path(path)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(block)
        out.append(
            {
                "rootname": path.name.split("_", 1)[0].lower(),
                "size": path.stat().st_size,
                "sha256": digest.hexdigest(),
            }
        )
    return out


def _check_anneal_num(anneal_num: Any) -> int:
    """*anneal_num* as an ``int`` label the cube can store (int64, >= 0)."""
    return as_int(anneal_num, "anneal_num", min=0, max=_MAX_ANNEAL)


def _write_periods(loc: Location, periods: AnnealTable) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _PERIODS
        periods.write(path)
        loc.write_bytes((_PERIODS,), path.read_bytes())


def _read_periods(loc: Location) -> AnnealTable:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _PERIODS
        path.write_bytes(loc.read_bytes(_PERIODS))
        # messages name the database's file, not the temporary copy
        return AnnealTable.read(path, name=loc.child(_PERIODS).url)
