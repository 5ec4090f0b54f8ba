"""Aperture photometry of the stars of each image, kept in a :class:`PhotometryStore`.

Second step of the flow ``io -> photometry -> analysis -> report``: alignment to the master
catalog (:mod:`cte.photometry.align`), measurement (:mod:`cte.photometry.batch`) and the
store of photometry Datasets (:mod:`cte.photometry.store`, contract in :mod:`cte.schema`).
"""

from cte.photometry.align import Alignment, align_to_catalog
from cte.photometry.batch import PhotometrySummary, measure_photometry
from cte.photometry.store import PhotometryStore

__all__ = [
    "Alignment",
    "PhotometryStore",
    "PhotometrySummary",
    "align_to_catalog",
    "measure_photometry",
]
