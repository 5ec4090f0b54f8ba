"""The CTE analysis: image pairs, loss per pair and flux bin, fitted model, correction.

Third step of the flow ``io -> photometry -> analysis -> report``: :mod:`cte.analysis.pairs`
pairs images, :mod:`cte.analysis.loss` measures the loss, :mod:`cte.analysis.model` fits the
formula of :mod:`cte.analysis.lossmodel` and :mod:`cte.analysis.correction` applies it.
"""

from cte.analysis.correction import Correction, correct
from cte.analysis.loss import measure_loss
from cte.analysis.lossmodel import BASIS_TERMS, LossModel
from cte.analysis.model import CTEModel, FittedLoss, fit_model
from cte.analysis.pairs import pair_images

__all__ = [
    "BASIS_TERMS",
    "CTEModel",
    "Correction",
    "FittedLoss",
    "LossModel",
    "correct",
    "fit_model",
    "measure_loss",
    "pair_images",
]
