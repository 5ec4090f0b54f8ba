"""Anneal effectiveness: what each anneal repaired, from the pixel cube under one hot rule.

The STIS monitor's headline question is "what fraction of the new hot pixels did this
anneal repair?".  :func:`anneal_effectiveness` answers it for every anneal whose three
periods are in the cube, with the hot pixels of each period decided by one
:class:`~stiscube.dq.rules.DQRules` through :func:`stiscube.dq.hot_pixels`, the
definition every STIS product uses (default ``sci_mean > 0.1 e-/s``, the published
monitor's level).  For the anneal that opens period *k* (between periods *k-1* and *k*),
with ``H_j`` the hot pixels of period *j*, ``U_j`` the pixels whose rate changed during
the period (``stability > unstable_level``) and ``Q_j`` the quiet ones
(``sci_mean <= quiet_level``):

new hot pixels
    ``N = H_{k-1} & U_{k-1} & Q_{k-2}``: hot before the anneal, turned hot during period
    *k-1* (its rate stepped up inside the period), and at the level of the normal dark
    current in the period before, i.e. appeared since the previous anneal;
repaired
    ``N & ~H_k``, as the fraction ``repair_fraction = |N & ~H_k| / |N|``;
old hot pixels
    ``O = H_{k-2} & H_{k-1}``: hot in both periods before the anneal, of which
    ``old_still_hot_fraction = |O & H_k| / |O|`` are still hot after it.

Why the two extra conditions: a period's ``sci_mean`` is a clipped mean over its darks,
so a pixel that turned hot late in period *k-2* can look normal there (a fraction ``f``
of the period at excess rate ``H`` gives ``f H``, and the last few frames of a step are
rejected as cosmic rays by the properties' clipping), then be hot all through period
*k-1* although it met anneal *k-1* already; if it survived that anneal it is permanent
and would count as "not repaired" by anneal *k*.  Such a pixel is steady in period *k-1*
(not ``U_{k-1}``).  Likewise a flickering pixel whose mean wanders about the hot level
is never quiet.  Both conditions pick pixels by what happened before anneal *k*, not by
whether anneal *k* healed them, so they thin the sample without biasing the fraction.
On the simulated mission "hot in *k-1*, not hot in *k-2*" alone reads Side-1 and Side-2
repair fractions 12 percentage points low (68 % and 34 % against 80 % and 46 % at 8 darks
per period); with both conditions they are recovered within the tested 3 points.
``quiet_level`` (default a tenth of the hot level, 0.01 e-/s: a few times the median
dark) and ``unstable_level`` (default 3, a reduced-chi spread well above the ~1 of a
steady pixel) only date when a hot pixel appeared; which pixels are hot is the rules'
hot rule alone.

Errors are binomial, ``sqrt(p (1 - p) / n)``; :func:`effectiveness_by_side` pools the
anneals of each electronics side (Side-2 from
:data:`stiscube.io.darks.SIDE2_START_MJD`, 2001-07-23, by the anneal's date).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from stiscube.cube.pixeldb import PixelDB
from stiscube.dq.array import hot_pixels
from stiscube.dq.rules import DQRules
from stiscube.io.darks import SIDE2_START_MJD
from stiscube.schema import EFFECTIVENESS_COLUMNS
from stores.common.dates import datetime64_to_mjd
from stores.common.validate import as_float, instance_of
from stores.storage.fs import atomic_path

__all__ = [
    "anneal_effectiveness",
    "effectiveness_by_side",
    "write_anneal_effectiveness",
]

logger = logging.getLogger(__name__)

def _fraction(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``k / n`` and its binomial error, NaN where ``n == 0``."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / n, np.nan)
        return p, np.where(n > 0, np.sqrt(p * (1 - p) / n), np.nan)


def anneal_effectiveness(
    db: PixelDB,
    *,
    rules: DQRules | None = None,
    unstable_level: float = 3.0,
    quiet_level: float | None = None,
) -> Any:
    """Per anneal: the new hot pixels, the fraction repaired, the old still hot.

    Parameters
    ----------
    db : PixelDB
        The database; periods in the ``"rate"`` unit system are used.
    rules : DQRules, optional
        The hot rule (default ``DQRules()``: ``sci_mean > 0.1`` electron / s).  Its
        persistence window, if any, is not applied (an anneal compares single periods;
        ``meta["persistence"]`` says so).
    unstable_level : float
        ``stability`` above which a pixel's rate changed during a period (> 0).
    quiet_level : float, optional
        ``sci_mean`` (electron / s) at or below which a pixel counts as quiet, i.e. not
        yet hot (default a tenth of ``rules.hot_level``; required when the rules have
        no ``hot_level``).  See the module docstring.

    Returns
    -------
    astropy.table.Table
        One row per anneal whose periods *k-2*, *k-1*, *k* are all in the cube (rate
        periods with consecutive numbers); columns
        :data:`stiscube.schema.EFFECTIVENESS_COLUMNS`; ``meta`` holds the rules (JSON),
        the two levels and the definitions.

    Raises
    ------
    TypeError, ValueError
        Bad *db*, *rules* or level, rules without a hot rule, or no quiet level.
    """
    from astropy.table import Table

    instance_of(db, "db", PixelDB, what="a stiscube.PixelDB")
    rules = DQRules() if rules is None else rules
    instance_of(rules, "rules", DQRules, what="a DQRules")
    if not rules.has_hot_rule:
        msg = f"anneal effectiveness needs rules with a hot rule, got {rules.describe()}"
        raise ValueError(msg)
    persistence = "none"
    if rules.window != 1:  # an anneal compares single periods: the rule without its window
        persistence = (
            f"not applied (the rules ask >= {rules.persist_k} of {rules.persist_m} periods; "
            "an anneal compares single periods)"
        )
        rules = dataclasses.replace(rules, persist_k=None, persist_m=None)
    unstable_level = as_float(unstable_level, "unstable_level", min=0, strict_min=True)
    if quiet_level is None:
        if rules.hot_level is None:
            msg = "quiet_level (electron / s) is needed when the rules have no hot_level"
            raise ValueError(msg)
        quiet_level = 0.1 * rules.hot_level
    quiet_level = as_float(quiet_level, "quiet_level", min=0, strict_min=True)
    ds = db.dataset
    numbers = [int(n) for n in ds["anneal"].values]
    systems = np.atleast_1d(ds["unit_system"].values).astype(str)
    rate = {n for n, s in zip(numbers, systems, strict=True) if s == "rate"}
    starts = dict(zip(numbers, datetime64_to_mjd(ds["anneal_start"].values), strict=True))
    anneals = [n for n in sorted(rate) if n - 1 in rate and n - 2 in rate]
    states: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def state(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hot, unstable, quiet) masks of period n, read once."""
        if n not in states:
            hot = hot_pixels(db, rules=rules, anneal_num=n).values
            arrays = db.store.read_arrays([n], variables=["sci_mean", "stability"])
            sci = np.asarray(arrays["sci_mean"][0], dtype=np.float64)
            stability = np.asarray(arrays["stability"][0], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                states[n] = hot, stability > unstable_level, sci <= quiet_level
            for old in [m for m in states if m < n - 2]:
                del states[old]
        return states[n]

    counts = np.zeros((len(anneals), 4), dtype=np.int64)
    for i, k in enumerate(anneals):
        (hot2, _, quiet2), (hot1, unstable1, _), (hot0, _, _) = state(k - 2), state(k - 1), state(k)
        new = hot1 & unstable1 & quiet2
        old = hot2 & hot1
        counts[i] = (
            np.count_nonzero(new),
            np.count_nonzero(new & ~hot0),
            np.count_nonzero(old),
            np.count_nonzero(old & hot0),
        )
    mjd = np.array([starts[k] for k in anneals], dtype=float)
    repair, repair_err = _fraction(counts[:, 1], counts[:, 0])
    still, still_err = _fraction(counts[:, 3], counts[:, 2])
    table = Table(
        [
            np.asarray(anneals, dtype=np.int64),
            mjd,
            np.where(mjd >= SIDE2_START_MJD, 2, 1),
            counts[:, 0],
            counts[:, 1],
            repair,
            repair_err,
            counts[:, 2],
            counts[:, 3],
            still,
            still_err,
        ],
        names=list(EFFECTIVENESS_COLUMNS),
    )
    for name, text in EFFECTIVENESS_COLUMNS.items():
        table[name].description = text
    table["anneal_mjd"].unit = "d"
    table.meta = {
        "product": "STIS CCD anneal effectiveness (stiscube.dq.effectiveness)",
        "database": db.location.url,
        "rules": json.loads(json.dumps(rules.to_dict())),
        "hot_rule": rules.describe()[0],
        "persistence": persistence,
        "unstable_level": unstable_level,
        "quiet_level": quiet_level,
        "quiet_level_units": "electron / s",
        "side2_start_mjd": SIDE2_START_MJD,
    }
    logger.info("anneal effectiveness of %d anneals of %s", len(table), db.location.url)
    return table


def effectiveness_by_side(table: Any) -> Any:
    """The anneals of each electronics side pooled: counts summed, fractions with binomial
    errors (an :class:`astropy.table.Table`, one row per side present).

    Parameters
    ----------
    table : astropy.table.Table
        The per-anneal table of :func:`anneal_effectiveness`.

    Returns
    -------
    astropy.table.Table
        One row per side.
    """
    from astropy.table import Table

    rows = []
    for side in (1, 2):
        part = table[table["side"] == side]
        if len(part) == 0:
            continue
        sums = [int(part[c].sum()) for c in ("n_new", "n_repaired", "n_old", "n_old_still_hot")]
        repair, repair_err = _fraction(sums[1], sums[0])
        still, still_err = _fraction(sums[3], sums[2])
        rows.append(
            (
                side,
                len(part),
                sums[0],
                sums[1],
                float(repair),
                float(repair_err),
                sums[2],
                sums[3],
                float(still),
                float(still_err),
            )
        )
    names = ["side", "n_anneals", *list(EFFECTIVENESS_COLUMNS)[3:]]
    return Table(rows=rows, names=names) if rows else Table(names=names)


def write_anneal_effectiveness(table: Any, path: str | os.PathLike[str]) -> Path:
    """Write the per-anneal table of :func:`anneal_effectiveness` as ECSV (atomically).

    Parameters
    ----------
    table : astropy.table.Table
        The table.
    path : path-like
        The ECSV file (replaced if it exists).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        table.write(Path(tmp), format="ascii.ecsv", overwrite=True)
    return path
