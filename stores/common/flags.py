"""Bit-flag registries: one class for every set of quality flags the packages write.

A :class:`FlagRegistry` holds :class:`Flag` entries (bit value, name, description) and
answers the questions every flag set needs: which names are set in a value
(:meth:`~FlagRegistry.decode`, vectorised in :meth:`~FlagRegistry.decode_names`), the OR of
some flags (:meth:`~FlagRegistry.mask`), and the CF-convention attributes that let
``cf_xarray``'s ``da.cf.flags`` decode a flag variable (:meth:`~FlagRegistry.cf_attrs`;
CF 1.11 section 3.5: for bit fields ``flag_masks`` holds the bit of each meaning and a
value *v* has meaning *i* when ``v & flag_masks[i] == flag_masks[i]``).

The STIS DQ bits (:mod:`stiscube.dqflags`), the photometry star flags and the WFC3 DQ
bits (:mod:`cte.flags`) are instances of this class.

Examples
--------
>>> reg = FlagRegistry([Flag(1, "off_chip", "outside"), Flag(4, "saturated", "full well")],
...                    name="star")
>>> reg.decode(5)
['off_chip', 'saturated']
>>> reg.mask(["saturated", 1])
5
>>> reg.decode(2)
['unknown_bits_2']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from stores.common.validate import as_int, instance_of

__all__ = ["Flag", "FlagRegistry"]


@dataclass(frozen=True)
class Flag:
    """One bit of a flag registry.

    Parameters
    ----------
    bit : int
        The bit value (a power of two, e.g. ``16``).
    name : str
        Short identifier without spaces, used in ``flag_meanings`` and decoded names.
    description : str
        What the flag means, in words.
    """

    bit: int
    name: str
    description: str = ""


class FlagRegistry:
    """An ordered, validated set of bit flags.

    Parameters
    ----------
    flags : iterable of Flag
        The flags; they are kept ordered by bit value (iterate the registry to get them).
    name : str
        What the registry is called in messages, e.g. ``"STIS DQ"``.
    dtype : numpy dtype, optional
        The integer dtype of the flag variable, used for ``flag_masks`` (default int32).
    width : int, optional
        The number of bits of a valid value (e.g. 16 for STIS DQ): values outside
        ``0 ... 2**width - 1`` are refused.  Default: any value >= 0.
    value_name : str, optional
        How a value is called in messages (default ``f"{name} value"``), e.g. ``"DQ value"``.

    Raises
    ------
    TypeError
        An entry is not a :class:`Flag`, or a bit (or *width*) is not an integer.
    ValueError
        A bit is not a positive power of two or is repeated, a name is empty, contains
        whitespace or is repeated, a bit does not fit in *width*/*dtype*, or *width* is
        not in [1, 63].
    """

    def __init__(
        self,
        flags: Iterable[Flag],
        *,
        name: str,
        dtype: Any = np.int32,
        width: int | None = None,
        value_name: str | None = None,
    ) -> None:
        entries = [instance_of(f, f"{name} flag", Flag, what="a Flag") for f in flags]
        self.name = str(name)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "iu":
            msg = f"dtype must be an integer dtype, got {self.dtype}"
            raise ValueError(msg)
        self.width = as_int(width, "width", min=1, max=63, allow_none=True)
        self.value_name = value_name or f"{self.name} value"
        limit = np.iinfo(self.dtype).max if width is None else 2**width - 1
        limit = min(limit, np.iinfo(self.dtype).max)
        for flag in entries:
            bit = as_int(flag.bit, f"{self.name} flag {flag.name!r}: bit")
            if bit <= 0 or bit & (bit - 1) or bit > limit:
                msg = (f"{self.name} flag {flag.name!r}: bit must be a power of two in "
                       f"[1, {limit}], got {bit}")
                raise ValueError(msg)
            if not isinstance(flag.name, str) or not flag.name or flag.name.split() != [flag.name]:
                msg = f"{self.name} flag names must be non-empty words, got {flag.name!r}"
                raise ValueError(msg)
        bits = [int(f.bit) for f in entries]
        names = [f.name for f in entries]
        for what, values in (("bits", bits), ("names", names)):
            repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
            if repeated:
                msg = f"{self.name} flag {what} must be unique, got repeated {repeated}"
                raise ValueError(msg)
        self._flags: tuple[Flag, ...] = tuple(
            sorted((Flag(int(f.bit), f.name, f.description) for f in entries),
                   key=lambda f: f.bit)
        )
        self._by_bit = {f.bit: f for f in self._flags}
        self._by_name = {f.name: f for f in self._flags}
        self.all_bits: int = sum(self._by_bit)
        self._max_value = None if width is None else 2**width - 1

    # -- the container -------------------------------------------------------------------

    def __iter__(self) -> Iterator[Flag]:
        return iter(self._flags)

    def __len__(self) -> int:
        return len(self._flags)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Flag):
            return item in self._flags
        if isinstance(item, str):
            return item in self._by_name
        if isinstance(item, int | np.integer) and not isinstance(item, bool):
            return int(item) in self._by_bit
        return False

    def __repr__(self) -> str:
        return f"FlagRegistry(name={self.name!r}, flags={[f.name for f in self._flags]})"

    # -- lookups ---------------------------------------------------------------------------

    def flag(self, bit_or_name: int | str) -> Flag:
        """The entry of one flag.

        Parameters
        ----------
        bit_or_name : int or str
            Its bit value (e.g. ``16``) or its name.

        Raises
        ------
        TypeError
            *bit_or_name* is neither an integer nor a string.
        ValueError
            The value is not a single bit of the registry, or the name is unknown.
        """
        if isinstance(bit_or_name, str):
            if bit_or_name not in self._by_name:
                msg = (f"{bit_or_name!r} is not a {self.name} flag name; "
                       f"known names are {sorted(self._by_name)}")
                raise ValueError(msg)
            return self._by_name[bit_or_name]
        if isinstance(bit_or_name, bool) or not isinstance(bit_or_name, int | np.integer):
            msg = f"a {self.name} bit must be an int or a flag name, got {bit_or_name!r}"
            raise TypeError(msg)
        if int(bit_or_name) not in self._by_bit:
            msg = (f"{int(bit_or_name)} is not a single {self.name} bit; "
                   f"known bits are {sorted(self._by_bit)}")
            raise ValueError(msg)
        return self._by_bit[int(bit_or_name)]

    def mask(self, flags: Iterable[int | str] | int | str) -> int:
        """The bitwise OR of *flags*, each checked against the registry.

        Parameters
        ----------
        flags : int, str or iterable of them
            Bit values or names.
        """
        if isinstance(flags, str | int | np.integer):
            flags = [flags]
        total = 0
        for item in flags:
            total |= self.flag(item).bit
        return total

    # -- decoding --------------------------------------------------------------------------

    def check_value(self, value: Any) -> int:
        """*value* as a Python ``int`` if it is a valid flag value of this registry.

        Parameters
        ----------
        value : int
            A flag value.

        Raises
        ------
        TypeError
            Not an integer (``bool`` and floats are refused).
        ValueError
            Negative, or beyond *width* bits.
        """
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            msg = f"value must be an integer {self.value_name}, got {value!r}"
            raise TypeError(msg)
        value = int(value)
        if self._max_value is not None:
            if not 0 <= value <= self._max_value:
                msg = (f"value must be a {self.width}-bit {self.value_name} "
                       f"(0 ... {self._max_value}), got {value}")
                raise ValueError(msg)
        elif value < 0:
            msg = f"value must be >= 0, got {value!r}"
            raise ValueError(msg)
        return value

    def decode(self, value: int) -> list[str]:
        """Names of the flags set in one *value*, in bit order.

        Bits outside the registry are reported as one extra name ``unknown_bits_<n>``
        (``n`` their OR).

        Parameters
        ----------
        value : int
            A flag value.

        Raises
        ------
        TypeError, ValueError
            See :meth:`check_value`.
        """
        value = self.check_value(value)
        names = [f.name for f in self._flags if value & f.bit]
        unknown = value & ~self.all_bits
        if unknown:
            names.append(f"unknown_bits_{unknown}")
        return names

    def decode_names(self, values: Any, *, sep: str = ",") -> np.ndarray:
        """Decoded names of an array of values, each joined with *sep*.

        Only the distinct values are decoded (:func:`numpy.unique`), so the cost grows with
        the number of distinct values, not of pixels.

        Parameters
        ----------
        values : array_like of int
            Flag values.
        sep : str
            Put between the names of one value.

        Returns
        -------
        numpy.ndarray
            Strings of the shape of *values*; ``""`` where no flag is set.

        Raises
        ------
        TypeError
            *values* is not an integer array.
        ValueError
            Some values are negative or beyond *width* bits.
        """
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            msg = f"values must be an integer array of {self.value_name}s, got dtype {arr.dtype}"
            raise TypeError(msg)
        if arr.size == 0:
            return np.zeros(arr.shape, dtype=str)
        if arr.min() < 0 or (self._max_value is not None and arr.max() > self._max_value):
            if self._max_value is None:
                msg = f"values must be >= 0, got minimum {arr.min()}"
            else:
                msg = (f"values must be {self.width}-bit {self.value_name}s "
                       f"(0 ... {self._max_value})")
            raise ValueError(msg)
        unique, inverse = np.unique(arr, return_inverse=True)
        decoded = np.array([sep.join(self.decode(int(v))) for v in unique])
        return decoded[inverse].reshape(arr.shape)

    # -- CF attributes ---------------------------------------------------------------------

    def cf_attrs(
        self, flags: Iterable[int | str] | None = None, *, descriptions: bool = False
    ) -> dict[str, object]:
        """CF-convention flag attributes of a variable holding values of this registry.

        Parameters
        ----------
        flags : iterable of int or str, optional
            The flags to describe (bit values or names); default: the whole registry.
        descriptions : bool
            Add ``flag_descriptions``, a readable ``"16: hot pixel; ..."`` string (not a
            CF attribute).

        Returns
        -------
        dict
            ``flag_masks`` (array of the bits, ascending, in the registry's dtype) and
            ``flag_meanings`` (the names, space-separated, same order).
        """
        if flags is None:
            chosen = list(self._flags)
        else:
            chosen = sorted({self.flag(f) for f in flags}, key=lambda f: f.bit)
        attrs: dict[str, object] = {
            "flag_masks": np.array([f.bit for f in chosen], dtype=self.dtype),
            "flag_meanings": " ".join(f.name for f in chosen),
        }
        if descriptions:
            attrs["flag_descriptions"] = "; ".join(f"{f.bit}: {f.description}" for f in chosen)
        return attrs
