"""The cost of checksum-verified reads in :class:`stores.CubeStore` (issue 14.6).

Every read of a committed slice verifies the CRC-32C of each stored chunk it touches
(recorded at commit time in ``checksums/SSSSSSSS.json``).  This benchmark builds, under a
temporary directory (or ``--out``), a cube with the pixel cube's layout
(:func:`stiscube.schema.cube_schema`: four float32 and one uint16 property, chunks of
128 x 128, uncompressed) of ``--periods`` periods of ``--size`` x ``--size``, then times,
as medians over random pixels and periods with the two variants *interleaved* (so load
changes hit both alike):

- **verified**: the store's own read (:meth:`CubeStore.read_arrays`), which checks every
  chunk it touches;
- **unverified**: the same call on a handle whose slot reads skip the checksum table
  (the same code path otherwise, as the store read before), the reference of each ratio;
- **raw**: the direct chunk reader alone, without the store's per-call bookkeeping;

for one pixel of one period (five properties), one pixel's history over all periods,
a 100 x 100 region, and one whole period (five frames).  It also reports the commit-time
cost: the time of one append and, within it, of recording the chunk checksums.

Run: ``python benchmarks/bench_store_checks.py`` (1024 x 1024, 20 periods, about a
minute); ``--size 256`` for a quick look.  The printed ratios are the figures to quote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from stiscube.schema import PROPERTIES, cube_schema
from stores import CubeStore
from stores.storage.direct import DirectReader


def _slice(schema, label: int, rng) -> xr.Dataset:
    data = {}
    for name, spec in schema.variables.items():
        shape = schema.slice_shape(name)
        if np.dtype(spec.dtype).kind == "f":
            values = rng.normal(0.01, 0.003, shape).astype(spec.dtype)
        else:
            values = rng.integers(0, 5, shape).astype(spec.dtype)
        data[name] = (spec.dims, values)
    return xr.Dataset(data)


def _coords(label: int) -> dict:
    start = np.datetime64("2000-01-01", "ns") + np.timedelta64(30 * label, "D")
    return {
        "anneal_start": start,
        "anneal_end": start + np.timedelta64(30, "D"),
        "unit_system": "rate",
        "n_darks": 20,
        "source": "benchmark",
        **_provenance(),
    }


def _provenance() -> dict:
    """Values for any per-period coordinates the layout adds beyond the five above."""
    schema = cube_schema((8, 8))
    extra = {}
    for name, dtype in schema.slice_coords.items():
        if name in ("anneal_start", "anneal_end", "unit_system", "n_darks", "source"):
            continue
        extra[name] = "unknown" if dtype == "str" else np.zeros((), dtype=dtype)[()]
    return extra


class _Unverified(CubeStore):
    """The store's read path with the per-chunk checksum verification left out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        slots = self._slots
        slots.read = lambda name, label, entry, slices: slots.direct(name).read(
            int(entry["slot"]), slices
        )


def _time(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--periods", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="bench_store_checks_"))
    path = root / "cube"
    if path.exists():
        shutil.rmtree(path)
    schema = cube_schema((args.size, args.size))
    rng = np.random.default_rng(0)
    store = CubeStore.create(path, schema)
    appends, checksum_times = [], []
    original = DirectReader.chunk_checksums

    def timed_checksums(self, slot):
        t0 = time.perf_counter()
        try:
            return original(self, slot)
        finally:
            checksum_times.append(time.perf_counter() - t0)

    DirectReader.chunk_checksums = timed_checksums
    try:
        for label in range(args.periods):
            data = _slice(schema, label, rng)
            appends.append(_time(store.append, data, label, coords=_coords(label)))
    finally:
        DirectReader.chunk_checksums = original
    per_append_checksums = sum(checksum_times) / args.periods

    reader = CubeStore(path)
    plain = _Unverified(path)
    labels = reader.labels
    raw = {name: DirectReader(reader.location, ("data", name)) for name in PROPERTIES}
    slots = {label: reader.slice_info(label)["slot"] for label in labels}

    def direct(label_list, window):
        return {
            name: np.stack([raw[name].read(slots[x], window) for x in label_list])
            for name in PROPERTIES
        }

    n = args.size
    cases = {
        "point (1 pixel, 1 period, 5 properties)": lambda r, c, p: (
            [p], {"row": slice(r, r + 1), "col": slice(c, c + 1)}, args.repeats),
        f"history (1 pixel, {args.periods} periods)": lambda r, c, p: (
            labels, {"row": slice(r, r + 1), "col": slice(c, c + 1)}, args.repeats // 4),
        "region 100 x 100 (1 period)": lambda r, c, p: (
            [p], {"row": slice(r % (n - 100), r % (n - 100) + 100),
                  "col": slice(c % (n - 100), c % (n - 100) + 100)}, args.repeats // 4),
        "whole period (5 frames)": lambda r, c, p: (
            [p], {"row": slice(0, n), "col": slice(0, n)}, 30),
    }
    print(f"cube {n} x {n}, {args.periods} periods, chunks 128 x 128, uncompressed; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'read (medians)':42s} {'verified':>12s} {'unverified':>12s} {'ratio':>6s} "
          f"{'raw':>12s}")
    for title, make in cases.items():
        times = {"verified": [], "unverified": [], "raw": []}
        count = make(0, 0, 0)[2]
        for i in range(count):
            r, c = (int(v) for v in rng.integers(0, n, 2))
            label_list, window, _ = make(r, c, labels[i % len(labels)])
            box = [window["row"], window["col"]]
            runs = [
                ("verified", reader.read_arrays, (label_list,), window),
                ("unverified", plain.read_arrays, (label_list,), window),
                ("raw", direct, (label_list, box), {}),
            ]
            for key, fn, fargs, kwargs in runs[i % 3 :] + runs[: i % 3]:
                times[key].append(_time(fn, *fargs, **kwargs))
        # the same numbers every way (bit for bit)
        got = reader.read_arrays(label_list, **window)
        for ref in (plain.read_arrays(label_list, **window), direct(label_list, box)):
            assert all(got[k].tobytes() == ref[k].tobytes() for k in PROPERTIES)
        v, u, w = (statistics.median(times[k]) for k in ("verified", "unverified", "raw"))
        print(f"{title:42s} {v * 1e3:9.3f} ms {u * 1e3:9.3f} ms {v / u:6.2f} {w * 1e3:9.3f} ms")
    append = statistics.median(appends)
    print(
        f"append of one period: {append * 1e3:.0f} ms, of which recording the chunk "
        f"checksums {per_append_checksums * 1e3:.0f} ms ({per_append_checksums / append:.0%})"
    )
    if args.out is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
