"""The STIS data-quality (DQ) bit registry: one place for bit values, names, meanings.

Every DQ array :mod:`stiscube` writes uses these 16-bit values (those of calstis and the
STIS Instrument Handbook; the bit table itself lives in :mod:`stiscube.schema`, shared
with the dark reader).  A pixel's DQ value is the bitwise OR of its flags, e.g.
``16 | 4 = 20`` is a hot pixel that is also a bad detector pixel.

- :data:`STIS_DQ` — the registry, a :class:`stores.common.flags.FlagRegistry` of
  :class:`DQFlag` (= :class:`stores.common.flags.Flag`: bit, name, description) ordered by bit
  value (iterate it, or ask ``STIS_DQ.flag``, ``.mask``, ``.decode``, ``.cf_attrs``);
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

import numpy as np

from stiscube.schema import STIS_DQ_BITS
from stores.common.flags import Flag, FlagRegistry

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

#: one bit of the STIS DQ registry (bit, name, description): :class:`stores.common.flags.Flag`
DQFlag = Flag

#: the STIS DQ bits, ordered by bit value: 16-bit values, ``flag_masks`` as uint16
STIS_DQ: FlagRegistry = FlagRegistry(
    [Flag(bit, name, description) for bit, (name, description) in STIS_DQ_BITS.items()],
    name="STIS DQ",
    dtype=np.uint16,
    width=16,
    value_name="DQ value",
)

#: hot pixel: dark rate above threshold (set by the hot rule of :class:`stiscube.dq.DQRules`)
HOT_PIXEL: int = STIS_DQ.flag("hot_pixel").bit
#: bad detector pixel (the default bit of the unstable rule of :class:`stiscube.dq.DQRules`)
BAD_DETECTOR_PIXEL: int = STIS_DQ.flag("bad_detector_pixel").bit
#: bad pixel in a reference file
BAD_REFERENCE_PIXEL: int = STIS_DQ.flag("bad_reference_pixel").bit


def dq_flag(bit_or_name: int | str) -> DQFlag:
    """The registry entry of one bit, given its value (e.g. ``16``) or name (``"hot_pixel"``).

    Parameters
    ----------
    bit_or_name : int or str
        The bit.

    Returns
    -------
    DQFlag
        Its registry entry.

    Raises
    ------
    TypeError
        Neither an int nor a name.
    ValueError
        The value is not a single STIS DQ bit, or the name is unknown.
    """
    return STIS_DQ.flag(bit_or_name)


def dq_mask(bits: Iterable[int | str]) -> int:
    """The bitwise OR of *bits* (values or names), each checked against the registry.

    Parameters
    ----------
    bits : iterable of int or str
        Bit values or names.

    Returns
    -------
    int
        The mask.
    """
    return STIS_DQ.mask(bits)


def decode_dq(value: int) -> list[str]:
    """Names of the flags set in one DQ *value*, in bit order.

    Bits outside the registry are reported as one extra name ``unknown_bits_<n>``.

    Parameters
    ----------
    value : int
        A 16-bit DQ value (0 ... 65535); others raise TypeError/ValueError.

    Examples
    --------
    >>> decode_dq(16)
    ['hot_pixel']
    >>> decode_dq(0)
    []
    """
    return STIS_DQ.decode(value)


def decode_dq_names(values: np.ndarray, *, sep: str = ",") -> np.ndarray:
    """Decoded flag names of an array of DQ values, each joined with *sep*.

    Only the distinct values are decoded (``numpy.unique``), so the cost does not grow
    with the number of pixels beyond the unique/inverse pass.

    Parameters
    ----------
    values : numpy.ndarray
        DQ values.
    sep : str
        The separator of the names.

    Returns
    -------
    numpy.ndarray
        Strings of the same shape as *values*; ``""`` where no flag is set.
    """
    return STIS_DQ.decode_names(values, sep=sep)


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
    return STIS_DQ.cf_attrs(bits, descriptions=True)
