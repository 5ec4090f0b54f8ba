"""The real HST files of ``tests/data/real`` are the archive's bytes (issue 23)."""

from __future__ import annotations

import hashlib


def test_real_files_are_unchanged_copies(real_dir):
    listed = {}
    for line in (real_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    present = {p.relative_to(real_dir).as_posix() for p in real_dir.glob("*/*")}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((real_dir / name).read_bytes()).hexdigest() == digest, name
