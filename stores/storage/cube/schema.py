"""The schema of a cube store: what one slice holds and how it is stored, and the checks
of the values and coordinates offered for a slice against it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from stores._exceptions import SchemaMismatchError
from stores.common.validate import as_int, as_str, instance_of, one_of, subset_of

__all__ = ["CubeSchema", "VariableSpec"]

_COMPRESSIONS = ("zstd", "blosc", "none")
_LABEL_DTYPES = ("int64", "str")


@dataclass(frozen=True)
class VariableSpec:
    """One data variable of a cube.

    Parameters
    ----------
    dims : tuple of str
        The variable's fixed dimensions (not including the append dimension).
    dtype : str
        NumPy dtype name of the stored values, e.g. ``"float32"``.
    attrs : dict
        Attributes (``units``, ``long_name``, ``description``, ...), JSON-serialisable.
    fill_value : scalar, optional
        Value of never-written elements; NaN for floats and 0 otherwise by default.
    """

    dims: tuple[str, ...]
    dtype: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fill_value: Any = None

    def to_json(self) -> dict:
        """The spec as a JSON-able dict (written in ``cubestore.json``)."""
        return {
            "dims": list(self.dims),
            "dtype": self.dtype,
            "attrs": dict(self.attrs),
            "fill_value": json_scalar(self.resolved_fill_value()),
        }

    def resolved_fill_value(self):
        """The fill value: the one given, else NaN for floats and 0 for other dtypes."""
        if self.fill_value is not None:
            return self.fill_value
        return np.nan if np.dtype(self.dtype).kind == "f" else 0


@dataclass(frozen=True)
class CubeSchema:
    """Layout of a cube: what one slice holds and how it is stored.

    Parameters
    ----------
    append_dim : str
        The dimension the cube grows along (for the pixel cube, ``"anneal"``).
    sizes : dict of str to int
        Sizes of the fixed dimensions, e.g. ``{"row": 1024, "col": 1024}``.
    variables : dict of str to VariableSpec
        The data variables of each slice.
    label_dtype : {"int64", "str"}
        Type of the labels along ``append_dim``.
    slice_coords : dict of str to str
        Per-slice coordinates along ``append_dim`` and their dtype names (for example
        ``{"anneal_start": "datetime64[ns]"}``); given with each appended slice.
    coords : dict
        Static coordinates of the fixed dimensions, ``{name: (dims, values)}`` or
        ``{name: (dims, values, attrs)}``.
    chunks : dict of str to int
        Chunk length per dimension (``append_dim`` included); missing fixed dims are
        not split, and ``append_dim`` defaults to 1.
    shards : dict of str to int, optional
        Shard shape (Zarr v3 sharding); each shard holds several chunks in one object.
    compression : {"zstd", "blosc", "none"}
        Compressor of the chunks.
    compression_level : int
        Level of the compressor.
    attrs : dict
        Global attributes of the cube.
    """

    append_dim: str
    sizes: Mapping[str, int]
    variables: Mapping[str, VariableSpec]
    label_dtype: str = "int64"
    slice_coords: Mapping[str, str] = field(default_factory=dict)
    coords: Mapping[str, tuple] = field(default_factory=dict)
    chunks: Mapping[str, int] = field(default_factory=dict)
    shards: Mapping[str, int] | None = None
    compression: str = "zstd"
    compression_level: int = 3
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate_schema(self)

    # -- derived -------------------------------------------------------------------------
    def chunk_shape(self, name: str) -> tuple[int, ...]:
        """The stored chunk shape of variable *name* (the growing dimension first).

        Parameters
        ----------
        name : str
            A variable of the schema.
        """
        spec = self.variables[name]
        return (
            int(self.chunks.get(self.append_dim, 1)),
            *(int(self.chunks.get(d, self.sizes[d])) for d in spec.dims),
        )

    def shard_shape(self, name: str) -> tuple[int, ...] | None:
        """The shard shape of variable *name*, or None without sharding.

        Parameters
        ----------
        name : str
            A variable of the schema.
        """
        if not self.shards:
            return None
        spec = self.variables[name]
        chunk = self.chunk_shape(name)
        dims = (self.append_dim, *spec.dims)
        return tuple(int(self.shards.get(d, c)) for d, c in zip(dims, chunk, strict=True))

    def slice_shape(self, name: str) -> tuple[int, ...]:
        """The shape of one slice of variable *name*.

        Parameters
        ----------
        name : str
            A variable of the schema.
        """
        return tuple(self.sizes[d] for d in self.variables[name].dims)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_json(self) -> dict:
        """The schema as a JSON-able dict (written once, in ``cubestore.json``)."""
        coords = {}
        for name, spec in self.coords.items():
            dims, values, attrs = coord_parts(spec)
            arr = np.asarray(values)
            coords[name] = {
                "dims": list(dims),
                "dtype": str(arr.dtype) if arr.dtype.kind != "U" else "str",
                "values": _json_values(arr),
                "attrs": dict(attrs),
            }
        return {
            "append_dim": self.append_dim,
            "sizes": {k: int(v) for k, v in self.sizes.items()},
            "variables": {k: v.to_json() for k, v in self.variables.items()},
            "label_dtype": self.label_dtype,
            "slice_coords": dict(self.slice_coords),
            "coords": coords,
            "chunks": {k: int(v) for k, v in self.chunks.items()},
            "shards": None if self.shards is None else {k: int(v) for k, v in self.shards.items()},
            "compression": self.compression,
            "compression_level": int(self.compression_level),
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_json(cls, doc: Mapping) -> CubeSchema:
        """The schema of a :meth:`to_json` document.

        Parameters
        ----------
        doc : mapping
            The document.
        """
        coords = {}
        for name, c in doc.get("coords", {}).items():
            dtype = c["dtype"]
            values = np.asarray(c["values"], dtype=None if dtype == "str" else dtype)
            if dtype == "str":
                values = values.astype(str)
            coords[name] = (tuple(c["dims"]), values, c.get("attrs", {}))
        return cls(
            append_dim=doc["append_dim"],
            sizes=doc["sizes"],
            variables={
                k: VariableSpec(
                    dims=tuple(v["dims"]),
                    dtype=v["dtype"],
                    attrs=v.get("attrs", {}),
                    fill_value=v.get("fill_value"),
                )
                for k, v in doc["variables"].items()
            },
            label_dtype=doc.get("label_dtype", "int64"),
            slice_coords=doc.get("slice_coords", {}),
            coords=coords,
            chunks=doc.get("chunks", {}),
            shards=doc.get("shards"),
            compression=doc.get("compression", "zstd"),
            compression_level=doc.get("compression_level", 3),
            attrs=doc.get("attrs", {}),
        )


def coord_parts(spec: tuple) -> tuple[tuple[str, ...], Any, Mapping]:
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        msg = f"coords entries must be (dims, values) or (dims, values, attrs), got {spec!r}"
        raise ValueError(msg)
    dims = (spec[0],) if isinstance(spec[0], str) else tuple(spec[0])
    return dims, spec[1], (spec[2] if len(spec) == 3 else {})


def _validate_schema(schema: CubeSchema) -> None:
    as_str(schema.append_dim, "append_dim")
    for dim, size in schema.sizes.items():
        if dim == schema.append_dim:
            msg = f"sizes must not include the append dimension {dim!r} (it grows)"
            raise ValueError(msg)
        as_int(size, f"sizes[{dim!r}]", min=1)
    if not schema.variables:
        msg = "variables must name at least one variable"
        raise ValueError(msg)
    for name, spec in schema.variables.items():
        instance_of(spec, f"variables[{name!r}]", VariableSpec, what="a VariableSpec")
        subset_of(spec.dims, f"variables[{name!r}].dims", schema.sizes, non_empty=False)
        np.dtype(spec.dtype)  # raises TypeError for a bad dtype name
        if np.dtype(spec.dtype).kind not in "biuf":
            msg = f"variables[{name!r}].dtype must be numeric or bool, got {spec.dtype!r}"
            raise ValueError(msg)
    one_of(schema.label_dtype, "label_dtype", _LABEL_DTYPES)
    for name, dtype in schema.slice_coords.items():
        if dtype != "str":
            np.dtype(dtype)
        if name == schema.append_dim or name in schema.variables:
            msg = f"slice_coords name {name!r} clashes with the append dim or a variable"
            raise ValueError(msg)
    for name, spec in schema.coords.items():
        dims, values, _ = coord_parts(spec)
        arr = np.asarray(values)
        expected = tuple(schema.sizes.get(d, -1) for d in dims)
        if arr.shape != expected:
            msg = f"coords[{name!r}] has shape {arr.shape}, expected {expected} for dims {dims}"
            raise ValueError(msg)
    all_dims = {schema.append_dim, *schema.sizes}
    for what, mapping in (("chunks", schema.chunks), ("shards", schema.shards or {})):
        subset_of(mapping, f"{what} dimensions", all_dims, non_empty=False)
        for dim, n in mapping.items():
            as_int(n, f"{what}[{dim!r}]", min=1)
    for what, mapping in (("chunks", schema.chunks), ("shards", schema.shards or {})):
        if int(mapping.get(schema.append_dim, 1)) != 1:
            msg = (
                f"{what}[{schema.append_dim!r}] must be 1: each slice is stored in its own "
                "chunks so that committed slices are never rewritten"
            )
            raise ValueError(msg)
    if schema.shards:
        for name in schema.variables:
            for c, s in zip(schema.chunk_shape(name), schema.shard_shape(name), strict=True):
                if s % c:
                    msg = f"shards must be multiples of chunks; got shard {s} for chunk {c}"
                    raise ValueError(msg)
    one_of(schema.compression, "compression", _COMPRESSIONS)


# ---------------------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------------------
def json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    return value


def _json_values(arr: np.ndarray) -> list:
    if arr.dtype.kind == "M":
        return [str(v) for v in np.datetime_as_string(arr, unit="ns")]
    return arr.tolist()


def encode_coord(value: Any, dtype: str, name: str, where: str) -> Any:
    """Encode one slice-coordinate value for the manifest, checking its type."""
    try:
        if dtype == "str":
            return str(as_str(value, name, non_empty=False))
        kind = np.dtype(dtype).kind
        if kind == "M":
            return str(np.datetime_as_string(_datetime_ns(value, name, where), unit="ns"))
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if np.dtype(dtype).kind in "iu":
                info = np.iinfo(dtype)
                if not info.min <= int(value) <= info.max:
                    msg = (
                        f"{where}: slice coordinate {name!r} = {value} is outside the range "
                        f"of {dtype} ([{info.min}, {info.max}])"
                    )
                    raise SchemaMismatchError(msg)
                return int(value)
        arr = np.asarray(value)
        if arr.ndim != 0 or not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise TypeError
        return json_scalar(arr.astype(dtype)[()])
    except SchemaMismatchError:
        raise
    except (TypeError, ValueError, OverflowError):
        msg = f"{where}: slice coordinate {name!r} must be a scalar of type {dtype}, got {value!r}"
        raise SchemaMismatchError(msg) from None


#: the representable range of datetime64[ns] (whole seconds inside it)
_NS_MIN = np.datetime64("1677-09-21T00:12:44", "s")
_NS_MAX = np.datetime64("2262-04-11T23:47:16", "s")


def _datetime_ns(value: Any, name: str, where: str) -> np.datetime64:
    """*value* as datetime64[ns], refusing (never wrapping) dates outside its range."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, np.datetime64):
        raise TypeError  # a bare number is not a date (which epoch? which unit?)
    parsed = np.datetime64(value)  # natural unit first: no silent wrap-around
    if np.isnat(parsed):
        return np.datetime64("NaT", "ns")
    coarse = parsed.astype("datetime64[s]")
    if np.isnat(coarse) or not _NS_MIN <= coarse < _NS_MAX:
        msg = (
            f"{where}: slice coordinate {name!r} = {value!r} is outside the datetime64[ns] "
            f"range ({_NS_MIN} to {_NS_MAX}); it is refused rather than wrapped"
        )
        raise SchemaMismatchError(msg)
    converted = parsed.astype("datetime64[ns]")
    finer = np.datetime_data(parsed.dtype)[0] in ("ps", "fs", "as")
    if finer and converted.astype(parsed.dtype) != parsed:  # precision below 1 ns
        msg = f"{where}: slice coordinate {name!r} = {value!r} cannot be held in datetime64[ns]"
        raise SchemaMismatchError(msg)
    return converted


