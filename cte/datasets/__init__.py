"""Simulated data sets with known truth: a UVIS campaign of FITS files and synthetic photometry.

:func:`simulate_campaign` writes images, catalogs and pixel-area maps whose CTE loss follows
an independent truth (:func:`cte.datasets.simulate.true_loss`); the synthetic photometry of
:mod:`cte.datasets._synthphot` feeds the analysis tests directly.
"""

from cte.datasets.simulate import (
    FieldPhysics,
    SimulatedCampaign,
    load_campaign,
    simulate_campaign,
)

__all__ = ["FieldPhysics", "SimulatedCampaign", "load_campaign", "simulate_campaign"]
