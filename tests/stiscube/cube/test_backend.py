"""The ``stiscube`` xarray engine: every selection against numpy indexing of what was ingested.

The reference is the stack of the property frames handed to ``ingest_properties``
(seeded random values), indexed with plain numpy; the engine is read eagerly (no dask),
with ``chunks=``, through ``PixelDB.cube``, and with the history index current.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stiscube import PixelDB
from stiscube.cube.backend import StiscubeBackendEntrypoint, source_of
from stiscube.cube.history_index import HistoryIndex
from stiscube.datasets._synthcube import random_properties
from stiscube.schema import PROPERTIES
from stores import CubeStore, KeyNotFoundError

SHAPE = (40, 30)
NUMBERS = [3, 4, 7, 8, 9, 12]  # gaps: positions differ from labels
DAY = np.timedelta64(30, "D")
T0 = np.datetime64("2001-01-01T00:00:00", "ns")


def _dates(n: int) -> tuple[np.datetime64, np.datetime64]:
    start = T0 + NUMBERS.index(n) * DAY
    return start, start + DAY


@pytest.fixture(scope="module")
def truth():
    return {n: random_properties(SHAPE, seed=n) for n in NUMBERS}


@pytest.fixture(scope="module")
def ref(truth):
    """property -> numpy array (anneal, row, col) of the ingested values."""
    return {p: np.stack([truth[n][p].values for n in NUMBERS]) for p in PROPERTIES}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory, truth):
    path = tmp_path_factory.mktemp("backend") / "db"
    db = PixelDB.create(path, shape=SHAPE, chunks={"row": 16, "col": 16})
    for n in (9, 3, 12, 4, 8, 7):  # any order
        start, end = _dates(n)
        db.ingest_properties(truth[n], n, start=start, end=end)
    return path


def _open(db_path, mode):
    if mode == "eager":
        return xr.open_dataset(db_path, engine="stiscube")
    if mode == "dask":
        return xr.open_dataset(db_path, engine="stiscube", chunks={"anneal": 2, "row": 32})
    if mode == "stored-chunks":
        return xr.open_dataset(db_path, engine="stiscube", chunks={})
    return PixelDB(db_path, mode="r").dataset


# (selection on the Dataset, the same selection on numpy arrays (anneal, row, col))
SELECTIONS = {
    "anneal number": (lambda d: d.sel(anneal=8), lambda a: a[3]),
    "anneal list": (lambda d: d.sel(anneal=[12, 3, 8]), lambda a: a[[5, 0, 3]]),
    "anneal slice": (lambda d: d.sel(anneal=slice(4, 9)), lambda a: a[1:5]),
    "negative index": (lambda d: d.isel(anneal=-1), lambda a: a[-1]),
    "point": (lambda d: d.sel(anneal=7, row=5, col=20), lambda a: a[2, 5, 20]),
    "pixel history": (lambda d: d.sel(row=39, col=0), lambda a: a[:, 39, 0]),
    "region": (
        lambda d: d.sel(row=slice(3, 12), col=slice(14, 29)),  # labels: inclusive
        lambda a: a[:, 3:13, 14:30],
    ),
    "region one period": (
        lambda d: d.sel(anneal=4).isel(row=slice(15, 33), col=slice(None, 17)),
        lambda a: a[1, 15:33, :17],
    ),
    "steps": (
        lambda d: d.isel(row=slice(1, 39, 5), col=slice(None, None, -3)),
        lambda a: a[:, 1:39:5, ::-3],
    ),
    "orthogonal arrays": (
        lambda d: d.isel(anneal=[5, 0], row=[5, 1, 5, 38], col=[29, 0]),
        lambda a: a[np.ix_([5, 0], [5, 1, 5, 38], [29, 0])],
    ),
    "vectorised": (
        lambda d: d.isel(
            anneal=xr.DataArray([0, 2, 5, 2], dims="p"),
            row=xr.DataArray([1, 39, 20, 20], dims="p"),
            col=xr.DataArray([2, 3, 29, 0], dims="p"),
        ),
        lambda a: a[[0, 2, 5, 2], [1, 39, 20, 20], [2, 3, 29, 0]],
    ),
    "empty": (lambda d: d.isel(row=[]), lambda a: a[:, []]),
    "whole": (lambda d: d, lambda a: a),
}


@pytest.mark.parametrize("mode", ["eager", "dask", "stored-chunks", "pixeldb"])
@pytest.mark.parametrize("what", list(SELECTIONS))
def test_selection_matches_numpy(db_path, ref, mode, what):
    select, expect = SELECTIONS[what]
    got = select(_open(db_path, mode))
    for p in PROPERTIES:
        values = got[p].values
        assert values.dtype == ref[p].dtype
        np.testing.assert_array_equal(values, expect(ref[p]), err_msg=f"{what}: {p}")


@pytest.mark.parametrize("what", list(SELECTIONS))
def test_cube_view_matches_numpy(db_path, ref, what):
    select, expect = SELECTIONS[what]
    cube = PixelDB(db_path, mode="r").cube
    assert cube.dims == ("anneal", "row", "col", "property")
    assert cube["property"].values.tolist() == list(PROPERTIES)
    got = select(cube.to_dataset("property"))
    for p in PROPERTIES:
        np.testing.assert_array_equal(got[p].values, expect(ref[p]).astype("float32"))
    # selecting properties on the 4-D view, including several at once
    two = cube.sel(anneal=9, property=["readnoise", "stability"]).values
    np.testing.assert_array_equal(
        two, np.stack([ref["readnoise"][4], ref["stability"][4]], axis=-1).astype("float32")
    )


def test_coordinates_and_attrs(db_path, truth):
    ds = xr.open_dataset(db_path, engine="stiscube")
    assert ds["anneal"].values.tolist() == NUMBERS
    assert ds.sizes == {"anneal": 6, "row": 40, "col": 30}
    np.testing.assert_array_equal(ds["anneal_start"].values, [_dates(n)[0] for n in NUMBERS])
    np.testing.assert_array_equal(ds["anneal_end"].values, [_dates(n)[1] for n in NUMBERS])
    schema = CubeStore(db_path / "cube", mode="r").schema
    for name in schema.slice_coords:  # every per-period coordinate the schema declares
        assert ds[name].dims == ("anneal",)
    assert ds["unit_system"].values.tolist() == ["rate"] * 6
    for p in PROPERTIES:
        assert ds[p].attrs["units"] == truth[3][p].attrs["units"]
        assert ds[p].encoding["preferred_chunks"] == {"row": 16, "col": 16}


def test_by_date(db_path, ref):
    ds = xr.open_dataset(db_path, engine="stiscube")
    start, end = _dates(8)
    for when in (start, start + np.timedelta64(5, "D"), end - np.timedelta64(1, "s")):
        got = ds.pixels.period(date=pd.Timestamp(when).isoformat())
        assert int(got["anneal"]) == 8
        np.testing.assert_array_equal(got["sci_mean"].values, ref["sci_mean"][3])
    assert ds.pixels.period_at(str(end)) == 9  # end is exclusive


def test_stored_chunks_are_the_dask_chunks(db_path, ref, monkeypatch):
    """chunks={}: one task per stored (row, col) chunk and variable over all periods, one
    reader call each; a selection of one period reads only that period."""
    ds = xr.open_dataset(db_path, engine="stiscube", chunks={})
    assert ds["sci_mean"].chunks == ((6,), (16, 16, 8), (16, 14))
    calls = []
    original = CubeStore.read_arrays

    def counting(self, labels, *, variables=None, **window):
        calls.append((list(np.atleast_1d(labels)), tuple(variables or ()), window))
        return original(self, labels, variables=variables, **window)

    monkeypatch.setattr(CubeStore, "read_arrays", counting)
    mean = ds["sci_mean"].mean("anneal").values
    np.testing.assert_allclose(mean, ref["sci_mean"].mean(axis=0), rtol=1e-6)
    assert len(calls) == 3 * 2  # the stored chunks of one frame
    assert all(labels == NUMBERS and names == ("sci_mean",) for labels, names, _ in calls)
    calls.clear()
    frame = ds["sci_mean"].sel(anneal=8).values
    np.testing.assert_array_equal(frame, ref["sci_mean"][NUMBERS.index(8)])
    assert len(calls) == 6 and all(labels == [8] for labels, _, _ in calls)


def test_laziness_counts_reads(db_path, monkeypatch, raise_if_dask_computes):
    calls = []
    original = CubeStore.read_arrays

    def counting(self, labels, *, variables=None, **window):
        calls.append((labels, tuple(variables or ()), window))
        return original(self, labels, variables=variables, **window)

    opened = []
    os_open = os.open

    def counting_open(path, *args, **kwargs):
        if f"{os.sep}data{os.sep}" in os.fspath(path):
            opened.append(os.fspath(path))
        return os_open(path, *args, **kwargs)

    monkeypatch.setattr(CubeStore, "read_arrays", counting)
    with raise_if_dask_computes():
        ds = xr.open_dataset(db_path, engine="stiscube")
        assert calls == []  # opening reads no data
        assert all(ds[p].chunks is None for p in PROPERTIES)  # no dask
        monkeypatch.setattr(os, "open", counting_open)
        point = ds.sel(anneal=9, row=17, col=3).load()
        monkeypatch.setattr(os, "open", os_open)
    # the chunk files opened: one per property, the one holding (row 17, col 3)
    assert len(opened) == len(PROPERTIES), opened
    assert all(path.endswith(f"{os.sep}1{os.sep}0") for path in opened), opened
    # one reader call for every property, of one period and one pixel
    assert len(calls) == 1, calls
    labels, names, window = calls[0]
    assert labels in (9, [9]) and sorted(names) == sorted(PROPERTIES)
    assert window == {"row": slice(17, 18), "col": slice(3, 4)}
    assert point["sci_mean"].shape == ()


def test_small_reads_batch_the_variables_large_ones_do_not(db_path, ref, monkeypatch):
    calls = []
    original = CubeStore.read_arrays

    def counting(self, labels, *, variables=None, **window):
        calls.append(tuple(variables or ()))
        return original(self, labels, variables=variables, **window)

    monkeypatch.setattr(CubeStore, "read_arrays", counting)
    ds = xr.open_dataset(db_path, engine="stiscube", drop_variables=["readnoise"])
    window = ds.isel(anneal=[0, 2], row=slice(5, 9), col=[1, 4, 6]).load()
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(PROPERTIES) - {"readnoise"})
    for name in window.data_vars:  # each handed out once, with its own values
        np.testing.assert_array_equal(window[name].values, ref[name][[0, 2], 5:9][:, :, [1, 4, 6]])
    calls.clear()
    small = ds["sci_mean"].isel(anneal=1, row=slice(0, 20), col=slice(0, 20)).values
    assert len(calls) == 1 and len(calls[0]) == len(window.data_vars)  # 400 values: batched
    np.testing.assert_array_equal(small, ref["sci_mean"][1, :20, :20])
    calls.clear()
    whole = ds["sci_mean"].values  # 6 x 40 x 30 = 7200 values: this variable only
    assert calls == [("sci_mean",)]
    np.testing.assert_array_equal(whole, ref["sci_mean"])


def test_no_dask_compute_without_chunks(db_path, raise_if_dask_computes):
    db = PixelDB(db_path, mode="r")
    with raise_if_dask_computes():
        ds = db.dataset
        ds.pixels.history(5, 5).load()
        ds.sel(anneal=[3, 12]).mean(("row", "col")).load()
        db.cube.sel(row=2, col=2).values  # noqa: B018


def test_history_index_serves_every_api(db_path, ref, monkeypatch):
    db = PixelDB(db_path)
    db.update_history_index()
    reads = []
    original = HistoryIndex.read

    def counting(self, *args, **kwargs):
        reads.append(args[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HistoryIndex, "read", counting)
    monkeypatch.setattr(CubeStore, "read_arrays", None)  # any cube read would fail
    ds = xr.open_dataset(db_path, engine="stiscube")
    views = {
        "ds.sel": ds.sel(row=21, col=13).load(),
        "accessor": ds.pixels.history(21, 13).load(),
        "db.dataset": db.dataset.sel(row=21, col=13).load(),
        "db.history": db.history(21, 13),
        "cube": db.cube.sel(row=21, col=13).to_dataset("property"),
    }
    for api, got in views.items():
        for p in PROPERTIES:
            np.testing.assert_array_equal(got[p].values, ref[p][:, 21, 13], err_msg=api)
    assert len(reads) == len(views) * len(PROPERTIES)
    window = ds.isel(row=slice(6, 10), col=slice(7, 10)).load()  # crosses index tiles
    np.testing.assert_array_equal(window["nan_count"].values, ref["nan_count"][:, 6:10, 7:10])


def test_versions_keep_replaced_values(tmp_path, truth):
    path = tmp_path / "db"
    db = PixelDB.create(path, shape=SHAPE, chunks={"row": 16, "col": 16})
    for n in NUMBERS[:3]:
        db.ingest_properties(truth[n], n, start=_dates(n)[0], end=_dates(n)[1])
    before = db.store.version
    held = db.dataset  # a Dataset keeps showing the state it was made from
    new = random_properties(SHAPE, seed=999)
    db.ingest_properties(new, 4, start=_dates(4)[0], end=_dates(4)[1], overwrite=True)
    assert db.store.version > before
    old_values = truth[4]["sci_mean"].values
    for old in (
        xr.open_dataset(path, engine="stiscube", version=before),
        PixelDB(path, mode="r", version=before).dataset,
        held,
    ):
        np.testing.assert_array_equal(old["sci_mean"].sel(anneal=4).values, old_values)
        assert old.attrs["cube_version"] == before
    np.testing.assert_array_equal(
        PixelDB(path, mode="r", version=before).history_values(2, 3)["sci_mean"],
        [truth[n]["sci_mean"].values[2, 3] for n in NUMBERS[:3]],
    )
    newest = xr.open_dataset(path, engine="stiscube")
    np.testing.assert_array_equal(newest["sci_mean"].sel(anneal=4).values, new["sci_mean"].values)
    with pytest.raises(KeyNotFoundError, match="version 9999 is not"):
        xr.open_dataset(path, engine="stiscube", version=9999)
    with pytest.raises(ValueError, match="version must be an integer >= 0 or None, got -1"):
        xr.open_dataset(path, engine="stiscube", version=-1)


def test_engine_is_registered_and_guesses(db_path, tmp_path):
    assert "stiscube" in xr.backends.list_engines()
    entry = StiscubeBackendEntrypoint()
    assert entry.guess_can_open(str(db_path))
    assert not entry.guess_can_open(str(tmp_path))
    ds = xr.open_dataset(db_path, engine="stiscube", drop_variables=["readnoise"])
    assert "readnoise" not in ds and "sci_mean" in ds
    with pytest.raises(ValueError, match="layout must be one of"):
        xr.open_dataset(db_path, engine="stiscube", layout="wide")
    with pytest.raises(TypeError, match="was not opened by the stiscube backend"):
        source_of(xr.Dataset())
    with pytest.raises(TypeError, match="source must be a pixel database path or URL, or a Cube"):
        xr.open_dataset(42, engine="stiscube")


def test_pickles_for_dask_workers(db_path, ref):
    import pickle

    ds = xr.open_dataset(db_path, engine="stiscube", chunks={})
    again = pickle.loads(pickle.dumps(ds))  # what a distributed worker receives
    np.testing.assert_array_equal(again["err_mean"].sel(row=3).values, ref["err_mean"][:, 3])
    assert again.attrs["cube_version"] == ds.attrs["cube_version"]


def test_fsspec_database_through_the_engine(truth):
    import uuid

    url = f"memory://engine-{uuid.uuid4().hex}/db"
    db = PixelDB.create(url, shape=SHAPE, chunks={"row": 16, "col": 16})
    for n in NUMBERS[:2]:
        db.ingest_properties(truth[n], n, start=_dates(n)[0], end=_dates(n)[1])
    ds = xr.open_dataset(url, engine="stiscube")
    assert ds.encoding["source"].startswith("memory://")
    np.testing.assert_array_equal(
        ds["stability"].sel(row=slice(2, 5)).values,
        np.stack([truth[n]["stability"].values[2:6] for n in NUMBERS[:2]]),
    )
    assert not db.history_index_current  # the index is local-only; reads use the cube


def test_chunks_that_split_the_stored_chunks_work(db_path, ref):
    """README: chunks= that split the stored chunks give the same values (each task reads
    its part of a stored chunk; xarray warns that this is slower)."""
    with pytest.warns(UserWarning, match="separate the stored chunks"):
        ds = xr.open_dataset(db_path, engine="stiscube", chunks={"row": 10, "col": 7})
    assert ds["sci_mean"].chunks[1:] == ((10, 10, 10, 10), (7, 7, 7, 7, 2))
    for name in PROPERTIES:
        np.testing.assert_array_equal(ds[name].values, ref[name], err_msg=name)
