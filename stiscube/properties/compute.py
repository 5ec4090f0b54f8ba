"""Per-pixel properties of a set of STIS CCD dark frames (one anneal period).

:func:`compute_properties` validates dark FLT files, stacks them lazily with dask and
returns an :class:`xarray.Dataset` of five ``(row, col)`` properties; nothing is read or
computed until the result is (``.compute()``, ``.load()``, ``.to_zarr()``, ...).
:func:`properties_from_stack` does the same for a stack made by
:func:`stiscube.io.darks.open_darks`.  The arithmetic lives in the compiled kernel
:func:`stiscube.properties._compiled.band_properties` (numba), one dask task per band of
rows (the band handed over as read, without a copy): one pass over each band clips the
cosmic rays, sums the statistics and counts the valid samples per frame.  Its formulas and
clipping are those of the numpy reference kernels of :mod:`stiscube.properties._kernels`,
which its tests use as the oracle.

The properties are defined in :mod:`stiscube.schema` and their formulas, with the read
noise's bias and error, in :mod:`stiscube.properties._kernels`.

Temperature: ``t_i`` is the exposure time times the frame's ``dark_scale`` coordinate
when the stack has one (``1 + 0.07 (OCCDHTAV - 18)`` for Side-2 frames by default, see
:mod:`stiscube.io.darks`), so the rates are at the reference temperature while electrons,
read noise and the error model are unchanged.  The result also carries, per frame, the
lazy ``valid_fraction`` coordinate (fraction of the frame's pixels with a valid sample,
from the kernel's counts: no second pass over the pixels),
which :meth:`stiscube.PixelDB.ingest_darks` uses to refuse periods of unusable frames.

Cosmic rays: :func:`stiscube.properties._kernels.reject_cosmic_rays`.

Blocks: :func:`compute_properties` reads bands of rows of every frame (``(frame, row,
col)``, one contiguous read per frame and band), one dask task per band of about 4 Mi
samples (68 rows for 60 full frames, 16 tasks); the kernel releases the GIL, so the
threaded scheduler runs bands in parallel.

Scheduling: the result is lazy.  Computing it uses dask's current scheduler: the
threaded scheduler unless a ``dask.distributed`` client has been made the default.
With ``client=`` the work runs on that client at once, whichever client is the default
(``client.compute``), and the returned Dataset holds the values in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from stiscube.io.anneals import AnnealPeriod
from stiscube.io.darks import (
    DarkFrame,
    DarkSelection,
    TemperatureCorrection,
    check_darks,
    open_darks,
    select_darks,
)
from stiscube.properties._compiled import band_properties
from stiscube.properties._kernels import ClipOptions, clip_options
from stiscube.schema import PROPERTIES, PROPERTY_DTYPES, property_attrs
from stores.common import provenance
from stores.common.dates import describe_mjd
from stores.common.validate import as_int, instance_of

__all__ = [
    "PROPERTIES",
    "PROPERTY_ATTRS",
    "compute_properties",
    "properties_from_stack",
]

logger = logging.getLogger(__name__)

#: ``units``, ``long_name`` and ``definition`` attributes of each property (rate system),
#: derived from the declaration in :mod:`stiscube.schema`.
PROPERTY_ATTRS: dict[str, dict[str, str]] = {name: property_attrs(name) for name in PROPERTIES}

_OUTPUT_ORDER = ("sci_mean", "err_mean", "stability", "nan_count", "readnoise")
#: dtypes of the kernel outputs (:func:`stiscube.properties._compiled.band_properties`:
#: the properties, then the valid-sample counts); the properties are cast to the declared
#: :data:`stiscube.schema.PROPERTY_DTYPES`.
_OUTPUT_DTYPES = (np.float32, np.float32, np.float32, np.int32, np.float32, np.int32)
#: Target number of samples (frames x pixels) per dask block: 4 Mi float32 = 16 MiB.
_BLOCK_SAMPLES = 1 << 22


def _auto_row_chunk(n_frames: int, shape: tuple[int, int]) -> int:
    """Rows per block so that a block holds about ``_BLOCK_SAMPLES`` samples."""
    return int(max(1, min(shape[0], _BLOCK_SAMPLES // max(1, n_frames * shape[1]))))


def _band_outputs(
    stack: xr.Dataset, exptime: np.ndarray, gain: np.ndarray, clip: ClipOptions
) -> list[Any]:
    """The kernel's six outputs (:func:`band_properties`) for a ``(frame, row, col)`` stack:
    numpy arrays, or dask arrays with one kernel task per band of rows.

    A dask stack is handed over block by block (``to_delayed``), so each band reaches the
    kernel as read, without the copy that ``apply_ufunc``'s core-dimension concatenation
    makes of every block.
    """
    sci, err, dq = (stack[v].data for v in ("sci", "err", "dq"))
    if not isinstance(sci, da.Array):
        return list(band_properties(sci, err, dq, exptime, gain, clip=clip))
    n, _, cols = sci.shape
    err = err.rechunk(sci.chunks)
    dq = dq.rechunk(sci.chunks)
    parts: list[list[Any]] = [[] for _ in _OUTPUT_DTYPES]
    blocks = zip(*(a.to_delayed()[0, :, 0] for a in (sci, err, dq)), strict=True)
    for rows, (s, e, q) in zip(sci.chunks[1], blocks, strict=True):
        out = dask.delayed(band_properties, nout=len(_OUTPUT_DTYPES), pure=True)(
            s, e, q, exptime, gain, clip=clip
        )
        shapes = [(rows, cols)] * 5 + [(rows, n)]
        for part, value, shape, dtype in zip(parts, out, shapes, _OUTPUT_DTYPES, strict=True):
            part.append(da.from_delayed(value, shape=shape, dtype=dtype))
    return [da.concatenate(part, axis=0) for part in parts]


def properties_from_stack(
    stack: xr.Dataset,
    *,
    clip: ClipOptions | None = None,
) -> xr.Dataset:
    """The five properties of a stack from :func:`stiscube.io.darks.open_darks` (lazy).

    Parameters
    ----------
    stack : xarray.Dataset
        Variables ``sci``, ``err``, ``dq`` with dims ``(frame, row, col)`` and frame
        coordinates ``exptime`` (s) and ``gain`` (e-/count).  A stack chunked along
        ``frame`` is rechunked to one chunk along ``frame``.
    clip : ClipOptions, optional
        The cosmic-ray clipping options (default ``ClipOptions()``).

    Returns
    -------
    xarray.Dataset
        ``stability``, ``sci_mean``, ``err_mean``, ``nan_count``, ``readnoise`` with dims
        ``(row, col)`` and attrs ``units``, ``long_name``, ``definition``; the frame
        coordinates of the stack (``rootname``, ``exptime``, ``start``, ...) are kept
        along ``frame``; Dataset attrs ``title``, ``n_frames`` and the provenance record
        (:func:`stores.common.provenance.to_attrs`: ``software``, ``software_versions``,
        ``created``, ``inputs`` (the files read) and ``options`` (the clipping options, as
        JSON); read it back with :func:`stores.common.provenance.from_attrs`).

    Raises
    ------
    ValueError, TypeError
        For invalid options (the message names the parameter) or a stack without the
        needed variables and coordinates.
    """
    clip = clip_options(clip)
    missing = [v for v in ("sci", "err", "dq", "exptime", "gain") if v not in stack.variables]
    if missing:
        msg = (
            f"stack lacks {missing}; expected a Dataset from stiscube.io.darks.open_darks with "
            "variables sci, err, dq and frame coordinates exptime, gain"
        )
        raise ValueError(msg)
    for var in ("sci", "err", "dq"):
        if set(stack[var].dims) != {"frame", "row", "col"}:
            msg = f"stack[{var!r}] must have dims frame, row, col, got {stack[var].dims}"
            raise ValueError(msg)
    if stack.sizes.get("frame", 0) > np.iinfo(PROPERTY_DTYPES["nan_count"]).max:
        msg = f"stack has {stack.sizes['frame']} frames; nan_count holds at most 65535"
        raise ValueError(msg)
    stack = stack.transpose("frame", "row", "col")
    if stack.chunks and (len(stack.chunks["frame"]) > 1 or len(stack.chunks["col"]) > 1):
        stack = stack.chunk({"frame": -1, "col": -1})
    # Temperature scaling (Side-2 darks): rates e / (s t), see stiscube.io.darks.
    exptime = stack["exptime"].values
    if "dark_scale" in stack.coords:
        exptime = exptime * stack["dark_scale"].values
    outputs = _band_outputs(stack, exptime, stack["gain"].values, clip)
    pixel_coords = {d: stack[d] for d in ("row", "col") if d in stack.coords}
    data = {}
    for name, array in zip(_OUTPUT_ORDER, outputs[:5], strict=True):
        data[name] = xr.DataArray(array, dims=("row", "col"), coords=pixel_coords).astype(
            PROPERTY_DTYPES[name]
        ).assign_attrs(PROPERTY_ATTRS[name])
    frame_coords = {
        name: coord.variable for name, coord in stack.coords.items() if coord.dims == ("frame",)
    }
    # Per-frame fraction of pixels with a valid sample, from the kernel's counts per row.
    n_pixels = stack.sizes["row"] * stack.sizes["col"]
    frame_coords["valid_fraction"] = xr.Variable(
        "frame", outputs[-1].sum(axis=0, dtype=np.int64) / n_pixels
    )
    frame_coords["valid_fraction"].attrs = {
        "units": "1",
        "long_name": "fraction of the frame's pixels with a valid sample",
        "definition": "finite SCI, finite ERR > 0 and DQ & dq_mask == 0",
    }
    inputs = list(dict.fromkeys(stack["path"].values.tolist())) if "path" in stack.coords else None
    attrs = {
        "title": "STIS CCD pixel properties from dark frames",
        "n_frames": int(stack.sizes["frame"]),
        **provenance.to_attrs(provenance.provenance(inputs=inputs, options=clip)),
    }
    if "start_mjd" in stack.coords and stack.sizes["frame"]:
        attrs["first_frame_start_mjd"] = float(stack["start_mjd"].min())
        attrs["last_frame_start_mjd"] = float(stack["start_mjd"].max())
    if "simulated" in stack.attrs:
        attrs["simulated_input"] = int(stack.attrs["simulated"])
    if "temperature_correction" in stack.attrs:
        attrs["temperature_correction"] = str(stack.attrs["temperature_correction"])
    ds = xr.Dataset({name: data[name] for name in PROPERTIES}, coords=frame_coords, attrs=attrs)
    return ds


def compute_properties(
    files: Iterable[str | os.PathLike[str] | DarkFrame],
    *,
    period: AnnealPeriod | None = None,
    start: Any = None,
    end: Any = None,
    client: Any = None,
    row_chunk: int | None = None,
    clip: ClipOptions | None = None,
    selection: DarkSelection | None = None,
    temperature: TemperatureCorrection | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Per-pixel properties of one set of STIS CCD dark FLT files (lazy Dataset).

    Parameters
    ----------
    files : iterable of path or DarkFrame
        The dark frames of one anneal period.  All files are validated (headers only)
        before anything is read or computed.
    period : AnnealPeriod, optional
        The anneal period the frames belong to: every exposure must start within it,
        and its number and dates are recorded in the attrs.  Exclusive with start/end.
    start, end : date, optional
        The same check with explicit bounds (``start <= TEXPSTRT < end``).
    client : dask.distributed.Client, optional
        Run the computation on this client now (``client.compute``, so with several
        clients alive it runs on this one, not the default) and return the values in
        memory.  Default: stay lazy (computing uses dask's current scheduler,
        the threaded one unless a distributed client is the default).
    row_chunk : int, optional
        Rows per dask block (all frames and columns in a block).  Default: about 4 Mi
        samples per block (68 rows for 60 full frames).
    clip : ClipOptions, optional
        The cosmic-ray clipping options (default ``ClipOptions()``).
    selection : DarkSelection, optional
        Homogeneity rules and an optional choice of CCDGAIN, CCDAMP and exposure class
        (default :class:`~stiscube.io.darks.DarkSelection`: frames of more than one group are
        an error; at least 3 frames).  Frames skipped by a selection are listed in the
        ``skipped`` attribute.
    temperature : TemperatureCorrection, optional
        Scaling of Side-2 frames to 18 deg C (default); ``TemperatureCorrection(enabled=
        False)`` switches it off.  Recorded per frame (``dark_scale``, ``occdhtav``) and in
        the ``temperature_correction`` attribute.
    storage_options : dict, optional
        fsspec options for URLs among *files*.

    Returns
    -------
    xarray.Dataset
        See :func:`properties_from_stack`; plus attrs ``anneal_number``,
        ``period_start_mjd`` and ``period_end_mjd`` when a period is given.

    Raises
    ------
    InvalidDarkError, IncompatibleDarksError
        For bad files (see :func:`stiscube.io.darks.check_darks`); its subclasses
        :class:`~stiscube.io.darks.MixedDarksError` for frames of several groups and
        :class:`~stiscube.io.darks.TooFewDarksError` for too few frames.
    ValueError, TypeError
        For invalid options, naming the parameter.
    """
    clip = clip_options(clip)
    row_chunk = as_int(row_chunk, "row_chunk", min=1, allow_none=True)
    if period is not None:
        if start is not None or end is not None:
            msg = "give either period or start/end, not both"
            raise ValueError(msg)
        instance_of(period, "period", AnnealPeriod, what="a stiscube.io.anneals.AnnealPeriod")
        start, end = period.start_mjd, period.end_mjd
    if client is not None and not hasattr(client, "persist"):
        msg = f"client must be a dask.distributed.Client, got {type(client).__name__}"
        raise TypeError(msg)
    if selection is not None:
        instance_of(selection, "selection", DarkSelection, what="a stiscube.io.darks.DarkSelection")
    frames = check_darks(files, start=start, end=end, storage_options=storage_options)
    frames, skipped = select_darks(frames, selection)
    rows = row_chunk or _auto_row_chunk(len(frames), frames[0].shape)
    stack = open_darks(
        frames,
        chunks={"frame": -1, "row": rows, "col": -1},
        temperature=temperature,
    )
    ds = properties_from_stack(stack, clip=clip)
    selection = selection or DarkSelection()
    ds.attrs["exptime_class"] = selection.describe_class(
        selection.exposure_class(frames[0].exptime)
    )
    ds.attrs["skipped"] = "\n".join(f"{f.frame_id} ({f.path}): {why}" for f, why in skipped)
    if period is not None:
        ds.attrs.update(
            anneal_number=int(period.number),
            period_start_mjd=float(period.start_mjd),
            period_end_mjd=float(period.end_mjd),
        )
    logger.info(
        "properties of %d darks (%s to %s), %s pixels, row blocks of %d",
        len(frames),
        describe_mjd(frames[0].start_mjd),
        describe_mjd(frames[-1].start_mjd),
        "x".join(map(str, frames[0].shape)),
        rows,
    )
    if client is not None:
        ds = client.compute(ds, sync=True)
    return ds
