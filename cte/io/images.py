"""WFC3/UVIS FLT/FLC images: header records, usability, selection, pixel arrays.

:func:`read_headers` turns files into a table with one row per image and chip (the
successor of the original monitor's FileInfo table): everything the photometry, the
pairing and the analysis need, plus ``usable`` and ``reason``.  An image is skipped,
with its reason logged, when

- its target, proposal, filter or flash level is not in the configuration;
- its proposal and visit are listed in the configuration's ``[[exclude]]``;
- it was taken with charge injection (``CHINJECT`` other than ``NONE``);
- its post-flash failed (``FLASHSTA`` not among ``quality.flash_status_ok``);
- it is binned (``BINAXIS1/2`` other than 1);
- it is a sub-dither: ``POSTARG2`` is neither ~0 (cluster on chip 2) nor ~ the chip
  dither (cluster on chip 1), within ``geometry.postarg2_tolerance``.

Files that cannot be read (not FITS, truncated, not WFC3/UVIS, missing keywords or
extensions) raise :class:`~cte.InvalidImageError` (or its child
:class:`~cte.WrongInstrumentError`) naming the file; :func:`scan_images` collects them
without stopping at the first.

Columns of the records (units in brackets): ``path``, ``image``
(``<rootname>_<flt|flc>``), ``rootname``, ``ctecorr`` (``FLT``/``FLC``), ``proposal``,
``visit`` (two characters of the rootname), ``targname``, ``target`` (configuration
name, "" if unknown), ``filter``, ``exptime`` [s], ``exptime_class``
(``short``/``long``), ``mjd`` [d, EXPSTART], ``flash`` [e-/px, FLASHLVL], ``flashsta``,
``flashcur`` (post-flash current), ``chinject``, ``postarg1``, ``postarg2`` [arcsec],
``binaxis1``, ``binaxis2``,
``field_chip`` (chip holding the cluster: 2 for POSTARG2 ~ 0, 1 for the chip dither,
0 for a sub-dither), ``chip`` (this row's chip, 1 or 2), ``extver`` (SCI extension
version), ``holds_field``, ``naxis1``, ``naxis2`` [px], ``ltv1``, ``ltv2`` [px, cut-out
offsets: chip x = image x - LTV1], ``orientat`` [deg], ``bunit``, ``usable``,
``reason``.

Where the keywords are read: WFC3 writes the per-chip keywords (``CCDCHIP``,
``BINAXIS1/2``, ``LTV1/2``, ``ORIENTAT``, ``BUNIT``) in each chip's SCI header, not
the primary; they are read there, falling back to the primary header (then to their
default) when a SCI header lacks them.  Exposure keywords (``ROOTNAME``, ``PROPOSID``,
``TARGNAME``, ``FILTER``, ``EXPTIME``, ``EXPSTART``, ``FLASHLVL``, ``FLASHSTA``,
``FLASHCUR``, ``CHINJECT``, ``POSTARG1/2``) are read from the primary header.  Extensions
other than SCI/ERR/DQ (``HDRLET``, ``WCSCORR``, ``WCSDVARR``, ``D2IMARR``) are ignored,
except that :func:`read_chip` builds the distortion WCS from them as astropy does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS

from cte.config import Config, load_config
from cte.exceptions import InvalidImageError
from cte.io._fitsio import check_instrument, open_checked
from stores.common.validate import card_value, instance_of, subset_of

__all__ = [
    "ChipImage",
    "ImageScan",
    "ImageSelection",
    "find_images",
    "read_chip",
    "read_header",
    "read_headers",
    "scan_images",
    "select_images",
]

logger = logging.getLogger(__name__)

_SUFFIXES = {"_flt.fits": "FLT", "_flc.fits": "FLC", "_flt.fits.gz": "FLT", "_flc.fits.gz": "FLC"}
_REQUIRED = ("ROOTNAME", "PROPOSID", "TARGNAME", "FILTER", "EXPTIME", "EXPSTART",
             "POSTARG1", "POSTARG2")


def find_images(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """FLT/FLC files: the given files, and ``*_flt.fits``/``*_flc.fits`` under directories.

    Directories are searched recursively (any layout).  Returns sorted, unique paths.

    Parameters
    ----------
    paths_or_dir : path-like or iterable of path-like
        Files and directories (searched recursively).

    Raises
    ------
    FileNotFoundError
        A given path does not exist.
    """
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else paths_or_dir
    found: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            for suffix in _SUFFIXES:
                found.update(p for p in path.rglob(f"*{suffix}") if p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            msg = f"{path}: no such file or directory"
            raise FileNotFoundError(msg)
    return sorted(found)


def _ctecorr(path: Path, header: fits.Header) -> str:
    for name in (path.name, str(header.get("FILENAME", ""))):
        for suffix, kind in _SUFFIXES.items():
            if name.lower().endswith(suffix):
                return kind
    msg = f"{path}: cannot tell FLT from FLC (file name does not end in _flt/_flc.fits)"
    raise InvalidImageError(msg)


def _field_chip(postarg2: float, config: Config) -> int:
    tol = config.postarg2_tolerance
    if abs(postarg2) <= tol:
        return 2
    if abs(postarg2 - config.chip_dither_postarg2) <= tol:
        return 1
    return 0


def read_header(path: str | os.PathLike, *, config: Config | None = None) -> list[dict]:
    """Header records of one file: one dict per chip (see the module docstring).

    Parameters
    ----------
    path : path-like
        An FLT/FLC file.
    config : Config
        The configuration (targets, exclusions, quality rules).

    Raises
    ------
    InvalidImageError
        Not FITS, truncated, missing keywords or extensions (message names the file).
    WrongInstrumentError
        Not a WFC3/UVIS image.
    """
    config = load_config() if config is None else config
    path = Path(path)
    with open_checked(path) as hdul:
        primary = hdul[0].header
        check_instrument(path, primary)
        missing = [k for k in _REQUIRED if k not in primary]
        if missing:
            msg = f"{path}: primary header lacks required keyword(s) {missing}"
            raise InvalidImageError(msg)
        ctecorr = _ctecorr(path, primary)
        rootname = str(primary["ROOTNAME"]).strip().lower()
        if len(rootname) < 6:
            msg = f"{path}: ROOTNAME {rootname!r} is too short to hold a visit"
            raise InvalidImageError(msg)
        def number(key, convert, default=None):
            value = primary.get(key, default)
            try:
                return convert(value)
            except (TypeError, ValueError) as exc:
                msg = f"{path}: primary header keyword {key}={value!r} is not a valid number"
                raise InvalidImageError(msg) from exc

        try:
            base = {
                "path": str(path),
                "image": f"{rootname}_{ctecorr.lower()}",
                "rootname": rootname,
                "ctecorr": ctecorr,
                "proposal": number("PROPOSID", _strict_int),
                "visit": rootname[4:6],
                "targname": str(primary["TARGNAME"]).strip(),
                "filter": str(primary["FILTER"]).strip().upper(),
                "exptime": number("EXPTIME", _finite),
                "mjd": number("EXPSTART", _finite),
                "flash": number("FLASHLVL", _finite, 0.0),
                "flashsta": str(primary.get("FLASHSTA", "")).strip().upper(),
                "flashcur": str(primary.get("FLASHCUR", "")).strip().upper(),
                "chinject": str(primary.get("CHINJECT", "NONE")).strip().upper(),
                "postarg1": number("POSTARG1", _finite),
                "postarg2": number("POSTARG2", _finite),
            }
        except InvalidImageError:
            raise
        except (TypeError, ValueError) as exc:
            msg = f"{path}: malformed primary header value ({exc})"
            raise InvalidImageError(msg) from exc
        base["target"] = config.target_for(base["targname"]) or ""
        base["exptime_class"] = config.exptime_class(base["exptime"])
        base["field_chip"] = _field_chip(base["postarg2"], config)
        for index, h in enumerate(hdul[1:], start=1):
            ver = h.header.get("EXTVER", 1)
            if h.name in ("SCI", "ERR", "DQ") and (isinstance(ver, bool)
                                                   or not isinstance(ver, int)):
                msg = (f"{path}: extension {index} ({h.name}) header keyword EXTVER={ver!r} "
                       "is not an integer")
                raise InvalidImageError(msg)
        extensions = {(h.name, h.ver): h for h in hdul[1:] if h.name in ("SCI", "ERR", "DQ")}
        rows = []
        for (name, extver), hdu in sorted(extensions.items()):
            if name != "SCI":
                continue
            h = hdu.header
            for other in ("ERR", "DQ"):
                if (other, extver) not in extensions:
                    msg = f"{path}: SCI,{extver} has no matching {other},{extver} extension"
                    raise InvalidImageError(msg)
            if h.get("NAXIS", 0) != 2:
                msg = f"{path}: SCI,{extver} is not a 2-D image (NAXIS={h.get('NAXIS')})"
                raise InvalidImageError(msg)

            def chip_value(key, convert, default, h=h, extver=extver):
                return _chip_keyword(path, f"SCI,{extver}", h, primary, key, convert, default)

            chip = chip_value("CCDCHIP", _strict_int, None)
            if chip not in (1, 2):
                msg = f"{path}: SCI,{extver} lacks a CCDCHIP of 1 or 2 (got {chip!r})"
                raise InvalidImageError(msg)
            rows.append({
                **base,
                "binaxis1": chip_value("BINAXIS1", _strict_int, 1),
                "binaxis2": chip_value("BINAXIS2", _strict_int, 1),
                "chip": chip,
                "extver": int(extver),
                "holds_field": chip == base["field_chip"],
                "naxis1": int(h["NAXIS1"]),
                "naxis2": int(h["NAXIS2"]),
                "ltv1": chip_value("LTV1", _finite, 0.0),
                "ltv2": chip_value("LTV2", _finite, 0.0),
                "orientat": chip_value("ORIENTAT", float, np.nan),
                "bunit": chip_value("BUNIT", lambda v: str(v).strip().upper(), ""),
            })
        if not rows:
            msg = f"{path}: no SCI extension"
            raise InvalidImageError(msg)
    for row in rows:
        row["reason"] = _skip_reason(row, rows, config)
        row["usable"] = not row["reason"]
    return rows


def _strict_int(value) -> int:
    """An integer header value (int, integral float or digit string), else TypeError or
    ValueError (the callers name the file and keyword)."""
    return card_value(value, "header value", int)


def _finite(value) -> float:
    """A finite float header value (number or numeric string), else TypeError or
    ValueError (the callers name the file and keyword)."""
    return card_value(value, "header value", float)


def _chip_keyword(path, where: str, sci: fits.Header, primary: fits.Header, key: str,
                  convert, default):
    """A per-chip keyword: the SCI header's, else the primary's, else *default*."""
    if key in sci:
        value, source = sci[key], where
    elif key in primary:
        value, source = primary[key], "primary"
    else:
        return default
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        msg = f"{path}: {source} header keyword {key}={value!r} is not valid"
        raise InvalidImageError(msg) from exc


def _skip_reason(row: dict, rows: list[dict], config: Config) -> str:
    """Why an image is not used ("" when it is usable); checks in a fixed order."""
    if not row["target"]:
        return f"target {row['targname']!r} not in the configuration"
    if row["proposal"] not in config.programs:
        return f"proposal {row['proposal']} not in the configuration's programs"
    exclusion = config.exclusion_for(row["proposal"], row["visit"])
    if exclusion is not None:
        return exclusion.reason
    if config.exclude_charge_injection and row["chinject"] not in ("NONE", ""):
        return f"charge injection (CHINJECT={row['chinject']})"
    if row["flashsta"] not in config.flash_status_ok:
        return f"post-flash failed (FLASHSTA={row['flashsta']})"
    if config.exclude_binned and (row["binaxis1"] != 1 or row["binaxis2"] != 1):
        return f"binned (BINAXIS1={row['binaxis1']}, BINAXIS2={row['binaxis2']})"
    if row["filter"] not in config.filters:
        return f"filter {row['filter']} not in the configuration"
    flash = row["flash"]
    if not float(flash).is_integer() or int(flash) not in config.flash_levels:
        return f"flash level {flash:g} e-/px not in the configuration"
    if row["field_chip"] == 0:
        return f"sub-dither (POSTARG2={row['postarg2']:g})"
    field = [r for r in rows if r["chip"] == row["field_chip"]]
    if not field:
        return f"chip {row['field_chip']} holding the field is not in the file"
    if field[0]["bunit"] not in ("ELECTRONS", ""):
        return f"SCI units are {field[0]['bunit']}, not ELECTRONS"
    return ""


_COLUMNS = {
    "path": str, "image": str, "rootname": str, "ctecorr": str, "proposal": np.int64,
    "visit": str, "targname": str, "target": str, "filter": str, "exptime": np.float64,
    "exptime_class": str, "mjd": np.float64, "flash": np.float64, "flashsta": str,
    "flashcur": str, "chinject": str, "postarg1": np.float64, "postarg2": np.float64,
    "binaxis1": np.int64, "binaxis2": np.int64, "field_chip": np.int8, "chip": np.int8,
    "extver": np.int64,
    "holds_field": bool, "naxis1": np.int64, "naxis2": np.int64, "ltv1": np.float64,
    "ltv2": np.float64, "orientat": np.float64, "bunit": str, "usable": bool, "reason": str,
}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(_COLUMNS))
    return frame.astype({k: (object if v is str else v) for k, v in _COLUMNS.items()})


@dataclass(frozen=True)
class ImageScan:
    """Result of :func:`scan_images`.

    Parameters
    ----------
    records : pandas.DataFrame
        One row per image and chip of every readable file (usable or not).
    unreadable : pandas.DataFrame
        One row per file that could not be read: ``path``, ``error`` (exception class
        name), ``reason`` (its message).
    """

    records: pd.DataFrame
    unreadable: pd.DataFrame

    @property
    def skipped(self) -> pd.DataFrame:
        """Readable images not used, one row per image: ``path``, ``image``, ``reason``."""
        rec = self.records
        rows = rec[~rec["usable"]].drop_duplicates("image")
        return rows[["path", "image", "reason"]].reset_index(drop=True)


def scan_images(
    paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike], *, config: Config | None = None
) -> ImageScan:
    """Read the headers of all files, collecting unreadable files instead of stopping.

    Every skipped image is logged at INFO level with its reason, every unreadable file
    at WARNING level with its error.

    Parameters
    ----------
    paths_or_dir : path-like or iterable of path-like
        Files and directories (searched recursively).
    config : Config, optional
        Default: :func:`cte.load_config`.
    """
    config = load_config() if config is None else config
    rows, bad = [], []
    for path in find_images(paths_or_dir):  # loop over files
        try:
            rows.extend(read_header(path, config=config))
        except InvalidImageError as exc:
            logger.warning("unreadable image skipped: %s", exc)
            bad.append({"path": str(path), "error": type(exc).__name__, "reason": str(exc)})
    records = _frame(rows)
    if len(records) and records["image"].duplicated().any():
        dup = records.drop_duplicates(["path"])
        dup = dup[dup["image"].duplicated(keep=False)]
        if len(dup):
            msg = f"the same image occurs in several files: {sorted(dup['path'])}"
            raise InvalidImageError(msg)
    scan = ImageScan(records=records, unreadable=pd.DataFrame(bad, columns=["path", "error",
                                                                           "reason"]))
    for row in scan.skipped.itertuples():
        logger.info("skipping %s (%s): %s", row.image, row.path, row.reason)
    return scan


def read_headers(
    paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike], *, config: Config | None = None
) -> pd.DataFrame:
    """Header records, one row per image and chip (see the module docstring).

    Unreadable files are logged and listed in ``records.attrs["unreadable"]`` as
    ``{path: message}``; use :func:`scan_images` for them as a table.

    Parameters
    ----------
    paths_or_dir : path-like or iterable of path-like
        Files and directories (searched recursively).
    config : Config, optional
        Default: :func:`cte.load_config`.
    """
    scan = scan_images(paths_or_dir, config=config)
    records = scan.records
    records.attrs["unreadable"] = dict(zip(scan.unreadable["path"], scan.unreadable["reason"],
                                           strict=True))
    return records


def _as_tuple(name: str, value, convert) -> tuple | None:
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple, set, np.ndarray, pd.Index)) else [value]
    try:
        out = tuple(convert(v) for v in values)
    except (TypeError, ValueError) as exc:
        msg = f"{name} has an invalid entry: {exc}"
        raise ValueError(msg) from exc
    if not out:
        msg = f"{name} must not be empty (pass None for no selection)"
        raise ValueError(msg)
    return out


#: selection field -> (conversion of each entry, image column it selects on)
_SELECTION_FIELDS = {
    "visits": (lambda v: str(v).lower().zfill(2), "visit"),
    "targets": (str, "target"),
    "filters": (lambda v: str(v).upper(), "filter"),
    "flashes": (int, "flash"),
    "ctecorr": (lambda v: str(v).upper(), "ctecorr"),
}


@dataclass(frozen=True)
class ImageSelection:
    """Which images to use, normalised and type-checked once (frozen).

    The options of :func:`select_images`, :func:`cte.measure_photometry` and
    :func:`cte.run` (and of the ``cte`` selection flags).

    Parameters
    ----------
    proposals : "all", "last", int or sequence of int
        Proposal IDs; ``"all"`` every configured one, ``"last"`` the newest configured
        one present among the usable images.
    visits : tuple of str, optional
        Two-character visits, e.g. 05 (5 is taken as 05), usually with a single proposal.
    targets : tuple of str, optional
        Configured target names, e.g. ngc104 ngc6791.
    filters : tuple of str, optional
        Filters, e.g. F502N (upper-cased).
    flashes : tuple of int, optional
        Post-flash levels in e-/pixel, e.g. 0 12.
    ctecorr : tuple of str, optional
        FLT and/or FLC images (upper-cased).

    Raises
    ------
    ValueError
        An entry cannot be converted (``"proposals has an invalid entry: ..."``) or a
        sequence is empty (pass None for no selection).
    """

    proposals: str | int | tuple[int, ...] = "all"
    visits: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    filters: tuple[str, ...] | None = None
    flashes: tuple[int, ...] | None = None
    ctecorr: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        words = self.proposals
        if isinstance(words, str) and words.lower() in ("all", "last"):
            object.__setattr__(self, "proposals", words.lower())
        else:
            object.__setattr__(self, "proposals", _as_tuple("proposals", words, int))
        for name, (convert, _) in _SELECTION_FIELDS.items():
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name), convert))

    def check(self, config: Config) -> None:
        """Raise :class:`ValueError` if a target, filter, flash or version is unknown.

        Parameters
        ----------
        config : Config
            The configuration that declares them (the message names the parameter).
        """
        allowed = {"targets": config.targets, "filters": config.filters,
                   "flashes": config.flash_levels, "ctecorr": ("FLT", "FLC")}
        for name, values in allowed.items():
            chosen = getattr(self, name)
            if chosen is not None:
                subset_of(chosen, name, set(values))


def select_images(
    records: pd.DataFrame,
    *,
    selection: ImageSelection | None = None,
    config: Config | None = None,
) -> pd.DataFrame:
    """Usable images matching a selection: one row per image (its field chip).

    Parameters
    ----------
    records : pandas.DataFrame
        From :func:`read_headers`.
    selection : ImageSelection, optional
        Default: every usable image.
    config : Config, optional
        Default: :func:`cte.load_config`.

    Returns
    -------
    pandas.DataFrame
        The selected records, sorted by ``mjd`` and ``image``.

    Raises
    ------
    ValueError
        A selection names a target, filter, flash level or version the configuration
        does not know (the message names the parameter).
    """
    selection = ImageSelection() if selection is None else instance_of(
        selection, "selection", ImageSelection, what="an ImageSelection")
    config = load_config() if config is None else config
    selection.check(config)
    usable = records[records["usable"] & records["holds_field"]]
    keep = np.ones(len(usable), dtype=bool)
    if selection.proposals == "last":
        present = [p for p in config.programs if p in set(usable["proposal"])]
        keep &= usable["proposal"].to_numpy() == (present[-1] if present else -1)
        logger.info("proposals='last': proposal %s", present[-1] if present else "none present")
    elif selection.proposals != "all":
        keep &= usable["proposal"].isin(selection.proposals).to_numpy()
    for name, (_, column) in _SELECTION_FIELDS.items():
        chosen = getattr(selection, name)
        if chosen is not None:
            keep &= usable[column].isin(chosen).to_numpy()
    return usable[keep].sort_values(["mjd", "image"]).reset_index(drop=True)


# -- pixels ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipImage:
    """Pixels and geometry of one chip of one image.

    Parameters
    ----------
    path : str
    chip : int
    sci, err : ndarray of float32
        Science and 1-sigma error arrays, e-.
    dq : ndarray of int32
        Data-quality bits.
    wcs : astropy.wcs.WCS
        The header WCS (image pixel frame).
    ltv : (float, float)
        Cut-out offsets: chip ``x = image x - ltv[0]``, ``y = image y - ltv[1]``.
    """

    path: str
    chip: int
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    wcs: WCS
    ltv: tuple[float, float]


def read_chip(path: str | os.PathLike, chip: int) -> ChipImage:
    """Read one chip's SCI, ERR, DQ and WCS.

    Safe to call from worker threads (it does not touch the warnings filters); the
    file is expected to have passed :func:`read_header`.

    Parameters
    ----------
    path : path-like
        An FLT/FLC file.
    chip : int
        1 or 2.

    Raises
    ------
    InvalidImageError
        The chip is missing, arrays disagree in shape, or the data are unreadable.
    """
    path = str(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            sci_hdu = next((h for h in hdul[1:] if h.name == "SCI"
                            and int(h.header.get("CCDCHIP", 0)) == chip), None)
            if sci_hdu is None:
                msg = f"{path}: no SCI extension for chip {chip}"
                raise InvalidImageError(msg)
            extver = sci_hdu.ver
            sci = np.asarray(sci_hdu.data, dtype=np.float32)
            err = np.asarray(hdul["ERR", extver].data, dtype=np.float32)
            dq = np.asarray(hdul["DQ", extver].data, dtype=np.int32)
            header = sci_hdu.header
            wcs = WCS(header, fobj=hdul)
            ltv = (float(header.get("LTV1", 0.0)), float(header.get("LTV2", 0.0)))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidImageError):
            raise
        msg = f"{path}: cannot read chip {chip} ({type(exc).__name__}: {exc})"
        raise InvalidImageError(msg) from exc
    if sci.ndim != 2 or err.shape != sci.shape or dq.shape != sci.shape:
        msg = (f"{path}: chip {chip} arrays disagree in shape (SCI {sci.shape}, "
               f"ERR {err.shape}, DQ {dq.shape})")
        raise InvalidImageError(msg)
    return ChipImage(path=path, chip=chip, sci=sci, err=err, dq=dq, wcs=wcs, ltv=ltv)
