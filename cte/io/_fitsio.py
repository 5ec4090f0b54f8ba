"""Opening WFC3/UVIS FITS files with validation that names the file and the problem."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from astropy.io import fits

from cte.exceptions import InvalidImageError, WrongInstrumentError

__all__ = ["check_instrument", "open_checked"]


@contextlib.contextmanager
def open_checked(path: str | os.PathLike) -> Iterator[fits.HDUList]:
    """Open a FITS file, turning unreadable, truncated or empty files into errors.

    All headers are parsed at once; a file shorter than its headers announce raises
    :class:`InvalidImageError` (astropy only warns).  Other warnings raised while
    parsing are re-emitted unchanged.  Call from one thread at a time: the truncation
    check records warnings through :func:`warnings.catch_warnings`.
    """
    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, lazy_load_hdus=False, memmap=False)
        except (OSError, ValueError, TypeError, IndexError) as exc:
            msg = f"{path}: not a readable FITS file ({exc})"
            raise InvalidImageError(msg) from exc
    try:
        size = path.stat().st_size
        expected = max(
            (hdul.fileinfo(i)["datLoc"] + hdul.fileinfo(i)["datSpan"] for i in range(len(hdul))),
            default=0,
        )
        truncated = [w for w in caught if "truncated" in str(w.message)]
        if truncated or size < expected:
            msg = (
                f"{path}: truncated FITS file ({size} bytes, its headers announce "
                f"{expected} bytes); download or copy it again"
            )
            raise InvalidImageError(msg)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        yield hdul
    finally:
        hdul.close()


def check_instrument(path: str | os.PathLike, header: fits.Header) -> None:
    """Raise :class:`WrongInstrumentError` unless the primary header is WFC3/UVIS."""
    instrume = str(header.get("INSTRUME", "")).strip().upper()
    detector = str(header.get("DETECTOR", "")).strip().upper()
    if instrume != "WFC3" or detector != "UVIS":
        msg = (
            f"{path}: not a WFC3/UVIS image (INSTRUME={instrume or '?'}, "
            f"DETECTOR={detector or '?'})"
        )
        raise WrongInstrumentError(msg)

