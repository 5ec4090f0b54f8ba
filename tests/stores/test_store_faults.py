"""CubeStore and DatasetStore under hostile input and faults (issue 14, store side).

Each test is derived from a reproducer of issue 14 (numbers in the docstrings), or from
issue 10 (versions, no trap on disk) and issue 15 (the store mutants).  Data cases show
the store hashed unchanged, or its committed values intact and bit-identical, after the
failure.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr
from fsspec.implementations.memory import MemoryFileSystem

import stores
from stores import (
    CorruptStoreError,
    CubeStore,
    DatasetStore,
    KeyNotFoundError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    StoreLockedError,
    StoreWriteError,
)
from stores.common.testing import example_coords, example_schema, example_slice, tree_digest
from stores.storage.direct import DirectReader
from stores.storage.fs import Location
from tests._threads import errors_in_threads
from tests.stores._writers import race, start_writer


def _truth(schema, label, seed=0):
    """The values written for *label* (the simulator's own numbers, not read back)."""
    return example_slice(schema, label, seed=seed)


def _fill(url, schema, labels=(1, 2, 3)):
    store = CubeStore.create(url, schema)
    for label in labels:
        store.append(_truth(schema, label), label, coords=example_coords(label))
    return store


def _assert_values(store, schema, labels, seeds=None):
    """Every slice equals the values written (bit for bit, NaNs included)."""
    seeds = seeds or {}
    for label in labels:
        got = store.read_arrays(label)
        expected = _truth(schema, label, seeds.get(label, 0))
        for name in ("signal", "count"):
            assert got[name].tobytes() == expected[name].values.tobytes(), (label, name)


# -- 14.1, 14.2, 14.13: validation at the store's boundary ---------------------------------
@pytest.mark.parametrize("label", [2**63, -(2**63) - 1, 2**70, np.uint64(2**63)])
def test_label_outside_int64_is_refused_before_writing(tmp_path, label):
    """14.1: `--anneal 9223372036854775808` was committed and bricked the database."""
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    before = tree_digest(tmp_path / "c")
    with pytest.raises(SchemaMismatchError, match="outside the int64 range"):
        store.append(_truth(schema, 9), label, coords=example_coords(9))
    assert tree_digest(tmp_path / "c") == before
    reopened = CubeStore(tmp_path / "c")
    assert reopened.labels == [1, 2, 3]
    assert label not in reopened
    with pytest.raises(SchemaMismatchError, match="outside the int64 range"):
        reopened.read_arrays(label)


def test_largest_int64_label_round_trips(tmp_path):
    schema = example_schema()
    store = CubeStore.create(tmp_path / "c", schema)
    top = 2**63 - 1
    store.append(_truth(schema, 1), top, coords=example_coords(1))
    ds = CubeStore(tmp_path / "c").to_dataset(lazy=False)
    assert int(ds["period"].values[0]) == top


@pytest.mark.parametrize(
    "start",
    [
        "9999-01-01",  # became 1816-02-28
        "0001-01-01",  # became 1754-08-30
        np.datetime64("2262-04-12", "D"),
        np.datetime64("1677-09-20", "D"),
        np.datetime64("3000-01-01T00:00:00", "s"),
    ],
)
def test_dates_outside_datetime64ns_are_refused_not_wrapped(tmp_path, start):
    """14.2: out-of-range dates were stored silently wrong."""
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    before = tree_digest(tmp_path / "c")
    with pytest.raises(SchemaMismatchError, match=r"outside the datetime64\[ns\] range"):
        store.append(_truth(schema, 9), 9, coords=example_coords(9) | {"start": start})
    assert tree_digest(tmp_path / "c") == before


@pytest.mark.parametrize("start", [1e5, 60000, True])
def test_bare_numbers_are_not_dates(tmp_path, start):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema, labels=())
    before = tree_digest(tmp_path / "c")
    with pytest.raises(SchemaMismatchError, match="'start' must be a scalar of type datetime64"):
        store.append(_truth(schema, 9), 9, coords=example_coords(9) | {"start": start})
    assert tree_digest(tmp_path / "c") == before


@pytest.mark.parametrize(
    "start", ["2262-04-11", "1677-09-22", "2031-01-01T12:00:00.123456789"]
)
def test_dates_at_the_range_edges_round_trip(tmp_path, start):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema, labels=())
    store.append(_truth(schema, 1), 1, coords=example_coords(1) | {"start": start})
    got = CubeStore(tmp_path / "c").to_dataset(lazy=False)["start"].values[0]
    assert got == np.datetime64(start, "ns")  # numpy parses this in range: independent truth


