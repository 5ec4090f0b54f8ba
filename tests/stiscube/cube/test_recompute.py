"""stiscube.recompute: many periods from their darks on a dask.distributed cluster, in
parallel, committed in period order by one writer; the values are those of ingesting
each period on its own with the threaded scheduler."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest

from stiscube import InvalidDarkError, PixelDB, recompute, simulate_darks
from stiscube.cli import main
from stiscube.cube.pixeldb import PixelDB as _PixelDB
from stiscube.schema import PROPERTIES
from tests._cluster import NO_DASHBOARD
from tests.stiscube.io.test_remote import _close_s3_sessions, s3_server  # noqa: F401

#: a test cluster: threads, one per worker, no dashboard
CLUSTER = {"threads_per_worker": 1, "processes": False, **NO_DASHBOARD}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_darks(tmp_path_factory.mktemp("recompute_sim"), n_periods=3,
                          frames_per_period=4, shape=(64, 64), seed=5)


@pytest.fixture(scope="module")
def alone(sim, tmp_path_factory):
    """Each period ingested on its own, threaded: the reference values."""
    db = PixelDB.create(tmp_path_factory.mktemp("alone") / "db", periods=sim.periods,
                        shape=sim.shape)
    for number, files in sim.files.items():
        db.ingest_darks(files, number)
    return {n: db.dataset.sel(anneal=n).load() for n in sim.files}


@pytest.fixture
def cluster_client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, **CLUSTER) as cluster, Client(cluster) as client:
        yield client


def _committed_order(monkeypatch) -> list[int]:
    order: list[int] = []
    original = _PixelDB.commit_darks

    def recording(self, prepared, properties):
        order.append(prepared.anneal_num)
        return original(self, prepared, properties)

    monkeypatch.setattr(_PixelDB, "commit_darks", recording)
    return order


def _same(db, alone, numbers):
    assert db.anneal_numbers == sorted(numbers)
    for n in numbers:
        got = db.dataset.sel(anneal=n)
        for name in PROPERTIES:
            np.testing.assert_array_equal(got[name].values, alone[n][name].values,
                                          err_msg=f"{name} of period {n}")


def test_new_periods_on_a_cluster_in_order(sim, alone, cluster_client, tmp_path, monkeypatch):
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    order = _committed_order(monkeypatch)
    before = sum(cluster_client.run(lambda dask_worker: dask_worker.state.executed_count)
                 .values())
    written = recompute(db, {n: sim.files[n] for n in (3, 1, 2)}, client=cluster_client)
    ran = cluster_client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert written == order == [1, 2, 3]
    assert all(count > 0 for count in ran.values())  # both workers computed
    assert sum(ran.values()) - before >= 3
    _same(db, alone, [1, 2, 3])


def test_stored_periods_from_their_recorded_darks(sim, alone, cluster_client, tmp_path):
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    for n in (1, 2):
        db.ingest_darks(sim.files[n], n)
    before = {n: db.store.slice_info(n) for n in (1, 2)}
    assert recompute(db, anneals=[2], client=cluster_client) == [2]
    assert db.store.slice_info(1) == before[1]  # period 1 untouched
    assert db.store.slice_info(2) != before[2]  # period 2 committed again
    assert recompute(db, client=cluster_client) == [1, 2]
    _same(db, alone, [1, 2])


def test_bad_darks_refused_before_anything_is_computed(sim, cluster_client, tmp_path):
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    bad = tmp_path / "o8xx01abq_flt.fits"
    bad.write_bytes(b"not a FITS file")
    with pytest.raises(InvalidDarkError, match="o8xx01abq_flt.fits"):
        recompute(db, {1: sim.files[1], 2: [*sim.files[2], bad]}, client=cluster_client)
    assert db.anneal_numbers == []  # period 1 was not written either
    with pytest.raises(ValueError, match="darks or anneals, not both"):
        recompute(db, {1: sim.files[1]}, anneals=[1], client=cluster_client)
    with pytest.raises(ValueError, match="client or scheduler, not both"):
        recompute(db, {1: sim.files[1]}, client=cluster_client, scheduler="tcp://x:1")
    with pytest.raises(KeyError, match="anneal period 7 is not in"):
        recompute(db, anneals=[7], client=cluster_client)
    with pytest.raises(ValueError, match="n_workers"):
        recompute(db, {1: sim.files[1]}, n_workers=0)


def test_cli_on_a_scheduler_address(sim, alone, cluster_client, tmp_path, capsys):
    path = tmp_path / "db"
    db = PixelDB.create(path, periods=sim.periods, shape=sim.shape)
    for n in (1, 3):
        db.ingest_darks(sim.files[n], n)
    address = cluster_client.scheduler.address
    assert main(["recompute", str(path), "--scheduler", address, "--quiet"]) == 0
    assert "recomputed periods [1, 3]" in capsys.readouterr().out
    _same(PixelDB(path, mode="r"), alone, [1, 3])


@pytest.mark.slow
def test_darks_on_s3(sim, alone, s3_server, tmp_path):  # noqa: F811
    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_server}
    s3 = fsspec.filesystem("s3", **options)
    s3.mkdir("darks")
    urls = {}
    for n in (1, 2):
        urls[n] = []
        for path in sim.files[n]:
            url = f"s3://darks/period{n}/{path.name}"
            s3.pipe(url, path.read_bytes())
            urls[n].append(url)
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    written = recompute(db, urls, storage_options=options, n_workers=2,
                        cluster_options={k: v for k, v in CLUSTER.items()
                                         if k != "threads_per_worker"})
    assert written == [1, 2]
    _same(db, alone, [1, 2])
    _close_s3_sessions()
