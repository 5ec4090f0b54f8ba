"""Public home of the direct chunk reader (see :mod:`stores._direct` for the details).

:class:`DirectReader` reads windows of one slot of a Zarr v3 array written by
:class:`stores.CubeStore` without zarr's per-call overhead; given the slot's checksum
table it verifies every chunk it touches.  :class:`Unsupported` is raised at
construction for layouts it does not decode; :func:`checksum` is the per-chunk CRC-32C.
"""

from stores._direct import CHECKSUM_ALGORITHM, DirectReader, Unsupported, checksum

__all__ = ["CHECKSUM_ALGORITHM", "DirectReader", "Unsupported", "checksum"]
