"""Issue 24 R1: a `repair` killed at any step never loses the slot it promises to keep.

Repair of a store whose newest record is torn takes three steps that touch files:
publish the repaired version, copy the damaged record to ``manifests/damaged/``, remove
it.  A child process runs the repair and SIGKILLs itself just before step K, for every K.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from stores import CorruptStoreError, CubeStore
from stores.common.testing import example_coords, example_schema, example_slice

_REPAIR = textwrap.dedent(
    """
    import os, signal, sys
    import stores.storage.fs as fs
    from stores import CubeStore

    die_at, count = int(sys.argv[2]), [0]

    def tick():
        count[0] += 1
        if count[0] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

    write, remove = fs.atomic_write_bytes, fs.Location.remove

    def counted_write(*args, **kwargs):
        tick()
        return write(*args, **kwargs)

    def counted_remove(self, *parts):
        tick()
        return remove(self, *parts)

    fs.atomic_write_bytes, fs.Location.remove = counted_write, counted_remove
    CubeStore(sys.argv[1], mode="r+").repair(dry_run=False)
    print("STEPS", count[0])
    """
)


def _damaged_store(path):
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    store = CubeStore.create(path, schema)
    for label in (1, 2, 3):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    slot3 = store.slice_info(3)["slot"]
    newest = sorted((path / "manifests").glob("*.json"))[-1]
    newest.write_bytes(newest.read_bytes()[:-7])  # torn
    chunks = {p: p.read_bytes() for p in (path / "data").rglob("*") if p.is_file()
              and f"/c/{slot3}/" in str(p)}
    return schema, slot3, chunks


def _repair(path, die_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _REPAIR, str(path), str(die_at)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("die_at", [1, 2, 3, 4])
def test_killed_repair_leaves_the_damaged_or_the_repaired_state(tmp_path, die_at):
    path = tmp_path / "c"
    schema, slot3, chunks = _damaged_store(path)
    done = _repair(path, die_at)
    if die_at <= 3:
        assert done.returncode == -9, done.stderr  # killed before step die_at
    else:
        assert done.returncode == 0 and "STEPS 3" in done.stdout, done.stderr
    handle = CubeStore(path, mode="r+")
    new = example_slice(schema, 4)
    if handle.problems:  # the damaged state: writes refused, until a repair completes
        assert die_at == 1
        with pytest.raises(CorruptStoreError, match="refuses writes"):
            handle.append(new, 4, coords=example_coords(4))
        assert _repair(path, 0).returncode == 0
        handle = CubeStore(path, mode="r+")
    handle.append(new, 4, coords=example_coords(4))
    assert handle.labels == [1, 2, 4]
    assert handle.slice_info(4)["slot"] > slot3  # the damaged record's slot is not reused
    for p, raw in chunks.items():
        assert p.read_bytes() == raw
    handle.verify()
