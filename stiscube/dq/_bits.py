"""STIS data-quality (DQ) bit values used when reading dark frames.

The values are those of the STIS Instrument Handbook / calstis (``DQ`` extension,
16-bit).  This private module holds only what :mod:`stiscube.io.darks` and
:mod:`stiscube.properties.compute` need: the bit names and the default mask of samples that are
excluded from pixel statistics.
"""

from __future__ import annotations

__all__ = ["DEFAULT_DARK_DQ_MASK", "STIS_DQ_BITS"]

#: bit value -> (name, description) of the STIS DQ flags.
STIS_DQ_BITS: dict[int, tuple[str, str]] = {
    1: ("rs_decode_error", "Reed-Solomon decoding error"),
    2: ("fill_data", "data replaced by fill value (lost in telemetry)"),
    4: ("bad_detector_pixel", "bad detector pixel or beyond aperture"),
    8: ("occulted", "data masked by occulting bar"),
    16: ("hot_pixel", "hot pixel (dark rate above threshold)"),
    32: ("large_blemish", "large blemish"),
    64: ("unused_64", "not used"),
    128: ("overscan", "overscan region / bias level pixel"),
    256: ("saturated", "saturated pixel (full well or A-to-D)"),
    512: ("bad_reference_pixel", "bad pixel in a reference file"),
    1024: ("small_blemish", "small blemish"),
    2048: ("high_background", "> 30% background in an extracted spectrum"),
    4096: ("extraction_discarded", "pixel discarded in spectral extraction"),
    8192: ("cosmic_ray", "cosmic ray rejected (CR-split or repeat-obs combination)"),
    16384: ("geocorr_area", "pixel in a GEOCORR-affected area"),
}

#: Samples whose value itself is unreliable: lost/garbled telemetry (1, 2), saturation
#: (256) and samples already flagged as cosmic rays upstream (8192).  Flags that describe
#: the *pixel* (hot 16, blemishes 32/1024, bad pixel 4/512) are deliberately not masked:
#: measuring those pixels is the point of the pixel property database.
DEFAULT_DARK_DQ_MASK: int = 1 | 2 | 256 | 8192
