"""Recompute many periods from their darks on a ``dask.distributed`` cluster.

:func:`recompute` checks every period first (headers, selection, dates: what
:meth:`stiscube.PixelDB.ingest_darks` checks before reading a pixel), then submits the
properties of all periods to the cluster at once, so that the periods compute in
parallel (each period is itself one task per band of rows), and commits them one after
the other, in period order, from this process: one writer, the store's own commit path
(:meth:`stiscube.PixelDB.ingest_darks` without its compute).  A period whose computation
fails stops the run before it is committed; the periods committed before it stay.

The cluster is the *client* given, or a client of the scheduler at *scheduler*
(``tcp://host:port``), or a ``LocalCluster`` of *n_workers* single-thread worker
processes started for the run and closed after it.  Dark files may be local paths or
fsspec URLs (``s3://...``); the workers read them (give *storage_options* for
credentials, or the workers' environment).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from stiscube.io.darks import DarkSelection, TemperatureCorrection
from stiscube.properties import ClipOptions
from stores.common.progress import steps
from stores.common.validate import as_int, instance_of

__all__ = ["recompute", "recorded_darks"]

logger = logging.getLogger(__name__)


def recorded_darks(db, anneals: Iterable[int] | None = None) -> dict[int, list[str]]:
    """The dark files each stored period was computed from (its ``frames`` record).

    Parameters
    ----------
    db : stiscube.PixelDB
    anneals : iterable of int, optional
        Only these periods (default every stored one).

    Raises
    ------
    KeyError
        A period asked for is not stored.
    ValueError
        A period has no record of its dark files (it was stored from properties or CSV).
    """
    numbers = db.anneal_numbers if anneals is None else [int(n) for n in anneals]
    out = {}
    for number in numbers:
        if number not in db.store:
            msg = (f"anneal period {number} is not in {db.location.url}; it holds "
                   f"{db.anneal_numbers}")
            raise KeyError(msg)
        frames = (db.store.slice_extras(number) or {}).get("frames", [])
        if not frames:
            msg = (f"anneal period {number} has no record of its dark files (stored from "
                   f"properties or CSV); give its darks explicitly")
            raise ValueError(msg)
        out[number] = list(dict.fromkeys(str(f["path"]) for f in frames))
    return out


@contextlib.contextmanager
def _cluster(client, scheduler: str | None, n_workers: int,
             cluster_options: Mapping[str, Any] | None) -> Iterator[Any]:
    """The client to run on: *client*, one of *scheduler*, or of a new LocalCluster."""
    if client is not None:
        yield client
        return
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as own:
            yield own
        return
    options = {"threads_per_worker": 1, "processes": True, **(cluster_options or {})}
    with LocalCluster(n_workers=n_workers, **options) as cluster, Client(cluster) as own:
        yield own


def recompute(
    db,
    darks: Mapping[int, Iterable[str | os.PathLike]] | None = None,
    *,
    anneals: Iterable[int] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    cluster_options: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    selection: DarkSelection | None = None,
    temperature: TemperatureCorrection | None = None,
    clip: ClipOptions | None = None,
) -> list[int]:
    """Compute periods' properties from their darks on a cluster and store them in order.

    Parameters
    ----------
    db : stiscube.PixelDB
        Opened for writing.
    darks : mapping of int to files, optional
        The dark files of each period (paths or fsspec URLs).  Default: the files each
        stored period of *anneals* was computed from (:func:`recorded_darks`).
    anneals : iterable of int, optional
        With *darks* None, the stored periods to recompute (default all).
    client : dask.distributed.Client, optional
        Run on this client.
    scheduler : str, optional
        Else connect to this scheduler address.  Default: a ``LocalCluster``.
    n_workers : int
        Single-thread worker processes of that ``LocalCluster``.
    cluster_options : dict, optional
        Its other options, e.g. ``{"dashboard_address": None}``.
    storage_options : dict, optional
        fsspec options for URLs among the files.
    progress : bool
        Report the periods committed (:mod:`stores.common.progress`).
    selection, temperature, clip
        The options of :meth:`stiscube.PixelDB.ingest_darks`.

    Returns
    -------
    list of int
        The periods written, in the order committed.

    Raises
    ------
    ValueError, TypeError
        Bad arguments, named; bad darks raise what ``ingest_darks`` raises, before
        anything is computed or written.
    """
    n_workers = as_int(n_workers, "n_workers", min=1)
    if client is not None and scheduler is not None:
        msg = "give client or scheduler, not both"
        raise ValueError(msg)
    if scheduler is not None:
        instance_of(scheduler, "scheduler", str, what="a scheduler address such as tcp://host:8786")
    if darks is None:
        darks = recorded_darks(db, anneals)
    elif anneals is not None:
        msg = "give darks or anneals, not both"
        raise ValueError(msg)
    numbers = sorted(int(n) for n in darks)
    # every period is checked before anything is computed
    prepared = [db.prepare_darks(darks[n], n, overwrite=True, selection=selection,
                                 temperature=temperature, clip=clip,
                                 storage_options=storage_options) for n in numbers]
    written = []
    with _cluster(client, scheduler, n_workers, cluster_options) as run_on:
        futures = run_on.compute([p.lazy for p in prepared])  # all periods at once
        for prep, future in steps(list(zip(prepared, futures, strict=True)),
                                  progress=progress, desc="recompute periods"):
            properties = future.result()
            db.commit_darks(prep, properties)
            written.append(prep.anneal_num)
            logger.info("period %d recomputed from %d frames", prep.anneal_num,
                        len(prep.frames))
    return written
