"""Master catalogs: ``<catalogs>/<target>.ecsv`` with ``master_id, ra, dec`` (+ ``flux``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table

from cte.exceptions import CatalogError

__all__ = ["catalog_path", "read_catalog"]


def catalog_path(catalogs_dir: str | os.PathLike, target: str) -> Path:
    """Path of *target*'s master catalog in *catalogs_dir*."""
    return Path(catalogs_dir) / f"{target}.ecsv"


def read_catalog(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a master catalog.

    Parameters
    ----------
    path : path-like
        A ``<target>.ecsv`` master catalog.

    Returns
    -------
    pandas.DataFrame
        ``master_id`` (int64, unique), ``ra``, ``dec`` (float64, deg) and ``flux``
        (float64, the catalog's reference flux in its own units; NaN when absent).

    Raises
    ------
    CatalogError
        The file is missing or unreadable, a column is missing, ids repeat, or a
        position is not finite (the message names the file and column).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"master catalog {path} does not exist"
        raise CatalogError(msg)
    try:
        table = Table.read(path, format="ascii.ecsv")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        msg = f"master catalog {path} is not a readable ECSV table ({exc})"
        raise CatalogError(msg) from exc
    missing = [c for c in ("master_id", "ra", "dec") if c not in table.colnames]
    if missing:
        msg = f"master catalog {path} lacks column(s) {missing}; it has {table.colnames}"
        raise CatalogError(msg)
    try:
        ids = np.asarray(table["master_id"], dtype=np.int64)
        ra = np.asarray(table["ra"], dtype=np.float64)
        dec = np.asarray(table["dec"], dtype=np.float64)
        flux = (np.asarray(table["flux"], dtype=np.float64) if "flux" in table.colnames
                else np.full(len(table), np.nan))
    except (TypeError, ValueError) as exc:
        msg = f"master catalog {path}: non-numeric master_id, ra, dec or flux ({exc})"
        raise CatalogError(msg) from exc
    if len(np.unique(ids)) != ids.size:
        msg = f"master catalog {path}: master_id values repeat"
        raise CatalogError(msg)
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    if bad.any():
        msg = f"master catalog {path}: {int(bad.sum())} rows with non-finite ra or dec"
        raise CatalogError(msg)
    if ids.size == 0:
        msg = f"master catalog {path} is empty"
        raise CatalogError(msg)
    return pd.DataFrame({"master_id": ids, "ra": ra, "dec": dec, "flux": flux})
