"""Layout of the pixel property cube: properties, units, and the Zarr schema.

The cube holds, for every anneal period and every pixel, five properties.  Periods
computed by :mod:`stiscube.properties.compute` are in the *rate* unit system; periods loaded
from the seed's CSV files (``anneal_{N}.csv``) are in the *counts* unit system, since
those files hold counts per frame.  Every period records its unit system in the
``unit_system`` coordinate, and operations that combine periods refuse to mix them.

========== ===================== ================= ==========================================
property   rate units            counts units      meaning
========== ===================== ================= ==========================================
stability  1                     1                 reduced-chi spread of the per-frame rates:
                                                   sqrt(sum(((r_i - mean) / err_i)^2) / (n-1))
sci_mean   electron / s          count             mean dark signal over the period's frames
err_mean   electron / s          count             mean of the ERR arrays over the frames
nan_count  1                     1                 number of excluded samples (NaN,
                                                   DQ-masked, or rejected as cosmic rays)
readnoise  electron              count             per-pixel read noise
========== ===================== ================= ==========================================

Storage: one Zarr array per property with dims (anneal, row, col); ``nan_count`` is
``uint16``, the others ``float32``.  Names, dtypes, units per unit system, long names and
definitions are declared once, in :data:`PROPERTY_SPECS`.  Rows and columns are 0-based
detector indices, as in the seed's CSV files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stores import CubeSchema, VariableSpec
from stores.common.validate import one_of

__all__ = [
    "DEFAULT_CHUNKS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_DARK_DQ_MASK",
    "EFFECTIVENESS_COLUMNS",
    "PERIOD_PROVENANCE_DEFAULTS",
    "PROPERTIES",
    "PROPERTY_DTYPES",
    "PROPERTY_SPECS",
    "STIS_DQ_BITS",
    "TRUTH_VARIABLES",
    "UNIT_SYSTEMS",
    "PropertySpec",
    "cube_schema",
    "property_attrs",
]

#: bit value -> (name, description) of the STIS DQ flags.
STIS_DQ_BITS: dict[int, tuple[str, str]] = {
    1: ("rs_decode_error", "Reed-Solomon decoding error"),
    2: ("fill_data", "data replaced by fill value (lost in telemetry)"),
    4: ("bad_detector_pixel", "bad detector pixel or beyond aperture"),
    8: ("occulted", "data masked by occulting bar"),
    16: ("hot_pixel", "hot pixel (dark rate above threshold)"),
    32: ("large_blemish", "large blemish"),
    64: ("unused_64", "not used"),
    128: ("overscan", "overscan region / bias level pixel"),
    256: ("saturated", "saturated pixel (full well or A-to-D)"),
    512: ("bad_reference_pixel", "bad pixel in a reference file"),
    1024: ("small_blemish", "small blemish"),
    2048: ("high_background", "> 30% background in an extracted spectrum"),
    4096: ("extraction_discarded", "pixel discarded in spectral extraction"),
    8192: ("cosmic_ray", "cosmic ray rejected (CR-split or repeat-obs combination)"),
    16384: ("geocorr_area", "pixel in a GEOCORR-affected area"),
}

#: Samples whose value itself is unreliable: lost/garbled telemetry (1, 2), saturation
#: (256) and samples already flagged as cosmic rays upstream (8192).  Flags that describe
#: the *pixel* (hot 16, blemishes 32/1024, bad pixel 4/512) are deliberately not masked:
#: measuring those pixels is the point of the pixel property database.
DEFAULT_DARK_DQ_MASK: int = 1 | 2 | 256 | 8192


#: The columns of the per-anneal table of :func:`stiscube.dq.effectiveness.anneal_effectiveness`
#: with their descriptions (units: counts, fractions).
EFFECTIVENESS_COLUMNS: dict[str, str] = {
    "anneal": "number of the period the anneal opened (k)",
    "anneal_mjd": "date of the anneal: start of period k (MJD)",
    "side": "electronics side at the anneal (1 or 2; Side-2 from 2001-07-23)",
    "n_new": "hot pixels new since the previous anneal: hot, rate changed in k-1; quiet in k-2",
    "n_repaired": "of those, not hot in k",
    "repair_fraction": "n_repaired / n_new",
    "repair_fraction_err": "binomial 1-sigma error of repair_fraction",
    "n_old": "old hot pixels: hot in k-2 and k-1",
    "n_old_still_hot": "of those, hot in k",
    "old_still_hot_fraction": "n_old_still_hot / n_old",
    "old_still_hot_fraction_err": "binomial 1-sigma error of old_still_hot_fraction",
}


#: The per-period truth the simulator writes (:mod:`stiscube.datasets.simulate`, its
#: module docstring defines each): variable -> (dtype, units), on (row, col) but
#: ``events`` on (frame, row, col).  The truth files carry exactly these.
TRUTH_VARIABLES: dict[str, tuple[str, str]] = {
    "dark_rate": ("float32", "electron / s"),
    "readnoise": ("float32", "electron"),
    "hot_rate": ("float32", "electron / s"),
    "hot_onset_mjd": ("float64", "d"),
    "flicker_amplitude": ("float32", "electron / s"),
    "flicker_duty": ("float32", "1"),
    "blemish": ("bool", "1"),
    "mean_rate": ("float32", "electron / s"),
    "mean_rate_observed": ("float32", "electron / s"),
    "events": ("uint8", "1"),
    "n_cosmic_rays": ("int16", "1"),
    "n_nan": ("int16", "1"),
    "n_fill": ("int16", "1"),
}


@dataclass(frozen=True)
class PropertySpec:
    """The declaration of one property of the cube (the only one: readers, writers,
    validators, simulators and tests derive from :data:`PROPERTY_SPECS`).

    Parameters
    ----------
    name : str
        Variable name in the cube and in :func:`stiscube.compute_properties`' output.
    dtype : str
        Storage dtype (numpy name), also the dtype :func:`stiscube.compute_properties`
        returns.
    units : Mapping[str, str]
        Units in each unit system (``"rate"``: computed from darks; ``"counts"``: the
        seed's CSV files).
    long_name : str
        Short human-readable name (CF ``long_name``), valid in either unit system.
    definition : str
        The formula, in the rate system (:mod:`stiscube.properties._kernels`).
    """

    name: str
    dtype: str
    units: Mapping[str, str]
    long_name: str
    definition: str


#: the property cube, declared once, in the order of the seed's CSV columns and of
#: ``PixelDB.cube``
PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    PropertySpec(
        "stability",
        "float32",
        {"rate": "1", "counts": "1"},
        "reduced-chi spread of the dark rate",
        "sqrt(sum(((r_i - sci_mean) / (E_i / t_i))**2) / (m - 1)) over the m kept "
        "samples, r_i = e_i / t_i; about 1 for a steady pixel; NaN if m < 2",
    ),
    PropertySpec(
        "sci_mean",
        "float32",
        {"rate": "electron / s", "counts": "count"},
        "mean dark signal",
        "sum(e_i) / sum(t_i) over kept samples i, e_i = ATODGAIN_i * SCI_i (electrons), "
        "t_i = EXPTIME_i (s) of the imset times its temperature factor dark_scale_i "
        "(Side-2 frames, see stiscube.io.darks): the exposure-weighted mean dark rate",
    ),
    PropertySpec(
        "err_mean",
        "float32",
        {"rate": "electron / s", "counts": "count"},
        "mean error of the dark signal",
        "sum(E_i) / sum(t_i) over kept samples i, E_i = ATODGAIN_i * ERR_i (electrons): "
        "the exposure-weighted mean of the per-frame error rates E_i / t_i",
    ),
    PropertySpec(
        "nan_count",
        "uint16",
        {"rate": "1", "counts": "1"},
        "number of excluded samples",
        "n - m: samples with non-finite SCI or ERR or ERR <= 0, DQ & dq_mask != 0, or "
        "rejected as cosmic rays by per-pixel sigma clipping",
    ),
    PropertySpec(
        "readnoise",
        "float32",
        {"rate": "electron", "counts": "count"},
        "read noise measured from the frames' temporal scatter",
        "sqrt(max(s2 - max(sum(e_i), 0) / m, 0)), s2 = sum((e_i - sci_mean t_i)**2) / (m - 1) "
        "over the m kept samples: the scatter of the pixel's electrons between frames minus "
        "the Poisson variance of its mean dark signal (electrons; NaN if m < 2; independent "
        "of the ERR arrays; bias and error in stiscube.properties._kernels)",
    ),
)

#: property labels, in the order of the seed's CSV columns and of ``PixelDB.cube``
PROPERTIES: tuple[str, ...] = tuple(spec.name for spec in PROPERTY_SPECS)

#: storage dtype of each property
PROPERTY_DTYPES: dict[str, str] = {spec.name: spec.dtype for spec in PROPERTY_SPECS}

#: units of each property in each unit system
UNIT_SYSTEMS: dict[str, dict[str, str]] = {
    system: {spec.name: spec.units[system] for spec in PROPERTY_SPECS}
    for system in ("rate", "counts")
}

_SPECS: dict[str, PropertySpec] = {spec.name: spec for spec in PROPERTY_SPECS}

#: default chunk shape along (anneal, row, col) and compression, chosen with
#: benchmarks/bench_cube.py: one chunk row per period keeps ingest cheap and atomic;
#: 128 x 128 chunks serve a pixel (one 64 KiB read per property) and a whole frame
#: (64 chunks) alike; no compression, because dark-frame properties are noise-dominated
#: (zstd saves only ~22 %) while decompression doubles the cost of point and frame
#: reads.  Uncompressed storage is 18 MiB per 1024 x 1024 period (4 float32 + 1 uint16
#: properties), below the 20 MiB raw float32 size.
DEFAULT_CHUNKS: dict[str, int] = {"anneal": 1, "row": 128, "col": 128}
DEFAULT_COMPRESSION = "none"


#: Per-period provenance coordinates of the input darks and their values for periods not
#: computed from darks (seed CSV, precomputed properties): unknown.  ``ccdgain`` is the
#: commanded CCDGAIN (float64, NaN unknown), ``ccdamp`` the amplifier (``""`` unknown),
#: ``exptime_class`` e.g. ``"long (1000-1200 s)"`` and ``temperature_correction`` the
#: scaling applied (``"1/(1+0.07*(OCCDHTAV-18)) Side-2: 20 of 24 frames scaled, ..."``,
#: ``"off"``; ``""`` unknown), see :mod:`stiscube.io.darks`.
PERIOD_PROVENANCE_DEFAULTS: dict[str, object] = {
    "ccdgain": float("nan"),
    "ccdamp": "",
    "exptime_class": "",
    "temperature_correction": "",
}


def property_attrs(name: str, unit_system: str = "rate") -> dict[str, str]:
    """``units``, ``long_name`` and ``definition`` attributes of property *name*.

    Parameters
    ----------
    name : str
        One of :data:`PROPERTIES`.
    unit_system : {"rate", "counts"}
        The unit system of the units.

    Returns
    -------
    dict of str
        The attributes.
    """
    one_of(unit_system, "unit_system", sorted(UNIT_SYSTEMS))
    spec = _SPECS[one_of(name, "name", list(_SPECS))]
    return {
        "units": spec.units[unit_system],
        "long_name": spec.long_name,
        "definition": spec.definition,
    }


def cube_schema(
    shape: tuple[int, int] = (1024, 1024),
    *,
    chunks: Mapping[str, int] | None = None,
    shards: Mapping[str, int] | None = None,
    compression: str = DEFAULT_COMPRESSION,
    compression_level: int = 3,
) -> CubeSchema:
    """The :class:`stores.CubeSchema` of a pixel property cube of *shape* (rows, cols).

    Units in the variables' attrs are those of the rate system; the unit system of each
    period is its ``unit_system`` coordinate.

    Parameters
    ----------
    shape : (int, int)
        Frame shape (rows, cols).
    chunks, shards : mapping of str to int, optional
        Chunk and shard sizes by dimension (default :data:`DEFAULT_CHUNKS`, no shards).
    compression : str
        Codec name (default :data:`DEFAULT_COMPRESSION`: none).
    compression_level : int
        The codec's level.

    Returns
    -------
    stores.CubeSchema
        The schema.
    """
    rows, cols = (int(n) for n in shape)
    variables = {}
    for name in PROPERTIES:
        variables[name] = VariableSpec(("row", "col"), PROPERTY_DTYPES[name], property_attrs(name))
    chosen = dict(DEFAULT_CHUNKS if chunks is None else chunks)
    chosen["row"] = min(chosen.get("row", rows), rows)
    chosen["col"] = min(chosen.get("col", cols), cols)
    return CubeSchema(
        append_dim="anneal",
        sizes={"row": rows, "col": cols},
        variables=variables,
        label_dtype="int64",
        slice_coords={
            "anneal_start": "datetime64[ns]",
            "anneal_end": "datetime64[ns]",
            "unit_system": "str",
            "n_darks": "int64",
            "source": "str",
            "ccdgain": "float64",
            "ccdamp": "str",
            "exptime_class": "str",
            "temperature_correction": "str",
        },
        coords={
            "row": ("row", np.arange(rows), {"long_name": "detector row (0-based)"}),
            "col": ("col", np.arange(cols), {"long_name": "detector column (0-based)"}),
        },
        chunks=chosen,
        shards=shards,
        compression=compression,
        compression_level=compression_level,
        attrs={
            "title": "STIS CCD pixel property cube",
            "instrument": "STIS",
            "detector": "CCD",
            "conventions": "one slice per anneal period; see stiscube.schema",
        },
    )
