"""CubeStore: round trips, laziness, snapshot isolation, and bad input."""

from __future__ import annotations

import json

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from stores import (
    CorruptStoreError,
    CubeSchema,
    CubeStore,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    SliceExistsError,
    StoreExistsError,
    StoreLockedError,
    VariableSpec,
)
from stores.common.testing import example_coords, example_schema, example_slice, tree_digest
from stores.storage.fs import Location
from stores.storage.locks import WriterLock


def _no_compute(*args, **kwargs):
    raise AssertionError("dask computed when the result should have stayed lazy")


@pytest.fixture
def schema():
    return example_schema()


@pytest.fixture
def filled(store_url, schema):
    """A store holding periods 7, 2, 5 (appended out of order)."""
    store = CubeStore.create(store_url, schema)
    for label in (7, 2, 5):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    return store


@pytest.mark.parametrize("lazy", [True, False], ids=["dask", "eager"])
def test_roundtrip_values_coords_attrs(filled, schema, store_url, lazy):
    reopened = CubeStore(store_url, mode="r")
    assert reopened.labels == [2, 5, 7]
    ds = reopened.to_dataset(lazy=lazy)
    assert isinstance(ds["signal"].data, da.Array) is lazy
    assert ds.sizes == {"period": 3, "row": 32, "col": 24}
    np.testing.assert_array_equal(ds["period"].values, [2, 5, 7])
    for i, label in enumerate([2, 5, 7]):
        expected = example_slice(schema, label)
        for name in ("signal", "count"):
            got = np.asarray(ds[name].isel(period=i).values)
            assert got.dtype == expected[name].dtype
            # bit-identical, NaNs included
            assert got.tobytes() == expected[name].values.tobytes()
        coords = example_coords(label)
        assert ds["start"].values[i] == coords["start"]
        assert ds["name"].values[i] == coords["name"]
        assert ds["exposure"].values[i] == coords["exposure"]
    np.testing.assert_array_equal(ds["row"].values, np.arange(32))
    assert ds["signal"].attrs["units"] == "electron / s"
    assert ds.attrs["title"] == "stores test cube"


def test_lazy_read_does_not_compute(filled):
    with dask.config.set(scheduler=_no_compute):
        ds = filled.to_dataset(lazy=True)
        sub = ds["signal"].sel(period=5).isel(row=slice(0, 4))
    assert isinstance(sub.data, da.Array)
    assert sub.shape == (4, 24)


def test_read_slice_and_subset(filled, schema):
    one = filled.read_slice(5)
    assert "period" not in one.dims and int(one["period"]) == 5
    np.testing.assert_array_equal(one["count"].values, example_slice(schema, 5)["count"].values)
    sub = filled.to_dataset(labels=[7, 2], lazy=False)
    np.testing.assert_array_equal(sub["period"].values, [7, 2])


@pytest.mark.parametrize("lazy", [True, False], ids=["dask", "eager"])
def test_replace_is_visible_and_old_snapshot_is_stable(filled, schema, lazy):
    before = filled.to_dataset(lazy=True)  # bound to the committed state at this moment
    new = example_slice(schema, 5, seed=99)
    filled.replace(new, 5, coords=example_coords(5) | {"name": "reprocessed"})
    after = CubeStore(filled.location.url).to_dataset(lazy=lazy)
    np.testing.assert_array_equal(after["count"].sel(period=5).values, new["count"].values)
    assert after["name"].sel(period=5).item() == "reprocessed"
    np.testing.assert_array_equal(
        before["count"].sel(period=5).values, example_slice(schema, 5)["count"].values
    )
    CubeStore(filled.location.url).verify()


def test_append_accepts_length_one_dim_and_safe_upcast(store_url, schema):
    store = CubeStore.create(store_url, schema)
    data = example_slice(schema, 1)
    data["count"] = data["count"].astype("int8").clip(-100, 100)  # int8 -> int16 is safe
    store.append(data.expand_dims(period=[1]), 1, coords=example_coords(1))
    np.testing.assert_array_equal(store.read_slice(1)["count"].values, data["count"].values)


def test_dask_input_is_computed(store_url, schema):
    store = CubeStore.create(store_url, schema)
    data = example_slice(schema, 3).chunk({"row": 8})
    store.append(data, 3, coords=example_coords(3))
    np.testing.assert_array_equal(store.read_slice(3)["signal"].values, data["signal"].values)


