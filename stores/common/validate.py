"""Argument validators shared by :mod:`stores`, :mod:`stiscube` and :mod:`cte`.

Small composable checks in the style of photutils' ``_common`` validators: each takes the
value and the *name* of the parameter, returns the normalised value (a Python ``int``,
``float``, ``bool``, ``tuple`` ...) and raises with a message that names the parameter,
states the rule and shows the value::

    n_periods = as_int(n_periods, "n_periods", min=1)
    # ValueError: n_periods must be an integer >= 1, got 0

Errors follow one convention:

- a value of the wrong *type* (a string for a number, a float for an integer, ``True``
  for a count) raises :class:`TypeError`;
- a value of the right type but outside the rule (a range, a choice, a shape) raises
  :class:`ValueError`.

Messages have the shape ``"<name> must be <rule>, got <repr(value)>"``; bounds read
``>= 1``, ``> 0``, ``<= 10``, ``in [0, 1]``, ``in (0, 1]`` (brackets closed, parentheses
open).

Options dataclasses are validated once, in ``__post_init__``, with :func:`check_fields`::

    @dataclass(frozen=True)
    class ClipOptions:
        sigma: float = 3.0
        maxiters: int = 5

        def __post_init__(self) -> None:
            check_fields(self, {
                "sigma": partial(as_float, min=0, strict_min=True),
                "maxiters": partial(as_int, min=1),
            })

Every function below raises in this way; their docstrings say only what they accept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

__all__ = [
    "as_bool",
    "as_float",
    "as_int",
    "as_interval",
    "as_sequence_of",
    "as_shape2",
    "as_str",
    "card_value",
    "check_fields",
    "instance_of",
    "one_of",
    "subset_of",
]

_INTEGER_TYPES = (int, np.integer)
_REAL_TYPES = (int, float, np.integer, np.floating)


def _bound_text(
    lo: float | None, hi: float | None, *, strict_lo: bool = False, strict_hi: bool = False
) -> str:
    """``">= 1"``, ``"> 0"``, ``"<= 5"``, ``"in [0, 1]"``, ``"in (0, 1]"`` or ``""``."""
    if lo is not None and hi is not None:
        return f"in {'(' if strict_lo else '['}{lo}, {hi}{')' if strict_hi else ']'}"
    if lo is not None:
        return f"{'>' if strict_lo else '>='} {lo}"
    if hi is not None:
        return f"{'<' if strict_hi else '<='} {hi}"
    return ""


def _in_bounds(
    value: float, lo: float | None, hi: float | None, strict_lo: bool, strict_hi: bool
) -> bool:
    if lo is not None and (value <= lo if strict_lo else value < lo):
        return False
    return not (hi is not None and (value >= hi if strict_hi else value > hi))


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _number(
    value: Any,
    name: str,
    convert: Callable[[Any], float | None],
    type_rule: str,
    range_rule: str,
    bounds: tuple[float | None, float | None, bool, bool],
    allow_none: bool,
) -> float | None:
    """What :func:`as_int` and :func:`as_float` share: ``None``, the type, the bounds.

    ``None`` passes when *allow_none*; a boolean, or a value for which ``convert(value)``
    returns ``None``, raises :class:`TypeError` with *type_rule*; the converted number
    outside ``bounds = (lo, hi, strict_lo, strict_hi)`` (or NaN) raises :class:`ValueError`
    with *range_rule* (no range check when *range_rule* is empty).  *convert* may raise
    its own :class:`ValueError` (a non-integral float, a non-finite number).
    """
    if value is None and allow_none:
        return None
    out = None if isinstance(value, bool | np.bool_) else convert(value)
    if out is None:
        raise TypeError(f"{name} must be {type_rule}, got {value!r}")
    if range_rule and (out != out or not _in_bounds(out, *bounds)):  # out != out: NaN
        raise ValueError(f"{name} must be {range_rule}, got {value!r}")
    return out


@overload
def as_int(value: Any, name: str, *, min: int | None = ..., max: int | None = ...,
           allow_none: Literal[False] = ..., allow_integral_float: bool = ...) -> int: ...
@overload
def as_int(value: Any, name: str, *, min: int | None = ..., max: int | None = ...,
           allow_none: bool, allow_integral_float: bool = ...) -> int | None: ...
def as_int(
    value: Any,
    name: str,
    *,
    min: int | None = None,
    max: int | None = None,
    allow_none: bool = False,
    allow_integral_float: bool = False,
) -> int | None:
    """*value* as a Python ``int``, checked against optional inclusive bounds.

    Parameters
    ----------
    value : int
        The value to check; ``bool`` is refused (``True`` is not a count).
    name : str
        The parameter name used in the message.
    min, max : int, optional
        Inclusive bounds.
    allow_none : bool
        Accept ``None`` (returned as is).
    allow_integral_float : bool
        Accept a float with an integral value (``12.0`` -> ``12``); a non-integral float
        then raises :class:`ValueError`.

    Examples
    --------
    >>> as_int(3, "n", min=1)
    3
    >>> as_int(0, "n_periods", min=1)
    Traceback (most recent call last):
    ...
    ValueError: n_periods must be an integer >= 1, got 0
    """
    rule = _join("an integer", _bound_text(min, max)) + (" or None" if allow_none else "")

    def convert(v: Any) -> int | None:
        if allow_integral_float and isinstance(v, float | np.floating):
            if not (math.isfinite(v) and float(v).is_integer()):
                raise ValueError(f"{name} must be {rule}, got {v!r}")
            return int(v)
        return int(v) if isinstance(v, _INTEGER_TYPES) else None

    out = _number(value, name, convert, rule, rule, (min, max, False, False), allow_none)
    return None if out is None else int(out)


@overload
def as_float(value: Any, name: str, *, min: float | None = ..., max: float | None = ...,
             strict_min: bool = ..., strict_max: bool = ..., finite: bool = ...,
             allow_none: Literal[False] = ..., units: str | None = ...) -> float: ...
@overload
def as_float(value: Any, name: str, *, min: float | None = ..., max: float | None = ...,
             strict_min: bool = ..., strict_max: bool = ..., finite: bool = ...,
             allow_none: bool, units: str | None = ...) -> float | None: ...
def as_float(
    value: Any,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
    finite: bool = True,
    allow_none: bool = False,
    units: str | None = None,
) -> float | None:
    """*value* as a Python ``float``, finite and within optional bounds.

    Parameters
    ----------
    value : int or float
        A real number (Python or numpy); ``bool`` and strings are refused.
    name : str
        The parameter name used in the message.
    min, max : float, optional
        Bounds, inclusive unless *strict_min* / *strict_max*.
    strict_min, strict_max : bool
        Make the bound exclusive (``> 0`` rather than ``>= 0``).
    finite : bool
        Refuse NaN and infinities (default).  With ``finite=False`` a NaN passes only
        when no bound is given.
    allow_none : bool
        Accept ``None`` (returned as is).
    units : str, optional
        Shown in range messages after the bounds, e.g. ``"electron / s"``.

    Examples
    --------
    >>> as_float(0, "sigma", min=0, strict_min=True)
    Traceback (most recent call last):
    ...
    ValueError: sigma must be > 0, got 0
    >>> as_float(2, "fraction", min=0, max=1)
    Traceback (most recent call last):
    ...
    ValueError: fraction must be in [0, 1], got 2
    """

    def convert(v: Any) -> float | None:
        if not isinstance(v, _REAL_TYPES):
            return None
        if finite and not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v!r}")
        return float(v)

    bounds = _bound_text(min, max, strict_lo=strict_min, strict_hi=strict_max)
    rule = _join(bounds, f"({units})" if units else "") if bounds else ""
    kind = "a number or None" if allow_none else "a number"
    return _number(value, name, convert, kind, rule, (min, max, strict_min, strict_max), allow_none)


@overload
def card_value(value: Any, name: str, kind: type[int]) -> int: ...
@overload
def card_value(value: Any, name: str, kind: type[float]) -> float: ...
def card_value(value: Any, name: str, kind: type[int] | type[float]) -> int | float:
    """A numeric FITS header card value, as the header readers of both packages take it.

    ``kind=int``: an integer, a float with an integral value or the text of an integer
    (``'2'``); ``kind=float``: a finite number or the text of one (``'1.5'``).  Booleans
    are refused.

    Parameters
    ----------
    value : object
        The card's value (``header[key]``).
    name : str
        The keyword, named in the message.
    kind : {int, float}
        The number wanted.

    Returns
    -------
    int or float
    """
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            rule = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} must be {rule}, got {value!r}") from None
    if kind is int:
        return as_int(value, name, allow_integral_float=True)
    return as_float(value, name)


def as_bool(value: Any, name: str) -> bool:
    """*value* as a Python ``bool``; only ``True``/``False`` (or numpy booleans) pass.

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_str(value: Any, name: str, *, non_empty: bool = True, one_line: bool = False) -> str:
    """*value* as a ``str``, optionally non-empty and on one line.

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    non_empty : bool
        Refuse an empty or blank string.
    one_line : bool
        Refuse line breaks.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    if non_empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if one_line and ("\n" in value or "\r" in value):
        raise ValueError(f"{name} must be one line of text, got {value!r}")
    return value


def one_of(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """*value*, if it is one of *choices* (compared with ``==``).

    ``choices`` is shown as given (a list of it), so pass it in the order a reader should
    see, e.g. ``one_of(how, "how", ("max", "mean"))``.  ``True``/``False`` never match
    ``1``/``0`` choices.

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    choices : iterable
        The values allowed.

    Examples
    --------
    >>> one_of("mean", "how", ("max", "mean"))
    'mean'
    >>> one_of("median", "how", ("max", "mean"))
    Traceback (most recent call last):
    ...
    ValueError: how must be one of ['max', 'mean'], got 'median'
    """
    options = list(choices)
    for choice in options:
        if isinstance(value, bool | np.bool_) != isinstance(choice, bool | np.bool_):
            continue
        try:
            if bool(value == choice):
                return choice
        except (TypeError, ValueError):  # an array compared with a scalar: not a choice
            continue
    raise ValueError(f"{name} must be one of {options}, got {value!r}")


def subset_of(
    values: Iterable[Any] | str, name: str, allowed: Iterable[Any], *, non_empty: bool = True
) -> tuple[Any, ...]:
    """*values* as a tuple (order kept, duplicates dropped), each one of *allowed*.

    Parameters
    ----------
    values : iterable or str
        The values; a single string is one value, not a sequence of characters.
    name : str
        The parameter's name (for the message).
    allowed : iterable
        The values allowed.
    non_empty : bool
        Refuse an empty selection.
    """
    allowed = list(allowed)
    items = [values] if isinstance(values, str) else list(values)
    unknown = [v for v in items if v not in allowed]
    if unknown:
        shown = sorted(allowed, key=str)
        raise ValueError(f"{name} must be drawn from {shown}, got unknown {unknown}")
    if non_empty and not items:
        raise ValueError(f"{name} must be a non-empty selection from {allowed}, got {items}")
    return tuple(dict.fromkeys(items))


def _pair_of(value: Any, types: tuple[type, ...]) -> list[Any] | None:
    """The two elements of *value* if it is a 2-sequence of *types* (not bool), else None."""
    if isinstance(value, str | bytes):
        return None
    try:
        items = list(value)
    except TypeError:
        return None
    if len(items) != 2 or any(
        isinstance(v, bool | np.bool_) or not isinstance(v, types) for v in items
    ):
        return None
    return items


def as_shape2(
    value: Any,
    name: str = "shape",
    *,
    min: int = 1,
    max: Sequence[int] | None = None,
) -> tuple[int, int]:
    """*value* as ``(rows, columns)``, two integers each >= *min* (and <= *max*).

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    min : int
        Smallest allowed size.
    max : sequence of int, optional
        Largest ``(rows, columns)``.
    """
    items = _pair_of(value, _INTEGER_TYPES)
    if items is None:
        raise ValueError(f"{name} must be (rows, columns), got {value!r}")
    ny, nx = (int(v) for v in items)
    upper = None if max is None else tuple(int(m) for m in max)
    if ny < min or nx < min or (upper is not None and (ny > upper[0] or nx > upper[1])):
        rule = f"between {(min, min)} and {upper}" if upper else f"both >= {min}"
        raise ValueError(f"{name} must be (rows, columns) {rule}, got {value!r}")
    return ny, nx


def as_interval(
    value: Any,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    strict: bool = True,
    units: str | None = None,
) -> tuple[float, float]:
    """*value* as ``(low, high)``: two finite numbers with ``low < high`` (``<=`` when not
    *strict*), within optional inclusive bounds.

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    min, max : float, optional
        Inclusive bounds of *low* and *high*.
    strict : bool
        Require ``low < high`` (else ``low <= high``).
    units : str, optional
        Shown in the message.
    """
    order = "<" if strict else "<="
    rule = f"(low, high){' ' + units if units else ''} with "
    rule += " ".join(
        p
        for p in (
            f"{min} <=" if min is not None else "",
            f"low {order} high",
            f"<= {max}" if max is not None else "",
        )
        if p
    )
    items = _pair_of(value, _REAL_TYPES)
    if items is None:
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    lo, hi = (float(v) for v in items)
    ok = math.isfinite(lo) and math.isfinite(hi) and (lo < hi if strict else lo <= hi)
    ok = ok and (min is None or lo >= min) and (max is None or hi <= max)
    if not ok:
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return lo, hi


def as_sequence_of(
    value: Any,
    name: str,
    item: Callable[[Any, str], Any],
    *,
    min_len: int = 1,
    max_len: int | None = None,
    unique: bool = False,
) -> tuple[Any, ...]:
    """*value* as a tuple, each element checked by ``item(element, f"{name}[{i}]")``.

    Parameters
    ----------
    value : sequence
        The values; a single string or a mapping is refused.
    name : str
        The parameter's name (for the message).
    item : callable
        A validator taking ``(value, name)`` and returning the normalised element, e.g.
        ``functools.partial(as_float, min=0, strict_min=True)``.
    min_len, max_len : int
        Allowed number of elements.
    unique : bool
        Refuse repeated elements (after normalisation).

    Examples
    --------
    >>> from functools import partial
    >>> as_sequence_of([3, 5.5], "apertures", partial(as_float, min=0, strict_min=True))
    (3.0, 5.5)
    """
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence, got {value!r}")
    items = list(value)
    if len(items) < min_len or (max_len is not None and len(items) > max_len):
        if max_len is None:
            rule = "a non-empty sequence" if min_len == 1 else f"at least {min_len} values"
        else:
            rule = f"a sequence of {min_len} to {max_len} values"
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    out = tuple(item(v, f"{name}[{i}]") for i, v in enumerate(items))
    if unique and len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat values, got {list(out)}")
    return out


def instance_of(value: Any, name: str, cls: type | tuple[type, ...], *, what: str = "") -> Any:
    """*value*, if it is an instance of *cls*.

    Parameters
    ----------
    value, name : object, str
        The value and the parameter's name (for the message), as everywhere here.
    cls : type or tuple of type
        The classes accepted.
    what : str, optional
        How to call the expected type in the message (default: the class name(s)), e.g.
        ``"an xarray.Dataset"``.
    """
    if not isinstance(value, cls):
        if not what:
            classes = cls if isinstance(cls, tuple) else (cls,)
            what = "an instance of " + " or ".join(c.__name__ for c in classes)
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_fields(
    obj: Any, spec: Mapping[str, Callable[[Any, str], Any]], *, prefix: str = ""
) -> None:
    """Validate and normalise the fields of a (frozen) dataclass instance, once.

    Call it from ``__post_init__``.  Each validator receives the field's value and its
    name (``prefix + field``, e.g. ``"TemperatureCorrection.coefficient"`` with
    ``prefix="TemperatureCorrection."``) and returns the normalised value, which is
    written back with ``object.__setattr__`` (so frozen dataclasses work).

    Parameters
    ----------
    obj : dataclass instance
    spec : mapping of str to callable
        Field name -> validator ``(value, name) -> value``; use :func:`functools.partial`
        to fix keyword options, e.g. ``partial(as_int, min=1)``.
    prefix : str
        Text put before the field name in messages.

    Raises
    ------
    TypeError, ValueError
        From the first failing validator; ``KeyError`` (a programming error) when *spec*
        names a field that *obj* does not have.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"check_fields needs a dataclass instance, got {type(obj).__name__}")
    fields = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise KeyError(f"{type(obj).__name__} has no field(s) {unknown}")
    for field, check in spec.items():
        value = check(getattr(obj, field), prefix + field)
        object.__setattr__(obj, field, value)
