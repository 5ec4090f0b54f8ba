"""From FLT/FLC files to the photometry store, in parallel with dask.

:func:`measure_photometry` reads the headers of all files (:mod:`cte.io.images`), skips
and logs excluded or unreadable ones, selects images, checks the master catalogs and
the store before computing anything, then measures every selected image in parallel
(one dask task per image; threads by default, or a ``dask.distributed`` client) with
:func:`measure_image` (see :mod:`cte.photometry._measure` for the method and formulas), and
writes the results into a :class:`~cte.photometry.store.PhotometryStore`, one atomic update per
(target, filter, flash) key.

An image whose pixels cannot be read or whose WCS cannot be aligned is recorded as
skipped with its reason and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from cte.config import Config, load_config
from cte.exceptions import CTEError
from cte.io._catalog import catalog_path, read_catalog
from cte.io.images import ImageSelection, scan_images, select_images
from cte.photometry._measure import measure_image
from cte.photometry._pam import check_pams
from cte.photometry.store import PhotometryStore
from cte.schema import key_for
from stores.common.validate import as_int, one_of

__all__ = ["PhotometrySummary", "measure_photometry"]

logger = logging.getLogger(__name__)

_SKIP_COLUMNS = ["path", "image", "category", "reason"]


@dataclass(frozen=True)
class PhotometrySummary:
    """What :func:`measure_photometry` did.

    Parameters
    ----------
    measured : pandas.DataFrame
        One row per image measured: ``image``, ``key``, ``path``, ``n_stars``,
        ``wcs_shift_x``, ``wcs_shift_y``, ``wcs_rotation``, ``wcs_residual_rms``.
    reused : pandas.DataFrame
        Selected images already in the store (not measured again): ``image``, ``key``.
    skipped : pandas.DataFrame
        ``path``, ``image``, ``category`` (``excluded``: the configuration or headers
        rule it out; ``unreadable``: the file is broken; ``failed``: its pixels or
        alignment failed) and ``reason``.
    keys : list of str
        Store keys written.
    store : str
        Location of the store.
    seconds : float
        Wall time.
    """

    measured: pd.DataFrame
    reused: pd.DataFrame
    skipped: pd.DataFrame
    keys: list[str]
    store: str
    seconds: float

    def __str__(self) -> str:
        counts = self.skipped["category"].value_counts().to_dict() if len(self.skipped) else {}
        parts = ", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "none"
        return (f"{len(self.measured)} image(s) measured, {len(self.reused)} already stored, "
                f"skipped: {parts}; {len(self.keys)} key(s) written to {self.store} "
                f"in {self.seconds:.1f} s")


def _measure_task(path: str, header: dict, catalog: pd.DataFrame, config: Config,
                  apertures: tuple[float, ...], pam_path: str | None):
    """One image: ``("ok", Dataset)`` or ``("failed", reason)`` for the image's own errors."""
    try:
        ds = measure_image(path, header=header, catalog=catalog, config=config,
                           apertures=apertures, pam_path=pam_path)
    except CTEError as exc:  # recorded in the summary and logged by the caller
        return "failed", str(exc)
    return "ok", ds


