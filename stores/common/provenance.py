"""Provenance: what every product records about how it was made, under one set of keys.

One record, built by :func:`provenance`, with these keys (all optional but the first three):

============== ====================================================================
key            value
============== ====================================================================
``software``   ``"stiscube <version>"`` (the distribution that made the product)
``software_versions``  ``{"stiscube": ..., "python": ..., "numpy": ..., ...}``
``created``    creation time, ISO 8601 UTC, ``"YYYY-MM-DDThh:mm:ssZ"``
``inputs``     list of input files/URLs (str)
``options``    the options the product was made with (JSON-able dict)
``cube_version``  version of the pixel cube read (int or str)
``checksums``  ``{slice label (str): SHA-256 hex}`` of the cube slices read
``cubesum``    SHA-256 hex over ``checksums`` joined in label order (:func:`cube_checksum`)
============== ====================================================================

plus any extra keys given.  The record goes where the product goes:

- JSON files and Python metadata: the dict itself;
- xarray/netCDF attributes: :func:`to_attrs` (nested values as JSON strings; netCDF has
  no dict attributes) and back with :func:`from_attrs`;
- FITS headers: :func:`to_header` writes :func:`fits_cards` (``DATE``, ``SOFTWARE``,
  ``CUBEVER``, ``CUBESUM``, set with :func:`set_card`, which fits comments into the card)
  and :func:`history_lines` (``HISTORY`` text for the rest, in cards of
  :func:`history_cards`); :func:`from_header` reads them back.

Examples
--------
>>> prov = provenance(inputs=["a.fits"], options={"sigma": 3.0}, libraries=())
>>> sorted(prov)
['created', 'inputs', 'options', 'software', 'software_versions']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from stores._version import __version__

__all__ = [
    "DEFAULT_LIBRARIES",
    "KEYS",
    "cube_checksum",
    "fits_cards",
    "from_attrs",
    "from_header",
    "history_cards",
    "history_lines",
    "now",
    "provenance",
    "set_card",
    "slice_checksums",
    "slice_digest",
    "software",
    "to_attrs",
    "to_header",
    "versions",
]

#: the libraries whose versions :func:`versions` records by default
DEFAULT_LIBRARIES: tuple[str, ...] = ("numpy", "xarray", "astropy")

#: the standard keys of a provenance record, in the order they are written
KEYS: tuple[str, ...] = (
    "software",
    "software_versions",
    "created",
    "inputs",
    "options",
    "cube_version",
    "checksums",
    "cubesum",
)

#: prefix of the HISTORY lines written by :func:`history_lines`
_HISTORY_PREFIX = "provenance "
#: characters of a HISTORY card's text (80 minus the 8-character keyword field)
_HISTORY_WIDTH = 72
#: ends every HISTORY card of a provenance line but its last (:func:`history_cards`)
_CONTINUED = "\\"


def software() -> str:
    """``"stiscube <version>"``: the distribution that made a product."""
    return f"stiscube {__version__}"


def now() -> str:
    """The current UTC time as ISO 8601, ``"YYYY-MM-DDThh:mm:ssZ"`` (seconds)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def versions(libraries: Iterable[str] = DEFAULT_LIBRARIES) -> dict[str, str]:
    """Versions of stiscube, Python and *libraries* (module names).

    Parameters
    ----------
    libraries : iterable of str
        Module names; one that is not installed is recorded as ``"not installed"``, and
        one is imported only when asked for (e.g. ``"matplotlib"`` for reports).
    """
    out = {"stiscube": __version__, "python": platform.python_version()}
    for name in libraries:
        try:
            module = importlib.import_module(name)
        except ImportError:
            out[name] = "not installed"
        else:
            out[name] = str(getattr(module, "__version__", "unknown"))
    return out


def _label_order(labels: Iterable[str]) -> list[str]:
    labels = list(labels)
    if all(str(k).lstrip("-").isdigit() for k in labels):
        return sorted(labels, key=lambda k: int(k))
    return sorted(labels, key=str)


