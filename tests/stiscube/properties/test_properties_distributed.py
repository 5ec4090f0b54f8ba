"""compute_properties on a dask.distributed cluster gives the threaded result, on the
client it is given even when another client is the default."""

from __future__ import annotations

import numpy as np

from stiscube import compute_properties
from stiscube.properties.compute import PROPERTIES
from tests._cluster import NO_DASHBOARD


def _executed(client) -> int:
    return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())


def test_runs_on_the_client_passed_with_two_clients_alive(sim_periods):
    from dask.distributed import Client, LocalCluster

    files = sim_periods.files[1]
    threaded = compute_properties(files, row_chunk=32).compute(scheduler="threads")
    options = {"threads_per_worker": 1, "processes": False, **NO_DASHBOARD}
    with (
        LocalCluster(n_workers=2, **options) as cluster1,
        Client(cluster1) as c1,
        LocalCluster(n_workers=1, **options) as cluster2,
        Client(cluster2) as c2,  # the newest client: dask's default from here on
    ):
        assert _executed(c1) == 0 and _executed(c2) == 0
        result = compute_properties(files, client=c1, row_chunk=32)
        on_c1, on_c2 = _executed(c1), _executed(c2)
        loaded = result.compute()  # already in memory: nothing runs anywhere
        assert _executed(c2) == on_c2
    assert on_c1 >= 4  # one task per row block at least, on the client passed
    assert on_c2 == 0
    for name in PROPERTIES:
        np.testing.assert_array_equal(loaded[name].values, threaded[name].values, err_msg=name)
