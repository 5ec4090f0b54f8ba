"""The period-date format of stiscube's headers, tables and pages (private).

The provenance record itself (software, versions, creation time, inputs, checksums) is
:mod:`stores.common.provenance`, one set of keys for every product; only :func:`iso`, the
period dates as written in DQ attributes, reference-file HISTORY and the site, is here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["iso"]


def iso(value: Any) -> str:
    """A date as ``YYYY-MM-DD hh:mm:ss.ffffff`` (UTC, microseconds)."""
    return str(np.datetime64(value, "us")).replace("T", " ")
