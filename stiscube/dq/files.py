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
from stiscube.cube.queries import resolve_period
from stiscube.dq.flags import STIS_DQ, decode_dq_names
from stiscube.dq.rules import DQRules
from stiscube.schema import PROPERTIES, UNIT_SYSTEMS
from stores.common.provenance import provenance, set_card, to_header
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


def _target(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"{path}: directory {path.parent} does not exist"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path}: is a directory"
        raise IsADirectoryError(msg)
    if path.exists() and not overwrite:
        msg = f"{path}: file exists; pass overwrite=True to replace it"
        raise FileExistsError(msg)
    return path


def _write_fits(hdul, path: Path) -> None:
    """Write *hdul* to a temporary sibling that replaces *path* on success
    (:func:`stores.storage.fs.atomic_path`: a failed write leaves *path* untouched)."""
    with atomic_path(path) as tmp:
        hdul.writeto(Path(tmp), overwrite=True)


def _dq_counts(values: np.ndarray, rules: DQRules, no_data: int = 0) -> dict[str, int]:
    """Pixel counts of a DQ array, counted on the array (so a header agrees with its file).

    Returns
    -------
    dict
        ``n_hot`` (the rules' hot bit set), ``n_unstable`` (the unstable bit), ``n_both``,
        ``n_no_data`` (*no_data*, counted by the caller) and ``n_flagged`` (any bit).
    """
    hot = (values & rules.hot_bit) != 0 if rules.has_hot_rule else np.zeros(values.shape, bool)
    unstable = (
        (values & rules.unstable_bit) != 0
        if rules.has_unstable_rule
        else np.zeros(values.shape, bool)
    )
    return {
        "n_hot": int(np.count_nonzero(hot)),
        "n_unstable": int(np.count_nonzero(unstable)),
        "n_both": int(np.count_nonzero(hot & unstable)),
        "n_no_data": int(no_data),
        "n_flagged": int(np.count_nonzero(values)),
    }


def _dq_extension(values: np.ndarray, anneal: int | None = None):
    """The ``DQ`` image extension: plain int16 (BITPIX 16, no BZERO), EXTVER 1, its header
    listing the STIS bits (``DQBITnn`` = name, nn = bit position, and a ``COMMENT`` per
    bit) and, for one period, ``ANNEALNM``."""
    from astropy.io import fits

    if values.max(initial=0) > np.iinfo(np.int16).max:
        msg = "DQ values above 32767 cannot be stored as STIS int16 DQ"
        raise ValueError(msg)
    ext = fits.ImageHDU(data=np.ascontiguousarray(values, dtype=">i2"), name="DQ", ver=1)
    if anneal is not None:
        ext.header["ANNEALNM"] = (int(anneal), "anneal period number")
    for position, flag in enumerate(STIS_DQ):
        set_card(ext.header, f"DQBIT{position:02d}", flag.name, f"DQ value {flag.bit}")
    for flag in STIS_DQ:
        ext.header.add_comment(f"DQ {flag.bit} = {flag.name}: {flag.description}")
    return ext


