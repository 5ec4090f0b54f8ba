"""WFC3/UVIS geometry shared by the simulator and the image reader.

Layout (0-based pixel coordinates ``x`` along a row, ``y`` along a column):

- each chip is ``CHIP_NX x CHIP_NY = 4096 x 2051`` px;
- chip 2 is the FITS extension ``SCI,1`` (``CCDCHIP = 2``) with its amplifiers at
  ``y = 0``; chip 1 is ``SCI,2`` (``CCDCHIP = 1``) with its amplifiers at ``y = 2051``;
  chip 1 lies above chip 2 in the focal plane, separated by a gap of ``CHIP_GAP`` px;
- a charge packet at row ``y`` is clocked through ``n = y`` parallel transfers on
  chip 2 and ``n = 2051 - y`` on chip 1 (:func:`transfers`);
- a cut-out (sub-image) records its origin on the chip like a WFC3 subarray, with
  ``LTV1 = -x0`` and ``LTV2 = -y0`` so that ``x_chip = x_image - LTV1`` and
  ``y_chip = y_image - LTV2`` (IRAF convention ``image = physical + LTV``).

The simulated pointing model: the telescope puts the target at the centre of chip 2
plus the POS TARG offset, ``(x, y) = (2047.5, 1025) + (POSTARG1, POSTARG2) / scale``,
so POSTARG2 of one chip height plus the gap moves the field onto chip 1 at the same
row; the field rotates about the target with ORIENTAT.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

__all__ = [
    "CHIP_EXTVER",
    "CHIP_GAP",
    "CHIP_NX",
    "CHIP_NY",
    "PIXEL_SCALE",
    "chip_origin_y",
    "rotation_matrix",
    "tan_wcs",
    "transfers",
]

#: chip size in px
CHIP_NY, CHIP_NX = 2051, 4096
#: gap between chip 2's top row and chip 1's bottom row in the focal plane, px
CHIP_GAP = 31
#: pixel scale, arcsec/px
PIXEL_SCALE = 0.0396
#: SCI extension version of each chip
CHIP_EXTVER = {2: 1, 1: 2}


def transfers(y, chip) -> np.ndarray:
    """Number of parallel transfers of a charge packet at 0-based chip row *y*.

    ``n = y`` on chip 2 (amplifiers at y = 0) and ``n = 2051 - y`` on chip 1
    (amplifiers at y = 2051).  Broadcasts over *y* and *chip*.
    """
    y = np.asarray(y, dtype=float)
    chip = np.asarray(chip)
    bad = ~np.isin(chip, (1, 2))
    if np.any(bad):
        msg = f"chip must be 1 or 2, got {np.unique(chip[bad]).tolist()}"
        raise ValueError(msg)
    return np.where(chip == 2, y, CHIP_NY - y)


def chip_origin_y(chip: int) -> float:
    """Focal-plane row of a chip's pixel row 0, in chip-2 pixel units."""
    return 0.0 if chip == 2 else float(CHIP_NY + CHIP_GAP)


def rotation_matrix(angle_deg) -> np.ndarray:
    """2x2 matrix rotating ``(x, y)`` counter-clockwise by *angle_deg*."""
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def tan_wcs(crval, crpix0, *, orientat: float, scale: float = PIXEL_SCALE,
            rotation: float = 0.0) -> WCS:
    """A gnomonic (TAN) WCS.

    Parameters
    ----------
    crval : (float, float)
        RA, Dec (deg) of the reference pixel.
    crpix0 : (float, float)
        0-based ``(x, y)`` of the reference pixel (the header gets ``crpix0 + 1``).
    orientat : float
        Position angle of the image +y axis, deg east of north.
    scale : float
        Pixel scale, arcsec/px.
    rotation : float
        Extra rotation of the pixel grid, deg: the CD matrix is ``CD(orientat) @ R``.
        Used to write a WCS with a deliberate pointing error.
    """
    s = scale / 3600.0
    t = np.deg2rad(orientat)
    cd = s * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    if rotation:
        cd = cd @ rotation_matrix(rotation)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(crval[0]), float(crval[1])]
    wcs.wcs.crpix = [float(crpix0[0]) + 1.0, float(crpix0[1]) + 1.0]
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    return wcs
