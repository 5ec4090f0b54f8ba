"""stiscube: the STIS CCD pixel property cube.

Per-pixel properties of the STIS CCD (dark rate, its error, stability, excluded-sample
count, read noise) for every anneal period, computed from dark frames with dask and
kept as one labelled cube (anneal x row x col x property) in Zarr.
"""

from stiscube import accessor as _accessor  # registers ds.pixels
from stiscube.pixeldb import PixelDB
from stores._version import __version__

__all__ = ["PixelDB", "__version__"]