def cube_checksum(checksums: Mapping[Any, str]) -> str:
    """SHA-256 hex of the slice checksums joined (no separator) in label order.

    Labels that all look like integers are ordered numerically (``2`` before ``10``),
    others as strings.  This is the ``CUBESUM`` of the DQ reference files.

    Parameters
    ----------
    checksums : mapping
        Slice label -> SHA-256 hex (:func:`slice_checksums`).
    """
    sums = {str(k): str(v) for k, v in checksums.items()}
    joined = "".join(sums[k] for k in _label_order(sums))
    return hashlib.sha256(joined.encode()).hexdigest()


def slice_digest(info: Mapping[str, Any]) -> str:
    """SHA-256 hex of the JSON (sorted keys) of a slice's per-variable checksums, from its
    :meth:`stores.CubeStore.slice_info`: it changes when any variable of the slice changes.

    Parameters
    ----------
    info : mapping
        ``store.slice_info(label)``.
    """
    return hashlib.sha256(json.dumps(info["sha256"], sort_keys=True).encode()).hexdigest()


def slice_checksums(store: Any, labels: Iterable[Any]) -> dict[str, str]:
    """``{str(label): sha256}`` of slices of a :class:`stores.CubeStore`
    (:func:`slice_digest` of each slice's ``store.slice_info(label)``).

    Parameters
    ----------
    store : stores.CubeStore
        The cube.
    labels : iterable
        The slices.
    """
    return {str(label): slice_digest(store.slice_info(label)) for label in labels}


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, paths to str, other objects to str."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return _jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return _jsonable(tolist())
    to_dict = getattr(value, "to_dict", None)  # an options dataclass with to_dict()
    if callable(to_dict):
        return _jsonable(to_dict())
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return str(value)