@pytest.mark.parametrize(
    ("options", "codec"),
    [({"compression": "none"}, None), ({"compression": "blosc"}, "blosc")],
)
def test_compression_and_sharding_options(tmp_path, options, codec):
    schema = example_schema(shards={"row": 32, "col": 24}, **options)
    store = CubeStore.create(tmp_path / "c", schema)
    store.append(example_slice(schema, 1), 1, coords=example_coords(1))
    meta = json.loads((tmp_path / "c" / "data" / "signal" / "zarr.json").read_text())
    names = json.dumps(meta["codecs"])
    assert "sharding_indexed" in names
    assert (codec in names) if codec else ("zstd" not in names and "blosc" not in names)
    np.testing.assert_array_equal(
        store.read_slice(1)["count"].values, example_slice(schema, 1)["count"].values
    )


# -- bad input: the specific exception, and the store unchanged -------------------------
def _bad_slices(schema):
    good = example_slice(schema, 9)
    return {
        "wrong-dims": (good.transpose("col", "row"), {}),
        "wrong-shape": (good.isel(row=slice(0, 10)), {}),
        "wrong-dtype": (good.assign(signal=good["signal"].astype("float64")), {}),
        "missing-variable": (good.drop_vars("count"), {}),
        "extra-variable": (good.assign(other=good["count"]), {}),
        "two-periods": (xr.concat([good, good], "period"), {}),
        "missing-coord": (good, {"drop": "name"}),
        "bad-coord-type": (good, {"exposure": "long"}),
        "conflicting-static-coord": (good.assign_coords(row=np.arange(32) + 1), {}),
        "not-a-dataset": (good["signal"], {}),
    }


@pytest.mark.parametrize("case", list(_bad_slices(example_schema())))
def test_bad_append_raises_and_changes_nothing(filled, schema, case):
    data, tweak = _bad_slices(schema)[case]
    coords = example_coords(9)
    if "drop" in tweak:
        coords.pop(tweak["drop"])
    coords.update({k: v for k, v in tweak.items() if k != "drop"})
    before = tree_digest(filled.location.url)
    with pytest.raises(SchemaMismatchError, match="period 9"):
        filled.append(data, 9, coords=coords)
    assert tree_digest(filled.location.url) == before
    assert filled.labels == [2, 5, 7]


def test_bad_label_type(filled, schema):
    before = tree_digest(filled.location.url)
    with pytest.raises(SchemaMismatchError, match="label must be of type int64"):
        filled.append(example_slice(schema, 1), "one", coords=example_coords(1))
    assert tree_digest(filled.location.url) == before


def test_existing_label_and_unknown_replace(filled, schema):
    before = tree_digest(filled.location.url)
    with pytest.raises(SliceExistsError, match="period 5 is already in .*use replace"):
        filled.append(example_slice(schema, 5), 5, coords=example_coords(5))
    with pytest.raises(KeyNotFoundError, match="cannot replace period 4 .*use append"):
        filled.replace(example_slice(schema, 4), 4, coords=example_coords(4))
    with pytest.raises(KeyNotFoundError, match=r"period 4 is not in .* holds \[2, 5, 7\]"):
        filled.read_slice(4)
    assert tree_digest(filled.location.url) == before


def test_read_only_handle_refuses_writes(filled, schema):
    before = tree_digest(filled.location.url)
    ro = CubeStore(filled.location.url, mode="r")
    with pytest.raises(ReadOnlyStoreError, match="opened read-only"):
        ro.append(example_slice(schema, 1), 1, coords=example_coords(1))
    with pytest.raises(ReadOnlyStoreError):
        ro.replace(example_slice(schema, 2), 2, coords=example_coords(2))
    assert tree_digest(filled.location.url) == before