def test_integer_slice_coordinate_overflow_is_refused(tmp_path):
    schema = example_schema()
    schema = type(schema)(**{**schema.__dict__, "slice_coords": {"n": "int64"}})
    store = CubeStore.create(tmp_path / "c", schema)
    before = tree_digest(tmp_path / "c")
    with pytest.raises(SchemaMismatchError, match=r"'n' = 18446744073709551616 is outside"):
        store.append(_truth(schema, 1), 1, coords={"n": 2**64})
    with pytest.raises(SchemaMismatchError, match=r"'n' = 9223372036854775808 is outside"):
        store.append(_truth(schema, 1), 1, coords={"n": np.uint64(2**63)})
    assert tree_digest(tmp_path / "c") == before


@pytest.mark.parametrize("kind", ["cube", "datasets"])
@pytest.mark.parametrize("version", ["1", 1.0, None, True, [1]])
def test_marker_version_of_wrong_type(tmp_path, kind, version):
    """14.13: a marker version given as the string "1" raised a bare TypeError."""
    if kind == "cube":
        _fill(tmp_path / "s", example_schema(), labels=())
        marker = tmp_path / "s" / "cubestore.json"
    else:
        DatasetStore(tmp_path / "s")
        marker = tmp_path / "s" / "datasetstore.json"
    doc = json.loads(marker.read_text())
    doc["version"] = version
    marker.write_text(json.dumps(doc))
    before = tree_digest(tmp_path / "s")
    opener = CubeStore if kind == "cube" else DatasetStore
    with pytest.raises(CorruptStoreError, match=f"{marker.name}.*version must be an integer"):
        opener(tmp_path / "s", mode="r")
    assert tree_digest(tmp_path / "s") == before


# -- 14.3: the lock is held across the caller's checks ---------------------------------
def test_writing_holds_the_lock_refreshes_and_is_reentrant(tmp_path):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    other = CubeStore(tmp_path / "c", mode="r+", lock_timeout=0)
    other.append(_truth(schema, 4), 4, coords=example_coords(4))
    assert 4 not in store  # stale until refreshed
    with store.writing() as held:
        assert held is store and 4 in store  # refreshed under the lock
        with pytest.raises(StoreLockedError, match="locked by another writer"):
            other.append(_truth(schema, 5), 5, coords=example_coords(5))
        store.append(_truth(schema, 5), 5, coords=example_coords(5))  # re-entrant
        with store.writing():
            store.replace(_truth(schema, 1, seed=3), 1, coords=example_coords(1))
    other.append(_truth(schema, 6), 6, coords=example_coords(6))  # released
    _assert_values(CubeStore(tmp_path / "c"), schema, [1, 2, 3, 4, 5, 6], seeds={1: 3})


def test_writing_refuses_read_only_and_old_versions(tmp_path):
    _fill(tmp_path / "c", example_schema(), labels=(1,))
    for handle in (CubeStore(tmp_path / "c"), CubeStore(tmp_path / "c", version=1)):
        with pytest.raises(ReadOnlyStoreError), handle.writing():
            pass


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_check_then_write_under_writing_is_exclusive(tmp_path, trial):
    """14.3: two writers of different labels with the same start both committed (3/3)."""
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    _fill(tmp_path / "c", schema, labels=(1,))
    go = tmp_path / "go"
    procs = {
        label: start_writer(tmp_path / "c", "append", label, 0, lock_timeout=60, go_file=go,
                            exclusive_start=True)
        for label in (10, 11)
    }
    outcomes = race(procs, go, timeout=120)
    for end in outcomes.values():
        assert end.returncode in (0, 4), end.err
    assert sorted(end.status for end in outcomes.values()) == ["OVERLAP", "WROTE"]
    store = CubeStore(tmp_path / "c")
    assert len(store.labels) == 2
    store.verify()


# -- 14.7, 14.9: an atomic lock on every accepted backend, normalised URLs ---------------
def test_memory_urls_are_normalised():
    a, b = Location.parse("memory://x/y"), Location.parse("memory:///x/y/")
    assert a.url == b.url and a.key == b.key and a.root == b.root == "/x/y"


def test_local_and_file_urls_are_absolute_local_paths(tmp_path, monkeypatch):
    """14.7: `CubeStore.create('local:///abs')` resolved the path against the cwd."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "abs" / "cube"
    for url in (f"local://{target}", f"file://{target}"):
        loc = Location.parse(url)
        assert loc.is_local and loc.root == str(target)
    store = CubeStore.create(f"local://{target}", example_schema())
    store.append(_truth(example_schema(), 1), 1, coords=example_coords(1))
    assert (target / "cubestore.json").is_file()
    assert not (tmp_path / "abs" / "cube" / "abs").exists()
    assert not any(p.name == "local:" for p in tmp_path.iterdir())
    assert CubeStore(str(target)).labels == [1]


def test_memory_lock_is_shared_by_both_url_spellings():
    """14.7: memory://x and memory:///x were locked separately (11/40 mixed slices)."""
    root = f"memtest-{os.getpid()}-{threading.get_ident()}"
    schema = example_schema()
    _fill(f"memory://{root}/c", schema, labels=(1,))
    a = CubeStore(f"memory://{root}/c", mode="r+")
    b = CubeStore(f"memory:///{root}/c", mode="r+", lock_timeout=0)
    try:
        with a.writing(), pytest.raises(StoreLockedError, match="locked by another writer"):
            b.append(_truth(schema, 2), 2, coords=example_coords(2))
    finally:
        fsspec.filesystem("memory").rm(f"/{root}", recursive=True)


