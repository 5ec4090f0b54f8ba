"""Dark files given as fsspec URLs (issue 9.6): memory://, file://, and s3:// on a local
S3-compatible server (moto) with a dask LocalCluster of worker processes.

Nothing here leaves 127.0.0.1: the S3 server is started by the test on a free local port
and the credentials are dummies set in the environment.
"""

from __future__ import annotations

import socket
import urllib.request
import uuid

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from stiscube import PixelDB, compute_properties
from stiscube.datasets.simulate import simulate_darks
from stiscube.io.darks import read_frames
from tests._cluster import NO_DASHBOARD


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_darks(
        tmp_path_factory.mktemp("remote"), n_periods=1, frames_per_period=6, shape=(256, 96),
        seed=12,
    )


def _same(a, b):
    for name in ("sci_mean", "err_mean", "stability", "nan_count", "readnoise"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


class _CountingFile(MemoryFile):
    def read(self, *args):
        data = super().read(*args)
        type(self.fs).bytes_read += len(data)
        return data


class _CountingMemoryFS(MemoryFileSystem):
    """memory:// that counts the bytes handed out (to show headers-only reads)."""

    protocol = "countmem"
    bytes_read = 0

    def _open(self, path, mode="rb", **kwargs):
        opened = super()._open(path, mode, **kwargs)
        if "r" in mode:
            return _CountingFile(self, opened.path, opened.getvalue())
        return opened

    def cat_file(self, path, start=None, end=None, **kwargs):
        data = super().cat_file(path, start=start, end=end, **kwargs)
        type(self).bytes_read += len(data)
        return data


def test_memory_and_file_urls_give_the_local_result(sim):
    files = sim.files[1]
    root = f"memory://darks-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    urls = []
    for path in files:
        url = f"{root}/{path.name}"
        with fs.open(url, "wb") as handle:
            handle.write(path.read_bytes())
        urls.append(url)
    try:
        local = compute_properties(files).compute()
        _same(compute_properties(urls).compute(), local)
        _same(compute_properties([f"file://{p}" for p in files]).compute(), local)
        assert read_frames(urls[0])[0].path == urls[0]
    finally:
        fs.rm(root, recursive=True)


def test_headers_only_reads_do_not_download_the_file(sim):
    fsspec.register_implementation("countmem", _CountingMemoryFS, clobber=True)
    fs = _CountingMemoryFS()
    path = sim.files[1][0]
    url = f"countmem://h-{uuid.uuid4().hex}/{path.name}"
    with fs.open(url, "wb") as handle:
        handle.write(path.read_bytes())
    size = path.stat().st_size
    try:
        _CountingMemoryFS.bytes_read = 0
        frames = read_frames(url)
        assert frames[0].shape == (256, 96)
        headers_only = _CountingMemoryFS.bytes_read
        assert headers_only < 0.15 * size, (headers_only, size)  # 3 header blocks of ~220 KB
        _CountingMemoryFS.bytes_read = 0
        compute_properties([url, *[f"file://{p}" for p in sim.files[1][1:]]]).compute()
        assert _CountingMemoryFS.bytes_read >= 0.95 * size  # the data are read when needed
    finally:
        fs.rm(url)


def test_missing_url_names_it():
    from stiscube import InvalidDarkError

    with pytest.raises(InvalidDarkError, match=r"memory://nowhere/x_flt\.fits: file does not"):
        read_frames("memory://nowhere/x_flt.fits")


# -- s3:// on a local moto server, a LocalCluster of worker processes ----------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """A moto S3 server on 127.0.0.1 with dummy credentials in the environment (which the
    worker processes inherit); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in the process, across servers: start from none (another
    # test of this xdist worker may have made "darks")
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset",
                                                  method="POST"), timeout=30).close()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    conf = fsspec.config.conf
    saved = conf.get("s3")
    conf["s3"] = {**(saved or {}), "endpoint_url": endpoint}
    fsspec.filesystem("s3").clear_instance_cache()
    try:
        yield endpoint
    finally:
        if saved is None:
            conf.pop("s3", None)
        else:
            conf["s3"] = saved
        _close_s3_sessions()
        server.stop()


def _close_s3_sessions() -> None:
    """Close the aiohttp sessions of every s3fs instance now: the cached ones (fsspec's IO
    loop) and the asynchronous ones zarr made on its own loop.  (s3fs closes them at
    garbage collection with a 0.1 s timeout, which a loaded machine can miss; an unclosed
    session then warns during a later test.)"""
    import gc

    import s3fs
    from fsspec.asyn import sync
    from zarr.core.sync import _get_loop

    for fs in [o for o in gc.get_objects() if isinstance(o, s3fs.S3FileSystem)]:
        client = getattr(fs, "_s3creator", None)
        if client is None:
            continue
        loop = _get_loop() if fs.asynchronous else fs.loop
        if loop is not None and loop.is_running():
            sync(loop, client.__aexit__, None, None, None, timeout=30)
            fs._s3creator = None
            fs._s3 = None
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.slow
def test_period_from_s3_on_worker_processes_and_cube_on_s3(sim, s3_server):
    from dask.distributed import Client, LocalCluster

    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_server}
    s3 = fsspec.filesystem("s3", **options)
    s3.mkdir("darks")
    s3.mkdir("cubes")
    urls = []
    for path in sim.files[1]:
        url = f"s3://darks/period1/{path.name}"
        s3.pipe(url, path.read_bytes())
        urls.append(url)
    local = compute_properties(sim.files[1]).compute()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, **NO_DASHBOARD,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2 and __import__("os").getpid() not in pids
        db = PixelDB.create("s3://cubes/pixels.db", periods=sim.periods, shape=sim.shape)
        props = db.ingest_darks(urls, 1, client=client, storage_options=options)
    _same(props, local)
    # the cube is on the S3 server, and reads back equal
    assert s3.exists("cubes/pixels.db/cube")
    again = PixelDB("s3://cubes/pixels.db", mode="r")
    np.testing.assert_array_equal(
        again.dataset["sci_mean"].sel(anneal=1).values, local["sci_mean"].values
    )
    listed = sorted(again.query_anneal_darks(anneal_num=1)["Darks"])
    assert listed == sorted(p.name.split("_")[0] for p in sim.files[1])
