"""The version log of a cube store: one small record per commit, and checkpoints.

``manifests/NNNNNNNNNNNN.json`` is the record of version *n*: what that commit changed
(the slices it added or replaced, with their slots and checksums; the slots it
retired), the version it applies to (``base``, normally *n* - 1), the number of slots
allocated and of slices held after it, and the change (action, label, time).  A record
is written once, with an exclusive create, and carries a SHA-256 of its own body.

``checkpoints/NNNNNNNNNNNN.json`` is the whole state at version *n* (every slice's entry),
written every :data:`CHECKPOINT_EVERY` records by the committer (after the record: a
checkpoint never precedes its record) and by :meth:`CubeStore.prune` at the oldest kept
version.  The state of version *n* is the newest checkpoint on its chain of records
plus the records after it, so an open reads at most one checkpoint and
:data:`CHECKPOINT_EVERY` records, and a commit reads only the records it has not seen.

A format-1 store (``cubestore.json`` version 1) has full states in ``manifests/``; they
are read as checkpoints of their own version, and ``stiscube upgrade`` rewrites them as
records (see :mod:`stores.storage.cube._maintenance`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from stores._exceptions import CorruptStoreError
from stores.storage.fs import Location

__all__: list[str] = []

logger = logging.getLogger(__name__)

MANIFESTS = "manifests"
CHECKPOINTS = "checkpoints"
DAMAGED = "damaged"
#: records between two checkpoints (an open reads at most this many records)
CHECKPOINT_EVERY = 64
_NAME = re.compile(r"^(\d{12})\.json$")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def name(number: int) -> str:
    """The file name of record or checkpoint *number*."""
    return f"{number:012d}.json"


def body_digest(body: Mapping) -> str:
    """SHA-256 of a record's or checkpoint's body (the rule of the format)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def encode(body: Mapping) -> bytes:
    """The document of *body*: the body with its SHA-256."""
    return json.dumps({"sha256": body_digest(body), "body": body}).encode()


@dataclass
class State:
    """A committed state: the slices held, by label, and the slots allocated."""

    sequence: int
    slots_allocated: int
    slices: dict  # label (python scalar) -> {"slot", "coords", "sha256", "committed", ...}
    retired: list
    change: dict | None = None  # {"action", "label", "time"} of the commit that made it
    depth: int = 0  # records applied since the last whole state (checkpoint) read

    def body(self) -> dict:
        """The whole state as a checkpoint body (also the format-1 manifest body)."""
        body = {
            "sequence": self.sequence,
            "slots_allocated": self.slots_allocated,
            "slices": [{"label": k, **v} for k, v in self.slices.items()],
            "retired": list(self.retired),
        }
        if self.change is not None:
            body["change"] = dict(self.change)
        return body

    def slots(self) -> set[int]:
        return {int(e["slot"]) for e in self.slices.values()}


def empty(sequence: int = 0) -> State:
    """The empty cube as version *sequence*."""
    return State(sequence, 0, {}, [])


def record(base: State, *, sequence: int, change: dict, slices: Mapping | None = None,
           retire: tuple = (), slots_allocated: int | None = None) -> dict:
    """The record body of version *sequence*: *base* changed by *slices* and *retire*."""
    slices = dict(slices or {})
    held = len(set(base.slices) | set(slices))
    return {
        "sequence": sequence,
        "base": base.sequence,
        "change": dict(change),
        "set": [{"label": k, **v} for k, v in slices.items()],
        "retire": [int(s) for s in retire],
        "slots_allocated": base.slots_allocated if slots_allocated is None else slots_allocated,
        "labels": held,
    }


def _full(body: Mapping) -> State:
    slices = {}
    for entry in body["slices"]:
        entry = dict(entry)
        slices[entry.pop("label")] = entry
    return State(
        sequence=int(body["sequence"]),
        slots_allocated=int(body["slots_allocated"]),
        slices=slices,
        retired=list(body["retired"]),
        change=body.get("change"),
    )


def apply(state: State, body: Mapping) -> State:
    """The state after record *body* (its ``base`` must be *state*)."""
    slices = dict(state.slices)
    for entry in body["set"]:
        entry = dict(entry)
        slices[entry.pop("label")] = entry
    if len(slices) != int(body["labels"]):
        msg = f"it holds {body['labels']} slices, but its base and changes make {len(slices)}"
        raise ValueError(msg)
    return State(
        sequence=int(body["sequence"]),
        slots_allocated=int(body["slots_allocated"]),
        slices=slices,
        retired=[*state.retired, *body["retire"]],
        change=body["change"],
        depth=state.depth + 1,
    )


def parse(raw: bytes, number: int) -> tuple[dict | None, str]:
    """The verified body in *raw*, or None and why it is refused (checksum first)."""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or "sha256" not in doc or "body" not in doc:
            return None, "not a manifest document"
        body = doc["body"]
        if doc["sha256"] != body_digest(body):
            return None, "its body does not match its SHA-256 checksum"
        if body["sequence"] != number:
            return None, f"it says sequence {body['sequence']}, not {number}"
        if "set" in body:
            int(body["base"]), int(body["labels"]), int(body["slots_allocated"])
            list(body["set"]), list(body["retire"]), dict(body["change"])
        else:
            _full(body)
        return body, ""
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"unreadable ({exc!r})"


