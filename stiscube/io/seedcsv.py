"""The seed database's per-period CSV files (``anneal_{N}.csv``): read and write.

Layout (one row per pixel, header exactly as below, rows and columns 0-based)::

    Row,Column,Stability,Sci_Mean,Err_Mean,NaN_Count,Readnoise

The values of these files are counts per frame (not e-/s): periods loaded from them are
stored with ``unit_system="counts"`` (see :mod:`stiscube.schema`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stiscube.exceptions import SeedCSVError
from stiscube.schema import PROPERTIES, property_attrs

__all__ = ["SEED_COLUMNS", "read_seed_csv", "seed_csv_path", "to_seed_table", "write_seed_csv"]

logger = logging.getLogger(__name__)

#: the header of the seed's CSV files, in order
SEED_COLUMNS: tuple[str, ...] = (
    "Row",
    "Column",
    "Stability",
    "Sci_Mean",
    "Err_Mean",
    "NaN_Count",
    "Readnoise",
)
_PROPERTY_COLUMNS = dict(zip(PROPERTIES, SEED_COLUMNS[2:], strict=True))


def seed_csv_path(anneal_num: int, csv_loc: str | os.PathLike = ".") -> Path:
    """``<csv_loc>/anneal_{anneal_num}.csv``, the seed's naming.

    Parameters
    ----------
    anneal_num : int
        The period number.
    csv_loc : path-like
        The folder.

    Returns
    -------
    pathlib.Path
        The file's path.
    """
    return Path(csv_loc) / f"anneal_{int(anneal_num)}.csv"


def read_seed_csv(path: str | os.PathLike, *, shape: tuple[int, int]) -> xr.Dataset:
    """Read one period's CSV into a Dataset of the five properties on (row, col).

    Parameters
    ----------
    path : path-like
        The CSV file.
    shape : (int, int)
        Frame shape (rows, cols) of the cube the period is for: the file must hold
        exactly one row per pixel of that frame.

    Raises
    ------
    SeedCSVError
        Missing file, header not exactly :data:`SEED_COLUMNS`, non-numeric values, wrong
        row count, pixels outside the frame, or duplicate pixels.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such CSV file"
        raise SeedCSVError(msg)
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = f"{path}: not a readable CSV file ({exc})"
        raise SeedCSVError(msg) from exc
    if header != list(SEED_COLUMNS):
        missing = [c for c in SEED_COLUMNS if c not in header]
        extra = [c for c in header if c not in SEED_COLUMNS]
        msg = (
            f"{path}: header must be {','.join(SEED_COLUMNS)}; "
            f"missing {missing}, extra {extra}" + ("" if missing or extra else ", wrong order")
        )
        raise SeedCSVError(msg)
    dtypes = {"Row": "int64", "Column": "int64"} | {c: "float64" for c in SEED_COLUMNS[2:]}
    try:
        table = pd.read_csv(path, dtype=dtypes, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        msg = f"{path}: non-numeric, out-of-range or malformed values ({exc})"
        raise SeedCSVError(msg) from exc
    rows, cols = shape
    if len(table) != rows * cols:
        msg = f"{path}: {len(table)} pixel rows, expected {rows * cols} for a {rows}x{cols} frame"
        raise SeedCSVError(msg)
    r = table["Row"].to_numpy()
    c = table["Column"].to_numpy()
    outside = (r < 0) | (r >= rows) | (c < 0) | (c >= cols)
    if outside.any():
        i = int(np.argmax(outside))
        msg = f"{path}: pixel (row {r[i]}, column {c[i]}) on line {i + 2} is outside the frame"
        raise SeedCSVError(msg)
    flat = r * cols + c
    seen = np.zeros(rows * cols, dtype=np.int64)
    np.add.at(seen, flat, 1)
    if (seen != 1).any():
        dup = int(np.argmax(seen > 1))
        msg = (
            f"{path}: duplicate pixels, e.g. row {dup // cols}, column {dup % cols} appears "
            f"{int(seen[dup])} times"
        )
        raise SeedCSVError(msg)
    counts = table["NaN_Count"].to_numpy()
    if np.any(counts < 0) or np.any(counts != np.round(counts)) or np.any(counts > 65535):
        msg = f"{path}: NaN_Count must hold whole numbers between 0 and 65535"
        raise SeedCSVError(msg)
    data = {}
    for name, column in _PROPERTY_COLUMNS.items():
        values = np.empty(rows * cols, dtype="uint16" if name == "nan_count" else "float32")
        values[flat] = table[column].to_numpy()
        data[name] = (("row", "col"), values.reshape(rows, cols), property_attrs(name, "counts"))
    logger.info("read %s (%d pixels)", path, rows * cols)
    return xr.Dataset(
        data, coords={"row": np.arange(rows), "col": np.arange(cols)}, attrs={"source": str(path)}
    )


def to_seed_table(properties: xr.Dataset) -> pd.DataFrame:
    """The five properties on (row, col) as a DataFrame in the seed's layout (row-major).

    Parameters
    ----------
    properties : xarray.Dataset
        The five properties on (row, col).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SEED_COLUMNS`, one row per pixel.
    """
    missing = [name for name in PROPERTIES if name not in properties]
    if missing:
        msg = f"properties lacks {missing}"
        raise ValueError(msg)
    rows, cols = properties.sizes["row"], properties.sizes["col"]
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    columns = {"Row": rr.ravel(), "Column": cc.ravel()}
    for name, column in _PROPERTY_COLUMNS.items():
        values = np.asarray(properties[name].transpose("row", "col").values).ravel()
        columns[column] = values.astype("float64")
    return pd.DataFrame(columns)


def write_seed_csv(properties: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the five properties on (row, col) in the seed's CSV layout (row-major).

    Values are written with 9 significant digits, enough to round-trip float32.

    Parameters
    ----------
    properties : xarray.Dataset
        The five properties on (row, col).
    path : path-like
        The CSV file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    to_seed_table(properties).to_csv(path, index=False, float_format="%.9g")
    return path
