"""The photometry store: one Dataset per (target, filter, flash) on a DatasetStore.

Each key ``"<target>/<filter>/flash<N>"`` (e.g. ``"ngc104/F502N/flash12"``) holds one
:class:`xarray.Dataset` with dims ``image``, ``star``, ``aperture`` following the
contract of :mod:`cte.schema`.  :meth:`PhotometryStore.write_images` merges new
one-image Datasets into their keys: an image measured again replaces its previous
photometry, stars and apertures are the union over images (NaN, and the OFF_CHIP flag,
where an image did not measure a star), and the key's file is replaced atomically, so
a reader sees either the old or the new Dataset, never a mixture.  A store-wide lock
(``photometry.lock`` in the store) serialises the read-merge-write of concurrent
writers.  Stored photometry can be re-analysed at any time without redoing it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from cte import flags as F
from cte.exceptions import InvalidPhotometryError
from cte.schema import COORDS, key_for, validate
from stores import DatasetStore
from stores.common.validate import as_float, one_of
from stores.storage.locks import LOCK_TIMEOUT, WriterLock

__all__ = ["PhotometryStore"]

logger = logging.getLogger(__name__)

_LOCK = "photometry.lock"
_IMAGE_COLUMNS = [name for name, (dims, *_rest) in COORDS.items()
                  if dims == ("image",) and name != "image"]


class PhotometryStore:
    """Photometry Datasets keyed by target/filter/flash (see the module docstring).

    Parameters
    ----------
    location : str or path-like
        Directory or fsspec URL of the store (created if absent, with ``mode="a"``).
    mode : {"a", "r"}
        Read-write (default) or read-only.
    lock_timeout : float
        Seconds to wait for another writer's lock before :class:`stores.StoreLockedError`.

    Examples
    --------
    >>> store = PhotometryStore("memory://doc/phot")
    >>> store.keys()
    []
    """

    def __init__(self, location: str | os.PathLike, *, mode: str = "a",
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        mode = one_of(mode, "mode", ("a", "r"))
        self.lock_timeout = as_float(lock_timeout, "lock_timeout", min=0, units="s")
        self._store = DatasetStore(location, mode=mode)

    @property
    def location(self) -> str:
        """URL or absolute path of the store."""
        return self._store.location.url

    def __repr__(self) -> str:
        return f"PhotometryStore({self.location!r}, keys={len(self.keys())})"

    # -- keys ----------------------------------------------------------------------------
    @staticmethod
    def key(target: str, filter: str, flash: float) -> str:
        """The key of a target, filter and flash level (e-/px): ``"ngc104/F502N/flash12"``.

        Parameters
        ----------
        target, filter : str
            Target and filter.
        flash : float
            Post-flash level, e-/pixel.
        """
        return key_for(target, filter, flash)

    def keys(self) -> list[str]:
        """All keys, sorted."""
        return self._store.keys()

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self.keys())

    # -- reading -------------------------------------------------------------------------
    def read(self, key: str | tuple, *, chunks: Mapping | str | None = None) -> xr.Dataset:
        """The Dataset of one key (loaded; lazy with *chunks*).

        Parameters
        ----------
        key : str
            A store key.
        chunks : optional
            Dask chunks, as :func:`xarray.open_zarr` takes them.
        """
        return self._store.read(key, chunks=chunks)

    def read_many(self, keys: Iterable[str | tuple]) -> dict[str, xr.Dataset]:
        """Several keys as ``{key: Dataset}``.

        Parameters
        ----------
        keys : iterable of str
            Store keys.
        """
        return self._store.read_many(keys)

    def read_all(self) -> dict[str, xr.Dataset]:
        """Every key as ``{key: Dataset}``."""
        return self._store.read_all()

    def images(self, key: str | tuple | None = None) -> pd.DataFrame:
        """Table of stored images (one row per image and key) with their coordinates.

        Columns: ``key``, ``image`` and the image coordinates of the contract
        (``rootname``, ``ctecorr``, ``proposal``, ``visit``, ``mjd``, ...), plus
        ``n_stars`` (stars measured with a finite flux at the smallest aperture) and
        ``apertures`` (radii with any finite flux, px).

        Parameters
        ----------
        key : str, optional
            One key (default: every key).
        """
        keys = self.keys() if key is None else ["/".join(_parts(key))]
        frames = []
        for k in keys:  # loop over keys (files), not stars
            ds = self.read(k)
            table = pd.DataFrame({"key": k, "image": ds["image"].values.astype(str)})
            for name in _IMAGE_COLUMNS:
                if name in ds.coords:
                    table[name] = ds[name].values
            finite = np.isfinite(ds["flux"].values)
            table["n_stars"] = finite[:, :, 0].sum(axis=1) if finite.size else 0
            radii = ds["aperture"].values
            table["apertures"] = [tuple(radii[finite[i].any(axis=0)]) for i in range(len(table))]
            frames.append(table)
        if not frames:
            return pd.DataFrame(columns=["key", "image", *_IMAGE_COLUMNS, "n_stars", "apertures"])
        return pd.concat(frames, ignore_index=True)

    # -- writing -------------------------------------------------------------------------
    def write_images(self, datasets: Iterable[xr.Dataset]) -> list[str]:
        """Merge one or more photometry Datasets into their keys, atomically per key.

        Images already stored under the same key are replaced.  Every Dataset is
        validated before anything is written.

        Parameters
        ----------
        datasets : iterable of xarray.Dataset
            One-image photometry Datasets (any keys).

        Returns
        -------
        list of str
            Keys written.

        Raises
        ------
        InvalidPhotometryError
            A Dataset breaks the contract, or one image occurs twice in *datasets*.
        """
        by_key: dict[str, list[xr.Dataset]] = {}
        seen: set[tuple[str, str]] = set()
        for ds in datasets:
            validate(ds, where="photometry to store")
            key = key_for(ds.attrs["target"], ds.attrs["filter"], ds.attrs["flash"])
            for image in ds["image"].values:
                if (key, image) in seen:
                    msg = f"image {image!r} is given twice for key {key!r}"
                    raise InvalidPhotometryError(msg)
                seen.add((key, image))
            by_key.setdefault(key, []).append(ds)
        if not by_key:
            return []
        with WriterLock(self._store.location, _LOCK, timeout=self.lock_timeout,
                        purpose="photometry"):
            for key, parts in sorted(by_key.items()):  # loop over keys (files)
                existing = self.read(key) if key in self._store else None
                merged = _merge(existing, parts)
                validate(merged, where=f"key {key!r}")
                self._store.write(key, merged)
                logger.info("stored %d image(s) under %s (%d images in total)",
                            sum(p.sizes["image"] for p in parts), key, merged.sizes["image"])
        return sorted(by_key)

    def delete_images(self, key: str | tuple, images: Iterable[str]) -> None:
        """Remove images from a key (the key is deleted when none remain).

        Parameters
        ----------
        key : str
            A store key.
        images : sequence of str
            Image ids to remove.
        """
        key = "/".join(_parts(key))
        images = list(images)
        with WriterLock(self._store.location, _LOCK, timeout=self.lock_timeout,
                        purpose="photometry"):
            ds = self.read(key)
            unknown = sorted(set(images) - set(ds["image"].values))
            if unknown:
                msg = f"images {unknown} are not stored under key {key!r}"
                raise KeyError(msg)
            rest = ds.drop_sel(image=images)
            if rest.sizes["image"] == 0:
                self._store.delete(key)
            else:
                self._store.write(key, rest)


def _parts(key: str | tuple) -> tuple[str, ...]:
    return tuple(key.strip("/").split("/")) if isinstance(key, str) else tuple(map(str, key))


def _merge(existing: xr.Dataset | None, new: list[xr.Dataset]) -> xr.Dataset:
    """Existing Dataset with *new* images added or replacing theirs (outer join)."""
    ids = [i for ds in new for i in ds["image"].values]
    parts = []
    if existing is not None:
        kept = existing.drop_sel(image=[i for i in ids if i in existing.indexes["image"]])
        if kept.sizes["image"]:
            parts.append(kept)
    parts.extend(new)
    fill = {name: np.nan for name in ("flux", "flux_masked", "flux_err", "background", "x",
                                      "y", "transfers")}
    fill["flags"] = F.OFF_CHIP
    merged = xr.concat(parts, dim="image", join="outer", fill_value=fill,
                       data_vars="all", coords="different", compat="equals",
                       combine_attrs="override")
    merged["flags"] = merged["flags"].astype(np.int32)
    order = np.lexsort((merged["image"].values.astype(str), merged["mjd"].values))
    merged = merged.isel(image=order).sortby("star").sortby("aperture")
    merged.attrs = dict(new[-1].attrs)
    return merged
