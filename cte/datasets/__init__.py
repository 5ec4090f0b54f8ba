"""Simulated data sets with known truth: a UVIS campaign of FITS files and synthetic photometry.

:func:`simulate_campaign` writes images, catalogs and pixel-area maps whose CTE loss follows
an independent truth (:func:`cte.datasets.simulate.true_loss`); :func:`make_photometry`
makes synthetic photometry (the photometry Dataset of :mod:`cte.schema`, seeded, with a
known loss) that feeds the analysis tests and benchmarks directly.
"""

from cte.datasets._synthphot import DEFAULT_TRUTH, make_photometry
from cte.datasets.simulate import (
    FieldPhysics,
    SimulatedCampaign,
    load_campaign,
    simulate_campaign,
)

__all__ = [
    "DEFAULT_TRUTH",
    "FieldPhysics",
    "SimulatedCampaign",
    "load_campaign",
    "make_photometry",
    "simulate_campaign",
]