def write_dq_fits(dq: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a DQ array from :func:`dq_array` as a FITS file (atomically).

    Layout: an empty primary HDU whose header records the period and the rules, and one
    ``DQ`` image extension (``EXTNAME='DQ'``, ``EXTVER=1``) holding the STIS bit values
    as plain 16-bit integers, as calstis writes DQ arrays: FITS ``BITPIX = 16`` without
    ``BZERO``/``BSCALE`` (the OR of all fifteen STIS bits, 32767, fits), read back by
    astropy as ``>i2``; its header lists the bit meanings.  Rows of the array are FITS
    ``NAXIS2`` (row 0 first), columns ``NAXIS1``.  This file is a product for people,
    not a CRDS reference file (CRDS has no STIS DQ-image type, so it has no
    ``FILETYPE``): calstis takes a period's hot pixels from the superdark's ``DQ``
    extension and persistent bad pixels from the BPIXTAB, both written by
    :func:`stiscube.dq.reffiles.write_reference`.

    Primary header keywords: ``TELESCOP``, ``INSTRUME``, ``DETECTOR``, ``ANNEALNM``
    (period number), ``ANNSTART``/``ANNEND``
    (ISO dates, UTC), ``UNITSYS``, ``WINDOW`` (periods the rules looked at), the rules
    (``HOTLEVEL`` [electron / s], ``HOTNSIG``, ``HOTCOMB``, ``CLIPSIG``, ``CLIPITER``,
    ``UNSTLEVL``, ``PERSISTK``, ``PERSISTM``, ``PARTWIN``, ``HOTBIT``, ``UNSTBIT``;
    a rule not given is absent), the clipped statistics of the period (``HOTMED``,
    ``HOTSTD``, ``HOTTHR``, in the units of ``sci_mean``), the counts ``NHOT``,
    ``NUNSTAB``, ``NBOTH`` (hot and unstable) and ``NFLAGGED`` (counted on the array
    written: ``NFLAGGED = NHOT + NUNSTAB - NBOTH``), the rules as JSON (``RULES``),
    ``DQDATE`` (the DQ array's creation), the provenance record of
    :func:`stores.common.provenance.to_header` (``DATE``, ``SOFTWARE``, ``HISTORY`` lines
    ``provenance ...``), and the rules in words as ``COMMENT`` cards.  ``DQ``
    header: ``DQBITnn`` (nn = bit position 00-14) = flag name, with the bit value and
    description as card comment.

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
    path = _target(path, overwrite)
    attrs = dq.attrs
    primary = fits.PrimaryHDU()
    hdr = primary.header
    set_card(hdr, "TELESCOP", "HST", "telescope")
    set_card(hdr, "INSTRUME", "STIS", "instrument")
    set_card(hdr, "DETECTOR", "CCD", "detector")
    set_card(hdr, "ANNEALNM", int(attrs["anneal"]), "anneal period number")
    set_card(hdr, "ANNSTART", str(attrs["anneal_start"]), "period start (UTC)")
    set_card(hdr, "ANNEND", str(attrs["anneal_end"]), "period end (UTC, exclusive)")
    set_card(hdr, "UNITSYS", str(attrs["unit_system"]), "unit system of the period's properties")
    window = np.asarray(attrs.get("window_anneals", [attrs["anneal"]])).tolist()
    set_card(hdr, "WINDOW", ",".join(str(n) for n in window), "periods the rules looked at")
    cards = {
        "HOTLEVEL": (rules.hot_level, f"hot: sci_mean > this [{_RATE_UNITS}]"),
        "HOTNSIG": (rules.hot_nsigma, "hot: sci_mean > clipped median + this x std"),
        "HOTCOMB": (
            rules.hot_combine
            if rules.hot_level is not None and rules.hot_nsigma is not None
            else None,
            "how the two hot rules combine",
        ),
        "CLIPSIG": (
            rules.clip_sigma if rules.hot_nsigma is not None else None,
            "sigma clipping limit [std]",
        ),
        "CLIPITER": (
            rules.clip_maxiters if rules.hot_nsigma is not None else None,
            "max clipping iterations",
        ),
        "UNSTLEVL": (rules.unstable_level, "unstable: stability > this [1]"),
        "PERSISTK": (rules.persist_k, "rule must hold in >= PERSISTK periods"),
        "PERSISTM": (rules.persist_m, "... of the last PERSISTM periods"),
        "PARTWIN": (
            rules.partial_window if rules.persist_k is not None else None,
            "handling of a short persistence window",
        ),
        "HOTBIT": (rules.hot_bit if rules.has_hot_rule else None, "DQ bit set by the hot rule"),
        "UNSTBIT": (
            rules.unstable_bit if rules.has_unstable_rule else None,
            "DQ bit set by the unstable rule",
        ),
    }
    for key, (value, comment) in cards.items():
        if value is not None:
            set_card(hdr, key, value, comment)
    if rules.hot_nsigma is not None:
        unit = UNIT_SYSTEMS[str(attrs["unit_system"])]["sci_mean"]
        set_card(
            hdr, "HOTMED", float(attrs["hot_clip_median"]), f"clipped median of sci_mean [{unit}]"
        )
        set_card(hdr, "HOTSTD", float(attrs["hot_clip_std"]), f"clipped std of sci_mean [{unit}]")
        set_card(
            hdr, "HOTTHR", float(attrs["hot_sigma_threshold"]), f"sigma hot threshold [{unit}]"
        )
    values = np.asarray(dq.values)
    counts = _dq_counts(values, rules)
    for key, name, comment in (
        ("NHOT", "n_hot", "pixels flagged hot"),
        ("NUNSTAB", "n_unstable", "pixels flagged unstable"),
        ("NBOTH", "n_both", "pixels hot and unstable"),
        ("NFLAGGED", "n_flagged", "pixels with any flag"),
    ):
        set_card(hdr, key, counts[name], comment)
    set_card(hdr, "DQDATE", str(attrs.get("created", "")), "DQ array creation date (UTC)")
    set_card(hdr, "RULES", json.dumps(rules.to_dict()), "DQ rules as JSON")
    to_header(hdr, provenance(inputs=[f"period {int(attrs['anneal'])} of the pixel cube"]))
    for line in rules.describe():
        hdr.add_comment(line)
    _write_fits(fits.HDUList([primary, _dq_extension(values, attrs["anneal"])]), path)
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
        frame = (ds.sizes["row"], ds.sizes["col"])
        msg = f"dq has shape {dq.shape} but the cube's frames have shape {frame}"
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

    Returns the path written; raises as :func:`flagged_pixels_table`, and
    ``FileExistsError`` when the file exists and *overwrite* is False.
    """
    path = _target(path, overwrite)
    table = flagged_pixels_table(dq, ds)
    with atomic_path(path) as tmp:
        table.write(Path(tmp), format="ascii.ecsv", overwrite=True)
    logger.info(
        "wrote %d flagged pixels of period %s to %s", len(table), table.meta["anneal"], path
    )
    return path
