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
4. write the plots and ``<out>/report.html`` (:func:`cte.report.report.write_report`), listing
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
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from cte.exceptions import EmptySelectionError, FitError
from stores.common.progress import dask_progress, steps

if TYPE_CHECKING:
    from cte.io.images import ImageSelection

__all__ = ["RunResult", "analyse_store", "analysis_options", "run"]

logger = logging.getLogger(__name__)

@dataclass
class RunResult:
    """What :func:`run` produced.

    Attributes
    ----------
    photometry : cte.PhotometrySummary or None
        Images measured, reused and skipped (None when only re-analysing a store).
    loss : xarray.Dataset
        The CTE loss per (pair, flux bin, aperture).
    model : cte.analysis.model.CTEModel
        The fitted coefficients.
    outputs : dict of str to pathlib.Path
        ``loss``, ``coefficients``, ``report`` (and ``latex``) files written.
    seconds : float
        Wall time of the run.
    """

    photometry: Any
    loss: xr.Dataset
    model: Any
    outputs: dict[str, Path]
    seconds: float

    def __str__(self) -> str:
        n_cells = int((self.loss["n_stars"] > 0).sum())
        return (
            f"{self.loss.sizes['pair']} pairs, {n_cells} measured cells, "
            f"{len(self.model)} fitted configurations; report {self.outputs['report']} "
            f"({self.seconds:.1f} s)"
        )


def _atomic_to_netcdf(ds: xr.Dataset, path: Path) -> None:
    from stores import atomic_write

    atomic_write(path, ds.to_netcdf(engine="h5netcdf"))


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


#: options of measure_loss and fit_model that the configuration's [analysis.loss] and
#: [analysis.model] tables may set
_LOSS_OPTIONS = ("sigma", "maxiters", "min_stars", "bin_by", "min_snr", "pivot", "pivot_transfers")
_MODEL_OPTIONS = ("flux_bins", "min_time_span", "min_background_span", "scale_errors")


