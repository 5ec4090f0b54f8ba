"""Maintenance of a cube store: repair, prune and the upgrade from format 1.

None of them is ever a side effect of a write; each reports what it will do before
doing it (``dry_run``), and each is safe to kill at any moment:

- :func:`repair` publishes the repaired version *first* (one record, based on the newest
  good version, with every slot on disk marked used), and only then moves damaged
  records to ``manifests/damaged/``: a kill leaves the damaged state (writes refused)
  or the repaired one, never a silent roll-back that lets a write reuse a slot;
- :func:`prune` writes a checkpoint of every kept version whose records reach into the
  removed ones before removing anything, then removes versions oldest first;
- :func:`upgrade` writes the format-2 marker first (this code reads whole format-1
  manifests as checkpoints of their own version), then checkpoints, then rewrites each
  manifest in place, atomically, as the record of what its commit changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

from stores._exceptions import CorruptStoreError
from stores.common.validate import as_int
from stores.storage.cube import _log
from stores.storage.cube._log import CHECKPOINTS, DAMAGED, MANIFESTS, Damaged, State
from stores.storage.fs import write_errors
from stores.storage.locks import WriterLock

__all__ = ["PruneReport", "RepairReport"]

logger = logging.getLogger("stores.storage.cube")

FORMAT = "stores.CubeStore"


@dataclass(frozen=True)
class RepairReport:
    """What :meth:`CubeStore.repair` (or :meth:`~CubeStore.upgrade`) found and did (or,
    with ``dry_run``, would do).

    Parameters
    ----------
    problems : tuple of str
        What is wrong with the store (empty when it is healthy).
    actions : tuple of str
        The steps, in order, one sentence each.
    applied : bool
        Whether the actions were carried out (False for a dry run).
    """

    problems: tuple[str, ...]
    actions: tuple[str, ...]
    applied: bool

    def __str__(self) -> str:
        if not self.problems and not self.actions:
            return "nothing to repair"
        head = "repaired" if self.applied else "would repair (dry run)"
        lines = [f"{head}:", *(f"  problem: {p}" for p in self.problems)]
        lines += [f"  {'did' if self.applied else 'will'}: {a}" for a in self.actions]
        return "\n".join(lines)


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`CubeStore.prune` removed (or, with ``dry_run``, would remove).

    Parameters
    ----------
    kept_versions : tuple of int
        The versions that stay readable.
    removed_versions : tuple of int
        Versions whose records are removed.
    removed_slots : tuple of int
        Storage slots (data chunks, checksum and extras files) no kept version uses.
    applied : bool
        Whether the removal was carried out (False for a dry run).
    """

    kept_versions: tuple[int, ...]
    removed_versions: tuple[int, ...]
    removed_slots: tuple[int, ...]
    applied: bool

    def __str__(self) -> str:
        verb = "removed" if self.applied else "would remove (dry run)"
        return (
            f"{verb} versions {list(self.removed_versions)} and slots "
            f"{list(self.removed_slots)}; kept versions {list(self.kept_versions)}"
        )


def _damaged_records(store) -> list[int]:
    out = []
    for n in store._log.numbers():
        with contextlib.suppress(FileNotFoundError):
            if store._log.read(n)[0] is None:
                out.append(n)
    return out


