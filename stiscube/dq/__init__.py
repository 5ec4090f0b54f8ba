"""STIS data quality from the pixel property cube: rules, arrays, files, reference files.

:mod:`stiscube.dq.rules` (:class:`DQRules`, the one rule object), :mod:`stiscube.dq.array`
(:func:`dq_array`, :func:`hot_pixels`; the rules written out as formulas),
:mod:`stiscube.dq.files` (the DQ array's FITS and ECSV files), :mod:`stiscube.dq.reffiles`
(the CRDS reference files), :mod:`stiscube.dq.flags` (the STIS DQ bits) and
:mod:`stiscube.dq.effectiveness` (anneal effectiveness).
"""

from stiscube.dq._kernels import clipped_threshold, hot_mask, persistent
from stiscube.dq.array import dq_array, hot_pixel_counts, hot_pixels
from stiscube.dq.files import flagged_pixels_table, write_dq_fits, write_flagged_table
from stiscube.dq.rules import DQRules

__all__ = [
    "DQRules",
    "clipped_threshold",
    "dq_array",
    "flagged_pixels_table",
    "hot_mask",
    "hot_pixel_counts",
    "hot_pixels",
    "persistent",
    "write_dq_fits",
    "write_flagged_table",
]
