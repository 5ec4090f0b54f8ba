"""Options of the dask ``LocalCluster`` the tests start (issue 23).

distributed's scheduler always serves HTTP.  With ``dashboard_address=None`` it takes the
default port 8787, and when another cluster holds it (another xdist worker, another run
on the machine) it fails to start or retries with a socket left to the garbage collector,
whose ResourceWarning then fails whatever test is running.  ``":0"`` takes a free port;
``dashboard=False`` mounts no Bokeh dashboard on it.
"""

NO_DASHBOARD = {"dashboard_address": None,
                "scheduler_kwargs": {"dashboard": False, "dashboard_address": ":0"}}
