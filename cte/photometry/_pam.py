"""Pixel-area maps (PAM): one full-chip FITS image per UVIS chip.

FLT/FLC images are flat-fielded to equal surface brightness, so a point source's
counts are divided by the relative pixel area; photometry multiplies SCI (and ERR) by
the PAM to undo that.  Cut-outs take the PAM region at their chip origin (LTV1/LTV2).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from cte.exceptions import InvalidImageError
from cte.io._geometry import CHIP_NX, CHIP_NY

__all__ = ["check_pams", "pam_cutout"]


def check_pams(pam_dir: str | os.PathLike, files: dict[int, str]) -> dict[int, Path]:
    """Paths of both chips' PAM files, checked to exist and hold a full-chip image.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A file holds no 2051 x 4096 image.
    """
    out = {}
    for chip, name in sorted(files.items()):
        path = Path(pam_dir) / name
        if not path.is_file():
            msg = f"pixel-area map for chip {chip} not found: {path}"
            raise FileNotFoundError(msg)
        _load(str(path))
        out[chip] = path
    return out


@functools.lru_cache(maxsize=4)
def _load(path: str) -> np.ndarray:
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.data is not None and np.shape(hdu.data) == (CHIP_NY, CHIP_NX):
                data = np.asarray(hdu.data, dtype=np.float32)
                data.setflags(write=False)
                return data
    msg = f"{path}: no {CHIP_NY} x {CHIP_NX} image in this pixel-area map"
    raise ValueError(msg)


def pam_cutout(path: str | os.PathLike, shape: tuple[int, int], ltv: tuple[float, float],
               image_path: str) -> np.ndarray:
    """The PAM region of an image of *shape* whose chip origin is ``-ltv`` (px)."""
    pam = _load(str(path))
    x0, y0 = 0.0 - ltv[0], 0.0 - ltv[1]  # no "-0.0" in messages
    ny, nx = shape
    if (x0 != int(x0) or y0 != int(y0) or x0 < 0 or y0 < 0 or x0 + nx > CHIP_NX
            or y0 + ny > CHIP_NY):
        msg = (f"{image_path}: image of shape {shape} at chip origin ({x0}, {y0}) does not "
               f"lie on the {CHIP_NY} x {CHIP_NX} pixel-area map")
        raise InvalidImageError(msg)
    return pam[int(y0) : int(y0) + ny, int(x0) : int(x0) + nx]