class Damaged(Exception):
    """Record *number* on the chain of a version is damaged or missing (*reason*)."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(number, reason)
        self.number = number
        self.reason = reason

    def describe(self) -> str:
        return f"manifest {name(self.number)} is {self.reason}"


class VersionLog:
    """Reads and writes the records and checkpoints of the store at *location*."""

    def __init__(self, location: Location, staging: tuple[str, ...]) -> None:
        self.location = location
        self.staging = staging

    def numbers(self, part: str = MANIFESTS) -> list[int]:
        """The record (or, with *part* = CHECKPOINTS, checkpoint) numbers held, sorted."""
        names = self.location.listdir(part)
        return sorted(int(m.group(1)) for n in names if (m := _NAME.match(n)))

    def read(self, number: int, part: str = MANIFESTS) -> tuple[dict | None, str]:
        """Body of record (or checkpoint) *number*; raises FileNotFoundError if absent."""
        return parse(self.location.read_bytes(part, name(number)), number)

    def load(self, target: int, numbers: list[int], checkpoints: list[int], *,
             known: State | None = None) -> State:
        """The state of version *target*: its newest checkpoint and the records after it.

        *known* (a state read before) ends the walk when the chain reaches it.

        Raises
        ------
        Damaged
            A record on the chain is damaged or missing.
        FileNotFoundError
            A file listed a moment ago is gone (pruned meanwhile): list again.
        """
        held, anchors = set(numbers), set(checkpoints)
        chain: list[dict] = []
        k = target
        while True:
            if known is not None and k == known.sequence:
                state = known
                break
            if k < 0:
                state = empty(-1)
                break
            if k in anchors:
                body, reason = self.read(k, CHECKPOINTS)
                if body is not None:
                    state = _full(body)
                    break
                logger.warning("%s: ignoring damaged checkpoint %s (%s)",
                               self.location.url, name(k), reason)
            if k not in held:
                if k == 0:  # a format-1 store made before version 0 was written
                    state = empty(0)
                    break
                raise Damaged(k, f"missing (version {target} needs it)")
            body, reason = self.read(k)
            if body is None:
                raise Damaged(k, f"damaged ({reason})")
            if "set" not in body:  # a format-1 manifest: a whole state
                state = _full(body)
                break
            chain.append(body)
            if int(body["base"]) >= k:
                raise Damaged(k, f"damaged (its base {body['base']} is not older)")
            k = int(body["base"])
        for body in reversed(chain):
            try:
                state = apply(state, body)
            except (ValueError, KeyError, TypeError) as exc:
                raise Damaged(int(body["sequence"]), f"damaged ({exc})") from None
        return state

    def publish(self, body: Mapping) -> None:
        """Write record *body* as a new file; refuse if its number exists (a bypassed lock)."""
        doc = encode(body)
        try:
            self.location.write_bytes((MANIFESTS, name(body["sequence"])), doc,
                                      exclusive=True, staging=self.staging)
        except FileExistsError:
            msg = (
                f"{self.location.url}: manifest {name(body['sequence'])} already exists; "
                "another writer bypassed the lock"
            )
            raise CorruptStoreError(msg) from None

    def checkpoint(self, state: State, headers: list[dict] | None = None) -> None:
        """Write the checkpoint of *state* (after its record is published) and, if given,
        the *headers* of the versions up to it (:meth:`listing`) beside it in
        ``checkpoints/versions-NNNNNNNNNNNN.json``, read by listings only."""
        if headers is not None:  # first: a checkpoint's headers are there when it is
            kept = [h for h in headers if h["version"] <= state.sequence]
            self.location.write_bytes((CHECKPOINTS, f"versions-{name(state.sequence)}"),
                                      json.dumps(kept).encode(), staging=self.staging)
        self.location.write_bytes((CHECKPOINTS, name(state.sequence)), encode(state.body()),
                                  staging=self.staging)

    def _listed(self, held: set[int]) -> tuple[int, list[dict]]:
        """The newest checkpoint with version headers beside it, and those still held."""
        for number in reversed(self.numbers(CHECKPOINTS)):
            try:
                raw = self.location.read_bytes(CHECKPOINTS, f"versions-{name(number)}")
                return number, [dict(h) for h in json.loads(raw) if h["version"] in held]
            except FileNotFoundError:  # none written (upgrade, prune), or pruned meanwhile
                continue
            except (ValueError, KeyError, TypeError):
                logger.warning("%s: ignoring damaged checkpoint %s", self.location.url,
                               name(number))
        return -1, []

    def listing(self, created: str | None) -> list[dict]:
        """One dict per version held (see :meth:`CubeStore.versions`): the headers kept
        in the newest checkpoint, then those of the records after it (not re-digested:
        an unreadable record is listed as ``"damaged"``)."""
        numbers = self.numbers()
        start, out = self._listed(set(numbers))  # the versions up to the newest checkpoint
        if not numbers or numbers[0] == 1:  # a format-1 store made before version 0
            out.insert(0, {"version": 0, "time": created, "action": "create", "label": None,
                           "labels": 0})
        for number in (n for n in numbers if n > start):
            try:
                raw = self.location.read_bytes(MANIFESTS, name(number))
            except FileNotFoundError:  # pruned meanwhile
                continue
            try:  # the header only: opens and commits verify the records they use
                body = json.loads(raw)["body"]
                change = body.get("change") or {}
                held = int(body["labels"]) if "set" in body else len(body["slices"])
                if int(body["sequence"]) != number:
                    raise ValueError(number)
            except (ValueError, KeyError, TypeError, AttributeError):
                out.append({"version": number, "time": None, "action": "damaged",
                            "label": None, "labels": None})
                continue
            out.append({"version": number, "time": change.get("time"),
                        "action": change.get("action"), "label": change.get("label"),
                        "labels": held})
        return out
