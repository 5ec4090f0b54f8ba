"""Per-pixel properties of one anneal period, computed from its dark frames.

:func:`compute_properties` (:mod:`stiscube.properties.compute`, the xarray/dask wrapper)
turns a stack of dark frames into the property cube of one period (declared in
:mod:`stiscube.schema`); the numpy kernels live in :mod:`stiscube.properties._kernels`.
"""

from stiscube.properties._kernels import ClipOptions
from stiscube.properties.compute import compute_properties, properties_from_stack
from stiscube.properties.readnoise import amplifier_readnoise

__all__ = ["ClipOptions", "amplifier_readnoise", "compute_properties", "properties_from_stack"]
