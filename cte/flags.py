"""Bit flags: the per-star quality flags of the photometry store, and WFC3 DQ bits.

Two registries, each a :class:`stores.FlagRegistry` of :class:`~stores.Flag`
(bit value, name, description), iterable in bit order:

- :data:`STAR_FLAGS` — the ``flags`` variable of a photometry Dataset (int32, one
  value per image and star, bits OR-ed together);
- :data:`WFC3_DQ` — the data-quality bits of calibrated WFC3/UVIS FLT/FLC files
  (WFC3 Data Handbook, table "UVIS DQ flags").

:func:`decode` turns a value into flag names and :func:`cf_flag_attrs` gives the CF
``flag_masks``/``flag_meanings`` attributes stored with the variable.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from stores.common.flags import Flag, FlagRegistry
from stores.common.validate import one_of

__all__ = [
    "BAD_CENTROID",
    "BAD_PIXEL",
    "COSMIC_RAY",
    "CROWDED",
    "NEAR_EDGE",
    "NO_BACKGROUND",
    "OFF_CHIP",
    "SATURATED",
    "STAR_FLAGS",
    "WFC3_DQ",
    "Flag",
    "cf_flag_attrs",
    "decode",
    "dq_bits_mask",
]


#: centre of the star outside the image (chip or cut-out): not measured (all NaN)
OFF_CHIP = 1
#: an aperture or the background annulus reaches beyond the image; apertures that do
#: not fit entirely are NaN
NEAR_EDGE = 2
#: a saturated pixel (DQ full-well or A-to-D saturation) in the largest aperture
SATURATED = 4
#: a cosmic-ray-flagged pixel in the largest aperture (``flux`` includes it,
#: ``flux_masked`` does not)
COSMIC_RAY = 8
#: another masked DQ pixel (bad, hot, bad column, ...) in the largest aperture
BAD_PIXEL = 16
#: the recentred centroid failed or moved further than ``max_centroid_shift``; the
#: aligned catalog position was used instead
BAD_CENTROID = 32
#: too few good annulus pixels for the local background: fluxes are NaN
NO_BACKGROUND = 64
#: a catalog neighbour bright enough to matter lies within ``crowding_radius``
CROWDED = 128

STAR_FLAGS = FlagRegistry((
    Flag(OFF_CHIP, "off_chip", "star centre outside the image; not measured"),
    Flag(NEAR_EDGE, "near_edge", "aperture or annulus reaches beyond the image"),
    Flag(SATURATED, "saturated", "saturated pixel in the largest aperture"),
    Flag(COSMIC_RAY, "cosmic_ray", "cosmic-ray-flagged pixel in the largest aperture"),
    Flag(BAD_PIXEL, "bad_pixel", "other masked DQ pixel in the largest aperture"),
    Flag(BAD_CENTROID, "bad_centroid", "recentring failed; aligned catalog position used"),
    Flag(NO_BACKGROUND, "no_background", "too few good pixels in the background annulus"),
    Flag(CROWDED, "crowded", "bright catalog neighbour within the crowding radius"),
), name="star flag", dtype=np.int32)

#: WFC3/UVIS data-quality bits of FLT/FLC DQ arrays
WFC3_DQ = FlagRegistry((
    Flag(1, "reed_solomon", "Reed-Solomon decoding error"),
    Flag(2, "fill", "data replaced by fill value"),
    Flag(4, "bad_detector_pixel", "bad detector pixel"),
    Flag(8, "masked", "masked by aperture feature"),
    Flag(16, "hot_pixel", "hot pixel"),
    Flag(32, "cte_tail", "CTE tail"),
    Flag(64, "warm_pixel", "warm pixel"),
    Flag(128, "bad_column", "bad column / bad pixel in bias"),
    Flag(256, "full_well_saturation", "full-well saturation"),
    Flag(512, "bad_flat", "bad or uncertain flat value, ghost"),
    Flag(1024, "charge_trap", "charge trap"),
    Flag(2048, "ad_saturation", "A-to-D saturation"),
    Flag(4096, "cosmic_ray_drizzle", "cosmic ray detected by AstroDrizzle"),
    Flag(8192, "cosmic_ray_crrej", "cosmic ray detected by calwf3 CRREJ"),
    Flag(16384, "crosstalk", "pixel affected by ghost or crosstalk"),
), name="WFC3 DQ", dtype=np.int32, value_name="DQ value")

_REGISTRIES = {"star": STAR_FLAGS, "dq": WFC3_DQ}


def _registry(kind: str) -> FlagRegistry:
    return _REGISTRIES[one_of(kind, "kind", sorted(_REGISTRIES))]


def decode(value: int, *, kind: str = "star") -> list[str]:
    """Names of the bits set in *value* (:meth:`stores.common.flags.FlagRegistry.decode`).

    Parameters
    ----------
    value : int
        A flag value (for example one element of a photometry ``flags`` array).
    kind : {"star", "dq"}
        Which registry: the photometry star flags or WFC3 DQ bits.

    Examples
    --------
    >>> decode(OFF_CHIP | CROWDED)
    ['off_chip', 'crowded']
    """
    return _registry(kind).decode(int(value))


def cf_flag_attrs(*, kind: str = "star") -> dict[str, object]:
    """CF-convention attributes (``flag_masks``, ``flag_meanings``) of a registry.

    Parameters
    ----------
    kind : {"star", "dq"}
        The star flags or the WFC3 DQ bits.
    """
    return _registry(kind).cf_attrs()


def dq_bits_mask(bits: Iterable[int]) -> int:
    """OR of DQ bit values, each validated against :data:`WFC3_DQ`
    (:meth:`stores.common.flags.FlagRegistry.mask`: ``ValueError`` for an unknown bit).

    Parameters
    ----------
    bits : iterable of int
        DQ bit values.
    """
    return WFC3_DQ.mask([int(bit) for bit in bits])
