"""The cost per month of the monthly STIS loop, from a replay's ``stis-costs.csv``.

``examples/replay.py --size benchmark --out DIR`` appends one row per month to
``DIR/stis-costs.csv`` (columns :data:`COST_COLUMNS` of the replay).  This script draws
the CPU seconds of each command and the megabytes written against the period number
(``--png``), and prints a Markdown table of the months 1, 2, 5, 10, 20, ... and the last
one, with the ratio of the last month's CPU to the 10th's (the loop's costs should stay
flat as the history grows)::

    python benchmarks/plot_replay.py DIR/stis-costs.csv --png benchmarks/replay_costs.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

STEPS = ("ingest", "dq", "report")


def _samples(n: int) -> list[int]:
    """Row indices of months 1, 2, 5, 10, 20, 50, ... and the last."""
    out, k = {n - 1}, 1
    while k <= n:
        out.update(i - 1 for i in (k, 2 * k, 5 * k) if i <= n)
        k *= 10
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    """Print the table and write the plot (``--help``); exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="stis-costs.csv of a replay")
    parser.add_argument("--png", type=Path, help="write the cost-per-month plot here")
    args = parser.parse_args(argv)
    t = Table.read(args.csv, format="ascii.csv")
    print("| month | period | " + " | ".join(f"{s} wall / CPU s" for s in STEPS)
          + " | MB written | load avg |")
    print("|---" * (len(STEPS) + 4) + "|")
    for i in _samples(len(t)):
        r = t[i]
        print(f"| {i + 1} | {r['period']} | "
              + " | ".join(f"{r[f'{s}_s']:.2f} / {r[f'{s}_cpu_s']:.2f}" for s in STEPS)
              + f" | {r['written_bytes'] / 1e6:.2f} | {r['load_average']:.1f} |")
    cpu = sum(np.asarray(t[f"{s}_cpu_s"], float) for s in STEPS)
    if len(t) >= 20:
        first, last = np.median(cpu[5:15]), np.median(cpu[-10:])
        print(f"\nCPU per month, median of the last 10 months / of months 6-15: "
              f"{last:.2f} / {first:.2f} s = {last / first:.2f}x")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for s in STEPS:
            top.plot(t["period"], t[f"{s}_cpu_s"], ".", ms=3, label=f"stiscube {s}")
        top.plot(t["period"], cpu, "-", lw=0.8, color="k", label="all three")
        top.set_ylabel("CPU time per month [s]")
        top.legend(loc="upper left", fontsize="small")
        bottom.plot(t["period"], np.asarray(t["written_bytes"], float) / 1e6, ".", ms=3,
                    label="bytes written by the month's commands")
        bottom.set_ylabel("written per month [MB]")
        bottom.set_xlabel("anneal period")
        bottom.legend(loc="upper left", fontsize="small")
        fig.suptitle(f"Monthly STIS loop, {len(t)} months ({args.csv.parent.name})")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
