"""The whole monitor in one call: photometry -> pairs -> CTE loss -> model -> report.

:func:`run` is what ``cte run`` does (the successor of the seed's
``run_uvis_external_cte.py``):

1. measure aperture photometry of the selected FLT/FLC images into the photometry
   store (images already stored at every requested radius are reused, so a run can
   be repeated cheaply or re-analysed without redoing photometry);
2. pair the images and measure the CTE loss per (pair, flux bin, aperture)
   (:func:`cte.measure_loss`), written to ``<out>/loss.nc``;
3. fit the correction model jointly over epochs, fluxes and backgrounds
   (:func:`cte.fit_model`), written to ``<out>/coefficients.ecsv`` (and ``.tex``);
4. write the plots and the site ``<out>/index.html`` (:func:`cte.report.write_site`), listing
   the data used and the data excluded with their reasons.

Outputs are published only when the whole analysis succeeded: everything is written
into a hidden staging directory inside *out* (``.cte-run-*``), then each file (and the
``plots`` directory) is renamed over the previous one; a run that fails at any step
removes the staging directory and leaves the previous outputs as they were.

The monthly update is the same command each month: by default every image of the data
is selected (``proposals="all"``); images already in the photometry store are reused,
so only the new epoch is measured, and the loss and model are fitted again over the
whole campaign.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cte.config import Config, load_config
from cte.exceptions import EmptySelectionError, FitError
from cte.io.images import ImageSelection, scan_images
from stores.common.progress import dask_progress, steps

__all__ = ["RunResult", "analyse_store", "run"]

logger = logging.getLogger(__name__)

@dataclass
class RunResult:
    """What :func:`run` produced.

    Parameters
    ----------
    photometry : cte.PhotometrySummary or None
        Images measured, reused and skipped (None when only re-analysing a store).
    loss : xarray.Dataset
        The CTE loss per (pair, flux bin, aperture).
    model : cte.analysis.model.CTEModel
        The fitted coefficients.
    outputs : dict of str to pathlib.Path
        ``loss``, ``coefficients``, ``site`` (and ``latex``) files written.
    seconds : float
        Wall time of the run.
    unchanged : bool
        The outputs were up to date (made from the same inputs) and left untouched.
    """

    photometry: Any
    loss: xr.Dataset
    model: Any
    outputs: dict[str, Path]
    seconds: float
    unchanged: bool = False

    def __str__(self) -> str:
        n_cells = int((self.loss["n_stars"] > 0).sum())
        return (
            f"{self.loss.sizes['pair']} pairs, {n_cells} measured cells, "
            f"{len(self.model)} fitted configurations; site {self.outputs['site']} "
            + ("unchanged, left untouched (the same inputs) " if self.unchanged else "")
            + f"({self.seconds:.1f} s)"
        )


def _atomic_to_netcdf(ds: xr.Dataset, path: Path) -> None:
    from stores import atomic_write

    atomic_write(path, bytes(ds.to_netcdf(engine="h5netcdf")))


def _publish(staging: Path, out: Path) -> None:
    """Move every entry of *staging* into *out*, replacing what is there (renames)."""
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if entry.is_dir():
            if target.exists():
                old = staging / f".old-{entry.name}"
                target.rename(old)  # removed with the staging directory
            entry.rename(target)
        else:
            os.replace(entry, target)


def _selected_photometry(store, images: Sequence[str]) -> dict[str, xr.Dataset]:
    """The stored Datasets restricted to *images* (the ones of this run's selection)."""
    wanted = set(images)
    selected = {}
    for key, ds in store.read_all().items():
        keep = [i for i in ds["image"].values.tolist() if i in wanted]
        if keep:
            selected[key] = ds.sel(image=keep)
    return selected


def _analysis_apertures(
    photometry: dict[str, xr.Dataset], apertures: Sequence[float] | None
) -> list[float]:
    """The radii to analyse: *apertures*, or those every Dataset holds (px)."""
    if apertures is not None:
        return sorted({float(r) for r in apertures})
    common = None
    for ds in photometry.values():
        radii = {round(float(r), 6) for r in ds["aperture"].values}
        common = radii if common is None else common & radii
    if not common:
        held = "; ".join(
            f"{key}: {sorted(float(r) for r in ds['aperture'].values)}"
            for key, ds in photometry.items()
        )
        msg = f"the photometry has no aperture radius common to all its keys ({held}); " \
              "pass apertures=..."
        raise ValueError(msg)
    return sorted(common)


def _nothing_selected(data: Any, config: Any, selection: dict) -> EmptySelectionError:
    """The error for a selection that matches no image, listing what the data hold."""
    config = config if isinstance(config, Config) else load_config(config)
    records = scan_images(data, config=config).records
    usable = records[records["usable"] & records["holds_field"]]
    held = []
    for proposal, group in usable.groupby("proposal"):
        visits = " ".join(sorted({str(v) for v in group["visit"]}))
        held.append(f"{proposal} (visits {visits})")
    chosen = ", ".join(
        f"{k}={' '.join(map(str, v)) if isinstance(v, list | tuple) else v}"
        for k, v in selection.items()
        if v is not None
    )
    msg = (
        f"no image matches the selection ({chosen}); the data hold proposals "
        f"{', '.join(held) or 'none (no usable image)'}"
    )
    return EmptySelectionError(msg)


def analyse_store(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: Config | str | os.PathLike | None = None,
    images: Sequence[str] | None = None,
    apertures: Sequence[float] | None = None,
    latex: bool = False,
    progress: bool = False,
    excluded: Sequence[tuple[str, str]] = (),
    metadata: dict | None = None,
    photometry_summary: Any = None,
    started: float | None = None,
) -> RunResult:
    """Steps 2-4 of :func:`run` on photometry already in a store (no photometry redone).

    Parameters
    ----------
    store : path or URL
        The photometry store.
    out : path
        Output directory (created if needed).
    config : cte.Config or path, optional
        Configuration whose :attr:`~cte.Config.loss` and :attr:`~cte.Config.fit` options
        (``[analysis.loss]``, ``[analysis.fit]``) are used (default: the shipped TOML).
    images : sequence of str, optional
        Image ids to use; default every image in the store.
    apertures : sequence of float, optional
        Aperture radii (pixel) to analyse, chosen for this run; default: the radii
        measured for every selected image's key (those common to all keys).  What earlier
        runs stored at other radii never restricts a later analysis.
    latex : bool
        Also write the coefficients as a LaTeX table.
    progress : bool
        Report progress (see :mod:`stores.common.progress`).
    excluded : sequence of (item, reason)
        Data left out earlier, listed on the site.
    metadata : dict, optional
        Run metadata shown in the site's provenance.
    photometry_summary : cte.PhotometrySummary, optional
        Kept in the result (:func:`run` passes its photometry's).
    started : float, optional
        ``time.perf_counter()`` at the start of the run (default: now).

    Returns
    -------
    RunResult
    """
    started = time.perf_counter() if started is None else started
    config = config if isinstance(config, Config) else load_config(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cte-run-", dir=out))
    try:
        result = _analyse(
            store, staging, out, config, images=images, excluded=excluded, latex=latex,
            metadata=metadata, photometry_summary=photometry_summary, started=started,
            apertures=apertures, progress=progress,
        )
        _publish(staging, out)  # only a complete analysis replaces the previous outputs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.outputs = {k: out / p.relative_to(staging) for k, p in result.outputs.items()}
    logger.info("%s", result)
    return result


def _inputs_digest(photometry: dict[str, xr.Dataset], radii, config: Config, *, latex: bool,
                   excluded) -> str:
    """SHA-256 of what an analysis is made from: the selected photometry (every variable's
    values, and the attributes), the radii, the configuration, *latex*, *excluded* and the
    software versions.  ``loss.nc`` records it (attribute ``inputs_digest``); outputs
    recording the same are up to date."""
    from stores.common.provenance import provenance

    digest = hashlib.sha256()
    for key in sorted(photometry):
        ds = photometry[key]
        for name in sorted(map(str, ds.variables)):
            values = np.asarray(ds[name].values)
            digest.update(name.encode())
            digest.update(values.tobytes() if values.dtype.kind in "biufcmM"
                          else "\0".join(map(str, values.ravel())).encode())
        digest.update(json.dumps(ds.attrs, sort_keys=True, default=str).encode())
    record = provenance(created="", options={
        "config": repr(config), "apertures": [float(r) for r in radii], "latex": bool(latex),
        "excluded": [list(map(str, e)) for e in excluded]})
    digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _analyse(
    store, staging: Path, out: Path, config: Config, *, images, excluded, latex, metadata,
    photometry_summary, started, apertures, progress,
) -> RunResult:
    """The analysis of :func:`analyse_store`, its files written into *staging*."""
    from cte.analysis.loss import measure_loss
    from cte.analysis.model import fit_model
    from cte.photometry.store import PhotometryStore
    from cte.report.report import write_site

    phot_store = PhotometryStore(store, mode="r")
    if images is None:
        photometry = phot_store.read_all()
    else:
        photometry = _selected_photometry(phot_store, images)
    if not photometry:
        msg = f"no photometry to analyse in {phot_store.location} for the selected images"
        raise ValueError(msg)
    radii = _analysis_apertures(photometry, apertures)
    digest = _inputs_digest(photometry, radii, config, latex=latex, excluded=excluded)
    outputs = {"loss": staging / "loss.nc", "coefficients": staging / "coefficients.ecsv",
               "site": staging / "index.html"} | ({"latex": staging / "coefficients.tex"}
                                                 if latex else {})
    if all((out / p.name).is_file() for p in outputs.values()):
        with xr.open_dataset(out / "loss.nc", engine="h5netcdf") as previous:
            same = previous.attrs.get("inputs_digest") == digest
        if same:  # nothing written: the outputs (named as if staged) stay as they are
            from cte.analysis.model import CTEModel

            logger.info("%s is up to date (the same inputs, digest %s): left untouched",
                        out, digest[:12])
            return RunResult(
                photometry=photometry_summary,
                loss=xr.load_dataset(out / "loss.nc", engine="h5netcdf"),
                model=CTEModel.read(out / "coefficients.ecsv"), outputs=outputs,
                seconds=time.perf_counter() - started, unchanged=True,
            )
    stages = steps(["loss", "fit", "report"], progress=progress, desc="analysis")
    next(stages)
    loss = measure_loss(list(photometry.values()), apertures=radii, loss=config.loss)
    loss.attrs["inputs_digest"] = digest
    _atomic_to_netcdf(loss, outputs["loss"])
    next(stages)
    model = fit_model(loss, fit=config.fit)
    model.write(outputs["coefficients"])  # atomic, as are the .tex, plots and report
    if latex:
        model.write(outputs["latex"], format="latex")
    unpaired = []
    if "unpaired_image" in loss.coords:
        unpaired = [
            (str(image), f"unpaired: {reason}")
            for image, reason in zip(
                loss["unpaired_image"].values, loss["unpaired_reason"].values, strict=True
            )
        ]
    meta = {  # the page adds software, versions and its creation time (stores.common.provenance)
        "command": " ".join(sys.argv) if sys.argv else "",
        "store": str(store),
        "out": str(out),
        **(metadata or {}),
    }
    next(stages)
    outputs["site"] = write_site(
        staging,
        loss=loss,
        model=model,
        photometry=photometry,
        excluded=[*excluded, *unpaired],
        metadata=meta,
    )
    for _ in stages:  # closes the progress bar
        pass
    return RunResult(
        photometry=photometry_summary,
        loss=loss,
        model=model,
        outputs=outputs,
        seconds=time.perf_counter() - started,
    )


def run(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    catalogs: str | os.PathLike,
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: Config | str | os.PathLike | None = None,
    selection: ImageSelection | None = None,
    apertures: Sequence[float] | None = None,
    pam_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    client: Any = None,
    latex: bool = False,
    progress: bool = False,
) -> RunResult:
    """Run the monitor: photometry (if needed), pairs, loss, model, plots and site.

    Parameters
    ----------
    data, catalogs, store, selection, apertures, pam_dir, overwrite, client
        As :func:`cte.measure_photometry` (the store is created if absent).  The default
        selection, every proposal, measures only the images not yet in *store* (the
        monthly update); ``ImageSelection(proposals="last")`` (the seed's default)
        selects only the newest configured proposal present.
    out : path
        Output directory: ``loss.nc``, ``coefficients.ecsv``, plots, ``index.html``.
    config : cte.Config or path, optional
        Configuration (default: the shipped TOML); its :attr:`~cte.Config.loss` and
        :attr:`~cte.Config.fit` options drive the analysis.
    latex : bool
        Also write the coefficients as a LaTeX table.
    progress : bool
        Report progress of the photometry and the analysis (see :mod:`stores.common.progress`).

    Returns
    -------
    RunResult

    Raises
    ------
    cte.EmptySelectionError
        The selection matches no image (the message lists the proposals and visits the
        data hold).
    """
    from cte.photometry.batch import measure_photometry

    config = config if isinstance(config, Config) else load_config(config)
    selection = ImageSelection() if selection is None else selection
    started = time.perf_counter()
    with dask_progress(progress=progress, desc="photometry"):
        summary = measure_photometry(data, catalogs, store, config=config, selection=selection,
                                     apertures=apertures, pam_dir=pam_dir, overwrite=overwrite,
                                     client=client)
    logger.info("photometry: %s", summary)
    images = [*summary.measured["image"].tolist(), *summary.reused["image"].tolist()]
    excluded = [
        (str(row.image if isinstance(row.image, str) and row.image else row.path),
         f"{row.category}: {row.reason}")
        for row in summary.skipped.itertuples()
    ]
    chosen = {**dataclasses.asdict(selection), "apertures": apertures}
    if not images:
        raise _nothing_selected(data, config, chosen)
    metadata = {
        "data": str(data) if isinstance(data, (str, os.PathLike)) else ", ".join(map(str, data)),
        "catalogs": str(catalogs),
        "selection": ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}"
                               for k, v in chosen.items() if v is not None),
        "photometry": str(summary),
    }
    try:
        return analyse_store(
            store, out, config=config, images=images, excluded=excluded, latex=latex,
            metadata=metadata, photometry_summary=summary, started=started,
            apertures=sorted({float(r) for r in apertures or config.photometry.apertures}),
            progress=progress,
        )
    except FitError as err:
        if selection.proposals != "last":
            raise
        msg = (
            f"{err}; only the newest proposal was selected (proposals='last'), "
            "which may hold a single epoch: select 'all' (the default) to fit every epoch"
        )
        raise FitError(msg) from err
