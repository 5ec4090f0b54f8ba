"""Opt-in progress reporting for long work (ingest, photometry, loss, fit, report).

Library functions take a ``progress=`` flag (default ``False``: silent) and use the
helpers below; the command-line programs turn it on unless ``--quiet`` is given.
Nothing here prints unless asked to:

- on a terminal (standard error is a TTY) a :mod:`tqdm` bar is drawn on standard error;
- otherwise a few ``INFO`` log lines from the ``stores.common.progress`` logger are written (at
  each quarter of the work), which the programs show and which a log file keeps.

Dask work on the local schedulers is followed through :mod:`dask`'s callback mechanism
(:class:`tqdm.dask.TqdmCallback` on a terminal), so the function that computes does
not need to know about progress.  Work on a ``dask.distributed`` cluster is not followed.

Examples
--------
>>> from stores.common.progress import steps
>>> for name in steps(["loss", "fit", "report"], progress=False, desc="analysis"):
...     pass
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from dask.callbacks import Callback

__all__ = ["dask_progress", "on_terminal", "steps"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: fractions of the work at which a log line is written when not on a terminal
_MARKS = (0.25, 0.5, 0.75, 1.0)


def on_terminal() -> bool:
    """Whether standard error is an interactive terminal (a bar can be drawn there)."""
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _bar(**kwargs: Any):
    from tqdm.std import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def steps(
    items: Iterable[T], *, progress: bool, desc: str, total: int | None = None
) -> Iterator[T]:
    """Iterate over *items*, reporting progress when *progress* is true.

    Parameters
    ----------
    items : iterable
        The units of work (periods, stages, ...).
    progress : bool
        Report or not; ``False`` yields the items unchanged.
    desc : str
        What is being done, e.g. ``"ingest"``.
    total : int, optional
        Number of items, if *items* has no ``len``.
    """
    if not progress:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None
    if on_terminal():
        bar = _bar(total=total, desc=desc, unit="step")
        try:
            for item in items:
                bar.set_postfix_str(str(item), refresh=False)
                yield item
                bar.update()
        finally:
            bar.close()
        return
    for done, item in enumerate(items, 1):
        logger.info("%s: %s (%d/%s)", desc, item, done, total if total is not None else "?")
        yield item


class _LogCallback(Callback):
    """A dask callback writing a log line at each quarter of the tasks (no terminal)."""

    def __init__(self, desc: str) -> None:
        super().__init__()
        self.desc = desc
        self.total = self.done = self.next_mark = 0

    def _start_state(self, dsk, state) -> None:
        self.total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self.done = self.next_mark = 0

    def _posttask(self, *_args: Any, **_kwargs: Any) -> None:
        self.done += 1
        while self.next_mark < len(_MARKS) and self.done >= _MARKS[self.next_mark] * self.total:
            mark = round(100 * _MARKS[self.next_mark])
            logger.info("%s: %d%% of %d tasks", self.desc, mark, self.total)
            self.next_mark += 1


@contextlib.contextmanager
def dask_progress(*, progress: bool, desc: str) -> Iterator[None]:
    """Follow the dask computations run inside the ``with`` block (local schedulers).

    On a terminal a :mod:`tqdm` bar counts the tasks; otherwise log lines are written at
    each quarter.

    Parameters
    ----------
    progress : bool
        Report or not (``False``: do nothing).
    desc : str
        What is being computed.
    """
    if not progress:
        yield
        return
    if on_terminal():
        from tqdm.dask import TqdmCallback
        from tqdm.std import tqdm

        callback = TqdmCallback(tqdm_class=tqdm, file=sys.stderr, desc=desc, unit="task",
                                leave=False, dynamic_ncols=True)
    else:
        callback = _LogCallback(desc)
    with callback:
        yield
