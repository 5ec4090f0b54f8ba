"""A mission-size pixel database: do the costs of a month's work grow with the history?

Builds, under a temporary directory (or ``--out``), a :class:`stiscube.PixelDB` of
``--periods`` anneal periods (330: 1997-2026) of ``--size`` x ``--size`` properties from
:func:`stiscube.datasets.random_properties` (1024: about 7 GB of cube and as much of
history index), one period at a time as the monthly loop does, and prints per period:

- ``append``: wall and CPU time of :meth:`PixelDB.ingest_properties`;
- ``commit bytes``: bytes the append wrote (``wchar`` of ``/proc/self/io``: every
  byte passed to ``write``), and the files it left in the cube's version log;
- ``index``: wall time of the incremental history-index update after it, and the
  ratio of its CPU time to the append's;

and, at periods 1, 2, 5, 10, 20, ... and the last one (hot page cache, median of
``--repeat``):

- ``open``: ``PixelDB(path, mode="r")``; ``info``: :meth:`PixelDB.info` (and, with
  ``--cli-info``, the ``stiscube info`` command in a subprocess);
- ``point``: one pixel of the newest period (:meth:`PixelDB.query_pixel`);
- ``history``: one pixel across all periods (:meth:`PixelDB.history`);
- ``hot``: the whole mission's hot-pixel count per period (``sci_mean > 0.1`` e-/s over
  every frame, through ``db.dataset``), once.

It ends with the ratios of the issue (append at the last period / at period 10, ...)
and the disk taken by the cube and the index (allocated and apparent).  Timings on a
shared machine are noisy: compare ratios within one run, and the CPU times.

Run: ``python benchmarks/bench_mission.py`` (hours, ~15 GB); ``--periods 60 --size
256`` for a quick look.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stiscube import PixelDB
from stiscube.datasets import random_properties

HOT = 0.1  # e-/s


def _wchar() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("wchar")).split()[1])


def _timed(step, repeat: int = 1) -> tuple[float, float]:
    """Median wall and CPU seconds of *step*."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def _disk(path: Path) -> tuple[int, int]:
    """(allocated, apparent) bytes of the files under *path*."""
    allocated = apparent = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def _samples(n: int) -> set[int]:
    out, k = {n}, 1
    while k <= n:
        out |= {k, 2 * k, 5 * k}
        k *= 10
    return {s for s in out if s <= n}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=330)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, help="directory to build in (kept)")
    parser.add_argument("--cli-info", action="store_true", help="also time `stiscube info`")
    args = parser.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="bench_mission_"))
    path = base / "db"
    if path.exists():
        shutil.rmtree(path)
    print(f"# {args.periods} periods of {args.size}x{args.size} in {path}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    db = PixelDB.create(path, shape=(args.size, args.size))
    rng = np.random.default_rng(1)
    row, col = (int(v) for v in rng.integers(0, args.size, 2))
    rows = {}
    print("period  append_ms  append_cpu_ms  commit_bytes  index_ms  index_cpu/append_cpu  "
          "open_ms  open_cpu_ms  info_ms  info_cpu_ms  cli_info_ms  point_ms  history_ms  hot_s")
    for p in range(1, args.periods + 1):
        props = random_properties((args.size, args.size), seed=p)
        start = np.datetime64("1997-01-01") + np.timedelta64(30 * p, "D")
        before = _wchar()
        wall, cpu = _timed(lambda props=props, p=p, start=start: db.ingest_properties(
            props, p, start=start, end=start + np.timedelta64(29, "D")))
        written = _wchar() - before
        index, index_cpu = _timed(db.update_history_index)
        r = {"append": wall, "append_cpu": cpu, "bytes": written, "index": index,
             "index_cpu": index_cpu}
        if p in _samples(args.periods):
            reader = PixelDB(path, mode="r")
            r["open"], r["open_cpu"] = _timed(lambda: PixelDB(path, mode="r"), args.repeat)
            r["info"], r["info_cpu"] = _timed(lambda: PixelDB(path, mode="r").info(), args.repeat)
            if args.cli_info:
                cmd = [sys.executable, "-m", "stiscube.cli", "info", str(path)]
                r["cli_info"] = _timed(lambda cmd=cmd: subprocess.run(
                    cmd, check=True, capture_output=True))[0]
            r["point"] = _timed(lambda reader=reader, p=p: reader.query_pixel(
                row, col, anneal_num=p), args.repeat)[0]
            r["history"] = _timed(lambda reader=reader: reader.history(row, col),
                                  args.repeat)[0]
            r["hot"] = _timed(lambda reader=reader: (
                reader.dataset["sci_mean"] > HOT).sum(("row", "col")).values)[0]
        rows[p] = r

        def ms(key, r=r):
            return f"{1e3 * r[key]:9.1f}" if key in r else f"{'':>9}"

        print(f"{p:6d}  {ms('append')}  {ms('append_cpu'):>13}  {written:12d}  {ms('index')}  "
              f"{index_cpu / cpu:20.2f}  {ms('open')}  {ms('open_cpu'):>11}  {ms('info')}  "
              f"{ms('info_cpu'):>11}  {ms('cli_info'):>11}  "
              f"{ms('point')}  {ms('history'):>10}  "
              + (f"{r['hot']:6.2f}" if "hot" in r else ""), flush=True)
    last = args.periods
    ref = min(10, last)

    def around(p, key):  # a median over 5 periods around p (single appends are noisy)
        near = [rows[q][key] for q in range(max(1, p - 2), min(last, p + 2) + 1)]
        return statistics.median(near)

    print(f"\n# ratios, period {last} / period {ref} (medians over 5 periods for appends)")
    for key in ("append", "append_cpu", "bytes"):
        print(f"{key:>12}: {around(last, key) / around(ref, key):.2f}")
    for key in ("open", "open_cpu", "info", "info_cpu", "cli_info", "point", "history"):
        if key in rows[last] and key in rows[ref]:
            print(f"{key:>12}: {rows[last][key] / rows[ref][key]:.2f}")
    for kind in ("", "_cpu"):
        ratios = [rows[p]["index" + kind] / rows[p]["append" + kind] for p in rows]
        print(f"index update / its append ({'CPU' if kind else 'wall'} time): median "
              f"{statistics.median(ratios):.2f}, at the last 5 periods "
              f"{statistics.median(ratios[-5:]):.2f}")
    cube = _disk(path / "cube")
    index = _disk(path / "history")
    print(f"disk: cube {cube[0] / 1e6:.1f} MB, history index {index[0] / 1e6:.1f} MB allocated "
          f"({index[1] / 1e6:.1f} MB apparent); index / cube {index[0] / cube[0]:.2f} "
          f"(apparent {index[1] / cube[1]:.2f})")
    if args.out is None:
        shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