def test_concurrent_writers_on_memory(tmp_path):
    """Concurrent writers on memory:// (in-process by nature: threads, two URL spellings)."""
    root = f"memconc-{os.getpid()}"
    schema = example_schema(shape=(64, 48), chunks=(8, 8))
    _fill(f"memory://{root}/c", schema, labels=(1,))
    urls = [f"memory://{root}/c", f"memory:///{root}/c"]
    labels = list(range(10, 30))

    def work(i):
        store = CubeStore(urls[i % 2], mode="r+", lock_timeout=60)
        for label in labels[i::4]:
            store.append(_truth(schema, label, seed=label), label, coords=example_coords(label))

    errors = errors_in_threads(work, 4)
    try:
        assert not errors
        store = CubeStore(urls[1])
        assert store.labels == [1, *labels]
        store.verify()
        _assert_values(store, schema, labels, seeds={n: n for n in labels})
        assert len({store.slice_info(n)["slot"] for n in store.labels}) == len(store.labels)
    finally:
        fsspec.filesystem("memory").rm(f"/{root}", recursive=True)


class _NoLockMemory(MemoryFileSystem):
    """A backend without an atomic create known to the stores (shares memory's objects)."""

    protocol = "nolockmem"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("nolockmem://", "memory://", 1))


def test_backend_without_atomic_create_is_read_only():
    """14.7: a "check, then write" lock let two writers in; such backends refuse writes."""
    fsspec.register_implementation("nolockmem", _NoLockMemory, clobber=True)
    root = f"nolock-{os.getpid()}"
    schema = example_schema()
    _fill(f"memory://{root}/c", schema, labels=(1,))
    try:
        before = tree_digest(f"memory://{root}/c")
        store = CubeStore(f"nolockmem://{root}/c", mode="r+")
        assert store.labels == [1]  # readable
        _assert_values(store, schema, [1])
        with pytest.raises(ReadOnlyStoreError, match="no atomic create for the writer lock"):
            store.append(_truth(schema, 2), 2, coords=example_coords(2))
        with pytest.raises(ReadOnlyStoreError, match="no atomic create"):
            CubeStore.create(f"nolockmem://{root}/d", schema)
        assert tree_digest(f"memory://{root}/c") == before
    finally:
        fsspec.filesystem("memory").rm(f"/{root}", recursive=True)


def test_lock_stamp_failure_does_not_leave_the_lock_held(tmp_path, monkeypatch):
    """14.9: ENOSPC while writing the owner stamp kept the lock for the process's life."""
    schema = example_schema()
    store = _fill(tmp_path / "c", schema, labels=(1,))
    before = tree_digest(tmp_path / "c")
    real = os.pwrite

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StoreWriteError, match=f"writer lock of {tmp_path / 'c'}.*No space") as e:
        store.append(_truth(schema, 2), 2, coords=example_coords(2))
    assert e.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "pwrite", real)
    assert tree_digest(tmp_path / "c") == before
    other = CubeStore(tmp_path / "c", mode="r+")  # the lock is free again
    other.append(_truth(schema, 2), 2, coords=example_coords(2))
    _assert_values(CubeStore(tmp_path / "c"), schema, [1, 2])


# -- 14.6: every read verifies what it touches ----------------------------------------
def _chunk_files(root, name):
    return sorted(
        p for p in (Path(root) / "data" / name / "c").rglob("*")
        if p.is_file() and not p.name.endswith(".partial")
    )


def _readers(store):
    """Every public read path, each reading slice 2 whole."""
    return {
        "read_arrays": lambda: store.read_arrays(2),
        "read_arrays-point": lambda: store.read_arrays([2], row=0, col=0),
        "read_window": lambda: store.read_window(2, row=slice(0, 32)),
        "to_dataset-eager": lambda: store.to_dataset(lazy=False),
        "to_dataset-dask": lambda: store.to_dataset(lazy=True).load(),
        "read_slice": lambda: store.read_slice(2),
        "verify": store.verify,
    }


LAYOUTS = {
    "none": {"compression": "none"},
    "zstd": {"compression": "zstd"},
    "blosc": {"compression": "blosc"},
    "sharded": {"compression": "zstd", "shards": {"row": 32, "col": 24}},
}


