"""Measurement: recall of hot pixels that turn on inside a period, and false states made
of repeated cosmic rays, for the cosmic-ray clip's options, against the simulator's truth.

Simulates ``--periods`` in-memory periods of ``--frames`` darks of ``--size``² pixels
(:func:`stiscube.datasets.simulate.simulate_stack`, ``hot_per_day`` raised to
``--hot-per-day`` so that a few thousand pixels turn hot; the clip decides per pixel, so
this changes the counts, not the rates), clips them with each option set
(:func:`stiscube.properties._kernels.reject_cosmic_rays`, the decisions of the compiled
kernel) and counts, from the truth:

- *onsets*: pixels whose hot level starts inside the period with at least one frame
  starting after the onset; *recovered* when every such frame's sample without a cosmic
  ray is kept (the hot level survives the clip); recall = recovered / onsets, also split
  by the number of frames after the onset;
- *false states*: pixels neither hot nor flickering with a kept cosmic-ray sample (every
  simulated cosmic ray, >= 300 e-, is far above the 5-sigma cut, so a kept one was
  protected as a "state");
- precision = recovered / (recovered + false states), as simulated and at the
  simulator's default onset rate (3000 per megapixel per 30-day period; false states do
  not depend on the onset rate).

Run:  .venv/bin/python benchmarks/late_onsets.py [--periods 4] [--frames 48] [--size 256]
"""

from __future__ import annotations

import argparse

import numpy as np

from stiscube.datasets.simulate import EVENT_COSMIC_RAY, DarkPhysics, simulate_stack
from stiscube.properties._kernels import ClipOptions, reject_cosmic_rays

OPTION_SETS = {
    "no tail (the old clip)": {"min_tail": 0},
    "no tail, state_fraction=0.1": {"min_tail": 0, "state_fraction": 0.1},
    "no tail, state_fraction=0.05": {"min_tail": 0, "state_fraction": 0.05},
    "min_tail=2": {"min_tail": 2},
    "min_tail=3 (default)": {},
    "min_tail=4": {"min_tail": 4},
}
#: onsets per 1024 x 1024 pixels per 30-day period at the simulator's default rate
#: (``hot_per_day`` = 100), for the precision a real period would see
REALISTIC_ONSETS = 3000.0


def _score(stack, truth, options):
    arrays = [stack[v].values for v in ("sci", "err", "dq", "exptime", "gain")]
    kept = reject_cosmic_rays(*arrays, axis=0, clip=ClipOptions(**options))
    start = truth["start_mjd"].values[:, None, None]
    onset = truth["hot_onset_mjd"].values
    inside = np.isfinite(onset) & (onset >= truth.attrs["start_mjd"])
    after = start >= onset  # frames starting after the onset
    n_after = after.sum(0)
    onsets = inside & (n_after >= 1)
    cr = (truth["events"].values & EVENT_COSMIC_RAY) > 0
    valid = np.isfinite(arrays[0]) & ((arrays[2] & ClipOptions().dq_mask) == 0)
    lost = (after & ~cr & valid & ~kept).any(0)
    recovered = onsets & ~lost
    plain = (truth["hot_rate"].values == 0) & (truth["flicker_amplitude"].values == 0)
    false_states = plain & (cr & kept).any(0)
    return onsets, recovered, false_states, n_after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--hot-per-day", type=float, default=1500.0)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    stacks = [
        simulate_stack(
            n_frames=args.frames,
            shape=(args.size, args.size),
            seed=args.seed + k,
            physics=DarkPhysics(hot_per_day=args.hot_per_day),
        )
        for k in range(args.periods)
    ]
    pixels = args.periods * args.size**2
    print(
        f"{args.periods} periods of {args.frames} darks of {args.size}x{args.size} "
        f"({pixels} pixel-periods), hot_per_day={args.hot_per_day:g}"
    )
    print(f"{'options':30} {'onsets':>7} {'recall':>7} {'false':>6} {'per Mpx':>8} "
          f"{'precision':>9} {'at 100/d':>8}  recall by frames after onset (1, 2, 3, 4, >=5)")
    for label, options in OPTION_SETS.items():
        totals = np.zeros(3, dtype=np.int64)
        by_after = np.zeros((2, 5), dtype=np.int64)
        for stack, truth in stacks:
            onsets, recovered, false_states, n_after = _score(stack, truth, options)
            totals += (onsets.sum(), recovered.sum(), false_states.sum())
            bucket = np.clip(n_after, 1, 5) - 1
            by_after[0] += np.bincount(bucket[onsets], minlength=5)
            by_after[1] += np.bincount(bucket[recovered], minlength=5)
        n_on, n_rec, n_false = totals
        recall = n_rec / n_on
        precision = n_rec / (n_rec + n_false)
        per_mpx = n_false / pixels * 1e6
        realistic = recall * REALISTIC_ONSETS / (recall * REALISTIC_ONSETS + per_mpx)
        split = ", ".join(
            f"{r / max(o, 1):.2f}" for r, o in zip(by_after[1], by_after[0], strict=True)
        )
        print(f"{label:30} {n_on:7d} {recall:7.3f} {n_false:6d} {per_mpx:8.1f} "
              f"{precision:9.4f} {realistic:8.4f}  ({split}; n = {by_after[0].tolist()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
