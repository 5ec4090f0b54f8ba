"""CubeStore under SIGKILL and under two concurrent writer processes."""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import pytest

from stores import CubeStore, SliceExistsError
from stores.common.testing import example_coords, example_schema, example_slice
from tests.stores._writers import race, start_writer

BASE_LABELS = [1, 2, 3]
NEW_LABEL = 4
SEED_NEW = 77


def _writer(store, operation, label, *, seed=SEED_NEW, **options):
    return start_writer(store, operation, label, seed, **options)


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """A committed store with periods 1-3 (seed 0), copied afresh for every trial."""
    path = tmp_path_factory.mktemp("base") / "cube"
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    store = CubeStore.create(path, schema)
    for label in BASE_LABELS:
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    return path


@pytest.fixture(scope="module")
def puts_per_write(base_store, tmp_path_factory):
    """How many chunk/manifest objects one append writes (measured, not assumed)."""
    path = tmp_path_factory.mktemp("count") / "cube"
    shutil.copytree(base_store, path)
    proc = _writer(path, "append", NEW_LABEL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return int(out.split("WROTE")[1])


def _assert_consistent(path, operation):
    """The store opens, holds only complete slices, bit-identical to what was written."""
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    store = CubeStore(path, mode="r+")
    store.verify()
    ds = store.to_dataset(lazy=False)
    labels = list(ds["period"].values)
    committed_new = {
        "append": NEW_LABEL in labels,
        "replace": None,  # decided below from the values
    }[operation]
    assert labels in (BASE_LABELS, [*BASE_LABELS, NEW_LABEL])
    for label in BASE_LABELS:
        got = ds.sel(period=label)
        original = example_slice(schema, label)
        replaced = example_slice(schema, label, seed=SEED_NEW)
        for name in ("signal", "count"):
            raw = got[name].values.tobytes()
            if operation == "replace" and label == 2:
                new = replaced[name].values.tobytes()
                assert raw in (original[name].values.tobytes(), new)
                is_new = raw == new
                committed_new = is_new if committed_new is None else committed_new
                assert committed_new == is_new, "slice mixes old and new variables"
            else:
                assert raw == original[name].values.tobytes()
    if operation == "append" and committed_new:
        new = example_slice(schema, NEW_LABEL, seed=SEED_NEW)
        for name in ("signal", "count"):
            assert ds[name].sel(period=NEW_LABEL).values.tobytes() == new[name].values.tobytes()
    return committed_new


def _rerun(path, operation):
    """The same write is accepted again after the crash."""
    label = NEW_LABEL if operation == "append" else 2
    proc = _writer(path, operation, label)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    store = CubeStore(path)
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    expected = example_slice(schema, label, seed=SEED_NEW)
    np.testing.assert_array_equal(store.read_slice(label)["count"].values, expected["count"].values)
    store.verify()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("operation", "fraction"),
    [("append", f) for f in np.linspace(0.0, 1.1, 12).round(2).tolist()]
    + [("replace", f) for f in (0.05, 0.35, 0.65, 0.95, 1.05)],
)
def test_sigkill_during_write(base_store, tmp_path, operation, fraction):
    """Another process SIGKILLs the writer at 12 moments spread over a stretched write."""
    path = tmp_path / "cube"
    shutil.copytree(base_store, path)
    delay = 0.004
    # 2 variables x 48 chunks + checksum file + manifest objects, each delayed: ~0.4 s
    duration = (2 * 48 + 2) * delay
    proc = _writer(path, operation, NEW_LABEL if operation == "append" else 2, delay=delay)
    assert proc.stdout.readline().strip() == "START"
    time.sleep(fraction * duration)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    committed = _assert_consistent(path, operation)
    if operation == "append" and committed:
        store = CubeStore(path, mode="r+")
        schema = example_schema(shape=(64, 48), chunks=(8, 8))
        with pytest.raises(SliceExistsError):
            store.append(example_slice(schema, NEW_LABEL), NEW_LABEL, coords=example_coords(4))
    else:
        _rerun(path, operation)


DEATHS = [("append", k) for k in (1, 2, 10, 30, 48, 49, 50, 70, 96, 97, 98)] + [
    ("replace", k) for k in (1, 49, 96, 97, 98)
]


@pytest.mark.slow
@pytest.mark.parametrize(("operation", "step"), DEATHS)
def test_sigkill_before_object_write(base_store, puts_per_write, tmp_path, operation, step):
    """The writer dies just before its k-th object write (the 98th is the manifest)."""
    # 2 x 48 chunks + the chunk-checksum file + the manifest: the steps above cover the edges
    assert puts_per_write == 98
    path = tmp_path / "cube"
    shutil.copytree(base_store, path)
    proc = _writer(path, operation, NEW_LABEL if operation == "append" else 2, die_at=step)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    committed = _assert_consistent(path, operation)
    assert not committed  # it died before publishing, so the old state must be intact
    _rerun(path, operation)


@pytest.mark.slow
@pytest.mark.parametrize("lock_timeout", [0.0, 30.0])
def test_two_concurrent_writers(base_store, tmp_path, lock_timeout):
    """Two processes append at once: one waits or fails with StoreLockedError."""
    path = tmp_path / "cube"
    shutil.copytree(base_store, path)
    go = tmp_path / "go"
    procs = {
        label: _writer(path, "append", label, delay=0.003, lock_timeout=lock_timeout, go_file=go)
        for label in (10, 11)
    }
    outcomes = race(procs, go, timeout=120)
    for end in outcomes.values():
        assert end.status in ("WROTE", "LOCKED"), end.err
        if end.status == "LOCKED":
            assert end.returncode == 3 and "locked by another writer" in end.out
    written = sorted(label for label, end in outcomes.items() if end.status == "WROTE")
    if lock_timeout:
        assert written == [10, 11]
    else:
        assert len(written) >= 1
    store = CubeStore(path)
    store.verify()
    assert store.labels == [*BASE_LABELS, *written]
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    for label in written:
        expected = example_slice(schema, label, seed=SEED_NEW)
        got = store.read_slice(label)
        assert got["signal"].values.tobytes() == expected["signal"].values.tobytes()
