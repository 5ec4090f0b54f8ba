"""Version pinning and chunk counting cases that the mutation run (benchmarks/MUTATION.md)
found unpinned by tests/stores/test_cube.py and test_store_faults.py.

Expected values are written out by hand from the schema (chunks of 16 x 12 px) and from
the commits made in the test.
"""

from __future__ import annotations

import pytest

from stores import CorruptStoreError, CubeStore, KeyNotFoundError
from stores.common.testing import example_coords, example_schema, example_slice


@pytest.fixture
def two_versions(tmp_path):
    schema = example_schema()  # row x col = 32 x 24 px in chunks of 16 x 12
    path = tmp_path / "cube"
    store = CubeStore.create(path, schema)
    for label in (1, 2):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    return path


def test_version_zero_is_the_empty_state(two_versions):
    assert len(CubeStore(two_versions, version=0)) == 0
    assert len(CubeStore(two_versions, version=1)) == 1


def test_missing_version_names_the_versions_held(two_versions):
    with pytest.raises(KeyNotFoundError, match=r"version 5 is not in cube store .*\[.*1, 2\]"):
        CubeStore(two_versions, version=5)


def test_damaged_pinned_version_is_refused(two_versions):
    (two_versions / "manifests" / f"{1:012d}.json").write_bytes(b'{"sha256": "0", "body": {}}')
    with pytest.raises(CorruptStoreError, match=r"version 1 is damaged \(.*SHA-256"):
        CubeStore(two_versions, version=1)


def test_version_zero_without_its_manifest_file(two_versions):
    # A store whose version-0 manifest file is absent (written before it was kept) still
    # has version 0 = the empty state, unless later versions were pruned too.
    manifests = two_versions / "manifests"
    (manifests / f"{0:012d}.json").unlink(missing_ok=True)
    assert len(CubeStore(two_versions, version=0)) == 0
    (manifests / f"{1:012d}.json").unlink()
    with pytest.raises(KeyNotFoundError, match=r"version 0 is not in cube store"):
        CubeStore(two_versions, version=0)
