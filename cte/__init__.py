"""cte: the WFC3/UVIS external CTE monitor.

Aperture photometry of star clusters observed on both UVIS chips, kept as xarray
Datasets keyed by target/filter/flash; image pairs; the CTE loss per pair and flux bin;
and a fitted correction formula.

The subpackages follow the flow from files to results: :mod:`cte.io` (reading images and
catalogs) -> :mod:`cte.photometry` (aperture photometry and its store) -> :mod:`cte.analysis`
(pairs, loss, model, correction) -> :mod:`cte.report` (figures and page); :mod:`cte.datasets`
simulates inputs with known truth, :mod:`cte.pipeline` runs the steps, :mod:`cte.schema`
declares the data products and :mod:`cte.exceptions` the errors.  The subpackages are
imported on first use, so ``import cte`` stays cheap.
"""

from importlib import import_module

from cte.config import Config, FitOptions, LossOptions, load_config
from cte.exceptions import (
    AlignmentError,
    AnalysisError,
    CatalogError,
    ConfigError,
    CTEError,
    EmptySelectionError,
    FitError,
    InvalidImageError,
    InvalidPhotometryError,
    ModelNotFoundError,
    OutOfRangeError,
    WrongInstrumentError,
)
from stores import __version__
from stores.common.deprecation import renamed

#: public name -> module providing it, imported on first attribute access
_LAZY = {
    "simulate_campaign": "cte.datasets",
    "load_campaign": "cte.datasets",
    "SimulatedCampaign": "cte.datasets",
    "FieldPhysics": "cte.datasets",
    "read_headers": "cte.io",
    "scan_images": "cte.io",
    "select_images": "cte.io",
    "measure_photometry": "cte.photometry",
    "PhotometrySummary": "cte.photometry",
    "read_catalog": "cte.io",
    "PhotometryStore": "cte.photometry",
    "pair_images": "cte.analysis",
    "measure_loss": "cte.analysis",
    "fit_model": "cte.analysis",
    "CTEModel": "cte.analysis",
    "FittedLoss": "cte.analysis",
    "correct": "cte.analysis",
    "write_site": "cte.report",
    "run": "cte.pipeline",
    "analyse_store": "cte.pipeline",
    "RunResult": "cte.pipeline",
    "show_versions": "stores.common.environment",
}

#: renamed public names, kept for one release (CHANGELOG.md)
_renamed = renamed(__name__, {"write_report": "cte.report.write_site"})

__all__ = [
    "AlignmentError",
    "AnalysisError",
    "CTEError",
    "CTEModel",
    "CatalogError",
    "Config",
    "ConfigError",
    "EmptySelectionError",
    "FieldPhysics",
    "FitError",
    "FitOptions",
    "FittedLoss",
    "InvalidImageError",
    "InvalidPhotometryError",
    "LossOptions",
    "ModelNotFoundError",
    "OutOfRangeError",
    "PhotometryStore",
    "PhotometrySummary",
    "RunResult",
    "SimulatedCampaign",
    "WrongInstrumentError",
    "__version__",
    "analyse_store",
    "correct",
    "fit_model",
    "load_campaign",
    "load_config",
    "measure_loss",
    "measure_photometry",
    "pair_images",
    "read_catalog",
    "read_headers",
    "run",
    "scan_images",
    "select_images",
    "show_versions",
    "simulate_campaign",
    "write_site",
]


def __getattr__(name: str):  # the lazy imports, then the renamed names
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    return _renamed(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
