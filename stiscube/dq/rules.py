"""The rules that turn pixel properties into STIS DQ flags (:class:`DQRules`).

Applied by :func:`stiscube.dq.dq_array`; see :mod:`stiscube.dq` for the rules written
out as formulas.  Importable as ``stiscube.dq.DQRules`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

from stiscube.dq.flags import BAD_DETECTOR_PIXEL, HOT_PIXEL, dq_flag
from stiscube.schema import UNIT_SYSTEMS
from stores.common.validate import as_float, as_int, check_fields, one_of

__all__ = ["DEFAULT_HOT_LEVEL", "DQRules"]

_RATE_UNITS = UNIT_SYSTEMS["rate"]["sci_mean"]
_COMBINES = ("or", "and")
_PARTIAL = ("error", "available")
_AUTO = "auto"
#: the STIS reference pipeline's relative hot threshold (refstis: clipped median + 5 sigma)
_DEFAULT_NSIGMA = 5.0
#: the STIS superdarks' DQ-16 level (refstis: "pixels hotter than 0.1 electron/sec")
DEFAULT_HOT_LEVEL = 0.1


def _bit(value: Any, name: str) -> int:
    try:
        return dq_flag(value).bit
    except (TypeError, ValueError) as exc:
        msg = f"{name}: {exc}"
        raise type(exc)(msg) from exc


_POSITIVE_OR_NONE = partial(as_float, allow_none=True, min=0, strict_min=True)
_COUNT_OR_NONE = partial(as_int, allow_none=True, min=1)
#: the rule of each DQRules field but hot_level (checked first: it decides what
#: hot_nsigma="auto" means), in the order they are checked
_FIELD_RULES: dict[str, Callable[[Any, str], Any]] = {
    "hot_nsigma": _POSITIVE_OR_NONE,
    "hot_combine": partial(one_of, choices=_COMBINES),
    "clip_sigma": partial(as_float, min=0, strict_min=True),
    "clip_maxiters": _COUNT_OR_NONE,
    "unstable_level": _POSITIVE_OR_NONE,
    "persist_k": _COUNT_OR_NONE,
    "persist_m": _COUNT_OR_NONE,
    "partial_window": partial(one_of, choices=_PARTIAL),
    "hot_bit": _bit,
    "unstable_bit": _bit,
}


@dataclass(frozen=True, kw_only=True)
class DQRules:
    """Rules that turn pixel properties into DQ flags (validated at construction).

    Parameters
    ----------
    hot_level : float or None
        Absolute hot level on ``sci_mean``, in electron / s (> 0; a level <= 0 would
        flag nearly every pixel): hot if ``sci_mean > hot_level``.  Requires periods in
        the ``"rate"`` unit system.  Default :data:`DEFAULT_HOT_LEVEL` (0.1, the level
        at which the STIS reference superdarks set DQ 16); None: no absolute rule.
    hot_nsigma : float, None or "auto"
        Relative hot level: hot if ``sci_mean > median_c + hot_nsigma * std_c`` of the
        period's sigma-clipped frame.  ``"auto"`` (default) means 5 (the STIS
        reference pipeline's threshold for new hot pixels) when *hot_level* is None,
        and None (no relative rule) when it is given; give a number to use both.
    hot_combine : {"or", "and"}
        How the two hot rules combine when both are given.  ``"and"`` needs both.
    clip_sigma : float
        Clipping limit of the sigma-clipped statistics, in standard deviations (3).
    clip_maxiters : int or None
        Maximum clipping iterations (40 as refstis; None = until convergence).
    unstable_level : float or None
        Unstable if ``stability > unstable_level`` (dimensionless, > 0; a steady pixel
        has about 1).  None: no rule.
    persist_k, persist_m : int or None
        Set a rule's bit only when the rule held in at least *persist_k* of the last
        *persist_m* periods (including the chosen one).  Both or neither.
    partial_window : {"error", "available"}
        When fewer than *persist_m* periods are held up to the chosen one: raise
        (``"error"``), or use the periods available (still requiring *persist_k*).
    hot_bit, unstable_bit : int or str
        The DQ bit each rule sets (a value or name of :data:`stiscube.dq.flags.STIS_DQ`);
        defaults 16 (``hot_pixel``) and 4 (``bad_detector_pixel``: STIS has no
        "unstable" bit, see :mod:`stiscube.dq`).  They must differ, so that the
        categories can be told apart in the file.

    Raises
    ------
    ValueError, TypeError
        A parameter is out of range or of the wrong type (the message names it), or no
        rule is given at all.

    Examples
    --------
    >>> DQRules(hot_level=0.1, hot_nsigma=5, hot_combine="and", unstable_level=3.0)
    ... # doctest: +ELLIPSIS
    DQRules(hot_level=0.1, hot_nsigma=5.0, hot_combine='and', ...)
    """

    hot_level: float | None = DEFAULT_HOT_LEVEL
    hot_nsigma: float | str | None = _AUTO
    hot_combine: str = "or"
    clip_sigma: float = 3.0
    clip_maxiters: int | None = 40
    unstable_level: float | None = None
    persist_k: int | None = None
    persist_m: int | None = None
    partial_window: str = "error"
    hot_bit: int = HOT_PIXEL
    unstable_bit: int = BAD_DETECTOR_PIXEL

    def __post_init__(self) -> None:
        check_fields(self, {"hot_level": _POSITIVE_OR_NONE})
        if isinstance(self.hot_nsigma, str) and self.hot_nsigma == _AUTO:
            nsigma = _DEFAULT_NSIGMA if self.hot_level is None else None
            object.__setattr__(self, "hot_nsigma", nsigma)
        check_fields(self, _FIELD_RULES)
        # rules between fields
        if self.hot_combine == "and" and (self.hot_level is None or self.hot_nsigma is None):
            msg = (
                "hot_combine='and' needs both hot_level and hot_nsigma, got "
                f"hot_level={self.hot_level!r}, hot_nsigma={self.hot_nsigma!r}"
            )
            raise ValueError(msg)
        k, m = self.persist_k, self.persist_m
        if (k is None) != (m is None):
            msg = f"persist_k and persist_m go together, got persist_k={k!r}, persist_m={m!r}"
            raise ValueError(msg)
        if k is not None and k > m:
            msg = f"persist_k must be <= persist_m, got persist_k={k}, persist_m={m}"
            raise ValueError(msg)
        if not (self.has_hot_rule or self.has_unstable_rule):
            msg = "the rules flag nothing: give hot_level, hot_nsigma or unstable_level"
            raise ValueError(msg)
        if self.has_hot_rule and self.has_unstable_rule and self.hot_bit == self.unstable_bit:
            msg = (
                f"hot_bit and unstable_bit must differ (both {self.hot_bit}): the flagged-pixel "
                "table and the file's counts tell the categories apart by their bits"
            )
            raise ValueError(msg)

    # -- derived ---------------------------------------------------------------------------
    @property
    def has_hot_rule(self) -> bool:
        """Whether any hot rule is given."""
        return self.hot_level is not None or self.hot_nsigma is not None

    @property
    def has_unstable_rule(self) -> bool:
        """Whether the unstable rule is given."""
        return self.unstable_level is not None

    @property
    def uses_rate_units(self) -> bool:
        """Whether a rule has an absolute level in electron / s (needs rate periods)."""
        return self.hot_level is not None

    @property
    def window(self) -> int:
        """Number of periods *m* the rules look at (1 without persistence)."""
        return 1 if self.persist_m is None else self.persist_m

    @property
    def min_count(self) -> int:
        """Number of periods *k* in which a rule must hold (1 without persistence)."""
        return 1 if self.persist_k is None else self.persist_k

    def to_dict(self) -> dict[str, Any]:
        """The rules as a plain dict (JSON-serialisable; inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DQRules:
        """Rules from a dict such as :meth:`to_dict` made (unknown keys are an error).

        Parameters
        ----------
        values : mapping
            Field name -> value.

        Returns
        -------
        DQRules
            The rules (validated).
        """
        known = {f.name for f in fields(cls)}
        extra = sorted(set(values) - known)
        if extra:
            msg = f"unknown DQ rule parameters {extra}; known ones are {sorted(known)}"
            raise ValueError(msg)
        return cls(**values)

    def describe(self) -> list[str]:
        """The rules in words, one line each (used in file headers)."""
        lines = []
        hot = []
        if self.hot_level is not None:
            hot.append(f"sci_mean > {self.hot_level:g} {_RATE_UNITS}")
        if self.hot_nsigma is not None:
            iters = "until convergence" if self.clip_maxiters is None else self.clip_maxiters
            hot.append(
                f"sci_mean > clipped median + {self.hot_nsigma:g} x clipped std "
                f"({self.clip_sigma:g}-sigma clip, max iterations {iters})"
            )
        if hot:
            lines.append(f"hot (DQ {self.hot_bit}): " + f" {self.hot_combine} ".join(hot))
        if self.unstable_level is not None:
            lines.append(f"unstable (DQ {self.unstable_bit}): stability > {self.unstable_level:g}")
        if self.persist_k is not None:
            lines.append(
                f"each rule must hold in >= {self.persist_k} of the last {self.persist_m} "
                f"periods (partial window: {self.partial_window})"
            )
        return lines
