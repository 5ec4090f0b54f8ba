"""The pixel-major history index: incremental updates, and never a wrong answer (issue 14.4).

References are the property frames handed to ``ingest_properties`` (numpy), never the
index's own output.  Other processes are real subprocesses; crashes are SIGKILLs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stiscube import PixelDB
from stiscube.cube.backend import source_of
from stiscube.cube.history_index import GROUP, HistoryIndex
from stiscube.datasets._synthcube import random_properties
from stiscube.schema import PROPERTIES
from stores import ReadOnlyStoreError

SHAPE = (20, 36)  # not a multiple of the 8 x 8 tiles
DAY = np.timedelta64(30, "D")
T0 = np.datetime64("2005-01-01", "ns")
PIXELS = [(0, 0), (19, 35), (7, 8), (12, 30)]


def _frame(seed: int):
    return random_properties(SHAPE, seed=seed)


def _ingest(db: PixelDB, n: int, seed: int, *, overwrite: bool = False) -> None:
    start = T0 + n * DAY
    db.ingest_properties(_frame(seed), n, start=start, end=start + DAY, overwrite=overwrite)


def _expected(seeds: dict, row: int, col: int) -> dict:
    """property -> values over the periods in *seeds* (period -> seed), from numpy."""
    frames = {n: _frame(s) for n, s in sorted(seeds.items())}
    return {p: np.array([f[p].values[row, col] for f in frames.values()]) for p in PROPERTIES}


def _check(db: PixelDB, seeds: dict) -> None:
    for row, col in PIXELS:
        got = db.history_values(row, col)
        want = _expected(seeds, row, col)
        for p in PROPERTIES:
            np.testing.assert_array_equal(got[p], want[p], err_msg=f"{p} at ({row}, {col})")


def _index_used(db: PixelDB) -> bool:
    src = source_of(db.dataset)
    return src._index_positions(src.labels) is not None


@pytest.fixture
def seeds():
    return {n: 100 + n for n in range(6)}


@pytest.fixture
def db(tmp_path, seeds):
    db = PixelDB.create(tmp_path / "db", shape=SHAPE, chunks={"row": 8, "col": 16})
    for n, s in seeds.items():
        _ingest(db, n, s)
    return db


def _index_files(db: PixelDB) -> list[Path]:
    return sorted((Path(db.location.root) / "history").glob("*/*.bin"))


def test_update_is_incremental(db, seeds):
    assert not db.history_index_current
    done = db.update_history_index()
    assert done == {"rebuilt": True, "written": list(seeds), "dropped": []}
    assert db.history_index_current
    _check(db, seeds)
    assert db.update_history_index()["written"] == []  # nothing new
    _ingest(db, 6, 777)
    _ingest(db, 2, 555, overwrite=True)
    seeds = {**seeds, 6: 777, 2: 555}
    assert not db.history_index_current  # stale until updated: the cube answers
    _check(db, seeds)
    done = db.update_history_index()
    assert done == {"rebuilt": False, "written": [2, 6], "dropped": []}
    assert db.history_index_current
    _check(db, seeds)
    # a whole window across tiles and the frame's padded edge
    ds = db.dataset
    got = ds.isel(row=slice(5, 20), col=slice(6, 36)).load()
    frames = [_frame(seeds[n]) for n in sorted(seeds)]
    for p in PROPERTIES:
        want = np.stack([f[p].values[5:20, 6:36] for f in frames])
        np.testing.assert_array_equal(got[p].values, want)


def test_update_past_the_capacity_rebuilds(db, seeds, monkeypatch):
    import stiscube.cube.history_index as hi

    monkeypatch.setattr(hi, "_MIN_CAPACITY", GROUP)  # 16 positions
    db.update_history_index()
    rebuilt = []
    for k in range(11):  # replacements use fresh positions: the 11th needs a 17th
        _ingest(db, 1, 900 + k, overwrite=True)
        rebuilt.append(db.update_history_index()["rebuilt"])
    assert rebuilt == [False] * 10 + [True]
    assert len(list((Path(db.location.root) / "history").iterdir())) == 3  # json, lock, gen
    _check(db, {**seeds, 1: 910})


def test_read_only_handle_follows_another_process(db, seeds, tmp_path):
    """14.4: a long-lived handle after another process ingested and rebuilt the index."""
    db.update_history_index()
    reader = PixelDB(db.location.url, mode="r")
    _check(reader, seeds)
    assert _index_used(reader)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from stiscube import PixelDB
        from stiscube.datasets._synthcube import random_properties
        db = PixelDB({db.location.url!r})
        t0, day = np.datetime64("2005-01-01", "ns"), np.timedelta64(30, "D")
        db.ingest_properties(random_properties({SHAPE}, seed=4321), 3,
                             start=t0 + 3 * day, end=t0 + 4 * day, overwrite=True)
        db.ingest_properties(random_properties({SHAPE}, seed=1234), 6,
                             start=t0 + 6 * day, end=t0 + 7 * day)
        db.update_history_index(rebuild=True)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    # the old handle still reads its own state, right, from the cube (period 3 changed)
    _check(reader, seeds)
    assert not _index_used(reader)
    reader.refresh()  # now it sees the new state, and the rebuilt index serves it
    new = {**seeds, 3: 4321, 6: 1234}
    _check(reader, new)
    assert _index_used(reader)


def test_old_handle_uses_a_rebuilt_index_that_still_holds_its_values(db, seeds):
    db.update_history_index()
    reader = PixelDB(db.location.url, mode="r")
    ds = reader.dataset
    _ingest(db, 6, 1234)
    db.update_history_index(rebuild=True)  # new generation: every position moved
    assert _index_used(reader)  # the rebuilt index holds the reader's periods unchanged
    _check(reader, seeds)
    np.testing.assert_array_equal(
        ds["readnoise"].sel(row=7, col=8).values, _expected(seeds, 7, 8)["readnoise"]
    )


def test_corrupt_index_json_falls_back(db, seeds, caplog):
    db.update_history_index()
    meta = Path(db.location.root) / "history" / "index.json"
    for damage in (b"{not json", meta.read_bytes().replace(b'"position": 1', b'"position": 2')):
        meta.write_bytes(damage)
        reader = PixelDB(db.location.url, mode="r")
        with caplog.at_level(logging.WARNING, logger="stiscube.cube.history_index"):
            _check(reader, seeds)
        assert "ignoring the damaged history index" in caplog.text
        assert not _index_used(reader)
        caplog.clear()
    assert db.update_history_index()["rebuilt"]  # a damaged index is rebuilt
    _check(db, seeds)


def test_deleted_truncated_or_damaged_index_data_falls_back(db, seeds, caplog):
    db.update_history_index()
    reader = PixelDB(db.location.url, mode="r")
    path = next(p for p in _index_files(db) if p.name == "sci_mean.bin")
    original = path.read_bytes()
    damages = {
        "deleted": lambda: path.unlink(),
        "truncated": lambda: path.write_bytes(original[: len(original) // 3]),
        "flipped": lambda: path.write_bytes(bytes(b ^ 0x5A for b in original)),
        "zeroed": lambda: path.write_bytes(bytes(len(original))),
    }
    for what, damage in damages.items():
        damage()
        with caplog.at_level(logging.WARNING, logger="stiscube.cube.backend"):
            _check(reader, seeds)  # never NaN, never wrong: the cube answers
        assert "reading the cube" in caplog.text, what
        caplog.clear()
        path.write_bytes(original)
        _check(reader, seeds)


def test_read_only_handle_cannot_update(db):
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        PixelDB(db.location.url, mode="r").update_history_index()


# -- SIGKILL during an update -------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import stiscube.cube.history_index as hi
    from stiscube import PixelDB

    path, stage, mode = sys.argv[1:4]

    def pause(name):
        if name == stage:
            print(name, flush=True)
            time.sleep(120)

    write, publish, replace = hi._write_positions, hi._publish, os.replace

    def slow_write(root, meta, store, labels, positions):
        pause("before-write")
        write(root, meta, store, labels[:1], positions[:1])
        pause("mid-write")
        write(root, meta, store, labels, positions)
        pause("after-write")

    def slow_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("index.json"):
            pause("before-rename")
        return replace(src, dst, *args, **kwargs)

    def slow_publish(root, meta):
        publish(root, meta)
        pause("after-publish")

    hi._write_positions, hi._publish, os.replace = slow_write, slow_publish, slow_replace
    PixelDB(path).update_history_index(rebuild=mode == "rebuild")
    print("done", flush=True)
    """
)