@pytest.mark.parametrize("damage", ["flip-byte", "zero-fill", "truncate", "delete"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_damaged_chunks_raise_on_every_read_path(tmp_path, layout, damage):
    """14.6: garbage (uncompressed), NaN (deleted) or a bare RuntimeError (compressed)."""
    schema = example_schema(**LAYOUTS[layout])
    store = _fill(tmp_path / "c", schema)
    slot = store.slice_info(2)["slot"]
    target = next(p for p in _chunk_files(tmp_path / "c", "signal") if p.parts[-3] == str(slot))
    raw = bytearray(target.read_bytes())
    if damage == "flip-byte":
        raw[5 if layout == "sharded" else len(raw) // 3] ^= 0x5A  # inside chunk 0.0
        target.write_bytes(bytes(raw))
    elif damage == "zero-fill":
        target.write_bytes(bytes(len(raw)))
    elif damage == "truncate":
        target.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        target.unlink()
    reader = CubeStore(tmp_path / "c")
    for path, read in _readers(reader).items():
        with pytest.raises(CorruptStoreError, match=r"period 2, variable 'signal'") as exc:
            read()
        assert str(target) in str(exc.value) or "shard index" in str(exc.value), path
    # the other slices and variables are untouched and still read right
    _assert_values(reader, schema, [1, 3])
    assert reader.read_arrays(2, variables=["count"])["count"].tobytes() == (
        _truth(schema, 2)["count"].values.tobytes()
    )


def test_point_read_touching_only_good_chunks_still_works(tmp_path):
    schema = example_schema(compression="none")
    store = _fill(tmp_path / "c", schema)
    slot = store.slice_info(2)["slot"]
    (tmp_path / "c" / "data" / "signal" / "c" / str(slot) / "1" / "1").write_bytes(b"x" * 768)
    reader = CubeStore(tmp_path / "c")
    got = reader.read_arrays(2, row=0, col=0)["signal"]  # chunk 0.0 is intact
    assert got.tobytes() == _truth(schema, 2)["signal"].values[0, 0].tobytes()
    with pytest.raises(CorruptStoreError, match=r"chunk 1\.1 .* does not match"):
        reader.read_arrays(2, row=31, col=23)


def test_checksum_table_tampering_is_caught(tmp_path):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    slot = store.slice_info(2)["slot"]
    path = tmp_path / "c" / "checksums" / f"{slot:08d}.json"
    doc = json.loads(path.read_text())
    doc["variables"]["signal"]["0.0"] = 1
    path.write_text(json.dumps(doc, sort_keys=True))
    with pytest.raises(CorruptStoreError, match=r"period 2: checksum file .* does not match"):
        CubeStore(tmp_path / "c").read_arrays(2, row=0, col=0)
    path.unlink()
    with pytest.raises(CorruptStoreError, match=r"period 2: checksum file .* is missing"):
        CubeStore(tmp_path / "c").read_arrays(2, row=0, col=0)


@pytest.mark.parametrize("name", ["signal", "count"])
def test_corrupt_array_metadata_names_the_file(tmp_path, name):
    """14.6: a corrupt zarr.json raised a bare JSONDecodeError."""
    _fill(tmp_path / "c", example_schema())
    meta = tmp_path / "c" / "data" / name / "zarr.json"
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(CorruptStoreError, match=f"variable '{name}'.*{meta}"):
        CubeStore(tmp_path / "c")
    with pytest.raises(CorruptStoreError, match=str(meta)):
        DirectReader(Location.parse(tmp_path / "c"), ("data", name))


def test_slices_without_chunk_checksums_are_verified_by_value(tmp_path):
    """A store written before per-chunk checksums: the slot's SHA-256 is checked on read."""
    schema = example_schema(compression="none")
    store = _fill(tmp_path / "c", schema)
    mdir = tmp_path / "c" / "manifests"
    newest = sorted(mdir.glob("*.json"))[-1]
    doc = json.loads(newest.read_text())
    for entry in doc["body"]["set"]:  # the record of the commit of period 3
        entry.pop("checksums_sha256")
    from stores.storage.cube._log import body_digest as _body_digest  # the record's own digest rule

    doc["sha256"] = _body_digest(doc["body"])
    newest.write_text(json.dumps(doc))
    reader = CubeStore(tmp_path / "c")
    _assert_values(reader, schema, [1, 2, 3])
    slot = store.slice_info(3)["slot"]
    chunk = tmp_path / "c" / "data" / "count" / "c" / str(slot) / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[0] ^= 1
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="period 3, variable 'count'.*committed checksum"):
        CubeStore(tmp_path / "c").read_arrays(3, row=0, col=0)


# -- issue 15: the two store mutants --------------------------------------------------
def test_well_formed_manifest_with_wrong_checksum_is_rejected_for_its_checksum(tmp_path, caplog):
    """Issue 15: removing the manifest checksum check must fail a test."""
    schema = example_schema()
    _fill(tmp_path / "c", schema)
    newest = sorted((tmp_path / "c" / "manifests").glob("*.json"))[-1]
    doc = json.loads(newest.read_text())
    entry = next(e for e in doc["body"]["set"] if e["label"] == 3)
    entry["coords"]["exposure"] = 9999.0  # complete, well-formed, plausible: only the sum is off
    newest.write_text(json.dumps(doc))
    store = CubeStore(tmp_path / "c")
    with pytest.raises(CorruptStoreError, match="does not match its SHA-256 checksum"):
        _ = store.labels
    assert CubeStore(tmp_path / "c", version=2).labels == [1, 2]  # the state before period 3
    assert "does not match its SHA-256 checksum" in caplog.text
    assert any("SHA-256" in p for p in store.problems)
    # the same edit with a recomputed checksum is accepted: the checksum alone decided
    from stores.storage.cube._log import body_digest as _body_digest

    doc["sha256"] = _body_digest(doc["body"])
    newest.write_text(json.dumps(doc))
    accepted = CubeStore(tmp_path / "c")
    assert accepted.labels == [1, 2, 3]
    assert float(accepted.to_dataset(lazy=False)["exposure"].sel(period=3)) == 9999.0


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_tampered_extras_are_rejected(tmp_path, tamper):
    """Issue 15: ignoring the extras checksum must fail a test."""
    schema = example_schema()
    store = CubeStore.create(tmp_path / "c", schema)
    store.append(_truth(schema, 1), 1, coords=example_coords(1), extras={"darks": ["a", "b"]})
    store.append(_truth(schema, 2), 2, coords=example_coords(2), extras={"darks": ["c"]})
    one = tmp_path / "c" / "extras" / f"{store.slice_info(1)['slot']:08d}.json"
    two = tmp_path / "c" / "extras" / f"{store.slice_info(2)['slot']:08d}.json"
    if tamper == "edit":
        one.write_text(json.dumps({"darks": ["a", "x"]}, sort_keys=True))
    elif tamper == "delete":
        one.unlink()
    else:
        one.write_bytes(two.read_bytes())  # a valid extras document, of another slice
    reader = CubeStore(tmp_path / "c")
    with pytest.raises(CorruptStoreError, match=r"extras of period 1 .*(checksum|missing)"):
        reader.slice_extras(1)
    with pytest.raises(CorruptStoreError, match="extras of period 1"):
        reader.verify()
    assert reader.slice_extras(2) == {"darks": ["c"]}


# -- 14.5: damaged newest manifest, missing manifests ----------------------------------
def test_damaged_newest_manifest_refuses_writes_until_repaired(tmp_path):
    """14.5: it rolled back silently and the next append overwrote its storage."""
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    slot3 = store.slice_info(3)["slot"]
    newest = sorted((tmp_path / "c" / "manifests").glob("*.json"))[-1]
    newest.write_bytes(newest.read_bytes()[:-7])  # torn
    before = tree_digest(tmp_path / "c")
    handle = CubeStore(tmp_path / "c", mode="r+")
    assert handle.problems
    with pytest.raises(CorruptStoreError, match=r"000000000003\.json is damaged.*stiscube repair"):
        _ = handle.labels  # issue 24 R5: no silent roll-back for readers either
    _assert_values(CubeStore(tmp_path / "c", version=2), schema, [1, 2])  # asked explicitly
    with pytest.raises(CorruptStoreError, match="refuses writes until it is repaired.*repair"):
        handle.append(_truth(schema, 4), 4, coords=example_coords(4))
    with pytest.raises(CorruptStoreError, match="refuses writes"), handle.writing():
        pass
    plan = handle.repair()  # a dry run by default: reports, changes nothing
    assert not plan.applied and any("move damaged manifest" in a for a in plan.actions)
    assert any(f"slots 0-{slot3}" in a for a in plan.actions)
    assert tree_digest(tmp_path / "c") == before
    done = handle.repair(dry_run=False)
    assert done.applied and done.actions == plan.actions
    assert (tmp_path / "c" / "manifests" / "damaged").is_dir()
    handle.append(_truth(schema, 4, seed=4), 4, coords=example_coords(4))
    assert handle.slice_info(4)["slot"] > slot3  # the damaged manifest's slot is not reused
    chunk = tmp_path / "c" / "data" / "signal" / "c" / str(slot3)
    assert chunk.is_dir()  # its data are still on disk, untouched
    _assert_values(CubeStore(tmp_path / "c"), schema, [1, 2, 4], seeds={4: 4})
    assert [v["action"] for v in handle.versions()][-2:] == ["repair", "append"]
    assert not CubeStore(tmp_path / "c", mode="r+").repair().actions  # healthy now


def test_missing_manifests_directory_refuses_writes(tmp_path):
    """14.5: it opened as an empty store and the next append overwrote slot 0."""
    schema = example_schema()
    _fill(tmp_path / "c", schema)
    slot0 = {
        p.relative_to(tmp_path): p.read_bytes() for p in _chunk_files(tmp_path / "c", "signal")
        if p.parts[-3] == "0"
    }
    shutil.rmtree(tmp_path / "c" / "manifests")
    before = tree_digest(tmp_path / "c")
    handle = CubeStore(tmp_path / "c", mode="r+")
    assert "no manifest" in handle.problems[0]
    with pytest.raises(CorruptStoreError, match="holds no manifest.*stiscube repair"):
        _ = CubeStore(tmp_path / "c").labels  # issue 24 R5: damage, not an empty store
    with pytest.raises(CorruptStoreError, match="refuses writes.*holds no manifest"):
        handle.append(_truth(schema, 1), 1, coords=example_coords(1))
    assert tree_digest(tmp_path / "c") == before
    handle.repair(dry_run=False)
    handle.append(_truth(schema, 9), 9, coords=example_coords(9))
    assert handle.slice_info(9)["slot"] == 3
    for path, raw in slot0.items():  # the first slice's data were not overwritten
        assert (tmp_path / path).read_bytes() == raw


# -- 14.10: temporaries are cleaned by the next writer ---------------------------------
def test_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    root = tmp_path / "c"
    junk = [  # where writers keep temporaries (the next slot is 3): no tree walk finds them
        root / "staging" / ".00000009.json.0123abcd.tmp",
        root / "staging" / ".000000000009.json.0123abcd.tmp",
        root / "data" / "signal" / "c" / "3" / "0" / "0.0123abcd.partial",
        root / "data" / "count" / "zarr.0123abcd.partial",
    ]
    for path in junk:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a killed writer")
    keep = root / "extras" / "notes.txt"  # not ours to delete
    keep.parent.mkdir(exist_ok=True)
    keep.write_text("user file")
    CubeStore(root)  # a reader removes nothing
    assert all(p.exists() for p in junk)
    writer = CubeStore(root, mode="r+")
    writer.append(_truth(schema, 4), 4, coords=example_coords(4))
    assert not any(p.exists() for p in junk) and keep.exists()
    _assert_values(CubeStore(root), schema, [1, 2, 3, 4])
    old = root / "extras" / ".00000009.json.0123abcd.tmp"  # where format-1 writers left them
    old.write_bytes(b"left by a killed format-1 writer")
    writer.append(_truth(schema, 5), 5, coords=example_coords(5))
    assert old.exists()  # writers do not walk the tree: repair does
    assert f"remove temporary file {old}" in writer.repair(dry_run=False).actions
    assert not old.exists() and keep.exists()
    del store


# -- issue 10 §3: versions ---------------------------------------------------------------
def test_versions_round_trip(store_url):
    schema = example_schema()
    store = _fill(store_url, schema)  # versions 1-3
    assert store.version == 3
    store.replace(_truth(schema, 2, seed=7), 2, coords=example_coords(2) | {"name": "redo"})
    store.append(_truth(schema, 4), 4, coords=example_coords(4))
    listed = store.versions()
    assert [(v["version"], v["action"], v["label"]) for v in listed] == [
        (0, "create", None), (1, "append", 1), (2, "append", 2), (3, "append", 3),
        (4, "replace", 2), (5, "append", 4),
    ]
    assert all(isinstance(v["time"], str) and v["time"].endswith("Z") for v in listed)
    old = CubeStore(store_url, version=3)
    assert old.version == 3 and old.labels == [1, 2, 3]
    _assert_values(old, schema, [1, 2, 3])  # period 2's old values, bit for bit
    assert old.to_dataset(lazy=False)["name"].sel(period=2).item() == "period-2"
    _assert_values(CubeStore(store_url), schema, [1, 2, 3, 4], seeds={2: 7})
    old.refresh()
    assert old.version == 3  # a pinned handle stays at its version
    assert CubeStore(store_url, version=0).labels == []
    with pytest.raises(ReadOnlyStoreError, match="version 3; old versions are read-only"):
        old.append(_truth(schema, 9), 9, coords=example_coords(9))
    with pytest.raises(ValueError, match="mode='r'"):
        CubeStore(store_url, mode="r+", version=3)
    with pytest.raises(KeyNotFoundError, match="version 6 is not in"):
        CubeStore(store_url, version=6)


def test_prune_is_explicit_and_keeps_what_versions_need(tmp_path):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema, labels=range(12))
    assert len(list((tmp_path / "c" / "manifests").glob("*.json"))) == 13  # no implicit prune
    old_slot = store.slice_info(5)["slot"]
    store.replace(_truth(schema, 5, seed=1), 5, coords=example_coords(5))  # version 13
    store.append(_truth(schema, 20), 20, coords=example_coords(20))  # version 14
    before = tree_digest(tmp_path / "c")
    plan = store.prune(keep_last=3, dry_run=True)
    assert plan.kept_versions == (12, 13, 14) and plan.removed_slots == ()
    assert tree_digest(tmp_path / "c") == before
    report = store.prune(keep_last=3)
    assert report.removed_versions == tuple(range(12)) and report.removed_slots == ()
    _assert_values(CubeStore(tmp_path / "c", version=12), schema, [5])  # old slot kept
    assert (tmp_path / "c" / "data" / "signal" / "c" / str(old_slot)).is_dir()
    with pytest.raises(KeyNotFoundError, match="never made or pruned"):
        CubeStore(tmp_path / "c", version=11)
    report = store.prune(keep_last=2)  # now version 12, the last to use the old slot, goes
    assert report.removed_versions == (12,) and report.removed_slots == (old_slot,)
    assert not (tmp_path / "c" / "data" / "signal" / "c" / str(old_slot)).exists()
    assert not (tmp_path / "c" / "checksums" / f"{old_slot:08d}.json").exists()
    reopened = CubeStore(tmp_path / "c")
    reopened.verify()
    _assert_values(reopened, schema, [n for n in range(12) if n != 5] + [20])
    _assert_values(reopened, schema, [5], seeds={5: 1})
    with pytest.raises(ValueError, match="keep_last must be >= 1"):
        store.prune(keep_last=0)


# -- issue 10 §4: no trap on disk ---------------------------------------------------------
def test_plain_open_zarr_shows_internal_storage_not_periods(tmp_path):
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    store.replace(_truth(schema, 2, seed=1), 2, coords=example_coords(2))
    group = zarr.open_group(tmp_path / "c" / "data", mode="r", zarr_format=3)  # valid v3
    assert group.metadata.zarr_format == 3
    plain = xr.open_zarr(tmp_path / "c" / "data", consolidated=False, zarr_format=3)
    assert "period" not in plain.dims and plain.sizes["slot"] == 4  # 3 periods, 4 slots
    assert "internal storage of a stores.CubeStore" in plain.attrs["storage_note"]
    assert "engine='stiscube'" in plain.attrs["storage_note"]
    assert "internal storage" in plain["signal"].attrs["storage_note"]


# -- 14.7: a full disk (real, on a small tmpfs) ------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, or a skip naming why the platform does not allow one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()}); needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_disk(mount):
    """Fill the tmpfs; returns the ballast file (delete it to free the space)."""
    ballast = mount / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast


@pytest.mark.parametrize("spelling", ["path", "local://"])
def test_dataset_store_on_a_full_disk_keeps_the_old_version(small_disk, spelling):
    """14.7: on local:// a full disk truncated the existing key's file."""
    url = str(small_disk / "ds") if spelling == "path" else f"local://{small_disk / 'ds'}"
    store = DatasetStore(url)
    first = xr.Dataset({"flux": ("star", np.arange(100.0))})
    store.write("ngc104/F502N", first)
    path = small_disk / "ds" / "ngc104" / "F502N.nc"
    original = path.read_bytes()
    big = xr.Dataset({"flux": ("star", np.random.default_rng(1).normal(size=400_000))})
    with pytest.raises(StoreWriteError, match="key 'ngc104/F502N' of dataset store") as exc:
        store.write("ngc104/F502N", big)
    assert exc.value.errno == errno.ENOSPC
    assert path.read_bytes() == original
    np.testing.assert_array_equal(store.read("ngc104/F502N")["flux"].values, np.arange(100.0))
    assert not [p for p in (small_disk / "ds").rglob(".*.tmp")]


def test_cube_append_on_a_full_disk(small_disk):
    """14.13 and 14.9: a full disk names the store, loses nothing, and frees the lock."""
    schema = example_schema(shape=(128, 96), chunks=(32, 32), compression="none")
    store = _fill(small_disk / "c", schema, labels=(1,))
    ballast = _fill_disk(small_disk)
    with pytest.raises(StoreWriteError, match=f"(cube store|writer lock of) {small_disk / 'c'}"):
        store.append(_truth(schema, 2), 2, coords=example_coords(2))
    reader = CubeStore(small_disk / "c")
    assert reader.labels == [1]
    _assert_values(reader, schema, [1])
    reader.verify()
    ballast.unlink()
    CubeStore(small_disk / "c", mode="r+").append(_truth(schema, 2), 2, coords=example_coords(2))
    _assert_values(CubeStore(small_disk / "c"), schema, [1, 2])


def test_atomic_write_on_a_full_disk_keeps_the_old_file(small_disk):
    target = small_disk / "report.html"
    stores.atomic_write(target, "<p>old</p>")
    ballast = _fill_disk(small_disk)
    with pytest.raises(StoreWriteError, match=f"cannot write to {target}"):
        stores.atomic_write(target, "x" * 500_000)
    assert target.read_text() == "<p>old</p>"
    ballast.unlink()


# -- 10: the public atomic write helpers -----------------------------------------------
def test_atomic_write_and_atomic_path(tmp_path):
    target = tmp_path / "out" / "table.tex"
    stores.atomic_write(target, "\\begin{table}")
    assert target.read_text() == "\\begin{table}"
    stores.atomic_write(str(target), b"bytes")
    assert target.read_bytes() == b"bytes"
    with stores.atomic_path(target) as tmp:
        assert tmp.suffix == ".tex" and tmp.parent == target.parent
        tmp.write_text("new")
        assert target.read_bytes() == b"bytes"  # not yet replaced
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError, match="plot failed"), stores.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("plot failed")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == [
        "table.tex"
    ]
    url = f"memory://atomic-{os.getpid()}/plot.png"
    with stores.atomic_path(url) as tmp:
        tmp.write_bytes(b"\x89PNG")
    assert fsspec.filesystem("memory").cat_file(url) == b"\x89PNG"
    with pytest.raises(TypeError, match="must be bytes or str"):
        stores.atomic_write(target, 3)


