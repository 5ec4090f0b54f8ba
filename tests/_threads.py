"""Run one piece of test work in several threads at once and collect what it raised."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def errors_in_threads(work: Callable[[int], object], n: int = 4) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(n - 1)`` in *n* threads at once; the exceptions raised."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(work, i) for i in range(n)]
    return [f.exception() for f in futures if f.exception() is not None]