def analysis_options(config: Any = None) -> tuple[dict, dict]:
    """The measure_loss and fit_model options of the configuration's ``[analysis]`` table.

    Raises
    ------
    cte.ConfigError
        For an unknown table or option (the message names it).
    """
    from cte.config import Config, load_config
    from cte.exceptions import ConfigError

    if not isinstance(config, Config):
        config = load_config(config)
    analysis = dict(config.analysis)
    unknown_tables = sorted(set(analysis) - {"loss", "model"})
    if unknown_tables:
        msg = f"[analysis] has unknown entries {unknown_tables}; expected tables loss, model"
        raise ConfigError(msg)
    result = []
    for table, allowed in (("loss", _LOSS_OPTIONS), ("model", _MODEL_OPTIONS)):
        options = dict(analysis.get(table, {}))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            msg = f"[analysis.{table}] has unknown options {unknown}; allowed: {list(allowed)}"
            raise ConfigError(msg)
        result.append(options)
    return result[0], result[1]


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
    from cte.config import Config, load_config
    from cte.io.images import scan_images

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
    config: Any = None,
    images: Sequence[str] | None = None,
    excluded: Sequence[tuple[str, str]] = (),
    flux_var: str = "flux",
    reject_flags: int | None = None,
    latex: bool = False,
    metadata: dict | None = None,
    photometry_summary: Any = None,
    started: float | None = None,
    apertures: Sequence[float] | None = None,
    progress: bool = False,
) -> RunResult:
    """Steps 2-4 of :func:`run` on photometry already in a store (no photometry redone).

    Parameters
    ----------
    store : path or URL
        The photometry store.
    out : path
        Output directory (created if needed).
    config : cte.Config or path, optional
        Configuration whose ``[analysis.loss]`` and ``[analysis.model]`` tables set the
        options of :func:`cte.measure_loss` and :func:`cte.fit_model` (default: the
        shipped TOML).
    images : sequence of str, optional
        Image ids to use; default every image in the store.
    excluded : sequence of (item, reason)
        Data left out earlier, listed in the report.
    flux_var : {"flux", "flux_masked"}
        Unmasked photometry, or photometry with DQ/cosmic-ray pixels masked.
    reject_flags : int or None
        Star flags (:mod:`cte.flags`) that leave a star out; None: every flag but
        ``CROWDED`` (see :func:`cte.measure_loss`).
    latex : bool
        Also write the coefficients as a LaTeX table.
    apertures : sequence of float, optional
        Aperture radii (px) to analyse, chosen for this run; default: the radii measured
        for every selected image's key (those common to all keys).  What earlier runs
        stored at other radii never restricts a later analysis.
    progress : bool
        Report progress (a bar on a terminal, log lines otherwise; see
        :mod:`stores.common.progress`).
    """
    started = time.perf_counter() if started is None else started
    loss_options, model_options = analysis_options(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cte-run-", dir=out))
    try:
        result = _analyse(
            store, staging, out, loss_options, model_options, images=images,
            excluded=excluded, flux_var=flux_var, reject_flags=reject_flags, latex=latex,
            metadata=metadata, photometry_summary=photometry_summary, started=started,
            apertures=apertures, progress=progress,
        )
        _publish(staging, out)  # only a complete analysis replaces the previous outputs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.outputs = {k: out / p.relative_to(staging) for k, p in result.outputs.items()}
    logger.info("%s", result)
    return result


def _analyse(
    store, staging: Path, out: Path, loss_options: dict, model_options: dict, *, images,
    excluded, flux_var, reject_flags, latex, metadata, photometry_summary, started,
    apertures, progress,
) -> RunResult:
    """The analysis of :func:`analyse_store`, its files written into *staging*."""
    from cte.analysis.loss import measure_loss
    from cte.analysis.model import fit_model
    from cte.photometry.store import PhotometryStore
    from cte.report.report import write_report

    phot_store = PhotometryStore(store, mode="r")
    if images is None:
        photometry = phot_store.read_all()
    else:
        photometry = _selected_photometry(phot_store, images)
    if not photometry:
        msg = f"no photometry to analyse in {phot_store.location} for the selected images"
        raise ValueError(msg)
    radii = _analysis_apertures(photometry, apertures)
    stages = steps(["loss", "fit", "report"], progress=progress, desc="analysis")
    next(stages)
    loss = measure_loss(
        list(photometry.values()), flux_var=flux_var, reject_flags=reject_flags,
        apertures=radii, **loss_options,
    )
    outputs = {"loss": staging / "loss.nc", "coefficients": staging / "coefficients.ecsv"}
    _atomic_to_netcdf(loss, outputs["loss"])
    next(stages)
    model = fit_model(loss, **model_options)
    model.write(outputs["coefficients"])  # atomic, as are the .tex, plots and report
    if latex:
        outputs["latex"] = staging / "coefficients.tex"
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
        "output": str(out),
        "flux": flux_var,
        **(metadata or {}),
    }
    next(stages)
    outputs["report"] = write_report(
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
    config: Any = None,
    selection: ImageSelection | None = None,
    apertures: Sequence[float] | None = None,
    pam_dir: str | os.PathLike | None = None,
    redo: bool = False,
    client: Any = None,
    flux_var: str = "flux",
    reject_flags: int | None = None,
    latex: bool = False,
    progress: bool = False,
    **select: Any,
) -> RunResult:
    """Run the monitor: photometry (if needed), pairs, loss, model, plots and report.

    Parameters
    ----------
    data : path or sequence of paths
        FLT/FLC files or directories (searched recursively, any layout).
    catalogs : path
        Directory of master catalogs ``<target>.ecsv`` (``master_id, ra, dec``,
        optional ``flux``).
    store : path or URL
        The photometry store (created if absent).
    out : path
        Output directory: ``loss.nc``, ``coefficients.ecsv``, plots, ``report.html``.
    config : cte.Config or path, optional
        Configuration (default: the shipped TOML).
    selection : cte.io.ImageSelection, optional
        Which images, as the seed's ``--pr last/all/ID``, ``--v``; default
        ``ImageSelection(proposals="all")``: the whole campaign, of which only the images
        not yet in *store* are measured (the monthly update).  The seed's default,
        ``proposals="last"``, selects only the newest configured proposal present.
    apertures : sequence of float, optional
        Aperture radii in px, as the seed's ``--ap``; see :func:`cte.measure_photometry`.
    pam_dir : path, optional
        Pixel area maps (a warning and no correction without them).
    redo : bool
        Measure the photometry again even for images already stored.
    client : dask.distributed.Client, optional
        Run the photometry on this cluster.
    flux_var, reject_flags, latex
        See :func:`analyse_store`.
    progress : bool
        Report progress of the photometry and the analysis (see :mod:`stores.common.progress`).
    **select
        Instead of *selection*, its fields as keywords (``proposals``, ``visits``,
        ``targets``, ``filters``, ``flashes``, ``ctecorr``).

    Returns
    -------
    RunResult

    Raises
    ------
    cte.EmptySelectionError
        The selection matches no image (the message lists the proposals and visits the
        data hold).
    """
    from cte.io.images import ImageSelection
    from cte.photometry.photometry import measure_photometry

    if selection is None:
        select.setdefault("proposals", "all")
    selection = ImageSelection.resolve(selection, **select)
    started = time.perf_counter()
    with dask_progress(progress=progress, desc="photometry"):
        summary = measure_photometry(data, catalogs, store, config=config, selection=selection,
                                     apertures=apertures, pam_dir=pam_dir, redo=redo,
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
            store, out, config=config, images=images, excluded=excluded, flux_var=flux_var,
            reject_flags=reject_flags, latex=latex, metadata=metadata,
            photometry_summary=summary, started=started,
            apertures=_run_apertures(apertures, config), progress=progress,
        )
    except FitError as err:
        if selection.proposals != "last":
            raise
        msg = (
            f"{err}; only the newest proposal was selected (proposals='last', `--pr last`), "
            "which may hold a single epoch: select 'all' (the default) to fit every epoch"
        )
        raise FitError(msg) from err


def _run_apertures(apertures: Sequence[float] | None, config: Any) -> list[float]:
    """The radii a run measured and analyses: *apertures*, or the configuration's (px)."""
    from cte.config import Config, load_config

    if apertures is not None:
        return sorted({float(r) for r in apertures})
    config = config if isinstance(config, Config) else load_config(config)
    return sorted(float(r) for r in config.photometry.apertures)