def test_not_a_store(tmp_path):
    with pytest.raises(NotAStoreError, match="does not exist"):
        CubeStore(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    before = tree_digest(tmp_path / "other")
    with pytest.raises(NotAStoreError, match="has no cubestore.json"):
        CubeStore(tmp_path / "other", mode="r+")
    with pytest.raises(StoreExistsError, match="files that are not a cube store"):
        CubeStore.create(tmp_path / "other", example_schema())
    assert tree_digest(tmp_path / "other") == before


def test_create_refuses_existing_store(filled, schema):
    before = tree_digest(filled.location.url)
    with pytest.raises(StoreExistsError, match="already holds a cube store"):
        CubeStore.create(filled.location.url, schema)
    assert tree_digest(filled.location.url) == before


def test_corrupt_marker(filled):
    loc = filled.location
    loc.fs.pipe_file(loc.join("cubestore.json"), b"{not json")
    with pytest.raises(CorruptStoreError, match="unreadable cubestore.json"):
        CubeStore(loc.url)


def test_damaged_newest_manifest_refuses_reads_older_versions_only_explicitly(filled):
    """Issue 24 R5: it rolled reads back to the previous version with only a warning."""
    loc = filled.location
    newest = sorted(loc.listdir("manifests"))[-1]
    loc.fs.pipe_file(loc.join("manifests", newest), b'{"sha256": "0", "body": {}}')
    store = CubeStore(loc.url)
    for read in (lambda: store.labels, lambda: store.to_dataset(), lambda: len(store)):
        with pytest.raises(CorruptStoreError, match=rf"{newest} is damaged.*stiscube repair"):
            read()
    older = CubeStore(loc.url, version=int(newest[:12]) - 1)
    assert older.labels == [2, 7]  # the state before the last commit (period 5), when asked


def test_missing_array_data_is_corrupt(filled):
    loc = filled.location
    loc.fs.rm(loc.join("data", "count"), recursive=True)
    with pytest.raises(CorruptStoreError, match="'count' is missing"):
        CubeStore(loc.url)


def test_verify_detects_changed_bytes(tmp_path, schema):
    store = CubeStore.create(tmp_path / "c", example_schema(compression="none"))
    store.append(example_slice(schema, 1), 1, coords=example_coords(1))
    chunk = next(
        p for p in (tmp_path / "c" / "data" / "count").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    raw = bytearray(chunk.read_bytes())
    raw[0] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="does not match its committed checksum"):
        CubeStore(tmp_path / "c").verify()


def test_second_writer_in_process_is_locked_out(filled, schema):
    other = CubeStore(filled.location.url, mode="r+", lock_timeout=0)
    with WriterLock(Location.parse(filled.location.url), ".lock"):
        with pytest.raises(StoreLockedError, match="locked by another writer"):
            other.append(example_slice(schema, 1), 1, coords=example_coords(1))
    other.append(example_slice(schema, 1), 1, coords=example_coords(1))
    assert other.labels == [1, 2, 5, 7]


def test_commit_by_other_handle_is_seen_after_refresh(filled, schema):
    reader = CubeStore(filled.location.url)
    filled.append(example_slice(schema, 11), 11, coords=example_coords(11))
    assert 11 not in reader
    reader.refresh()
    assert 11 in reader


def test_manifests_are_pruned_only_explicitly(tmp_path, schema):
    store = CubeStore.create(tmp_path / "c", schema)
    for label in range(12):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    assert len(store.location.listdir("manifests")) == 13  # versions 0-12, none pruned
    report = store.prune(keep_last=8)
    assert report.removed_versions == (0, 1, 2, 3, 4)
    assert len(store.location.listdir("manifests")) == 8
    assert CubeStore(tmp_path / "c").labels == list(range(12))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"append_dim": ""}, "append_dim must be a non-empty string"),
        ({"sizes": {"row": 0, "col": 3}}, r"sizes\['row'\] must be an integer >= 1, got 0"),
        (
            {"chunks": {"band": 2}},
            r"chunks dimensions must be drawn from \['col', 'row', 't'\], got unknown \['band'\]",
        ),
        ({"compression": "gzip"}, "compression must be one of"),
        ({"label_dtype": "float"}, "label_dtype must be one of"),
        (
            {"variables": {"x": VariableSpec(("row", "band"), "float32")}},
            r"variables\['x'\]\.dims must be drawn from \['col', 'row'\], got unknown \['band'\]",
        ),
    ],
)
def test_schema_validation(kwargs, match):
    base = {
        "append_dim": "t",
        "sizes": {"row": 3, "col": 3},
        "variables": {"x": VariableSpec(("row", "col"), "float32")},
    }
    with pytest.raises(ValueError, match=match):
        CubeSchema(**{**base, **kwargs})


def test_string_labels(store_url):
    schema = CubeSchema(
        append_dim="run",
        sizes={"n": 4},
        variables={"v": VariableSpec(("n",), "float64")},
        label_dtype="str",
    )
    store = CubeStore.create(store_url, schema)
    store.append(xr.Dataset({"v": ("n", np.arange(4.0))}), "b")
    store.append(xr.Dataset({"v": ("n", -np.arange(4.0))}), "a")
    ds = store.to_dataset(lazy=False)
    assert list(ds["run"].values) == ["a", "b"]
    np.testing.assert_array_equal(ds["v"].sel(run="b").values, np.arange(4.0))