def provenance(
    *,
    inputs: Iterable[Any] | None = None,
    options: Mapping[str, Any] | Any | None = None,
    cube_version: int | str | None = None,
    checksums: Mapping[Any, str] | None = None,
    libraries: Iterable[str] = DEFAULT_LIBRARIES,
    created: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record of a product, as a JSON-able dict.

    Parameters
    ----------
    inputs : iterable of str or path-like, optional
        Input files or URLs.
    options : mapping or dataclass, optional
        The options used (a dataclass is converted with its ``to_dict()`` or
        :func:`dataclasses.asdict`).
    cube_version : int or str, optional
        The version of the cube read.
    checksums : mapping, optional
        Slice label -> SHA-256 hex (e.g. from :func:`slice_checksums`); ``cubesum`` is
        added from them.
    libraries : iterable of str
        Module names whose versions go to ``software_versions`` besides stiscube and
        Python (default numpy, xarray, astropy).
    created : str, optional
        Creation time; default :func:`now`.
    **extra
        Further keys, kept as given (converted to JSON types); they must not collide with
        :data:`KEYS`.

    Returns
    -------
    dict
        Keys in :data:`KEYS` order, then *extra*; absent optional keys are left out.

    Raises
    ------
    ValueError
        An *extra* key is one of :data:`KEYS`.
    """
    clash = sorted(set(extra) & set(KEYS))
    if clash:
        msg = f"provenance keys {clash} have their own parameters"
        raise ValueError(msg)
    prov: dict[str, Any] = {
        "software": software(),
        "software_versions": versions(libraries),
        "created": created if created is not None else now(),
    }
    if inputs is not None:
        prov["inputs"] = [os.fspath(i) if isinstance(i, os.PathLike) else str(i) for i in inputs]
    if options is not None:
        prov["options"] = _jsonable(options)
    if cube_version is not None:
        prov["cube_version"] = _jsonable(cube_version)
    if checksums is not None:
        sums = {str(k): str(v) for k, v in checksums.items()}
        prov["checksums"] = {k: sums[k] for k in _label_order(sums)}
        prov["cubesum"] = cube_checksum(sums)
    prov.update({k: _jsonable(v) for k, v in extra.items()})
    return prov


def to_attrs(prov: Mapping[str, Any]) -> dict[str, Any]:
    """The record as netCDF-safe attributes: str, int and float kept, ``bool`` as int,
    dicts and lists as JSON strings, ``None`` left out.

    Parameters
    ----------
    prov : mapping
        A record of :func:`provenance`.
    """
    out: dict[str, Any] = {}
    for key, value in prov.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, str | int | float):
            out[key] = value
        else:
            out[key] = json.dumps(_jsonable(value), sort_keys=False)
    return out


def from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance keys of *attrs* (written by :func:`to_attrs`), JSON strings decoded.

    Only the keys of :data:`KEYS` are returned; the others are not provenance.

    Parameters
    ----------
    attrs : mapping
        A Dataset's or variable's attributes.
    """
    out: dict[str, Any] = {}
    for key in KEYS:
        if key not in attrs:
            continue
        value = attrs[key]
        if key in ("software_versions", "inputs", "options", "checksums") and isinstance(
            value, str
        ):
            value = json.loads(value)
        out[key] = value
    return out


def _fits_date(created: str) -> str:
    """FITS ``DATE`` (``YYYY-MM-DDThh:mm:ss``, UTC implied): the ISO time without ``Z``."""
    return created[:-1] if created.endswith("Z") else created


def fits_cards(prov: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """FITS header cards ``(keyword, value, comment)`` of the short provenance keys.

    ``DATE`` (from ``created``, FITS format without the ``Z``), ``SOFTWARE``, and when
    present ``CUBEVER`` (``cube_version``) and ``CUBESUM`` (``cubesum``).  The longer keys
    go to :func:`history_lines`.

    Parameters
    ----------
    prov : mapping
        A record of :func:`provenance`.
    """
    cards: list[tuple[str, Any, str]] = [
        ("DATE", _fits_date(str(prov["created"])), "file creation date (UTC)"),
        ("SOFTWARE", str(prov["software"]), "software that made this file"),
    ]
    if "cube_version" in prov:
        cards.append(("CUBEVER", prov["cube_version"], "pixel cube version read"))
    if "cubesum" in prov:
        cards.append(("CUBESUM", str(prov["cubesum"]), "sha256 over the slices' checksums"))
    return cards


def history_lines(prov: Mapping[str, Any]) -> list[str]:
    """``HISTORY`` text of the keys :func:`fits_cards` does not hold.

    One line per item, ``"provenance <key> <json>"``: ``software_versions`` as one line,
    one line per input, per option and per slice checksum, one per extra key.  In a FITS
    header a line longer than a card spans several ``HISTORY`` cards
    (:func:`history_cards`); :func:`from_header` joins them back.

    Parameters
    ----------
    prov : mapping
        A record of :func:`provenance`.
    """
    short = {"created", "software", "cube_version", "cubesum"}
    lines = []
    for key, value in prov.items():
        if key in short:
            continue
        if key == "inputs":
            lines += [f"{_HISTORY_PREFIX}input {json.dumps(v)}" for v in value]
        elif key in ("options", "checksums") and isinstance(value, Mapping):
            one = "option" if key == "options" else "checksum"
            lines += [f"{_HISTORY_PREFIX}{one} {json.dumps({k: v})}" for k, v in value.items()]
        else:
            lines.append(f"{_HISTORY_PREFIX}{key} {json.dumps(_jsonable(value))}")
    return lines


def set_card(header: Any, key: str, value: Any, comment: str = "") -> None:
    """Set one card of an :class:`astropy.io.fits.Header`, shortening *comment* to fit.

    A string value too long for one card is written with ``CONTINUE`` cards and no
    comment; otherwise the comment is cut to the room left in the 80-character card (so
    astropy never warns that it truncated one).

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header, changed in place.
    key : str
        The keyword.
    value : object
        Its value.
    comment : str
        Its comment.
    """
    from astropy.io import fits

    if isinstance(value, str) and len(value) > 60:  # long string: CONTINUE cards
        header[key] = value
        return
    room = 80 - len(fits.Card(key, value).image.rstrip()) - 3
    header[key] = (value, comment[: max(room, 0)])


def history_cards(prov: Mapping[str, Any]) -> list[str]:
    """The ``HISTORY`` card texts of :func:`history_lines`, each at most 72 characters.

    A line longer than a card is cut into pieces of 71 characters, each but the last
    followed by a backslash (``\\``), so that :func:`from_header` joins exactly the pieces
    of one line.  (astropy's own splitting of a long ``HISTORY`` value cannot be undone
    reliably: it strips a piece's trailing space, and a line of exactly 72 characters
    looks like the first piece of a longer one.)  A line never ends with a backslash: it
    ends with a JSON value.

    Parameters
    ----------
    prov : mapping
        A record of :func:`provenance`.
    """
    width = _HISTORY_WIDTH - len(_CONTINUED)
    cards = []
    for line in history_lines(prov):
        pieces = [line[i:i + width] for i in range(0, len(line), width)] or [""]
        cards += [piece + _CONTINUED for piece in pieces[:-1]] + [pieces[-1]]
    return cards


def to_header(header: Any, prov: Mapping[str, Any]) -> None:
    """Write *prov* into an :class:`astropy.io.fits.Header`: the :func:`fits_cards` (with
    :func:`set_card`) and the :func:`history_cards` as ``HISTORY``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header, changed in place.
    prov : mapping
        A record of :func:`provenance`.
    """
    for key, value, comment in fits_cards(prov):
        set_card(header, key, value, comment)
    for card in history_cards(prov):
        header.add_history(card)


def _history_records(header: Any) -> list[str]:
    """The provenance ``HISTORY`` lines of *header*, their pieces joined back.

    A record starts at a card beginning with ``"provenance "`` and goes on while its
    cards end with the continuation backslash (:func:`history_cards`).
    """
    lines: list[str] = []
    more = False  # the previous card was a piece of a provenance line with more to come
    history = header["HISTORY"] if "HISTORY" in header else []
    for text in history:
        text = str(text)
        if more:
            lines[-1] += text
        elif text.startswith(_HISTORY_PREFIX):
            lines.append(text)
        else:
            continue
        more = text.endswith(_CONTINUED)
        if more:
            lines[-1] = lines[-1][: -len(_CONTINUED)]
    return lines


def from_header(header: Any) -> dict[str, Any]:
    """The provenance record written to a FITS *header* by :func:`fits_cards` and
    :func:`history_lines` (an :class:`astropy.io.fits.Header`).

    ``DATE`` gets its ``Z`` back; values are decoded from JSON.  Raises ``KeyError`` when
    ``DATE`` or ``SOFTWARE`` is missing, and ``ValueError`` naming the key when a
    ``HISTORY`` provenance record is not valid JSON (an edited or truncated header).

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header.
    """
    prov: dict[str, Any] = {"software": str(header["SOFTWARE"])}
    date = str(header["DATE"])
    prov["created"] = date if date.endswith("Z") else date + "Z"
    if "CUBEVER" in header:
        prov["cube_version"] = header["CUBEVER"]
    if "CUBESUM" in header:
        prov["cubesum"] = str(header["CUBESUM"])
    for line in _history_records(header):
        key, _, text = line[len(_HISTORY_PREFIX):].partition(" ")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"HISTORY provenance {key!r} is damaged (not JSON: {exc}): {text[:80]!r}"
            raise ValueError(msg) from None
        if key == "input":
            prov.setdefault("inputs", []).append(value)
        elif key in ("option", "checksum"):
            prov.setdefault("options" if key == "option" else "checksums", {}).update(value)
        else:
            prov[key] = value
    return prov

