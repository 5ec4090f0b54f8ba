"""The version log (issue 20): commits cost the same whatever the history, and a store
written by the format-1 code (tests/data/cube_format1) is upgraded to it."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from stores import CorruptStoreError, CubeStore
from stores.common.testing import example_coords, example_schema, example_slice, tree_digest
from stores.storage.cube import _log

FORMAT1 = Path(__file__).resolve().parents[1] / "data" / "cube_format1"

# -- counting the files a step opens (an audit hook: every open() and os.open()) --------
_opened: list[tuple[str, bool]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is None or event != "open":
        return
    path, mode, flags = args
    if not isinstance(path, (str, bytes, os.PathLike)):
        return
    writes = (mode is not None and any(c in mode for c in "wax+")) or bool(
        (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
    )
    _opened.append((os.fsdecode(path), writes))


sys.addaudithook(_audit)


def _files(root: Path, step) -> tuple[set[str], set[str]]:
    """(files read, files written) under *root* while *step* runs."""
    global _opened
    _opened = []
    try:
        step()
    finally:
        seen, _opened = _opened, None
    inside = [(p, w) for p, w in seen if p.startswith(str(root))]
    return {p for p, w in inside if not w}, {p for p, w in inside if w}


def _append(store, schema, label):
    store.append(example_slice(schema, label), label, coords=example_coords(label))


def _shape(paths: set[str], root: Path) -> list[str]:
    """The paths without their numbers (slot and version numbers differ between commits)."""
    return sorted(re.sub(r"\d+", "N", os.path.relpath(p, root).split(".")[0]) for p in paths)


def test_a_commit_reads_and_writes_as_many_files_whatever_the_history(tmp_path):
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    root = tmp_path / "c"
    store = CubeStore.create(root, schema)
    counts = {}
    n_small, n_large = 5, 5 + _log.CHECKPOINT_EVERY  # the same place between checkpoints
    for label in range(1, n_large + 1):
        if label in (n_small, n_large):
            read, written = _files(root, lambda label=label: _append(store, schema, label))
            opened, _ = _files(root, lambda: CubeStore(root).labels)
            counts[label] = (_shape(read, root), _shape(written, root), len(opened))
        else:
            _append(store, schema, label)
    small, large = counts[n_small], counts[n_large]
    assert large[1] == small[1]  # the same files written: the slot, its checksums, a record
    assert large[0] == small[0]  # and read
    assert large[2] == small[2]  # an open reads as many files
    assert len(small[1]) <= 4 * 2 + 5  # 4 chunks x 2 variables, metadata, checksums, record
    record = root / "manifests" / _log.name(store.version)
    assert record.stat().st_size < 2000  # what changed, not every slice
    assert (root / "checkpoints" / _log.name(_log.CHECKPOINT_EVERY)).exists()


def test_versions_listing_and_open_read_records_not_whole_states(tmp_path):
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    store = CubeStore.create(tmp_path / "c", schema)
    for label in range(1, 2 * _log.CHECKPOINT_EVERY + 3):
        _append(store, schema, label)
    read, written = _files(tmp_path / "c", lambda: store.versions())
    assert len(read) == 3 and not written  # headers to 128, the records of 129, 130
    versions = store.versions()
    assert [v["labels"] for v in versions] == list(range(len(versions)))
    assert [v["version"] for v in versions] == list(range(2 * _log.CHECKPOINT_EVERY + 3))
    assert {v["action"] for v in versions[1:]} == {"append"}
    reader = CubeStore(tmp_path / "c")
    assert reader.labels == list(range(1, 2 * _log.CHECKPOINT_EVERY + 3))
    assert reader._state.depth == 2  # read from the checkpoint at 128 plus two records
    old = CubeStore(tmp_path / "c", version=70)
    assert old.labels == list(range(1, 71))
    np.testing.assert_array_equal(
        old.read_arrays(70)["count"], example_slice(schema, 70)["count"].values
    )


def _assert_fixture_values(store, labels, seeds=None):
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    assert store.labels == labels
    for label in labels:
        truth = example_slice(schema, label, seed=(seeds or {}).get(label, 0))
        got = store.read_arrays(label)
        for name in ("signal", "count"):
            np.testing.assert_array_equal(got[name], truth[name].values)


def test_upgrade_of_a_store_written_by_the_format1_code(tmp_path):
    root = tmp_path / "c"
    shutil.copytree(FORMAT1, root)
    expected_versions = [
        (0, "create", None, 0), (1, "append", 1, 1), (2, "append", 2, 2), (3, "append", 3, 3),
        (4, "replace", 2, 3), (5, "append", 4, 4),
    ]

    def listed(store):
        return [(v["version"], v["action"], v["label"], v["labels"]) for v in store.versions()]

    store = CubeStore(root, mode="r+")  # format 1 is read as it is
    _assert_fixture_values(store, [1, 2, 3, 4], seeds={2: 7})
    assert listed(store) == expected_versions
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    with pytest.raises(CorruptStoreError, match="format 1.*`stiscube upgrade`"):
        _append(store, schema, 5)
    (root / ".lock").touch()  # the lock file of format-1 stores (not in the fixture)
    before = tree_digest(root)
    plan = store.upgrade()  # a dry run by default
    assert not plan.applied and "format 1" in plan.problems[0]
    assert tree_digest(root) == before

    done = store.upgrade(dry_run=False)
    assert done.applied and done.actions == plan.actions
    assert json.loads((root / "cubestore.json").read_text())["version"] == 2
    for path in sorted((root / "manifests").glob("*.json")):
        body = json.loads(path.read_text())["body"]
        assert "set" in body and len(body["set"]) <= 1  # a record of what its commit changed
    reader = CubeStore(root)
    _assert_fixture_values(reader, [1, 2, 3, 4], seeds={2: 7})
    assert listed(reader) == expected_versions
    _assert_fixture_values(CubeStore(root, version=3), [1, 2, 3])  # period 2's old values
    assert reader.slice_extras(1) == {"darks": ["o1"]}
    reader.verify()
    _append(store, schema, 5)
    _assert_fixture_values(CubeStore(root), [1, 2, 3, 4, 5], seeds={2: 7})
    assert not CubeStore(root, mode="r+").upgrade(dry_run=False).actions  # nothing left


def test_stored_bytes_are_the_files_of_the_slices_held(tmp_path):
    """The bytes recorded at commit (what `stiscube info` sums instead of walking data/)."""
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    root = tmp_path / "c"
    store = CubeStore.create(root, schema)
    for label in (1, 2, 3):
        store.append(example_slice(schema, label), label, coords=example_coords(label),
                     extras={"n": label} if label == 2 else None)
    store.replace(example_slice(schema, 2, seed=5), 2, coords=example_coords(2))
    slots = {store.slice_info(n)["slot"] for n in store.labels}
    on_disk = sum(
        p.stat().st_size for name in ("signal", "count") for s in slots
        for p in (root / "data" / name / "c" / str(s)).rglob("*") if p.is_file()
    ) + sum(
        (root / part / f"{s:08d}.json").stat().st_size for part in ("checksums", "extras")
        for s in slots if (root / part / f"{s:08d}.json").exists()
    )
    assert CubeStore(root).stored_bytes() == on_disk
