"""Files of DQ reference arrays: FITS images and ECSV tables of flagged pixels.

:func:`write_dq_fits` writes a DQ array made by :func:`stiscube.dq.dq_array` as a FITS
file whose headers record the rules, the period and its dates;
:func:`flagged_pixels_table` lists the flagged pixels with their properties and
:func:`write_flagged_table` saves that table as ECSV.  Files are written atomically
(temporary file + rename) and never overwritten unless asked.  These names are also
importable from :mod:`stiscube.dq`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube._provenance import iso
from stiscube.cube._cubecheck import check_cube
from stiscube.cube._queries import resolve_period
from stiscube.dq._fitsfile import dq_cards, dq_counts, dq_extension, target, write_hdus
from stiscube.dq.flags import decode_dq_names
from stiscube.dq.rules import DQRules
from stiscube.schema import PROPERTIES, UNIT_SYSTEMS
from stores.common.provenance import provenance, to_header
from stores.common.validate import instance_of
from stores.storage.fs import atomic_path

__all__ = ["flagged_pixels_table", "write_dq_fits", "write_flagged_table"]

logger = logging.getLogger(__name__)

_RATE_UNITS = UNIT_SYSTEMS["rate"]["sci_mean"]
_REQUIRED_ATTRS = ("anneal", "anneal_start", "anneal_end", "unit_system", "rules")


def _check_dq(dq: Any) -> DQRules:
    instance_of(dq, "dq", xr.DataArray, what="the xarray.DataArray made by dq_array")
    if dq.dims != ("row", "col") or dq.dtype != np.uint16:
        msg = f"dq must be uint16 on dims ('row', 'col'), got {dq.dtype} on {dq.dims}"
        raise ValueError(msg)
    missing = [a for a in _REQUIRED_ATTRS if a not in dq.attrs]
    if missing:
        msg = f"dq lacks the attributes {missing}; make it with stiscube.dq.dq_array"
        raise ValueError(msg)
    return DQRules.from_dict(json.loads(dq.attrs["rules"]))


def _categories(values: np.ndarray, rules: DQRules) -> np.ndarray:
    """Comma-joined names of the rules whose bit is set in each value ("hot", "unstable")."""
    parts = []
    if rules.has_hot_rule:
        parts.append(np.where(values & rules.hot_bit, "hot", ""))
    if rules.has_unstable_rule:
        parts.append(np.where(values & rules.unstable_bit, "unstable", ""))
    if not parts:
        return np.zeros(values.shape, dtype=str)
    if len(parts) == 1:
        return parts[0].astype(str)
    both = np.char.add(np.char.add(parts[0], ","), parts[1])
    return np.char.strip(both, ",").astype(str)


def write_dq_fits(dq: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a DQ array from :func:`dq_array` as a FITS file (atomically).

    Layout: an empty primary HDU whose header records the period and the rules, and one
    ``DQ`` image extension (``EXTNAME='DQ'``, ``EXTVER=1``) holding the STIS bit values
    as plain 16-bit integers, as calstis writes DQ arrays: FITS ``BITPIX = 16`` without
    ``BZERO``/``BSCALE`` (the OR of all fifteen STIS bits, 32767, fits), read back by
    astropy as ``>i2``; its header lists the bit meanings (``DQBITnn`` = flag name).
    Rows of the array are FITS ``NAXIS2`` (row 0 first), columns ``NAXIS1``.  This file
    is a product for people, not a CRDS reference file (CRDS has no STIS DQ-image type,
    so it has no ``FILETYPE``): calstis takes a period's hot pixels from the superdark's
    ``DQ`` extension and persistent bad pixels from the BPIXTAB, both written by
    :func:`stiscube.dq.reffiles.write_reference`.  The primary header holds the DQ
    keywords of every DQ file (``PERIODS`` the periods the rules looked at, ``APPLIES``,
    ``NHOT``, ``RULES``, ...; :func:`stiscube.dq._fitsfile.dq_cards`) and the provenance
    record of :func:`stores.common.provenance.to_header` (``DATE``, ``SOFTWARE``, ``HISTORY``).

    Parameters
    ----------
    dq : xarray.DataArray
        A DQ array from :func:`dq_array`.
    path : path-like
        The FITS file to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError, ValueError
        *dq* is not a DQ array made by :func:`dq_array`.
    FileExistsError
        The file exists and *overwrite* is False.
    FileNotFoundError
        The directory does not exist.
    """
    from astropy.io import fits

    rules = _check_dq(dq)
    path = target(path, overwrite)
    attrs = dq.attrs
    values = np.asarray(dq.values)
    primary = fits.PrimaryHDU()
    window = np.asarray(attrs.get("window_anneals", [attrs["anneal"]])).tolist()
    dq_cards(primary.header, attrs, rules, dq_counts(values, rules), window)
    source = f"period {int(attrs['anneal'])} of the pixel cube"
    to_header(primary.header, provenance(inputs=[source]))
    write_hdus(fits.HDUList([primary, dq_extension(values)]), path)
    logger.info("wrote DQ array of period %s to %s", attrs["anneal"], path)
    return path