def measure_photometry(
    data: str | os.PathLike | Iterable[str | os.PathLike],
    catalogs: str | os.PathLike,
    store: str | os.PathLike,
    *,
    config: Config | str | os.PathLike | None = None,
    selection: ImageSelection | None = None,
    apertures: Sequence[float] | None = None,
    pam_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    client: Any = None,
    scheduler: str = "threads",
    num_workers: int | None = None,
) -> PhotometrySummary:
    """Measure aperture photometry of FLT/FLC images into a photometry store.

    Parameters
    ----------
    data : path, or iterable of paths
        Files and/or directories searched recursively for ``*_flt.fits``/``*_flc.fits``.
    catalogs : path
        Directory of ``<target>.ecsv`` master catalogs (``master_id, ra, dec``, optional
        ``flux``) for every selected target.
    store : path or URL
        The photometry store (created if absent).
    config : Config or path, optional
        Configuration, or a user TOML file merged over the defaults.
    selection : cte.io.ImageSelection, optional
        Which images (default: every usable one, ``proposals="all"``); validated once.
    apertures : sequence of float, optional
        Aperture radii in px (default: the configuration's).
    pam_dir : path, optional
        Directory with the pixel-area maps named in ``photometry.pam_files``; without
        it fluxes are not corrected for pixel area (a warning is logged).
    overwrite : bool
        Measure images again even when the store already holds them at every radius.
        An image measured again is measured at the requested radii and at those it was
        stored with, and its new photometry replaces the old.
    client : distributed.Client, optional
        Run the per-image tasks on this cluster instead of local threads.
    scheduler : {"threads", "processes", "synchronous"}
        Local dask scheduler when no client is given.
    num_workers : int, optional
        Local worker count (dask's default otherwise).

    Returns
    -------
    PhotometrySummary

    Raises
    ------
    ConfigError, ValueError
        Invalid configuration or selection.
    CatalogError
        A selected target has no valid master catalog.
    FileNotFoundError
        A given path or a pixel-area map does not exist.
    """
    start = time.perf_counter()
    if not isinstance(config, Config):
        config = load_config(config)
    selection = ImageSelection() if selection is None else selection
    selection.check(config)  # before any file is read
    radii = config.photometry.apertures if apertures is None else dataclasses.replace(
        config.photometry, apertures=cast(tuple, apertures)).apertures  # validated as the file's
    one_of(scheduler, "scheduler", ("threads", "processes", "synchronous"))
    as_int(num_workers, "num_workers", min=1, allow_none=True, allow_integral_float=True)
    pams = None
    if pam_dir is not None:
        pams = {c: str(p) for c, p in check_pams(pam_dir, dict(config.photometry.pam_files))
                .items()}
    scan = scan_images(data, config=config)
    chosen = select_images(scan.records, selection=selection, config=config)
    tables = {t: read_catalog(catalog_path(catalogs, t)) for t in sorted(set(chosen["target"]))}
    phot_store = PhotometryStore(store)
    if pams is None and len(chosen):
        logger.warning("no pixel-area maps given (pam_dir): fluxes are not corrected for "
                       "pixel area, which varies by a few per cent across each chip")

    keys = [key_for(t, f, fl) for t, f, fl in
            zip(chosen["target"], chosen["filter"], chosen["flash"], strict=True)]
    chosen = chosen.assign(key=keys)
    reused_rows = []
    have: dict[tuple[str, str], set[float]] = {}
    if len(chosen):
        stored = phot_store.images()
        have = {(k, i): {float(r) for r in a} for k, i, a in
                zip(stored["key"], stored["image"], stored["apertures"], strict=True)}
    if not overwrite and len(chosen):
        done = [set(radii) <= have.get((k, i), set())
                for k, i in zip(chosen["key"], chosen["image"], strict=True)]
        reused_rows = chosen.loc[done, ["image", "key"]]
        chosen = chosen.loc[~np.asarray(done, bool)]
        if len(reused_rows):
            logger.info("%d selected image(s) already in the store at every radius; pass "
                        "overwrite=True to measure them again", len(reused_rows))
    reused = pd.DataFrame(reused_rows, columns=["image", "key"]).reset_index(drop=True)

    # an image measured again keeps the radii it was stored with: its new photometry
    # replaces the old one as a whole
    radii_per_image = [tuple(sorted(set(radii) | have.get((k, i), set())))
                       for k, i in zip(chosen["key"], chosen["image"], strict=True)]
    results = _run_tasks(chosen, tables, config, radii_per_image, pams, client=client,
                         scheduler=scheduler, num_workers=num_workers)

    measured_rows, failed_rows, datasets = [], [], []
    for row, (status, value) in zip(chosen.itertuples(), results, strict=True):
        if status == "failed":
            logger.warning("photometry failed for %s: %s", row.image, value)
            failed_rows.append({"path": row.path, "image": row.image, "category": "failed",
                                "reason": value})
            continue
        datasets.append(value)
        measured_rows.append({
            "image": row.image, "key": row.key, "path": row.path,
            "n_stars": int(np.isfinite(value["flux"].values[0, :, 0]).sum()),
            **{name: float(value[name].values[0]) for name in
               ("wcs_shift_x", "wcs_shift_y", "wcs_rotation", "wcs_residual_rms")},
        })
    written = phot_store.write_images(datasets)

    excluded = scan.skipped.assign(category="excluded")
    unreadable = scan.unreadable.assign(image="").rename(columns={"error": "category"})
    unreadable["category"] = "unreadable"
    skipped = pd.concat([df[_SKIP_COLUMNS] for df in
                         (excluded, unreadable, pd.DataFrame(failed_rows, columns=_SKIP_COLUMNS))
                         if len(df)] or [pd.DataFrame(columns=_SKIP_COLUMNS)],
                        ignore_index=True)
    summary = PhotometrySummary(
        measured=pd.DataFrame(measured_rows, columns=["image", "key", "path", "n_stars",
                                                      "wcs_shift_x", "wcs_shift_y",
                                                      "wcs_rotation", "wcs_residual_rms"]),
        reused=reused, skipped=skipped, keys=written, store=phot_store.location,
        seconds=time.perf_counter() - start,
    )
    logger.info("%s", summary)
    return summary


def _run_tasks(chosen: pd.DataFrame, catalogs: dict, config: Config, radii, pams, *, client,
               scheduler: str, num_workers: int | None) -> list:
    """Run one delayed task per image and return their results in order."""
    if not len(chosen):
        return []
    import dask

    cat_nodes = {t: dask.delayed(c, pure=True, name=f"catalog-{t}") for t, c in catalogs.items()}
    conf_node = dask.delayed(config, pure=True, name="cte-config")
    tasks = []
    for row, image_radii in zip(chosen.to_dict("records"), radii, strict=True):  # per file
        pam = None if pams is None else pams[int(row["field_chip"])]
        header = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        tasks.append(dask.delayed(_measure_task, pure=False)(
            str(Path(row["path"])), header, cat_nodes[row["target"]], conf_node, image_radii,
            pam))
    if client is not None:
        return list(client.gather(client.compute(tasks)))
    kwargs: dict[str, Any] = {"scheduler": scheduler}
    if num_workers is not None:
        kwargs["num_workers"] = int(num_workers)
    return list(dask.compute(*tasks, **kwargs))