@pytest.fixture
def prepared(tmp_path, db, seeds):
    """A database with a current index, then one period appended and one replaced."""
    db.update_history_index()
    _ingest(db, 6, 606)
    _ingest(db, 4, 404, overwrite=True)
    return db, {**seeds, 6: 606, 4: 404}


@pytest.mark.parametrize(
    ("stage", "mode"),
    [
        ("before-write", "update"),
        ("mid-write", "update"),
        ("after-write", "update"),
        ("before-rename", "update"),
        ("after-publish", "update"),
        ("mid-write", "rebuild"),
        ("before-rename", "rebuild"),
    ],
)
def test_sigkill_during_update_leaves_the_index_current_or_ignored(prepared, stage, mode):
    db, seeds = prepared
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, db.location.url, stage, mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline().strip()
        assert line == stage, f"the child did not reach {stage}: {line!r}"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    reader = PixelDB(db.location.url, mode="r")
    _check(reader, seeds)  # right values, whichever source answers
    index_used = _index_used(reader)
    assert index_used == (stage == "after-publish")
    done = db.update_history_index()  # the next update finishes the job and cleans up
    # the previous index stays published until a complete new one replaces it
    assert done["written"] == ([] if stage == "after-publish" else [4, 6])
    assert _index_used(PixelDB(db.location.url, mode="r"))
    _check(PixelDB(db.location.url, mode="r"), seeds)
    names = sorted(p.name for p in (Path(db.location.root) / "history").iterdir())
    assert len(names) == 3 and "index.json" in names and ".lock" in names
    assert not [p for p in Path(db.location.root).glob(".*") if p.name.startswith(".history")]


