"""compute_properties on a dask.distributed cluster gives the threaded result."""

from __future__ import annotations

import numpy as np

from stiscube import compute_properties
from stiscube.properties.compute import PROPERTIES


def test_two_worker_local_cluster(sim_periods):
    from dask.distributed import Client, LocalCluster

    files = sim_periods.files[1]
    # dashboard_address=None: no dashboard server, so no port to find or socket to leak.
    threaded = compute_properties(files, row_chunk=32).compute(scheduler="threads")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        lazy = compute_properties(files, client=client, row_chunk=32)
        assert lazy["sci_mean"].chunks == ((32, 32, 32, 32), (128,))
        distributed = lazy.compute()
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2
    assert sum(executed.values()) >= 4  # at least one task per row block ran on the cluster
    for name in PROPERTIES:
        np.testing.assert_array_equal(distributed[name].values, threaded[name].values, err_msg=name)