# -- concurrent writers on s3:// (two processes, a moto S3 server) ------------------------
BUCKET = f"store-faults-{os.getpid()}"  # moto servers of one process share their buckets


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server with a bucket; the environment a writer process needs to reach it."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(BUCKET)
    yield {**os.environ, **env}
    _close_s3_sessions()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def _close_s3_sessions() -> None:
    """Close the sessions of cached s3fs instances now, not at a later garbage collection
    (whose unclosed-session warning would then fail an unrelated test)."""
    import s3fs
    from fsspec.asyn import sync

    for fs in list(s3fs.S3FileSystem._cache.values()):
        client = getattr(fs, "_s3creator", None)
        if client is not None and fs.loop is not None and fs.loop.is_running():
            sync(fs.loop, client.__aexit__, None, None, None, timeout=30)
            fs._s3creator = None
            fs._s3 = None
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.slow
@pytest.mark.parametrize("lock_timeout", [0.0, 60.0])
def test_concurrent_writers_on_s3(s3_env, lock_timeout):
    """Two processes append to one s3:// store; the lock is a conditional put (If-None-Match)."""
    url = f"s3://{BUCKET}/c{int(lock_timeout)}"
    schema = example_schema(shape=(64, 48), chunks=(16, 16))
    _fill(url, schema, labels=(1,))
    go = Path(f"/tmp/s3go-{os.getpid()}-{int(lock_timeout)}")
    go.unlink(missing_ok=True)
    procs = {
        label: start_writer(url, "append", label, 77, env=s3_env, delay=0.01,
                            lock_timeout=lock_timeout, go_file=go)
        for label in (10, 11)
    }
    outcomes = race(procs, go, timeout=300)
    for end in outcomes.values():
        assert end.status in ("WROTE", "LOCKED"), end.err
    go.unlink()
    written = sorted(label for label, end in outcomes.items() if end.status == "WROTE")
    if lock_timeout:
        assert written == [10, 11]
    else:
        assert written  # one at least; the other may have found the lock taken
    store = CubeStore(url)
    assert store.labels == [1, *written]
    store.verify()
    _assert_values(store, schema, written, seeds={n: 77 for n in written})
    slots = [store.slice_info(n)["slot"] for n in store.labels]
    assert len(set(slots)) == len(slots)
    assert not fsspec.filesystem("s3").exists(f"{url[5:]}/.lock")  # released


