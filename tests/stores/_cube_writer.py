"""A writer process for the crash-safety and concurrency tests of CubeStore.

Usage::

    python _cube_writer.py STORE {append|replace} LABEL SEED [--delay S] [--die-at K]
                           [--lock-timeout S] [--go-file PATH] [--exclusive-start]

Every write of a chunk or manifest object goes through a wrapper that can sleep
(``--delay``, to stretch the write so another process can kill it at chosen moments)
or SIGKILL this process just before its K-th object write (``--die-at``).  The process
prints ``START`` when it begins the write and ``WROTE`` or ``LOCKED`` at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import zarr.storage

import stores.storage.fs as fs_module
from stores import CubeStore, StoreLockedError
from stores.common.testing import example_coords, example_slice

_count = 0


def _tick(args) -> None:
    global _count
    _count += 1
    if args.die_at is not None and _count >= args.die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    if args.delay:
        time.sleep(args.delay)


def _instrument(args) -> None:
    original_set = zarr.storage.LocalStore.set

    async def slow_set(self, key, value):
        if not key.endswith("zarr.json"):
            _tick(args)
        return await original_set(self, key, value)

    zarr.storage.LocalStore.set = slow_set
    original_fsspec_set = zarr.storage.FsspecStore.set

    async def slow_fsspec_set(self, key, value, byte_range=None):
        if not key.endswith("zarr.json"):
            _tick(args)
        return await original_fsspec_set(self, key, value)

    zarr.storage.FsspecStore.set = slow_fsspec_set
    original_write = fs_module.atomic_write_bytes

    def slow_write(location, path, data, **options):
        _tick(args)
        return original_write(location, path, data, **options)

    fs_module.atomic_write_bytes = slow_write


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("operation", choices=["append", "replace"])
    parser.add_argument("label", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--lock-timeout", type=float, default=0.0)
    parser.add_argument("--go-file")
    parser.add_argument(
        "--exclusive-start",
        action="store_true",
        help="inside store.writing(), refuse (exit 4, OVERLAP) if a committed slice has the "
        "same 'start' coordinate: a check that depends on the committed state",
    )
    args = parser.parse_args()
    store = CubeStore(args.store, mode="r+", lock_timeout=args.lock_timeout)
    data = example_slice(store.schema, args.label, seed=args.seed)
    _instrument(args)
    if args.go_file:
        print("READY", flush=True)
        while not os.path.exists(args.go_file):
            time.sleep(0.005)
    print("START", flush=True)
    write = store.append if args.operation == "append" else store.replace
    coords = example_coords(args.label)
    if args.exclusive_start:
        coords["start"] = example_coords(0)["start"]
    try:
        with store.writing():
            if args.exclusive_start:
                starts = [store.slice_info(label)["coords"]["start"] for label in store.labels]
                if str(coords["start"]) in starts:
                    print("OVERLAP", flush=True)
                    return 4
                time.sleep(0.2)  # widen the window between the check and the write
            write(data, args.label, coords=coords)
    except StoreLockedError as exc:
        print(f"LOCKED {exc}", flush=True)
        return 3
    print(f"WROTE {_count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
