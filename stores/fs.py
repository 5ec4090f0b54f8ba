"""Public filesystem plumbing of :mod:`stores`: locations, atomic writes, writer locks.

The supported home of what :mod:`stiscube` and :mod:`cte` need from the stores'
filesystem layer (the private ``stores._fs`` keeps working for now):

- :class:`Location` — a local path or fsspec URL, normalised (``memory://x`` and
  ``memory:///x`` are one place; ``file://`` and ``local://`` URLs are local paths);
- :func:`atomic_write` — ``atomic_write(target, data, *, encoding="utf-8") -> None``
  writes bytes or text to a path or URL so that readers see the old or the new file;
- :func:`atomic_path` — ``with atomic_path(target, *, suffix=None) as tmp:`` yields a
  temporary local path to write (savefig, writeto, ...) and renames it over *target*
  when the block succeeds;
- :class:`WriterLock`, :func:`break_lock` — the single-writer lock of a store.
"""

from stores import _fs
from stores._fs import *  # noqa: F403  (exactly the public names, stores._fs.__all__)
from stores._locks import WriterLock, break_lock

__all__ = [*_fs.__all__, "WriterLock", "break_lock"]
