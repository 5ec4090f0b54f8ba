"""Figures and the static site made from the pixel property cube.

:mod:`stiscube.report.plots` draws property maps, pixel histories and hot-pixel counts;
:mod:`stiscube.report.site` writes the static site (:func:`write_site`).
"""

from stiscube.report.site import SiteOptions, write_site

__all__ = ["SiteOptions", "write_site"]