def _remove_temporaries(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def repair(store, *, dry_run: bool) -> RepairReport:
    """Find damage that blocks writes and (unless *dry_run*) repair it, for
    :meth:`CubeStore.repair`.  Nothing committed and readable is ever deleted:

    - a new version is published holding the newest good state (or the empty state when
      no version is readable), with every slot present on disk marked as used, so that
      later writes never overwrite storage a damaged or lost record pointed to;
    - then damaged records are moved to ``manifests/damaged/`` (kept for inspection);
    - temporary files of killed writers are removed (anywhere in the store).
    """
    store._check_writable()
    from stores.storage.cube._writing import LOCK

    lock = WriterLock(store.location, LOCK, timeout=store.lock_timeout, purpose="repair")
    with store._handle_lock, lock:
        store.refresh()
        problems = list(store._problems)
        good: State = store._state
        numbers = store._log.numbers()
        damaged = _damaged_records(store)
        temporaries = store._slots.everywhere_temporaries()
        actions, body = [], None
        if problems:
            sequence = max([good.sequence, *numbers]) + 1
            slots = max(good.slots_allocated, store._slots_on_disk)
            body = _log.record(
                good, sequence=sequence, slots_allocated=slots,
                change={"action": "repair", "label": None, "time": _log.now()},
            )
            state = f"version {good.sequence}" if good.sequence >= 0 and (
                good.slices or good.sequence in numbers) else "the empty state"
            actions.append(
                f"publish version {sequence} holding {state} ({len(good.slices)} slices), "
                f"with slots 0-{slots - 1} marked used so that no later write overwrites them"
            )
        actions += [
            f"move damaged manifest {store.location.join(MANIFESTS, _log.name(n))} to "
            f"{MANIFESTS}/{DAMAGED}/"
            for n in damaged
        ]
        actions += [f"remove temporary file {t}" for t in temporaries]
        if not dry_run:
            loc = store.location
            with write_errors(f"cube store {loc.url}"):
                if body is not None:
                    store._log.publish(body)  # first: from here on the store is repaired
                for n in damaged:
                    raw = loc.read_bytes(MANIFESTS, _log.name(n))
                    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                    loc.write_bytes((MANIFESTS, DAMAGED, f"{_log.name(n)}.{stamp}"), raw)
                    loc.remove(MANIFESTS, _log.name(n))
                _remove_temporaries(temporaries)
            store.refresh()
            logger.info("repaired %s: %s", loc.url, "; ".join(actions) or "nothing")
    return RepairReport(tuple(problems), tuple(actions), applied=not dry_run)


def prune(store, *, keep_last: int, dry_run: bool) -> PruneReport:
    """Remove all but the newest *keep_last* versions and the storage only they used,
    for :meth:`CubeStore.prune`.

    Slots used by any kept version are never removed.  Handles still reading a removed
    version then get :class:`~stores.CorruptStoreError` for the removed chunks (never
    wrong values): refresh them or reopen.
    """
    keep_last = as_int(keep_last, "keep_last")
    if keep_last < 1:  # message kept word for word: `stiscube prune` shows it
        msg = f"keep_last must be >= 1 (the current version is always kept), got {keep_last}"
        raise ValueError(msg)
    log = store._log
    with store.writing():
        numbers, checkpoints = log.numbers(), log.numbers(CHECKPOINTS)
        kept = numbers[-keep_last:]
        removed = [n for n in numbers if n not in kept]
        needed: set[int] = set()
        anchors: list[State] = []  # kept versions that need a checkpoint of their own
        state = None
        for n in kept:
            try:
                body, _ = log.read(n)
                if state is not None and body is not None and body.get("base") == state.sequence:
                    state = _log.apply(state, body)
                else:
                    state = log.load(n, numbers, checkpoints)
                    if removed and n not in checkpoints:
                        anchors.append(state)
            except Damaged as exc:
                msg = (f"{store.location.url}: version {n} is damaged ({exc.describe()}); "
                       "not pruning")
                raise CorruptStoreError(msg) from None
            needed |= state.slots()
        candidates = set(range(store._state.slots_allocated)) - needed
        slots = sorted(s for s in candidates if store._slots.stored(s))
        if not dry_run:
            with write_errors(f"cube store {store.location.url}"):
                for anchor in anchors:
                    log.checkpoint(anchor)
                for n in removed:  # oldest first: a reader never sees a gap below kept
                    for part, prefix in ((MANIFESTS, ""), (CHECKPOINTS, ""),
                                         (CHECKPOINTS, "versions-")):
                        with contextlib.suppress(FileNotFoundError):
                            store.location.remove(part, prefix + _log.name(n))
                for slot in slots:
                    store._slots.remove(slot)
            logger.info("pruned %s: versions %s, slots %s", store.location.url, removed, slots)
    return PruneReport(tuple(kept), tuple(removed), tuple(slots), applied=not dry_run)


def _infer_change(previous: State | None, state: State) -> dict:
    """What a format-1 manifest written before changes were recorded changed."""
    if previous is None:
        return {"action": None, "label": None, "time": None}
    for label, entry in state.slices.items():
        old = previous.slices.get(label)
        if old is None or old["slot"] != entry["slot"]:
            return {"action": "append" if old is None else "replace", "label": label,
                    "time": entry.get("committed")}
    return {"action": None, "label": None, "time": None}


def upgrade(store, *, dry_run: bool) -> RepairReport:
    """Turn a format-1 store (a whole manifest per version) into the current format,
    for :meth:`CubeStore.upgrade`; damaged manifests are left for :func:`repair`."""
    from stores.storage.cube._store import write_marker
    from stores.storage.cube._writing import FORMAT_VERSION, LOCK

    store._check_writable()
    loc, log = store.location, store._log
    lock = WriterLock(loc, LOCK, timeout=store.lock_timeout, purpose="upgrade")
    with store._handle_lock, lock:
        if store.format_version >= FORMAT_VERSION:
            return RepairReport((), (), applied=not dry_run)
        numbers = log.numbers()
        states: list[State] = []
        for n in numbers:
            body, _ = log.read(n)
            if body is not None and "set" not in body:
                states.append(log.load(n, [n], []))
        problems = [
            f"format {store.format_version}: each of the {len(numbers)} versions is a whole "
            "manifest, so commits, opens and version listings grow with the history"
        ]
        newest = states[-1] if states else None
        anchors = [s for s in states if s.sequence % _log.CHECKPOINT_EVERY == 0]
        if newest is not None and newest not in anchors:
            anchors.append(newest)
        temporaries = store._slots.everywhere_temporaries()
        actions = [
            f"write {loc.join('cubestore.json')} with format version {FORMAT_VERSION}",
            f"write checkpoints of versions {[s.sequence for s in anchors]}",
            f"rewrite the {len(states)} readable manifests as records of what each changed",
            *(f"remove temporary file {t}" for t in temporaries),
        ]
        if not dry_run:
            with write_errors(f"cube store {loc.url}"):
                write_marker(loc, store.schema, created=store._created)
                for state in anchors:
                    log.checkpoint(state)
                previous = None
                for state in states:
                    base = previous if previous is not None else _log.empty(-1)
                    changed = {k: v for k, v in state.slices.items() if base.slices.get(k) != v}
                    body = _log.record(
                        base, sequence=state.sequence, slots_allocated=state.slots_allocated,
                        change=state.change or _infer_change(previous, state),
                        slices=changed, retire=tuple(state.retired[len(base.retired):]),
                    )
                    loc.write_bytes((MANIFESTS, _log.name(state.sequence)), _log.encode(body),
                                    staging=log.staging)
                    previous = state
                _remove_temporaries(temporaries)
            store.format_version = FORMAT_VERSION
            store._state = None
            store.refresh()
            logger.info("upgraded %s: %s", loc.url, "; ".join(actions))
    return RepairReport(tuple(problems), tuple(actions), applied=not dry_run)
