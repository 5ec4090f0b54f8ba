"""Issue 24 R2: remote writer locks carry an owner token and a lease (heartbeat)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time

import fsspec
import pytest

from stores import CubeStore, ReadOnlyStoreError, StoreLockedError
from stores.common.testing import example_coords, example_schema, example_slice
from stores.storage.fs import Location
from stores.storage.locks import WriterLock


@pytest.fixture
def remote(tmp_path):
    url = f"memory:///locks-{os.getpid()}-{tmp_path.name}/cube"
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    CubeStore.create(url, schema)
    yield url, schema
    fs = fsspec.filesystem("memory")
    fs.rm(url[len("memory://"):], recursive=True)


def _plant(url: str, **fields) -> None:
    """A lock object as another process would have left it."""
    loc = Location.parse(url)
    doc = {"pid": 4242, "host": "elsewhere", "since": "2026-01-01T00:00:00", "purpose": "write",
           "token": "0" * 32, "lease": 60.0, "renewed": time.time(), **fields}
    loc.fs.pipe_file(loc.join(".lock"), json.dumps(doc).encode())


def test_a_live_lock_is_not_broken_and_names_the_way_out(remote):
    url, schema = remote
    _plant(url)  # renewed just now: its holder is alive
    writer = CubeStore(url, mode="r+", lock_timeout=0)
    with pytest.raises(StoreLockedError, match=r"pid 4242 on elsewhere.*break_lock\(\)"):
        writer.append(example_slice(schema, 1), 1, coords=example_coords(1))
    with pytest.raises(StoreLockedError, match="is live: held by pid 4242"):
        writer.break_lock()
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        CubeStore(url).break_lock(force=True)
    assert writer.lock_holder()["token"] == "0" * 32  # still there
    assert writer.break_lock(force=True)["pid"] == 4242
    writer.append(example_slice(schema, 1), 1, coords=example_coords(1))


def test_a_stale_lock_is_broken(remote):
    url, schema = remote
    _plant(url, renewed=time.time() - 61)  # not renewed for a whole lease
    writer = CubeStore(url, mode="r+")
    holder = writer.lock_holder()
    assert holder.stale and holder.age > 60
    assert writer.break_lock()["pid"] == 4242
    assert writer.lock_holder() is None
    writer.append(example_slice(schema, 1), 1, coords=example_coords(1))


def test_release_removes_only_its_own_lock(remote):
    url, _ = remote
    loc = Location.parse(url)
    lock = WriterLock(loc, ".lock", timeout=0, purpose="write")
    lock.acquire()
    assert json.loads(loc.fs.cat_file(loc.join(".lock")))["token"] == lock.token
    _plant(url, token="f" * 32)  # broken meanwhile, and taken by another writer
    lock.release()
    assert json.loads(loc.fs.cat_file(loc.join(".lock")))["token"] == "f" * 32


def test_the_holder_renews_its_lease(remote):
    url, _ = remote
    loc = Location.parse(url)
    with WriterLock(loc, ".lock", timeout=0, purpose="write", lease=0.3):
        time.sleep(0.8)  # more than two leases
        holder = CubeStore(url).lock_holder()
        assert not holder.stale and holder.age < 0.3
    assert CubeStore(url).lock_holder() is None


def test_unlock_command_reports_the_holder(tmp_path):
    path = tmp_path / "db" / "cube"
    CubeStore.create(path, example_schema(shape=(8, 6), chunks=(4, 3)))

    def unlock(*args):
        return subprocess.run([sys.executable, "-m", "stiscube.cli", "unlock",
                               str(tmp_path / "db"), *args], capture_output=True, text=True)

    assert unlock().stdout.strip() == f"{tmp_path / 'db'} is not locked"
    with WriterLock(Location.parse(path), ".lock", purpose="ingest"):
        proc = unlock()
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"locked by pid {os.getpid()} on ")
        assert "(ingest" in proc.stdout and proc.stdout.strip().endswith(": live")
        proc = unlock("--yes")
        assert proc.returncode == 1 and "is live" in proc.stderr


def test_one_default_lock_timeout_for_every_store():
    """Issue 25: the stores of both packages wait the same time for a lock by default."""
    from cte.photometry.store import PhotometryStore
    from stiscube import PixelDB
    from stores.storage.locks import LOCK_TIMEOUT

    assert LOCK_TIMEOUT == 60.0
    for func, name in ((CubeStore, "lock_timeout"), (CubeStore.create, "lock_timeout"),
                       (PixelDB, "lock_timeout"), (PixelDB.create, "lock_timeout"),
                       (PhotometryStore, "lock_timeout"), (WriterLock, "timeout")):
        assert inspect.signature(func).parameters[name].default == LOCK_TIMEOUT, func
