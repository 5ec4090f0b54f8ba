"""Benchmark: the one sigma-clipped statistics kernel against astropy, on both monitors' arrays.

``stores.common.stats.clipped_stats`` against ``astropy.stats.sigma_clipped_stats``
(``cenfunc="median"``, ``stdfunc="std"``), in one run, on:

1. the DQ rules' sample: a 1024 x 1024 STIS dark-rate frame (gamma-distributed rates,
   1 % hot pixels, a few NaN), 3 sigma, 40 iterations (``stiscube.dq.Rules``);
2. the photometry's annulus background: 5 000 rows of 620 ring pixels (Gaussian sky,
   2 % cosmic rays, 5 % NaN for the masked and off-image pixels), clipped along axis 1,
   3 sigma, 5 iterations (``cte`` configuration).

Prints the best CPU (process) seconds of ``--repeat`` calls, the ratio astropy / ours and
the largest differences of the medians and standard deviations.  Run by hand::

    python benchmarks/bench_stats.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from astropy.stats import sigma_clipped_stats

from stores.common.stats import clipped_stats


def _best(func, repeat: int):
    """Best CPU (process) seconds of *repeat* calls, and the last result."""
    cpus = []
    for _ in range(repeat):
        c = time.process_time()
        result = func()
        cpus.append(time.process_time() - c)
    return min(cpus), result


def _compare(name: str, values: np.ndarray, axis, maxiters: int, repeat: int) -> None:
    def ours():
        return clipped_stats(values, sigma=3.0, maxiters=maxiters, axis=axis)[:2]

    def astropy():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN slices; the benchmark runs one thread
            _, med, std = sigma_clipped_stats(values, sigma=3.0, maxiters=maxiters, axis=axis,
                                              cenfunc="median", stdfunc="std")
        return med, std

    t_ours, (m0, s0) = _best(ours, repeat)
    t_astropy, (m1, s1) = _best(astropy, repeat)
    dm = np.nanmax(np.abs(np.asarray(m1) - m0))
    ds = np.nanmax(np.abs(np.asarray(s1) - s0))
    print(f"{name}: ours {t_ours * 1e3:8.1f} ms CPU, astropy {t_astropy * 1e3:8.1f} ms CPU, "
          f"astropy/ours {t_astropy / t_ours:5.2f}, max |d median| {dm:.1e}, "
          f"max |d std| {ds:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    frame = rng.gamma(2.0, 0.004, (1024, 1024))
    frame[rng.random(frame.shape) < 0.01] += rng.uniform(0.1, 5.0)
    frame[rng.random(frame.shape) < 1e-4] = np.nan
    ring = rng.normal(60.0, 8.0, (5000, 620))
    ring[rng.random(ring.shape) < 0.02] += 3000.0
    ring[rng.random(ring.shape) < 0.05] = np.nan
    print(f"load average {os.getloadavg()[0]:.1f}; best of {args.repeat}")
    _compare("DQ frame 1024 x 1024, 40 iterations", frame, None, 40, args.repeat)
    _compare("annulus 5000 x 620 along axis 1, 5 iterations", ring, 1, 5, args.repeat)


if __name__ == "__main__":
    main()