def test_index_json_is_checksummed(db):
    db.update_history_index()
    doc = json.loads((Path(db.location.root) / "history" / "index.json").read_bytes())
    assert set(doc) == {"sha256", "body"}
    assert len(doc["sha256"]) == 64


def test_history_index_reader_without_index(tmp_path):
    assert HistoryIndex(tmp_path).lookup([1], ["x"]) is None


def test_a_killed_runs_generation_is_removed_by_the_next_update(db, seeds):
    """Issue 24 R3: 8 killed `stiscube index` runs left 8 generations (630 MB -> 3.7 GB)."""
    db.update_history_index()
    history = Path(db.location.root) / "history"
    kept = {p.name for p in history.iterdir()}
    for k in range(3):  # what a run killed after allocating its generation leaves
        left = history / f"{k:032x}"
        left.mkdir()
        with open(left / "sci_mean.bin", "wb") as fh:
            fh.truncate(1 << 20)
    _ingest(db, 99, 7)
    assert db.update_history_index()["written"] == [99]
    assert {p.name for p in history.iterdir()} == kept
    _check(db, {**seeds, 99: 7})


def test_info_reports_the_disk_taken_and_the_apparent_size(db):
    """Issue 24 R3: the index is preallocated sparse; a copy without holes takes more."""
    db.update_history_index()
    info = db.info()
    files = [p.stat() for p in (Path(db.location.root) / "history").rglob("*.bin")]
    holes = sum(st.st_size - st.st_blocks * 512 for st in files)
    assert holes > 0
    gap = info["bytes_apparent"] - info["bytes_on_disk"]
    assert holes * 0.9 < gap <= holes
