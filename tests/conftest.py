"""Fixtures shared by all test packages."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(params=["local", "memory"])
def store_url(request, tmp_path):
    """A location for a new store: a local directory or a unique ``memory://`` URL."""
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    root = f"/test-{uuid.uuid4().hex}"
    yield f"memory://{root}/store"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


#: the real HST archive files the tests read, kept in the repository (tests/data/real/README.md)
REAL_DIR = Path(__file__).resolve().parent / "data" / "real"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """``tests/data/real``: real STIS/WFC3 archive files (read-only; derive variants in tests)."""
    return REAL_DIR