def flagged_pixels_table(dq: xr.DataArray, ds: xr.Dataset):
    """Table of the flagged pixels of a DQ array, with their properties.

    Parameters
    ----------
    dq : xarray.DataArray
        A DQ array from :func:`dq_array`.
    ds : xarray.Dataset
        The cube it was made from (the period ``dq.attrs["anneal"]`` is read).

    Returns
    -------
    astropy.table.Table
        One row per pixel with ``dq > 0``, ordered by row then column: ``row``, ``col``,
        ``dq`` (uint16), ``flags`` (decoded STIS bit names, comma-separated),
        ``categories`` (the rules that flagged it: ``hot``, ``unstable``), then the five
        properties of the period with their units (those of its unit system).  ``meta``:
        ``anneal``, ``anneal_start``, ``anneal_end``, ``unit_system``,
        ``window_anneals``, ``rules`` (dict), ``rules_text``, the
        :func:`stores.common.provenance.provenance` record (``software``, ``software_versions``,
        ``created``: table creation, UTC) and ``dq_date`` (DQ creation).

    Raises
    ------
    TypeError, ValueError
        *dq* is not from :func:`dq_array`, or does not match *ds* (shape, dates).
    CubeQueryError
        The period of *dq* is not in *ds*.
    """
    from astropy.table import Table

    rules = _check_dq(dq)
    check_cube(ds, PROPERTIES)
    number = resolve_period(ds, anneal_num=int(dq.attrs["anneal"]))
    if dq.shape != (ds.sizes["row"], ds.sizes["col"]):
        shape = (ds.sizes["row"], ds.sizes["col"])
        msg = f"dq has shape {dq.shape} but the cube's frames have shape {shape}"
        raise ValueError(msg)
    one = ds.sel(anneal=number)
    dates = (iso(one["anneal_start"].values), iso(one["anneal_end"].values))
    if dates != (dq.attrs["anneal_start"], dq.attrs["anneal_end"]):
        msg = (
            f"dq of period {number} is dated {dq.attrs['anneal_start']} to "
            f"{dq.attrs['anneal_end']}, but the cube's period {number} is {dates[0]} to "
            f"{dates[1]}: it was made from another cube"
        )
        raise ValueError(msg)
    flags = np.asarray(dq.values)
    rows, cols = np.nonzero(flags)
    system = str(one["unit_system"].values)
    frame = one[list(PROPERTIES)].compute()
    table = Table()
    table["row"] = rows.astype(np.int64)
    table["col"] = cols.astype(np.int64)
    table["dq"] = flags[rows, cols].astype(np.uint16)
    table["flags"] = decode_dq_names(flags[rows, cols]).astype(str)
    table["categories"] = _categories(flags[rows, cols], rules)
    for name in PROPERTIES:
        values = np.asarray(frame[name].transpose("row", "col").values)[rows, cols]
        unit = UNIT_SYSTEMS[system][name]
        table[name] = values
        table[name].unit = None if unit == "1" else unit
        table[name].description = frame[name].attrs.get("long_name", name)
    table["row"].description = "detector row (0-based)"
    table["col"].description = "detector column (0-based)"
    table["dq"].description = "DQ value (bitwise OR of STIS DQ bits)"
    table["flags"].description = "names of the STIS DQ bits set"
    table["categories"].description = (
        "the rules that flagged the pixel (hot, unstable); STIS has no unstable bit, so "
        "an unstable pixel carries the rules' unstable_bit without being hot"
    )
    table.meta.update(
        {
            "anneal": int(number),
            "anneal_start": dates[0],
            "anneal_end": dates[1],
            "unit_system": system,
            "window_anneals": np.asarray(dq.attrs.get("window_anneals", [number])).tolist(),
            "rules": rules.to_dict(),
            "rules_text": rules.describe(),
            **provenance(),  # software, software_versions, created (table creation, UTC)
            "dq_date": str(dq.attrs.get("created", "")),
        }
    )
    return table


def write_flagged_table(
    dq: xr.DataArray, ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write :func:`flagged_pixels_table` of *dq* as an ECSV file (atomically).

    Parameters
    ----------
    dq, ds
        As for :func:`flagged_pixels_table`.
    path : path-like
        The ECSV file.
    overwrite : bool
        Replace an existing file (else ``FileExistsError``).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = target(path, overwrite)
    table = flagged_pixels_table(dq, ds)
    with atomic_path(path) as tmp:
        table.write(Path(tmp), format="ascii.ecsv", overwrite=True)
    logger.info(
        "wrote %d flagged pixels of period %s to %s", len(table), table.meta["anneal"], path
    )
    return path
