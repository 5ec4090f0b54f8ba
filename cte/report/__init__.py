"""Figures and the monitoring page: the last step of ``io -> photometry -> analysis -> report``."""

from cte.report.plots import (
    plot_loss_vs_flux,
    plot_loss_vs_time,
    plot_ratio_vs_y,
    plot_same_chip,
)
from cte.report.report import write_site
from stores.common.deprecation import renamed

__all__ = [
    "plot_loss_vs_flux",
    "plot_loss_vs_time",
    "plot_ratio_vs_y",
    "plot_same_chip",
    "write_site",
]

__getattr__ = renamed(__name__, {"write_report": "cte.report.write_site"})
