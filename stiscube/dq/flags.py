"""The STIS data-quality (DQ) bit registry: one place for bit values, names, meanings.

Every DQ array :mod:`stiscube` writes uses these 16-bit values (those of calstis and the
STIS Instrument Handbook; the bit table itself lives in :mod:`stiscube.dq._bits`, shared
with the dark reader).  A pixel's DQ value is the bitwise OR of its flags, e.g.
``16 | 4 = 20`` is a hot pixel that is also a bad detector pixel.

- :data:`STIS_DQ` — the registry, a tuple of :class:`DQFlag` (bit, name, description)
  ordered by bit value;
- :func:`decode_dq` — the names of the flags set in one value;
- :func:`decode_dq_names` — the same for an array of values, as joined strings;
- :func:`dq_mask` — the OR of a set of bits, each checked against the registry;
- :func:`cf_flag_attrs` — CF-convention ``flag_masks``/``flag_meanings`` attributes, so
  that e.g. ``cf_xarray``'s ``da.cf.flags`` can decode a DQ :class:`xarray.DataArray`
  (CF 1.11 section 3.5: for bit fields ``flag_masks`` holds the bit of each meaning and
  a value *v* has meaning *i* when ``v & flag_masks[i] == flag_masks[i]``).

Examples
--------
>>> decode_dq(20)
['bad_detector_pixel', 'hot_pixel']
>>> dq_mask(["hot_pixel", 4])
20
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from stiscube.dq._bits import STIS_DQ_BITS

__all__ = [
    "BAD_DETECTOR_PIXEL",
    "BAD_REFERENCE_PIXEL",
    "HOT_PIXEL",
    "STIS_DQ",
    "DQFlag",
    "cf_flag_attrs",
    "decode_dq",
    "decode_dq_names",
    "dq_flag",
    "dq_mask",
]


@dataclass(frozen=True)
class DQFlag:
    """One bit of the STIS DQ registry.

    Attributes
    ----------
    bit : int
        The bit value (a power of two, 1 ... 16384).
    name : str
        Short identifier, used in ``flag_meanings`` and in decoded names.
    description : str
        What the flag means (STIS Instrument Handbook wording).
    """

    bit: int
    name: str
    description: str


#: the STIS DQ bits, ordered by bit value
STIS_DQ: tuple[DQFlag, ...] = tuple(
    DQFlag(bit, name, description) for bit, (name, description) in sorted(STIS_DQ_BITS.items())
)

_BY_BIT: dict[int, DQFlag] = {flag.bit: flag for flag in STIS_DQ}
_BY_NAME: dict[str, DQFlag] = {flag.name: flag for flag in STIS_DQ}
_ALL_BITS: int = int(np.bitwise_or.reduce([flag.bit for flag in STIS_DQ]))

#: hot pixel: dark rate above threshold (set by the hot rule of :class:`stiscube.dq.DQRules`)
HOT_PIXEL: int = _BY_NAME["hot_pixel"].bit
#: bad detector pixel (the default bit of the unstable rule of :class:`stiscube.dq.DQRules`)
BAD_DETECTOR_PIXEL: int = _BY_NAME["bad_detector_pixel"].bit
#: bad pixel in a reference file
BAD_REFERENCE_PIXEL: int = _BY_NAME["bad_reference_pixel"].bit


def dq_flag(bit_or_name: int | str) -> DQFlag:
    """The registry entry of one bit, given its value (e.g. ``16``) or name (``"hot_pixel"``).

    Raises
    ------
    ValueError
        The value is not a single STIS DQ bit, or the name is unknown.
    """
    if isinstance(bit_or_name, str):
        if bit_or_name not in _BY_NAME:
            msg = f"{bit_or_name!r} is not a STIS DQ flag name; known names are {sorted(_BY_NAME)}"
            raise ValueError(msg)
        return _BY_NAME[bit_or_name]
    if isinstance(bit_or_name, bool) or not isinstance(bit_or_name, int | np.integer):
        msg = f"a DQ bit must be an int or a flag name, got {bit_or_name!r}"
        raise TypeError(msg)
    if int(bit_or_name) not in _BY_BIT:
        msg = f"{int(bit_or_name)} is not a single STIS DQ bit; known bits are {sorted(_BY_BIT)}"
        raise ValueError(msg)
    return _BY_BIT[int(bit_or_name)]


def dq_mask(bits: Iterable[int | str]) -> int:
    """The bitwise OR of *bits* (values or names), each checked against the registry."""
    total = 0
    for item in bits:
        total |= dq_flag(item).bit
    return total


def _check_value(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"value must be an integer DQ value, got {value!r}"
        raise TypeError(msg)
    value = int(value)
    if not 0 <= value <= 0xFFFF:
        msg = f"value must be a 16-bit DQ value (0 ... 65535), got {value}"
        raise ValueError(msg)
    return value


def decode_dq(value: int) -> list[str]:
    """Names of the flags set in one DQ *value*, in bit order.

    Bits outside the registry are reported as one extra name ``unknown_bits_<n>``.

    Parameters
    ----------
    value : int
        A 16-bit DQ value (0 ... 65535).

    Examples
    --------
    >>> decode_dq(16)
    ['hot_pixel']
    >>> decode_dq(0)
    []
    """
    value = _check_value(value)
    names = [flag.name for flag in STIS_DQ if value & flag.bit]
    unknown = value & ~_ALL_BITS
    if unknown:
        names.append(f"unknown_bits_{unknown}")
    return names


def decode_dq_names(values: np.ndarray, *, sep: str = ",") -> np.ndarray:
    """Decoded flag names of an array of DQ values, each joined with *sep*.

    Only the distinct values are decoded (``numpy.unique``), so the cost does not grow
    with the number of pixels beyond the unique/inverse pass.

    Returns
    -------
    numpy.ndarray
        Strings of the same shape as *values*; ``""`` where no flag is set.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        msg = f"values must be an integer array of DQ values, got dtype {arr.dtype}"
        raise TypeError(msg)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=str)
    if arr.min() < 0 or arr.max() > 0xFFFF:
        msg = "values must be 16-bit DQ values (0 ... 65535)"
        raise ValueError(msg)
    unique, inverse = np.unique(arr, return_inverse=True)
    decoded = np.array([sep.join(decode_dq(int(v))) for v in unique])
    return decoded[inverse].reshape(arr.shape)


def cf_flag_attrs(bits: Iterable[int | str] | None = None) -> dict[str, object]:
    """CF-convention flag attributes of a DQ variable.

    Parameters
    ----------
    bits : iterable of int or str, optional
        The flags to describe (values or names); default: the whole registry.

    Returns
    -------
    dict
        ``flag_masks`` (uint16 array of the bits, ascending), ``flag_meanings`` (the names,
        space-separated, same order) and ``flag_descriptions`` (a readable
        ``"16: hot pixel (...); ..."`` string, not a CF attribute).
    """
    chosen = STIS_DQ if bits is None else sorted({dq_flag(b) for b in bits}, key=lambda f: f.bit)
    return {
        "flag_masks": np.array([flag.bit for flag in chosen], dtype=np.uint16),
        "flag_meanings": " ".join(flag.name for flag in chosen),
        "flag_descriptions": "; ".join(f"{flag.bit}: {flag.description}" for flag in chosen),
    }
