"""cte: the WFC3/UVIS external CTE monitor.

Aperture photometry of star clusters observed on both UVIS chips, kept as xarray
Datasets keyed by target/filter/flash; image pairs; the CTE loss per pair and flux bin;
and a fitted correction formula.

Heavy entry points (simulator, images, photometry, store) are imported on first use,
so ``import cte`` stays cheap.
"""

from importlib import import_module

from cte._exceptions import (
    AlignmentError,
    CatalogError,
    ConfigError,
    CTEError,
    EmptySelectionError,
    InvalidImageError,
    InvalidPhotometryError,
    WrongInstrumentError,
)
from cte.config import Config, load_config
from stores._version import __version__

#: public name -> module providing it, imported on first attribute access
_LAZY = {
    "simulate_campaign": "cte.simulate",
    "load_campaign": "cte.simulate",
    "SimulatedCampaign": "cte.simulate",
    "read_headers": "cte.images",
    "scan_images": "cte.images",
    "select_images": "cte.images",
    "measure_photometry": "cte.photometry",
    "PhotometrySummary": "cte.photometry",
    "read_catalog": "cte.photometry",
    "PhotometryStore": "cte.store",
    "pair_images": "cte.pairs",
    "measure_loss": "cte.loss",
    "fit_model": "cte.model",
    "CTEModel": "cte.model",
    "FittedLoss": "cte.model",
    "correct": "cte.correct",
    "write_report": "cte.report",
    "run": "cte.pipeline",
    "analyse_store": "cte.pipeline",
    "RunResult": "cte.pipeline",
    "show_versions": "stores._show_versions",
}

__all__ = [
    "AlignmentError",
    "CTEError",
    "CTEModel",
    "CatalogError",
    "Config",
    "ConfigError",
    "EmptySelectionError",
    "FittedLoss",
    "InvalidImageError",
    "InvalidPhotometryError",
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
    "write_report",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'cte' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