def test_extras_are_committed_with_the_slice(store_url, schema):
    store = CubeStore.create(store_url, schema)
    darks = {"darks": [{"rootname": "o3sl01pcq", "exptime": 1100.0}]}
    store.append(example_slice(schema, 1), 1, coords=example_coords(1), extras=darks)
    store.append(example_slice(schema, 2), 2, coords=example_coords(2))
    reopened = CubeStore(store_url)
    assert reopened.slice_extras(1) == darks
    assert reopened.slice_extras(2) is None
    reopened.verify()
    store.replace(example_slice(schema, 1), 1, coords=example_coords(1), extras={"darks": []})
    assert CubeStore(store_url).slice_extras(1) == {"darks": []}
    before = tree_digest(store_url)
    with pytest.raises(SchemaMismatchError, match="extras are not JSON-serialisable"):
        store.append(example_slice(schema, 3), 3, coords=example_coords(3), extras={"x": {1, 2}})
    assert tree_digest(store_url) == before


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"compression": "none"},
        {"compression": "blosc"},
        {"shards": {"row": 32, "col": 24}},
    ],
    ids=["zstd", "none", "blosc", "sharded"],
)
def test_fast_window_reads_match_full_reads(store_url, options):
    schema = example_schema(shape=(32, 24), chunks=(8, 6), **options)
    store = CubeStore.create(store_url, schema)
    for label in (3, 1, 2):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    full = CubeStore(store_url).to_dataset(lazy=False)
    reader = CubeStore(store_url)
    windows = [
        {"row": 5, "col": 7},
        {"row": slice(3, 20), "col": slice(0, 24)},
        {"row": slice(30, 32), "col": 23},
        {},
    ]
    for window in windows:
        for labels in (2, [3, 1]):
            got = reader.read_arrays(labels, **window)
            expected = full.sel(period=labels).isel(window)
            for name in ("signal", "count"):
                assert got[name].dtype == expected[name].dtype
                assert got[name].tobytes() == expected[name].values.tobytes(), (window, labels)
    xr.testing.assert_identical(
        reader.read_window([1, 2], row=slice(2, 9)), full.sel(period=[1, 2]).isel(row=slice(2, 9))
    )
    with pytest.raises(IndexError, match="out of range for dimension 'row'"):
        reader.read_arrays(1, row=32)
    with pytest.raises(ValueError, match="step 1"):
        reader.read_arrays(1, row=slice(0, 10, 2))
    with pytest.raises(KeyNotFoundError):
        reader.read_arrays(9)


def test_read_arrays_subset_of_variables(filled, schema):
    got = filled.read_arrays([2, 7], variables=["count"], row=3)
    assert list(got) == ["count"]
    np.testing.assert_array_equal(
        got["count"], [example_slice(schema, n)["count"].values[3] for n in (2, 7)]
    )
    with pytest.raises(KeyNotFoundError, match=r"no variables \['nope'\]"):
        filled.read_arrays(2, variables=["nope"])


def test_commit_is_append_then_replace(filled, schema):
    """append and replace are commit with replace fixed: same slices, same recorded action."""
    filled.commit(example_slice(schema, 9), 9, coords=example_coords(9))
    filled.commit(example_slice(schema, 9, seed=1), 9, coords=example_coords(9), replace=True)
    got = filled.read_arrays(9)
    expected = example_slice(schema, 9, seed=1)
    np.testing.assert_array_equal(got["signal"], expected["signal"].values)
    np.testing.assert_array_equal(got["count"], expected["count"].values)
    actions = [(v["action"], v["label"]) for v in filled.versions()[-2:]]
    assert actions == [("append", 9), ("replace", 9)]
    with pytest.raises(SliceExistsError, match="period 9 is already in .*use replace"):
        filled.commit(example_slice(schema, 9), 9, coords=example_coords(9))
    with pytest.raises(TypeError, match="got multiple values for keyword argument 'replace'"):
        filled.append(example_slice(schema, 9), 9, coords=example_coords(9), replace=True)


def test_argument_errors_name_the_parameter_and_write_nothing(filled, schema, tmp_path):
    url = filled.location.url
    before = tree_digest(url)
    with pytest.raises(TypeError, match=r"^replace must be True or False, got 1$"):
        filled.commit(example_slice(schema, 9), 9, coords=example_coords(9), replace=1)
    with pytest.raises(
        ValueError, match=r"^window dimensions must be drawn from \['col', 'row'\], got unknown"
    ):
        filled.read_arrays(2, band=0)
    with pytest.raises(ValueError, match=r"^lock_timeout must be >= 0 \(seconds\), got -1$"):
        CubeStore(url, lock_timeout=-1)
    with pytest.raises(TypeError, match=r"^version must be an integer or None, got '1'$"):
        CubeStore(url, version="1")
    with pytest.raises(TypeError, match=r"^keep_last must be an integer, got 1.5$"):
        filled.prune(keep_last=1.5)
    with pytest.raises(TypeError, match=r"^schema must be a CubeSchema, got dict$"):
        CubeStore.create(tmp_path / "new", {})
    assert tree_digest(url) == before
    assert not (tmp_path / "new").exists()
    assert CubeStore(url, lock_timeout=float("inf")).lock_timeout == float("inf")
