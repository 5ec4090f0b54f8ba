"""Deprecation aliases for renamed public names (kept for one release).

A package whose public name was renamed keeps the old name importable, with a
:class:`FutureWarning`, for one release, by making it a module-level ``__getattr__``
(:pep:`562`)::

    __getattr__ = renamed(__name__, {"write_report": "cte.report.write_site"})

Every rename is also listed in ``CHANGELOG.md``.  Renamed modules, parameters and
command-line flags get no alias.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["renamed"]


def renamed(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving the old *names* to their new homes.

    Parameters
    ----------
    module : str
        The module's ``__name__`` (named in the error for any other missing attribute).
    names : mapping of str to str
        Old name -> new dotted path (``"package.module.name"``).

    Returns
    -------
    callable
        ``__getattr__(name)``: the object at the new path, after a :class:`FutureWarning`
        that names it; :class:`AttributeError` for names not in *names*.
    """
    names = dict(names)

    def __getattr__(name: str) -> Any:
        try:
            new = names[name]
        except KeyError:
            msg = f"module {module!r} has no attribute {name!r}"
            raise AttributeError(msg) from None
        warnings.warn(
            f"{module}.{name} was renamed {new}; the old name goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        where, _, attribute = new.rpartition(".")
        return getattr(importlib.import_module(where), attribute)

    return __getattr__