def decode_coord(values: list, dtype: str) -> np.ndarray:
    if dtype == "str":
        return np.asarray(values, dtype=str)
    if np.dtype(dtype).kind == "f":
        return np.asarray([float(v) for v in values], dtype=dtype)
    return np.asarray(values, dtype=dtype)


def sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).view(np.uint8).data).hexdigest()



def validate_slice(schema: CubeSchema, data, where: str) -> dict[str, np.ndarray]:
    if not isinstance(data, xr.Dataset):
        msg = f"{where}: expected an xarray.Dataset, got {type(data).__name__}"
        raise SchemaMismatchError(msg)
    dim = schema.append_dim
    if dim in data.dims:
        if data.sizes[dim] != 1:
            msg = f"{where}: data has {data.sizes[dim]} entries along {dim!r}, expected 1"
            raise SchemaMismatchError(msg)
        data = data.isel({dim: 0})
    expected, given = set(schema.variables), set(data.data_vars)
    if expected != given:
        missing, extra = sorted(expected - given), sorted(given - expected)
        msg = f"{where}: variables do not match the schema (missing {missing}, extra {extra})"
        raise SchemaMismatchError(msg)
    out = {}
    for name, spec in schema.variables.items():
        var = data[name]
        shape = schema.slice_shape(name)
        if var.dims != spec.dims:
            msg = f"{where}: variable {name!r} has dims {var.dims}, expected {spec.dims}"
            raise SchemaMismatchError(msg)
        if var.shape != shape:
            msg = f"{where}: variable {name!r} has shape {var.shape}, expected {shape}"
            raise SchemaMismatchError(msg)
        if not np.can_cast(var.dtype, spec.dtype, casting="safe"):
            msg = (
                f"{where}: variable {name!r} has dtype {var.dtype}, which does not cast "
                f"safely to the stored {spec.dtype}; convert it explicitly"
            )
            raise SchemaMismatchError(msg)
        out[name] = np.ascontiguousarray(np.asarray(var.values, dtype=spec.dtype))
    for name, spec in schema.coords.items():
        if name in data.coords:
            dims, values, _ = coord_parts(spec)
            if data[name].dims != dims or not np.array_equal(data[name].values, values):
                msg = f"{where}: coordinate {name!r} differs from the cube's"
                raise SchemaMismatchError(msg)
    return out

def validate_coords(schema: CubeSchema, coords: Mapping, where: str) -> dict:
    expected, given = set(schema.slice_coords), set(coords)
    if expected != given:
        missing, extra = sorted(expected - given), sorted(given - expected)
        msg = (
            f"{where}: slice coordinates do not match the schema "
            f"(missing {missing}, extra {extra})"
        )
        raise SchemaMismatchError(msg)
    return {
        name: encode_coord(coords[name], dtype, name, where)
        for name, dtype in schema.slice_coords.items()
    }