@pytest.mark.slow
def test_stale_s3_lock_blocks_until_broken(s3_env):
    url = f"s3://{BUCKET}/stale"
    schema = example_schema()
    store = _fill(url, schema, labels=(1,))
    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{url[5:]}/.lock", json.dumps({"pid": 1, "host": "gone"}).encode())
    before = tree_digest(url)
    with pytest.raises(StoreLockedError, match="held by pid 1 on gone"):
        CubeStore(url, mode="r+", lock_timeout=0).append(
            _truth(schema, 2), 2, coords=example_coords(2))
    assert tree_digest(url) == before
    store.break_lock()
    store.append(_truth(schema, 2), 2, coords=example_coords(2))
    _assert_values(CubeStore(url), schema, [1, 2])


def test_location_child_keeps_urls_urls(tmp_path):
    mem = Location.parse("memory://a/b").child("cube", "data")
    assert (mem.url, mem.root, mem.is_local) == ("memory:///a/b/cube/data", "/a/b/cube/data", False)
    local = Location.parse(tmp_path).child("cube")
    assert local.is_local and local.root == str(tmp_path / "cube") == local.url


@pytest.mark.parametrize(
    "sel",
    [
        {"row": [0, 5, 31], "col": slice(2, 20, 3)},
        {"period": [2, 0], "row": 3},
        {"row": slice(None, None, -1), "col": -1},
        {"period": 1, "row": [1, 2], "col": [3, 4]},
        {"col": slice(5, 6)},
    ],
)
def test_lazy_selections_match_numpy(tmp_path, sel):
    """The dask arrays (read through the verified slot reader) index like numpy."""
    schema = example_schema()
    store = _fill(tmp_path / "c", schema)
    truth = np.stack([_truth(schema, n)["signal"].values for n in (1, 2, 3)])
    expected = truth
    for axis, dim in reversed(list(enumerate(("period", "row", "col")))):
        expected = expected[(slice(None),) * axis + (sel.get(dim, slice(None)),)]
    for lazy in (True, False):
        got = store.to_dataset(lazy=lazy)["signal"].isel(sel).values
        assert got.shape == expected.shape and got.tobytes() == expected.tobytes(), lazy
