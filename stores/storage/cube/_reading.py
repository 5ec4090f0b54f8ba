"""Reading a cube store: the committed state as xarray objects or numpy windows.

Part of :class:`stores.CubeStore` (a base class of it); every chunk read is verified
against its committed checksum (:class:`stores.storage.cube._slots.Slots`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from stores._exceptions import CorruptStoreError, KeyNotFoundError
from stores.common.validate import subset_of
from stores.storage.cube._log import State
from stores.storage.cube._slots import SlotStack, window_slices
from stores.storage.cube.schema import coord_parts, decode_coord, sha256

__all__: list[str] = []


class Reading:
    """The read methods of :class:`stores.CubeStore`."""

    # -- reading -------------------------------------------------------------------------
    def to_dataset(self, *, lazy: bool = True, labels: Sequence | None = None) -> xr.Dataset:
        """The committed cube as an :class:`xarray.Dataset`, sorted by label.

        Parameters
        ----------
        lazy : bool
            ``True`` (default) returns dask arrays (one chunk per slice); ``False``
            loads the values into memory.
        labels : sequence, optional
            Only these slices (in this order); all by default.

        The result reflects the state committed when it was made: slices committed
        later are not seen, and slices replaced later keep their old values.  Every
        chunk read is verified against its committed checksum.
        """
        manifest = self._manifest
        chosen = self.labels if labels is None else [self._label(x) for x in labels]
        for label in chosen:
            self._require(label)
        variables = {}
        for name, spec in self.schema.variables.items():
            dims = (self.append_dim, *spec.dims)
            source = SlotStack(self._slots, name, chosen, manifest)
            if lazy:
                import dask.array as da

                values = da.from_array(
                    source,
                    chunks=(1, *source.shape[1:]),
                    asarray=True,
                    lock=False,
                    name=f"cubestore-{name}-{source.token}",
                    meta=np.empty((0,) * source.ndim, dtype=source.dtype),
                )
            else:
                values = source[(slice(None),) * source.ndim]
            variables[name] = xr.Variable(dims, values, attrs=dict(spec.attrs))
        ds = xr.Dataset(variables, coords=self._coords_for(chosen, manifest))
        ds.attrs = dict(self.schema.attrs)
        return ds

    def read_arrays(
        self, labels, *, variables: Sequence[str] | None = None, **window: slice | int
    ) -> dict[str, np.ndarray]:
        """Eagerly read a window of one or several slices as plain numpy arrays.

        The fast path behind point and region queries: no xarray objects are built.

        Parameters
        ----------
        labels : label or sequence of labels
            One label (arrays have only the window's dims) or several (arrays gain a
            leading axis along the append dimension, in the order given).
        variables : sequence of str, optional
            Only these variables (default all).
        **window : slice or int
            Per fixed dimension, a slice with step 1 or an index (that dimension is then
            dropped); dimensions not named are read whole.

        Windows are read straight from the chunk objects, bypassing zarr's per-call
        overhead, and every chunk touched is verified against its committed CRC-32C.

        Raises
        ------
        CorruptStoreError
            A chunk touched is damaged, missing or undecodable (the message names the
            variable, the slice label and the file).
        """
        single = not isinstance(labels, (list, tuple, np.ndarray))
        chosen = [labels] if single else list(labels)
        entries = [(self._label(label), self._require(label)) for label in chosen]
        subset_of(window, "window dimensions", self.schema.sizes, non_empty=False)
        names = list(self.schema.variables) if variables is None else list(variables)
        missing = [n for n in names if n not in self.schema.variables]
        if missing:
            msg = f"no variables {missing} in the cube; it holds {list(self.schema.variables)}"
            raise KeyNotFoundError(msg)
        out = {}
        for name in names:
            spec = self.schema.variables[name]
            slices, keep = window_slices(spec.dims, self.schema.sizes, window)
            values = np.stack(
                [self._slots.read(name, key, entry, slices) for key, entry in entries]
            )
            values = values[(slice(None), *keep)]
            out[name] = values[0] if single else values
        return out

    def read_window(self, labels, **window: slice | int) -> xr.Dataset:
        """:meth:`read_arrays` as an :class:`xarray.Dataset` with coordinates and attrs."""
        single = not isinstance(labels, (list, tuple, np.ndarray))
        chosen = [labels] if single else list(labels)
        ds = self.assemble(chosen, self.read_arrays(chosen, **window), **window)
        return ds.isel({self.append_dim: 0}) if single else ds

    def assemble(self, labels: list, arrays: dict, **window: slice | int) -> xr.Dataset:
        """A Dataset like :meth:`read_window`'s from arrays read elsewhere.

        *arrays* maps every variable to values with a leading axis along *labels* and the
        window's shape (as :meth:`read_arrays` returns for a list of labels).
        """
        chosen = list(labels)
        data = {}
        for name, spec in self.schema.variables.items():
            dims = [d for d in spec.dims if not isinstance(window.get(d), (int, np.integer))]
            data[name] = xr.Variable([self.append_dim, *dims], arrays[name], attrs=dict(spec.attrs))
        coords = self._coords_for(chosen, self._manifest)
        for name, spec in self.schema.coords.items():
            dims, _, _ = coord_parts(spec)
            sel = {d: window[d] for d in dims if d in window}
            coords[name] = xr.Variable(*coords[name][:2], attrs=coords[name][2])[
                tuple(sel.get(d, slice(None)) for d in dims)
            ]
        return xr.Dataset(data, coords=coords, attrs=dict(self.schema.attrs))

    def read_slice(self, label, *, lazy: bool = False) -> xr.Dataset:
        """One slice as a Dataset without the append dimension (eager by default)."""
        ds = self.to_dataset(lazy=lazy, labels=[label])
        return ds.isel({self.append_dim: 0})

    def coords(self) -> dict:
        """The coordinates of the committed slices (the labels along the append dimension,
        the per-slice coordinates) and the schema's fixed coordinates, as the
        ``{name: (dims, values[, attrs])}`` mapping :class:`xarray.Dataset` takes."""
        return self._coords_for(self.labels, self._manifest)

    def _coords_for(self, chosen: list, manifest: State) -> dict:
        dim = self.append_dim
        label_dtype = str if self.schema.label_dtype == "str" else np.int64
        coords: dict[Hashable, Any] = {dim: (dim, np.asarray(chosen, dtype=label_dtype))}
        for name, dtype in self.schema.slice_coords.items():
            values = [manifest.slices[label]["coords"][name] for label in chosen]
            coords[name] = (dim, decode_coord(values, dtype))
        for name, spec in self.schema.coords.items():
            dims, values, attrs = coord_parts(spec)
            coords[name] = (dims, np.asarray(values), dict(attrs))
        return coords

    def slice_extras(self, label) -> dict | None:
        """The extras document committed with slice *label* (None if it has none).

        Raises
        ------
        CorruptStoreError
            The document on disk differs from the one committed, or is missing.
        """
        return self._slots.extras(self._label(label), self._require(label))

    def verify(self) -> None:
        """Re-read every committed slice and compare it with its recorded checksums.

        Checks each stored chunk's CRC-32C, each variable's SHA-256 over its values, and
        the extras and checksum files.

        Raises
        ------
        CorruptStoreError
            A slice's stored bytes differ from what was committed.
        """
        for label, entry in sorted(self._manifest.slices.items()):
            for name in self.schema.variables:
                full = [slice(0, n) for n in self.schema.slice_shape(name)]
                values = self._slots.read(name, label, entry, full)
                if sha256(values) != entry["sha256"][name]:
                    msg = (
                        f"{self.location.url}: {self.append_dim} {label!r}, variable {name!r} "
                        "does not match its committed checksum"
                    )
                    raise CorruptStoreError(msg)
            self.slice_extras(label)


