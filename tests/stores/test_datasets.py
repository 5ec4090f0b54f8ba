"""DatasetStore: round trips, atomic replacement, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stores import (
    CorruptStoreError,
    DatasetStore,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    StoreExistsError,
)
from stores.common.testing import tree_digest
from tests._cluster import NO_DASHBOARD


def _photometry(seed: int = 0, n_image: int = 3, n_star: int = 5) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    times = pd.to_datetime(
        ["2012-03-01T10:00:00.123456789", "2015-06-30T23:59:59", "2019-01-01"], format="ISO8601"
    )[:n_image]
    ds = xr.Dataset(
        {
            "flux": (("image", "star", "aperture"), rng.normal(1e4, 100, (n_image, n_star, 2))),
            "flags": (("image", "star"), rng.integers(0, 8, (n_image, n_star)).astype("int32")),
        },
        coords={
            "image": np.array([f"ib{i:02d}abc_flc" for i in range(n_image)]),
            "rootname": (
                "image",
                np.array(["ib0001a", "ib0002b", "ib0003c"][:n_image], dtype=object),
            ),
            "obs_time": ("image", times.values),
            "mjd": ("image", 55000.0 + np.arange(n_image)),
            "star": np.arange(n_star, dtype="int64") + 100,
            "aperture": [3.0, 5.0],
        },
        attrs={"target": "ngc104", "filter": "F502N", "flash": 12},
    )
    ds["flux"].attrs = {"units": "electron", "long_name": "aperture flux"}
    return ds


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_roundtrip(store_url, lazy):
    store = DatasetStore(store_url)
    ds = _photometry()
    store.write(("ngc104", "F502N", "flash12"), ds)
    reader = DatasetStore(store_url, mode="r")
    got = reader.read("ngc104/F502N/flash12", chunks={} if lazy else None)
    assert isinstance(got["flux"].data, da.Array) is lazy
    xr.testing.assert_identical(got.load(), ds)
    assert got["obs_time"].dtype == np.dtype("datetime64[ns]")
    assert got["obs_time"].values[0] == np.datetime64("2012-03-01T10:00:00.123456789")
    assert list(got["rootname"].values) == ["ib0001a", "ib0002b", "ib0003c"]
    assert got.attrs == {"target": "ngc104", "filter": "F502N", "flash": 12}
    got.close()


def test_keys_read_many_read_all_delete(store_url):
    store = DatasetStore(store_url)
    keys = ["ngc104/F502N/flash12", "ngc104/F502N/flash0", "ngc6791/F606W/flash0"]
    for i, key in enumerate(keys):
        store.write(key, _photometry(seed=i))
    assert store.keys() == sorted(keys)
    assert len(store) == 3 and "ngc104/F502N/flash0" in store and "nope" not in store
    many = store.read_many([keys[2], keys[0]])
    assert list(many) == [keys[2], keys[0]]
    xr.testing.assert_identical(many[keys[0]], _photometry(seed=0))
    everything = store.read_all()
    assert sorted(everything) == sorted(keys)
    xr.testing.assert_identical(everything[keys[1]], _photometry(seed=1))
    store.delete(keys[1])
    assert store.keys() == sorted([keys[0], keys[2]])


def test_write_replaces_previous_version(store_url):
    store = DatasetStore(store_url)
    store.write("a/b", _photometry(seed=1))
    store.write("a/b", _photometry(seed=2, n_image=2))
    xr.testing.assert_identical(store.read("a/b"), _photometry(seed=2, n_image=2))
    assert store.keys() == ["a/b"]


def test_unknown_key(store_url):
    store = DatasetStore(store_url)
    store.write("a/b", _photometry())
    before = tree_digest(store_url)
    with pytest.raises(KeyNotFoundError, match=r"no dataset under key 'a/c' .* keys held: \[a/b\]"):
        store.read("a/c")
    with pytest.raises(KeyNotFoundError):
        store.read_many(["a/b", "zz"])
    with pytest.raises(KeyNotFoundError):
        store.delete("zz")
    assert tree_digest(store_url) == before


@pytest.mark.parametrize(
    "key", ["", "../up", "a/.hidden", "a b", ("x", "y.nc"), "abc\n", ("a", "b\n"), "a\tb"]
)
def test_invalid_keys(store_url, key):
    """Issue 24 R4: 'abc\\n' was accepted (a regex "$" matches before a final newline)."""
    store = DatasetStore(store_url)
    with pytest.raises((ValueError, TypeError), match="key"):
        store.write(key, _photometry())


def test_read_only_refuses_writes(store_url):
    DatasetStore(store_url).write("a/b", _photometry())
    before = tree_digest(store_url)
    ro = DatasetStore(store_url, mode="r")
    with pytest.raises(ReadOnlyStoreError, match="opened read-only"):
        ro.write("a/b", _photometry(seed=3))
    with pytest.raises(ReadOnlyStoreError):
        ro.delete("a/b")
    assert tree_digest(store_url) == before


def test_unencodable_dataset_writes_nothing(store_url):
    store = DatasetStore(store_url)
    store.write("a/b", _photometry())
    before = tree_digest(store_url)
    bad = _photometry(seed=5)
    bad.attrs["nested"] = {"not": "allowed"}
    with pytest.raises(SchemaMismatchError, match="key 'a/b': dataset cannot be stored"):
        store.write("a/b", bad)
    with pytest.raises(SchemaMismatchError, match="expected an xarray.Dataset"):
        store.write("a/b", bad["flux"])
    assert tree_digest(store_url) == before
    xr.testing.assert_identical(store.read("a/b"), _photometry())


def test_not_a_store(tmp_path):
    with pytest.raises(NotAStoreError, match="not a dataset store"):
        DatasetStore(tmp_path / "missing", mode="r")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("data")
    before = tree_digest(tmp_path / "other")
    with pytest.raises(NotAStoreError, match="refusing to write into it"):
        DatasetStore(tmp_path / "other")
    assert tree_digest(tmp_path / "other") == before
    DatasetStore(tmp_path / "new")
    with pytest.raises(StoreExistsError, match="already exists"):
        DatasetStore(tmp_path / "new", mode="w-")


def test_corrupt_file(tmp_path):
    store = DatasetStore(tmp_path / "s")
    store.write("a/b", _photometry())
    (tmp_path / "s" / "a" / "b.nc").write_bytes(b"\x89HDF\r\n truncated")
    with pytest.raises(CorruptStoreError, match="key 'a/b' .* unreadable netCDF"):
        store.read("a/b")
    (tmp_path / "s" / "datasetstore.json").write_text("{oops")
    with pytest.raises(CorruptStoreError, match="unreadable datasetstore.json"):
        DatasetStore(tmp_path / "s")


@pytest.mark.slow
def test_sigkill_during_write_keeps_previous_version(tmp_path):
    """A writer killed while replacing a key leaves the previous version readable."""
    store = DatasetStore(tmp_path / "s")
    original = _photometry(seed=1)
    store.write("a/b", original)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from stores import DatasetStore
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_datasets import _photometry
        real_fsync = os.fsync
        def die(fd):  # the temporary file is written but not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        DatasetStore({str(tmp_path / "s")!r}).write("a/b", _photometry(seed=2, n_image=2))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    reopened = DatasetStore(tmp_path / "s")
    xr.testing.assert_identical(reopened.read("a/b"), original)
    reopened.write("a/b", _photometry(seed=2, n_image=2))  # and the same write succeeds again
    xr.testing.assert_identical(reopened.read("a/b"), _photometry(seed=2, n_image=2))
    assert not list((tmp_path / "s" / "a").glob(".*.tmp"))


@pytest.mark.slow
def test_write_under_a_distributed_client(tmp_path):
    from dask.distributed import Client, LocalCluster

    ds = _photometry().chunk({"image": 1})
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, **NO_DASHBOARD)
        as cluster,
        Client(cluster),
    ):
        store = DatasetStore(tmp_path / "s")
        store.write("a/b", ds)
    xr.testing.assert_identical(store.read("a/b"), _photometry())
