"""A labelled Zarr v3 cube that grows along one dimension, committed slice by slice.

Layout of a cube store at ``<root>`` (a local directory or any fsspec URL)::

    <root>/cubestore.json        format marker (version 2) and schema (written once)
    <root>/data/                 Zarr v3 group: one array per variable, with dims
                                 (slot, *fixed dims).  This is *internal storage*: index 0
                                 is a slot, not a label (retired and uncommitted slots are
                                 there too); the group's attrs say so.  Open the cube
                                 with CubeStore (or the ``stiscube`` xarray engine).
    <root>/checksums/SSSSSSSS.json
                                 CRC-32C of the stored bytes of every chunk of slot S
    <root>/extras/SSSSSSSS.json  optional JSON document attached to the slice in slot S
    <root>/manifests/NNNNNNNNNNNN.json
                                 the version log: the record of version n, what its
                                 commit changed (a few hundred bytes, whatever the size
                                 of the cube)
    <root>/checkpoints/NNNNNNNNNNNN.json
                                 the whole state at version n, every 64 versions (and
                                 versions-NNNNNNNNNNNN.json: the headers of the versions
                                 up to n, for listings)
    <root>/staging/              temporary files of writes in progress
    <root>/.lock                 the writer lock (local stores: ``fcntl.flock``)

Commit protocol (how readers never see a half-written slice):

1. Data for a new or replaced slice is written to a *fresh slot*, one never referenced
   by any committed version.  Committed slots are never written again, so a reader of
   an older state keeps reading consistent values.
2. Checksums are recorded: SHA-256 of each variable's values (checked by
   :meth:`CubeStore.verify`) and, in ``checksums/SSSSSSSS.json``, the CRC-32C of every
   stored chunk, which every read verifies for the chunks it touches.
3. The new version is *published last* by writing its record, itself atomic (an
   exclusive create) and carrying a SHA-256 of its own body (which holds the SHA-256
   of the slot's checksum and extras files).

A writer killed at any moment therefore leaves at worst an unreferenced slot, which
the next write reuses, and temporary files, which the next writer removes from
``staging/`` and the uncommitted slot (never walking the tree).

Costs do not grow with the history: a commit writes its slot and one record (plus a
checkpoint every 64 versions), and reads only the records it has not seen; an open
reads one checkpoint and at most 64 records; :meth:`CubeStore.versions` reads the
headers kept beside the newest checkpoint and at most 64 records.  See
:mod:`stores.storage.cube._log`.

Versions: record n is version n (version 0, the empty cube, is written at creation),
and each records what changed (append, replace or repair, and the label).  Open an old
one with ``CubeStore(url, version=n)``; list them with :meth:`CubeStore.versions`.
Replacing a slice retires its old slot, which stays on disk for the older versions;
only :meth:`CubeStore.prune` removes old versions and the slots no kept version needs.

Damage: a newest record that does not verify (or is missing from its chain), or data
without any record, opens, but every read of the newest version and every write raise
:class:`~stores.CorruptStoreError` naming it and ``stiscube repair``
(:meth:`CubeStore.repair`); older versions stay readable when asked for with
``version=``.  A format-1 store (a whole manifest per version, written before this
format) is readable as it is and is converted by ``stiscube upgrade``
(:meth:`CubeStore.upgrade`) before it accepts writes.

Only one writer at a time: each append or replace takes the store's writer lock, waiting
up to ``lock_timeout`` seconds, and raises :class:`~stores.StoreLockedError` otherwise.
A caller whose checks depend on the committed state holds the lock across its checks
and its writes with ``with store.writing(): ...``.

Modules: :mod:`~stores.storage.cube.schema` (the schema and the checks of a slice),
``_log`` (version records and checkpoints), ``_slots`` (arrays, slot writes, verified
chunk reads, temporaries), ``_reading`` and ``_writing`` (the read and commit methods),
``_maintenance`` (repair, prune, upgrade) and ``_store`` (the :class:`CubeStore` façade).

Why not icechunk?  icechunk (transactional Zarr) gives the same all-or-nothing commits
and more (history, branches), but it has its own storage backends instead of fsspec
URLs, resolves concurrent writers optimistically (the loser's commit fails after its
work is done) rather than with a lock, and adds a young on-disk format that every
reader of the cube would need.  The commit protocol needed here is small: fresh slots
plus an atomically published record, on plain Zarr v3 that any Zarr reader can open.
"""

from stores.storage.cube._maintenance import PruneReport, RepairReport
from stores.storage.cube._store import CubeStore
from stores.storage.cube.schema import CubeSchema, VariableSpec

__all__ = ["CubeSchema", "CubeStore", "PruneReport", "RepairReport", "VariableSpec"]
