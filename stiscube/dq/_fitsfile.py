"""The FITS pieces both DQ writers share (:mod:`stiscube.dq.files` and
:mod:`stiscube.dq.reffiles`): the output path check, the atomic write, the ``DQ``
extension and the one set of DQ keywords of a primary header."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from stiscube.dq.flags import STIS_DQ
from stiscube.dq.rules import DQRules
from stiscube.schema import UNIT_SYSTEMS
from stores.common.provenance import set_card
from stores.storage.fs import atomic_path


def target(path: str | os.PathLike, overwrite: bool) -> Path:
    """*path*, checked: its directory exists, it is no directory, and it is new unless
    *overwrite*."""
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"{path}: directory {path.parent} does not exist"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path}: is a directory"
        raise IsADirectoryError(msg)
    if path.exists() and not overwrite:
        msg = f"{path}: file exists; pass overwrite=True to replace it"
        raise FileExistsError(msg)
    return path


def write_hdus(hdul, path: Path) -> None:
    """Write *hdul* to a temporary sibling that replaces *path* on success
    (:func:`stores.storage.fs.atomic_path`: a failed write leaves *path* untouched)."""
    with atomic_path(path) as tmp:
        hdul.writeto(Path(tmp), overwrite=True)


def dq_counts(values: np.ndarray, rules: DQRules, no_data: int = 0) -> dict[str, int]:
    """Pixel counts of a DQ array, counted on the array (so a header agrees with its file).

    Returns
    -------
    dict
        ``n_hot`` (the rules' hot bit set), ``n_unstable`` (the unstable bit), ``n_both``,
        ``n_no_data`` (*no_data*, counted by the caller) and ``n_flagged`` (any bit).
    """
    hot = (values & rules.hot_bit) != 0 if rules.has_hot_rule else np.zeros(values.shape, bool)
    unstable = (
        (values & rules.unstable_bit) != 0
        if rules.has_unstable_rule
        else np.zeros(values.shape, bool)
    )
    return {
        "n_hot": int(np.count_nonzero(hot)),
        "n_unstable": int(np.count_nonzero(unstable)),
        "n_both": int(np.count_nonzero(hot & unstable)),
        "n_no_data": int(no_data),
        "n_flagged": int(np.count_nonzero(values)),
    }


def dq_extension(values: np.ndarray):
    """The ``DQ`` image extension: plain int16 (BITPIX 16, no BZERO), EXTVER 1, its header
    listing the STIS bits (``DQBITnn`` = name, nn = bit position, and a ``COMMENT`` per
    bit)."""
    from astropy.io import fits

    if values.max(initial=0) > np.iinfo(np.int16).max:
        msg = "DQ values above 32767 cannot be stored as STIS int16 DQ"
        raise ValueError(msg)
    ext = fits.ImageHDU(data=np.ascontiguousarray(values, dtype=">i2"), name="DQ", ver=1)
    for position, flag in enumerate(STIS_DQ):
        set_card(ext.header, f"DQBIT{position:02d}", flag.name, f"DQ value {flag.bit}")
    for flag in STIS_DQ:
        ext.header.add_comment(f"DQ {flag.bit} = {flag.name}: {flag.description}")
    return ext


def dq_cards(hdr: Any, attrs: dict, rules: DQRules, counts: dict[str, int],
             periods: list[int]) -> None:
    """Set the DQ keywords every DQ file carries, from a :func:`stiscube.dq.dq_array`'s
    *attrs* (of the period the file applies to) and the *counts* on the array written.

    ``TELESCOP``, ``INSTRUME``, ``DETECTOR``; ``PERIODS`` (the periods used), ``APPLIES``
    (the period whose flags the file holds), ``ANNSTART``/``ANNEND`` (its dates, UTC),
    ``UNITSYS``; with a relative hot rule the clipped statistics of its ``sci_mean``
    (``HOTMED``, ``HOTSTD``, ``HOTTHR``); the counts ``NHOT``, ``NUNSTAB``, ``NBOTH``,
    ``NNODATA`` and ``NFLAGGED`` (``NHOT + NUNSTAB - NBOTH``, plus no-data pixels);
    ``RULES`` (JSON of :meth:`DQRules.to_dict`) and the rules in words as ``COMMENT``.
    """
    unit = UNIT_SYSTEMS[str(attrs["unit_system"])]["sci_mean"]
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "HST", "telescope"),
        ("INSTRUME", "STIS", "instrument"),
        ("DETECTOR", "CCD", "detector"),
        ("PERIODS", ",".join(str(n) for n in periods), "anneal periods used"),
        ("APPLIES", int(attrs["anneal"]), "anneal period whose flags the file holds"),
        ("ANNSTART", str(attrs["anneal_start"]), "its start (UTC)"),
        ("ANNEND", str(attrs["anneal_end"]), "its end (UTC, exclusive)"),
        ("UNITSYS", str(attrs["unit_system"]), "unit system of its properties"),
    ]
    if rules.hot_nsigma is not None:
        cards += [
            ("HOTMED", float(attrs["hot_clip_median"]), f"clipped median of sci_mean [{unit}]"),
            ("HOTSTD", float(attrs["hot_clip_std"]), f"clipped std of sci_mean [{unit}]"),
            ("HOTTHR", float(attrs["hot_sigma_threshold"]), f"sigma hot threshold [{unit}]"),
        ]
    cards += [
        ("NHOT", counts["n_hot"], f"pixels with the hot bit {rules.hot_bit}"),
        ("NUNSTAB", counts["n_unstable"], f"pixels with the unstable bit {rules.unstable_bit}"),
        ("NBOTH", counts["n_both"], "pixels both hot and unstable"),
        ("NNODATA", counts["n_no_data"], "pixels without usable samples"),
        ("NFLAGGED", counts["n_flagged"], "pixels with any DQ bit"),
        ("RULES", json.dumps(rules.to_dict()), "DQ rules as JSON"),
    ]
    for key, value, comment in cards:
        set_card(hdr, key, value, comment)
    for line in rules.describe():
        hdr.add_comment(line)
