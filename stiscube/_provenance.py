"""Dates and software versions recorded in the files and arrays stiscube writes (private).

The provenance record itself is :mod:`stores.provenance` (one set of keys for every
product); :func:`software` is its own and :func:`versions` its
:func:`stores.provenance.versions` with matplotlib added (stiscube's figures).  Only the
date formats stay here: :func:`now` is the FITS ``DATE`` value (``YYYY-MM-DDThh:mm:ss``,
no ``Z``: the FITS standard and CRDS read it so), :func:`iso` the period dates.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from stores import provenance as _provenance
from stores.provenance import software

__all__ = ["iso", "now", "software", "versions"]

#: libraries whose versions stiscube products record
LIBRARIES: tuple[str, ...] = (*_provenance.DEFAULT_LIBRARIES, "matplotlib")


def iso(value: Any) -> str:
    """A date as ``YYYY-MM-DD hh:mm:ss.ffffff`` (UTC, microseconds)."""
    return str(np.datetime64(value, "us")).replace("T", " ")


def now() -> str:
    """The current UTC time as ``YYYY-MM-DDThh:mm:ss`` (the FITS ``DATE`` format)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def versions() -> dict[str, str]:
    """Versions of stiscube, Python and the libraries behind its outputs
    (:func:`stores.provenance.versions` of :data:`LIBRARIES`)."""
    return _provenance.versions(LIBRARIES)
